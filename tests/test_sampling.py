"""Cosine schedule math and the DDPM / DDIM samplers with classifier-free guidance."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kinemic.diffusion import (
    NoiseSchedule,
    guided_x0,
    lengths_to_mask,
    sample,
)
from tests.synthetic import SMALL_A, SMALL_E, SMALL_F, small_denoiser

F, E, A = SMALL_F, SMALL_E, SMALL_A
small = small_denoiser


class Oracle(nn.Module):
    """Always predicts the same x0; counts its calls and their batch sizes."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.x0 = nn.Parameter(x0)
        self.batches: list[int] = []

    def forward(self, x, t, *, text=None, action=None, mask=None, uncond=None):
        self.batches.append(x.shape[0])
        return self.x0[: x.shape[0]].expand_as(x)


def test_cosine_schedule_is_monotone_and_matches_the_formula():
    s = NoiseSchedule(50)
    acp = s.alphas_cumprod
    assert acp.shape == (50,) and (acp[1:] < acp[:-1]).all() and 0 < acp[-1] < 1e-5
    assert ((s.betas > 0) & (s.betas <= 0.999)).all() and s.betas[-1] == pytest.approx(0.999)

    def f(u):
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    for t in (0, 10, 30, 48):
        assert float(acp[t]) == pytest.approx(f((t + 1) / 50) / f(0), rel=1e-9)
    assert (s.posterior_variance[1:] > 0).all() and s.posterior_variance[0] == 0
    assert (s.posterior_variance[1:] <= s.betas[1:]).all()  # "fixed small" ≤ "fixed large"
    with pytest.raises(ValueError):
        NoiseSchedule(0)


def test_q_sample_statistics():
    s = NoiseSchedule(50)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((4, 1000, 8), 2.0)
    t = torch.tensor([0, 15, 35, 49])
    xt = s.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    acp = s.alphas_cumprod[t].float()
    torch.testing.assert_close(xt.mean(dim=(1, 2)), 2.0 * acp.sqrt(), atol=0.03, rtol=0)
    torch.testing.assert_close(xt.std(dim=(1, 2)), (1 - acp).sqrt(), atol=0.03, rtol=0.03)


def test_steps_with_an_exact_x0_recover_the_forward_process():
    s = NoiseSchedule(20)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    t, t_prev = torch.tensor([19, 10, 3]), torch.tensor([12, 4, 0])
    xt = s.q_sample(x0, t, eps)
    torch.testing.assert_close(s.predict_noise(x0, xt, t), eps, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        s.ddim_step(x0, xt, t, t_prev), s.q_sample(x0, t_prev, eps), atol=1e-5, rtol=1e-5
    )
    # posterior mean of q(x_{t-1} | x_t, x0) is linear in x0 and x_t with the Bayes coefficients
    mean, var, _ = s.posterior(x0, xt, torch.tensor([5, 5, 5]))
    b, a, ap = s.betas[5], s.alphas_cumprod[5], s.alphas_cumprod[4]
    expected = (ap.sqrt() * b / (1 - a)) * x0 + ((1 - b).sqrt() * (1 - ap) / (1 - a)) * xt
    torch.testing.assert_close(mean, expected.float(), atol=1e-6, rtol=1e-5)
    assert float(var[0]) == pytest.approx(float(b * (1 - ap) / (1 - a)))
    assert s.ddim_timesteps(5) == [19, 14, 10, 5, 0] and s.ddim_timesteps(1) == [19]


@pytest.mark.parametrize("ddim_steps", [None, 3])
def test_samplers_end_on_the_predicted_x0(ddim_steps):
    target = torch.randn(2, 6, F)
    oracle = Oracle(target)
    out = sample(
        oracle,
        NoiseSchedule(5),
        (2, 6, F),
        generator=torch.Generator().manual_seed(0),
        ddim_steps=ddim_steps,
    )
    torch.testing.assert_close(out, target)
    assert len(oracle.batches) == (5 if ddim_steps is None else 3)


