"""MIC: shapes and masking, the supervised InfoNCE, the learnable temperature, the FIFO bank."""

from __future__ import annotations

import math

import pytest
import torch

from kinemic.errors import KinemicError
from kinemic.mining.mic import MIC, MICConfig, supervised_info_nce

pytestmark = pytest.mark.usefixtures("one_thread")


def small(**kw) -> MIC:
    torch.manual_seed(0)
    return MIC(MICConfig(latent_dim=8, hidden_dim=6, embed_dim=5, **kw))


def test_shapes_unit_embeddings_and_attention_over_valid_frames() -> None:
    mic = small()
    latents = torch.randn(3, 7, 8)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [True] + [False] * 6])
    z, a = mic(latents, mask)
    assert z.shape == (3, 5) and a.shape == (3, 7)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(a.sum(1), torch.ones(3))
    assert (a[~mask] == 0).all() and (a[mask] > 0).all()
    assert a[2, 0] == 1.0


def test_padding_never_changes_the_outputs() -> None:
    mic = small()
    latents = torch.randn(2, 9, 8)
    mask = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
    z, a = mic(latents, mask)
    noisy = latents.clone()
    noisy[1, 5:] = 1e3 * torch.randn(4, 8)  # garbage where padded
    z2, a2 = mic(noisy, mask)
    torch.testing.assert_close(z, z2)
    torch.testing.assert_close(a, a2)
    # and a clip alone gives what it gives inside a padded batch
    z1, a1 = mic(latents[1:2, :5])
    torch.testing.assert_close(z1[0], z[1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(a1[0], a[1, :5], atol=1e-6, rtol=1e-5)


def test_info_nce_matches_its_definition() -> None:
    torch.manual_seed(1)
    anchors = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    keys = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    labels, key_labels = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 0, 1, 1])
    got = supervised_info_nce(anchors, labels, keys, key_labels, 10.0)
    expect = []
    for i in range(2):  # anchor 2 has no positive key: left out
        log_p = torch.log_softmax(10.0 * anchors[i] @ keys.T, dim=0)
        expect.append(-log_p[key_labels == labels[i]].mean())
    torch.testing.assert_close(got, torch.stack(expect).mean())


def test_temperature_starts_at_0_07_and_the_scale_is_clamped() -> None:
    mic = small()
    assert math.isclose(mic.scale.item(), 1 / 0.07, rel_tol=1e-6)
    with torch.no_grad():
        mic.logit_scale.fill_(math.log(1000.0))
    assert mic.scale.item() == 100.0
    with pytest.raises(KinemicError, match=r"MIC config: temperature 0\.001"):
        MICConfig(latent_dim=8, temperature=0.001)


def test_config_round_trips_and_refuses_unknown_settings() -> None:
    cfg = MICConfig(latent_dim=8, hidden_dim=6)
    assert MICConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KinemicError, match=r"MIC config: unknown settings \['gru_layers'\]"):
        MICConfig.from_dict({**cfg.to_dict(), "gru_layers": 2})


def test_info_nce_falls_on_separable_toy_data() -> None:
    """Two classes whose latents differ only in a burst at a random place inside noise: MIC
    trained with the loss (anchors and keys from different draws) separates them and puts its
    attention on the burst."""
    gen = torch.Generator().manual_seed(0)

    def draw(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = len(labels), 20
        x = torch.randn(B, T, 8, generator=gen)
        where = torch.randint(0, T - 4, (B,), generator=gen)
        for b in range(B):
            x[b, where[b] : where[b] + 4, int(labels[b])] += 4.0
        return x, where

    mic = small(bank_size=16)
    opt = torch.optim.Adam(mic.parameters(), lr=1e-2)
    losses, floors = [], []
    for _ in range(60):
        labels = torch.randint(0, 2, (16,), generator=gen)
        xa, _ = draw(labels)
        xk, _ = draw(labels)
        za, _ = mic(xa)
        zk, _ = mic(xk)
        loss = mic.contrastive_loss(za, labels, zk, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        # the loss cannot fall below the mean log(number of positives) (all equally close)
        positives = (labels[:, None] == torch.cat([labels, mic.bank_keys()[1]])[None]).sum(1)
        floors.append(positives.float().log().mean().item())
        mic.enqueue(zk.detach(), labels)
        losses.append(loss.item())
    gap = [loss - floor for loss, floor in zip(losses, floors, strict=True)]
    assert sum(gap[-10:]) < 0.3 * sum(gap[:10])
    labels = torch.randint(0, 2, (64,), generator=gen)
    x, where = draw(labels)
    _, a = mic(x)
    mass = torch.stack([a[b, where[b] : where[b] + 4].sum() for b in range(64)])
    assert mass.mean() > 0.5  # 4 of 20 frames hold most of the attention (uniform: 0.2)


def test_bank_is_a_fifo_of_embeddings_and_labels_kept_in_the_state() -> None:
    mic = small(bank_size=4)
    assert mic.bank_keys()[0].shape == (0, 5)
    z = torch.nn.functional.normalize(torch.randn(6, 5), dim=-1)
    mic.enqueue(z[:3], torch.tensor([0, 1, 2]))
    bank, labels = mic.bank_keys()
    torch.testing.assert_close(bank, z[:3])
    assert labels.tolist() == [0, 1, 2]
    mic.enqueue(z[3:5], torch.tensor([3, 4]))  # slot 3, then wraps over the oldest (slot 0)
    assert mic.bank_labels.tolist() == [4, 1, 2, 3]
    torch.testing.assert_close(mic.bank[0], z[4])
    mic.enqueue(z, torch.arange(6))  # more than the bank: its last 4 rows
    assert sorted(mic.bank_labels.tolist()) == [2, 3, 4, 5]
    state = mic.state_dict()
    assert {"bank", "bank_labels", "bank_next"} <= state.keys()
    other = small(bank_size=4)
    other.load_state_dict(state)
    assert torch.equal(other.bank, mic.bank) and int(other.bank_next) == int(mic.bank_next)
    # the bank adds keys: the loss changes once it is filled, and its entries carry no gradient
    anchors = torch.nn.functional.normalize(torch.randn(2, 5), dim=-1).requires_grad_()
    loss = mic.contrastive_loss(anchors, torch.tensor([2, 3]), z[:2], torch.tensor([0, 1]))
    loss.backward()
    assert loss.item() > 0 and anchors.grad is not None and not mic.bank.requires_grad
    mic.reset_bank()
    assert mic.bank_keys()[0].shape[0] == 0
