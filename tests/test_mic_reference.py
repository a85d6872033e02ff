"""MIC as the KineMIC reference builds it: the parameter count, the forward against an
independent computation, both contrastive losses against hand-computed values, and the two
ways of clamping the logit scale."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kinemic.errors import KinemicError
from kinemic.mining.mic import (
    MIC,
    MICConfig,
    mic_parameter_count,
    soft_nearest_neighbour_loss,
    supervised_info_nce,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def reference(**kw) -> MIC:
    torch.manual_seed(0)
    return MIC(MICConfig.reference(8, hidden_dim=6, embed_dim=5, **kw))


def test_reference_parameter_count_at_latent_512() -> None:
    # The reference's MotionEncoderAttentionBiGRU(512, 512, 512), layer by layer:
    #   input_emb  Linear(512, 512)                       512*512 + 512           =   262,656
    #   gru        GRU(512, 512, bidirectional), 2 dirs:  2 * (3*512*512 [ih]
    #              + 3*512*512 [hh] + 3*512 [b_ih] + 3*512 [b_hh])               = 3,151,872
    #   attention  Linear(1024, 512) 524,800 + LayerNorm(512) 1,024 + Linear(512, 1) 513
    #                                                                             =   526,337
    #   output     Linear(1024, 512) 524,800 + LayerNorm(512) 1,024
    #              + Linear(512, 512) 262,656                                    =   788,480
    #   hidden     learnt initial state (2, 1, 512)                              =     1,024
    #   total                                                                     = 4,730,369
    # (its logit scale, one more number, sits beside the module in the KineMIC model)
    assert mic_parameter_count(MICConfig.reference(512)) == 4_730_369
    # kinemic's small module at the same latent width with fine-tuning's widths
    assert mic_parameter_count(MICConfig(latent_dim=512, hidden_dim=64, embed_dim=128)) == 246_785


def _gru_pass(e: torch.Tensor, h: torch.Tensor, w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    """One direction of a GRU over e (L, H) from state h (H,), written out gate by gate."""
    W_r, W_z, W_n = w_ih.chunk(3)
    U_r, U_z, U_n = w_hh.chunk(3)
    b_r, b_z, b_n = b_ih.chunk(3)
    c_r, c_z, c_n = b_hh.chunk(3)
    out = []
    for x in e:
        r = torch.sigmoid(W_r @ x + b_r + U_r @ h + c_r)
        z = torch.sigmoid(W_z @ x + b_z + U_z @ h + c_z)
        n = torch.tanh(W_n @ x + b_n + r * (U_n @ h + c_n))
        h = (1 - z) * n + z * h
        out.append(h)
    return torch.stack(out)


def _mlp(x: torch.Tensor, seq: torch.nn.Sequential) -> torch.Tensor:
    lin1, norm, _, lin2 = seq
    y = F.layer_norm(x @ lin1.weight.T + lin1.bias, norm.normalized_shape, norm.weight, norm.bias)
    y = torch.where(y > 0, y, 0.2 * y)  # LeakyReLU, slope 0.2
    return y @ lin2.weight.T + lin2.bias


def test_reference_forward_matches_an_independent_computation() -> None:
    mic = reference()
    with torch.no_grad():  # layer norms and the initial state away from their defaults
        for p in mic.parameters():
            p.add_(0.1 * torch.randn_like(p))
    latents = torch.randn(3, 6, 8)
    lengths = [6, 3, 1]
    mask = torch.arange(6)[None] < torch.tensor(lengths)[:, None]
    latents[~mask] = 1e3  # garbage where padded
    z, attention = mic(latents, mask)
    g = mic.gru
    with torch.no_grad():
        for b, L in enumerate(lengths):
            e = latents[b, :L] @ mic.in_proj.weight.T + mic.in_proj.bias  # (L, H)
            h0 = mic.initial_state[:, 0]  # (2, H): forward, backward
            fwd = _gru_pass(e, h0[0], g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0)
            bwd = _gru_pass(
                e.flip(0),
                h0[1],
                g.weight_ih_l0_reverse,
                g.weight_hh_l0_reverse,
                g.bias_ih_l0_reverse,
                g.bias_hh_l0_reverse,
            ).flip(0)
            h = torch.cat([fwd, bwd], dim=1)  # (L, 2H)
            a = torch.softmax(_mlp(h, mic.score)[:, 0], dim=0)  # (L,)
            out = _mlp(a @ h, mic.proj)  # (E,)
            torch.testing.assert_close(attention[b, :L], a, atol=1e-6, rtol=1e-5)
            assert (attention[b, L:] == 0).all()
            torch.testing.assert_close(z[b], out / out.norm(), atol=1e-6, rtol=1e-5)


# Hand-computed losses. Keys in 2-D: k1 = (1, 0) label 0, k2 = (0, 1) label 1, k3 = (-1, 0)
# label 0. Anchors: a1 = (1, 0) label 0, a2 = (0.6, 0.8) label 1, a3 = (0, -1) label 2 (no key
# has label 2: left out). Scale 2, so the logits are 2·cos:
#   a1: (2, 0, -2), positives k1, k3;   a2: (1.2, 1.6, -1.2), positive k2.
ANCHORS = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, -1.0]])
ANCHOR_LABELS = torch.tensor([0, 1, 2])
KEYS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
KEY_LABELS = torch.tensor([0, 1, 0])
E = math.exp


def test_soft_nearest_neighbour_loss_by_hand() -> None:
    # −log of the softmax mass on the same-label keys, mean over a1 and a2
    a1 = -math.log((E(2) + E(-2)) / (E(2) + E(0) + E(-2)))
    a2 = -math.log(E(1.6) / (E(1.2) + E(1.6) + E(-1.2)))
    got = soft_nearest_neighbour_loss(ANCHORS, ANCHOR_LABELS, KEYS, KEY_LABELS, 2.0)
    assert got.item() == pytest.approx((a1 + a2) / 2, rel=1e-6)
    # anchors that are all without a positive: 0, and still a graph to step on
    alone = ANCHORS[2:].clone().requires_grad_()
    none = soft_nearest_neighbour_loss(alone, ANCHOR_LABELS[2:], KEYS, KEY_LABELS, 2.0)
    none.backward()
    assert none.item() == 0.0 and torch.isfinite(alone.grad).all()


def test_supervised_info_nce_by_hand() -> None:
    # the mean over positives of −log softmax: a1's two positives, a2's one
    lse1 = math.log(E(2) + E(0) + E(-2))
    a1 = ((lse1 - 2) + (lse1 + 2)) / 2
    a2 = math.log(E(1.2) + E(1.6) + E(-1.2)) - 1.6
    got = supervised_info_nce(ANCHORS, ANCHOR_LABELS, KEYS, KEY_LABELS, 2.0)
    assert got.item() == pytest.approx((a1 + a2) / 2, rel=1e-6)
    # with one positive the two losses agree; with two they do not
    one = (ANCHORS[1:2], ANCHOR_LABELS[1:2], KEYS, KEY_LABELS, 2.0)
    assert supervised_info_nce(*one).item() == pytest.approx(
        soft_nearest_neighbour_loss(*one).item(), rel=1e-6
    )
    two = (ANCHORS[:1], ANCHOR_LABELS[:1], KEYS, KEY_LABELS, 2.0)
    assert supervised_info_nce(*two).item() > soft_nearest_neighbour_loss(*two).item() + 1.0


def test_mic_uses_the_loss_its_config_names_with_the_bank() -> None:
    for loss, fn in (("soft-nn", soft_nearest_neighbour_loss), ("supcon", supervised_info_nce)):
        mic = reference(loss=loss, bank_size=3)
        bank = F.normalize(torch.randn(2, 5), dim=-1)
        mic.enqueue(bank, torch.tensor([1, 0]))
        anchors, keys = (
            F.normalize(torch.randn(4, 5), dim=-1),
            F.normalize(torch.randn(4, 5), dim=-1),
        )
        labels = torch.tensor([0, 1, 0, 1])
        got = mic.contrastive_loss(anchors, labels, keys, labels)
        expect = fn(
            anchors, labels, torch.cat([keys, bank]), torch.tensor([0, 1, 0, 1, 1, 0]), 1 / 0.07
        )
        torch.testing.assert_close(got, expect)


def test_logit_scale_clamped_on_the_parameter_as_the_reference_does() -> None:
    mic = reference()
    assert mic.scale.item() == pytest.approx(1 / 0.07, rel=1e-6)
    z = F.normalize(torch.randn(4, 5), dim=-1)
    labels = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        mic.logit_scale.fill_(math.log(1000.0))
    loss = mic.contrastive_loss(z, labels, z.flip(0), labels)
    # log s is held at ln 100 itself, and the gradient still reaches it
    assert mic.logit_scale.item() == pytest.approx(math.log(100.0), abs=1e-6)
    loss.backward()
    assert mic.logit_scale.grad is not None and mic.logit_scale.grad.item() != 0.0
    with torch.no_grad():
        mic.logit_scale.fill_(math.log(0.5))
    mic.contrastive_loss(z, labels, z, labels)
    assert mic.logit_scale.item() == 0.0 and mic.scale.item() == 1.0  # log s >= 0


def test_logit_scale_clamped_on_the_value_as_before() -> None:
    mic = reference(logit_scale_clamp="value", min_logit_scale=0.0)
    z = F.normalize(torch.randn(4, 5), dim=-1)
    labels = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        mic.logit_scale.fill_(math.log(1000.0))
    loss = mic.contrastive_loss(z, labels, z.flip(0), labels)
    loss.backward()
    # the parameter is left where it is; the scale is clamped and passes no gradient
    assert mic.logit_scale.item() == pytest.approx(math.log(1000.0))
    assert mic.scale.item() == 100.0 and mic.logit_scale.grad.item() == 0.0
    low = reference(logit_scale_clamp="value")  # the reference's lower bound, on the value
    with torch.no_grad():
        low.logit_scale.fill_(math.log(0.5))
    assert low.scale.item() == 1.0


def test_config_names_its_choices_and_refuses_others() -> None:
    default = MICConfig(latent_dim=8)
    assert (default.arch, default.loss, default.logit_scale_clamp) == ("small", "supcon", "value")
    assert default.min_logit_scale == 0.0
    ref = MICConfig.reference(512)
    assert (ref.hidden_dim, ref.embed_dim, ref.min_logit_scale, ref.loss) == (
        512,
        512,
        1.0,
        "soft-nn",
    )
    assert MICConfig.from_dict(ref.to_dict()) == ref
    old = {k: v for k, v in default.to_dict().items() if k not in ("arch", "loss")}
    assert MICConfig.from_dict(old) == default  # a record from before the options
    for bad, message in (
        (dict(arch="large"), "arch must be one of small, reference, found 'large'"),
        (dict(loss="infonce"), "loss must be one of supcon, soft-nn, found 'infonce'"),
        (dict(logit_scale_clamp="grad"), "logit_scale_clamp must be one of value, parameter"),
        (dict(min_logit_scale=200.0), "0 <= min_logit_scale < max_logit_scale"),
        (dict(min_logit_scale=20.0), r"1/temperature in \[min_logit_scale, max_logit_scale\]"),
    ):
        with pytest.raises(KinemicError, match=f"MIC config: .*{message}"):
            MICConfig(latent_dim=8, **bad)