@pytest.mark.parametrize("ddim_steps", [None, 3])
def test_samplers_give_finite_samples_and_are_deterministic(ddim_steps):
    model = small()
    text, action = torch.randn(2, E), torch.tensor([1, 4])
    kw = dict(text=text, action=action, ddim_steps=ddim_steps)

    def run(seed):
        return sample(
            model, NoiseSchedule(5), (2, 7, F), generator=torch.Generator().manual_seed(seed), **kw
        )

    a, b, c = run(0), run(0), run(1)
    assert a.shape == (2, 7, F) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert not a.is_inference()


def test_guidance_runs_one_batched_forward_equal_to_two_forwards():
    model = small()
    g = torch.Generator().manual_seed(2)
    xt, t = torch.randn(3, 8, F, generator=g), torch.tensor([4, 2, 0])
    text, action = torch.randn(3, E, generator=g), torch.tensor([0, 2, 4])
    mask = lengths_to_mask([8, 5, 3])
    with torch.no_grad():
        got = guided_x0(model, xt, t, text=text, action=action, mask=mask, guidance=2.5)
        cond = model(xt, t, text=text, action=action, mask=mask)
        uncond = model(xt, t, mask=mask)
    expected = uncond + 2.5 * (cond - uncond)
    valid = mask[..., None].expand_as(got)
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-5, rtol=1e-5)

    oracle = Oracle(torch.zeros(6, 8, F))
    guided_x0(oracle, xt, t, text=text, guidance=2.5)
    guided_x0(oracle, xt, t, text=text, guidance=1.0)
    guided_x0(oracle, xt, t, guidance=2.5)
    assert oracle.batches == [6, 3, 3]  # one forward of 2B; s = 1 or no condition: B only


def test_variable_lengths_share_one_batch():
    mask = lengths_to_mask([5, 9, 2])
    assert mask.shape == (3, 9) and mask.sum(1).tolist() == [5, 9, 2]
    assert lengths_to_mask([3], 6).tolist() == [[True] * 3 + [False] * 3]
    with pytest.raises(ValueError):
        lengths_to_mask([0, 4])
    model = small().train()
    out = sample(
        model,
        NoiseSchedule(3),
        (3, 9, F),
        text=torch.randn(3, E),
        mask=mask,
        generator=torch.Generator().manual_seed(0),
    )
    assert (
        torch.isfinite(out).all()
        and (out[~mask] == 0).all()
        and (out[mask].abs().sum(-1) > 0).all()
    )
    assert model.training  # the sampler restores the mode it found


def test_bf16_path_runs_on_cpu():
    model = small()
    kw = dict(text=torch.randn(2, E), ddim_steps=2, generator=torch.Generator().manual_seed(0))
    out = sample(model, NoiseSchedule(4), (2, 6, F), bf16=True, **kw)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    kw["generator"] = torch.Generator().manual_seed(0)
    ref = sample(model, NoiseSchedule(4), (2, 6, F), **kw)
    assert (out - ref).abs().max() < 0.25 * ref.abs().max()  # bf16 rounding, same trajectory


# ------------------------------------------------------------- kinemic.sample: motions in memory


@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory):
    """A prior folder: a 2-layer denoiser of 263-d features (random weights, 6 diffusion steps)
    with the "hash-64" test text encoder and an identity normaliser."""
    import numpy as np

    from kinemic.diffusion import Denoiser, DenoiserConfig
    from kinemic.features import Normalizer
    from kinemic.prior.folder import save_prior

    torch.manual_seed(0)
    config = DenoiserConfig(latent_dim=32, num_layers=2, num_heads=4, ff_dim=64, text_dim=64)
    return save_prior(
        tmp_path_factory.mktemp("prior") / "tiny",
        denoiser=Denoiser(config),
        normalizer=Normalizer(np.zeros(263), np.ones(263)),
        num_steps=6,
        text_encoder="hash-64",
        max_frames=40,
    )


