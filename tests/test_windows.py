"""Window mining: the best window against brute force, cutting windows, and inference-time
mining with a (freshly built) KineMIC generator on the shipped prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kinemic.mining.windows import (
    best_window,
    cut_windows,
    mine_windows,
    source_attention,
    window_lengths,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def brute_force(a: np.ndarray, n: int, length: int) -> int:
    L = min(length, n)
    sums = [a[s : s + L].sum() for s in range(n - L + 1)]
    return int(np.argmax(sums))  # the first maximum


def test_best_window_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        B, T = 6, int(rng.integers(1, 30))
        n = rng.integers(1, T + 1, size=B)
        length = rng.integers(1, T + 5, size=B)  # some longer than the clip
        a = rng.random((B, T))
        mask = np.arange(T)[None] < n[:, None]
        got = best_window(torch.tensor(a), torch.tensor(mask), torch.tensor(length))
        assert got.dtype == torch.long
        expect = [brute_force(a[b], int(n[b]), int(length[b])) for b in range(B)]
        assert got.tolist() == expect


def test_best_window_edge_cases() -> None:
    a = torch.tensor([[0.1, 0.5, 0.5, 0.1, 0.0, 9.0]])  # frame 5 is padding: never chosen
    mask = torch.tensor([[True] * 5 + [False]])
    assert best_window(a, mask, torch.tensor([2])).tolist() == [1]
    assert best_window(a, mask, torch.tensor([1])).tolist() == [1]  # tie 1/2: the earliest
    assert best_window(a, mask, torch.tensor([9])).tolist() == [0]  # longer than the clip
    assert window_lengths(mask, torch.tensor([9])).tolist() == [5]
    assert best_window(a, mask, torch.tensor([5])).tolist() == [0]
    with pytest.raises(ValueError, match="lengths must be >= 1"):
        best_window(a, mask, torch.tensor([0]))


def test_cut_windows() -> None:
    x = torch.arange(2 * 6 * 2, dtype=torch.float32).view(2, 6, 2)
    w, m = cut_windows(x, torch.tensor([1, 3]), torch.tensor([3, 2]))
    assert w.shape == (2, 3, 2) and m.tolist() == [[True] * 3, [True, True, False]]
    torch.testing.assert_close(w[0], x[0, 1:4])
    torch.testing.assert_close(w[1, :2], x[1, 3:5])
    assert (w[1, 2] == 0).all()
    lat, _ = cut_windows(torch.randn(2, 6), torch.tensor([0, 2]), torch.tensor([2, 4]))
    assert lat.shape == (2, 4)
    with pytest.raises(ValueError, match="past"):
        cut_windows(x, torch.tensor([5, 0]), torch.tensor([2, 2]))


def test_mine_windows_with_a_generator_on_the_shipped_prior() -> None:
    from kinemic.diffusion import NoiseSchedule
    from kinemic.finetune.config import LoraSettings
    from kinemic.finetune.generator import ActionGenerator, TwoStreamDenoiser
    from kinemic.mining.mic import MIC, MICConfig
    from kinemic.prior.folder import load_prior

    prior = load_prior("shipped")
    torch.manual_seed(0)
    model = TwoStreamDenoiser(
        prior.denoiser,
        num_actions=2,
        lora=LoraSettings(),
        diffusion_steps=100,
        prior_diffusion_steps=50,
    ).eval()
    mic = MIC(MICConfig(latent_dim=prior.denoiser.config.latent_dim)).eval()
    finetuned = ActionGenerator(
        denoiser=model,
        schedule=NoiseSchedule(100),
        normalizer=prior.normalizer,
        text_spec=prior.text_spec,
        classes=[3, 7],
        class_names=["a", "b"],
        class_captions=["x", "y"],
        class_lengths={3: [10], 7: [12]},
        mic=mic,
        config={"method": "kinemic"},
        path=prior.path,
        prior_path=prior.path,
    )
    x0 = torch.randn(3, 30, 263)
    mask = torch.arange(30)[None] < torch.tensor([30, 20, 8])[:, None]
    text = torch.randn(3, 384)
    length = torch.tensor([10, 10, 12])
    a = source_attention(
        finetuned, x0, mask, text=text, t=20, generator=torch.Generator().manual_seed(1)
    )
    assert a.shape == (3, 30) and (a[~mask] == 0).all()
    torch.testing.assert_close(a.sum(1), torch.ones(3))
    starts = mine_windows(
        finetuned,
        x0,
        mask,
        length,
        text=text,
        action=torch.tensor([0, 1, 1]),
        t=20,
        generator=torch.Generator().manual_seed(1),
    )
    assert starts.tolist() == best_window(a, mask, length).tolist()
    assert starts[2] == 0 and 0 <= starts[1] <= 10 and 0 <= starts[0] <= 20
    with pytest.raises(ValueError, match="action"):
        mine_windows(
            finetuned,
            x0,
            mask,
            length,
            text=text,
            action=torch.tensor([0, 1, 2]),
            t=20,
            generator=torch.Generator(),
        )
    with pytest.raises(ValueError, match="outside"):
        source_attention(finetuned, x0, mask, text=text, t=100, generator=torch.Generator())
    finetuned.mic = None
    with pytest.raises(ValueError, match="no MIC"):
        source_attention(finetuned, x0, mask, text=text, t=5, generator=torch.Generator())