def test_sample_gives_in_memory_what_sample_motions_writes(tiny_prior, tmp_path):
    import json

    import numpy as np

    from kinemic.prior.sample import sample as sample_model
    from kinemic.prior.sample import sample_motions

    kw = dict(texts=["a person walks", "a person jumps"], n=2, length=8, ddim=3, seed=1)
    motion = sample_model(tiny_prior, **kw)
    assert motion.features.shape == (4, 8, 263) and motion.features.dtype == np.float32
    assert motion.joints.shape == (4, 8, 22, 3) and motion.joints.dtype == np.float32
    assert motion.frames == 8 and motion.fps == 20 and motion.diffusion_steps == 6
    assert motion.conditions == [("a person walks", None)] * 2 + [("a person jumps", None)] * 2
    assert motion.titles[0] == "a person walks" and motion.text_encoder == "hash-64"
    assert motion.model_folder == tiny_prior and motion.weights == "raw"

    out = sample_motions(tiny_prior, **kw, out=tmp_path / "s", gif=False, progress=False)
    for i in range(4):  # the same generator seeding and calls: bit for bit
        np.testing.assert_array_equal(np.load(out / f"features/{i}.npy"), motion.features[i])
        np.testing.assert_array_equal(np.load(out / f"joints/{i}.npy"), motion.joints[i])
    info = json.loads((out / "info.json").read_text())
    assert info["steps"] == 6 and info["frames"] == 8 and info["prior_folder"] == str(tiny_prior)
    assert [(s["text"], s["action"]) for s in info["samples"]] == motion.conditions


def test_sample_takes_a_loaded_prior_or_its_folder(tiny_prior):
    import numpy as np

    from kinemic.prior.folder import load_prior
    from kinemic.prior.sample import sample as sample_model

    prior = load_prior(tiny_prior)
    a = sample_model(prior, n=2, length="0.5s", seed=3)  # unconditional, DDPM over 6 steps
    b = sample_model(tiny_prior, n=2, length=10, seed=3, diffusion_steps=6)
    c = sample_model(prior, n=2, length=10, seed=4)
    np.testing.assert_array_equal(a.features, b.features)
    assert a.conditions == [(None, None)] * 2 and a.titles == ["unconditional"] * 2
    assert not np.array_equal(a.features, c.features)
    assert np.isfinite(a.joints).all()


def test_sample_refuses_what_the_model_cannot_do(tiny_prior):
    from kinemic.errors import KinemicError
    from kinemic.prior.folder import load_prior
    from kinemic.prior.sample import sample as sample_model

    prior = load_prior(tiny_prior)
    with pytest.raises(KinemicError, match="n must be >= 1"):
        sample_model(prior, n=0)
    with pytest.raises(KinemicError, match=r"diffusion_steps=7: .* only number it can sample"):
        sample_model(prior, diffusion_steps=7, length=4)
    with pytest.raises(KinemicError, match=r"outside what this model can make: 1\.\.40"):
        sample_model(prior, length="3s")
    with pytest.raises(KinemicError, match="no action condition"):
        sample_model(prior, actions=[0], length=4)


@pytest.mark.slow  # fine-tunes the tiny generators (shared with test_finetune)
def test_sample_from_a_generator_blends_actions_and_texts(tiny_generators, tmp_path):
    import numpy as np

    from kinemic.finetune.generator import load_generator
    from kinemic.prior.sample import sample as sample_model
    from kinemic.prior.sample import sample_motions

    run = tiny_generators["kinemic"]
    generator = load_generator(run)
    name = generator.action_names[1]
    kw = dict(actions=[name, 0], texts=["a person turns around"], n=1, length=12, ddim=2)
    motion = sample_model(generator, **kw)
    assert motion.conditions == [("a person turns around", 1), ("a person turns around", 0)]
    assert motion.titles[0] == f"{name} + a person turns around"
    assert motion.joints.shape == (2, 12, 22, 3) and motion.weights == "adapter"
    out = sample_motions(run, **kw, out=tmp_path / "s", gif=False, progress=False)
    np.testing.assert_array_equal(np.load(out / "features/1.npy"), motion.features[1])
