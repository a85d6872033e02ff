"""The MDM denoiser: shapes, padding masks, condition dropping, latents, gradients, LoRA names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kinemic.diffusion import LORA_TARGET_MODULES, Denoiser, DenoiserConfig
from kinemic.errors import KinemicError
from tests.synthetic import SMALL_A, SMALL_E, SMALL_F, small_denoiser

F, E, A = SMALL_F, SMALL_E, SMALL_A
small = small_denoiser


def inputs(B: int = 3, T: int = 10, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, F, generator=g)
    t = torch.randint(0, 50, (B,), generator=g)
    text = torch.randn(B, E, generator=g)
    action = torch.randint(0, A, (B,), generator=g)
    return x, t, text, action


def test_presets_and_parameter_counts():
    mdm = DenoiserConfig.preset("mdm")
    assert (mdm.latent_dim, mdm.num_layers, mdm.num_heads, mdm.ff_dim, mdm.dropout) == (
        512,
        8,
        4,
        1024,
        0.1,
    )
    assert Denoiser(mdm).num_parameters() == pytest.approx(17.9e6, rel=0.01)  # SPEC §4
    tiny = Denoiser(DenoiserConfig.preset("tiny", num_actions=120))
    size_mb = sum(v.numel() * v.element_size() for v in tiny.state_dict().values()) / 1e6
    assert size_mb <= 25
    assert "pe" not in tiny.state_dict()  # recomputed, never saved
    with pytest.raises(ValueError, match="unknown denoiser preset"):
        DenoiserConfig.preset("huge")
    with pytest.raises(ValueError, match="divisible"):
        DenoiserConfig(latent_dim=30, num_heads=4)
    cfg = DenoiserConfig.preset("tiny")
    assert DenoiserConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KinemicError, match=r"denoiser config: unknown settings \['n_embd'\]"):
        DenoiserConfig.from_dict({**cfg.to_dict(), "n_embd": 3})


def test_tiny_preset_shapes():
    model = Denoiser(DenoiserConfig.preset("tiny")).eval()
    x = torch.randn(2, 30, 263)
    out, latents = model(x, torch.tensor([0, 49]), text=torch.randn(2, 384), return_latents=True)
    assert out.shape == (2, 30, 263) and latents.shape == (2, 30, 128)
    assert torch.isfinite(out).all()


def test_return_latents_are_the_last_layer_frame_tokens():
    model = small()
    x, t, text, action = inputs()
    x0, latents = model(x, t, text=text, action=action, return_latents=True)
    assert latents.shape == (3, 10, 32)
    torch.testing.assert_close(model.output_proj(latents), x0)
    torch.testing.assert_close(model(x, t, text=text, action=action), x0)


def test_padded_frames_do_not_change_valid_outputs():
    model = small()
    x, t, text, action = inputs(B=2, T=12)
    alone = model(x[:1, :7], t[:1], text=text[:1], action=action[:1])
    x_pad = x.clone()
    x_pad[0, 7:] = 1e3  # garbage in the padding must not leak
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, 7:] = False
    batched = model(x_pad, t, text=text, action=action, mask=mask)
    torch.testing.assert_close(batched[0, :7], alone[0], atol=1e-5, rtol=1e-5)
    other = model(x[1:], t[1:], text=text[1:], action=action[1:])
    torch.testing.assert_close(batched[1], other[0], atol=1e-5, rtol=1e-5)
    unmasked = model(x_pad, t, text=text, action=action)
    assert not torch.allclose(unmasked[0, :7], alone[0], atol=1e-3)  # the mask matters


def test_uncond_per_sample_equals_no_condition():
    model = small()
    x, t, text, action = inputs()
    uncond = torch.tensor([True, False, True])
    mixed = model(x, t, text=text, action=action, uncond=uncond)
    none = model(x, t)
    cond = model(x, t, text=text, action=action)
    torch.testing.assert_close(mixed[uncond], none[uncond])
    torch.testing.assert_close(mixed[~uncond], cond[~uncond])
    assert not torch.allclose(cond, none, atol=1e-3)
    # a dropped text is a zero vector through embed_text (its bias stays), like MDM's mask_cond
    torch.testing.assert_close(model(x, t, text=torch.zeros(3, E)), none)


def test_text_scale_multiplies_the_text_embedding():
    # text_scale s with projection W computes what scale 1 computes with s·W (bias unscaled)
    scaled = small(text_scale=4.0)
    plain = small()
    with torch.no_grad():
        plain.embed_text.weight.mul_(4.0)
    x, t, text, _ = inputs()
    torch.testing.assert_close(scaled(x, t, text=text), plain(x, t, text=text))
    # the dropped text (a zero vector) is unaffected, so the unconditional branch is too
    torch.testing.assert_close(scaled(x, t), small()(x, t))
    assert DenoiserConfig.preset("mdm").text_scale == 1.0  # the official MDM computation
    assert (
        DenoiserConfig.from_dict(
            {k: v for k, v in scaled.config.to_dict().items() if k != "text_scale"}
        ).text_scale
        == 1.0
    )


def test_training_drops_text_and_action_independently():
    model = small(dropout=0.0, cond_drop_prob=1.0).train()
    x, t, text, action = inputs()
    torch.testing.assert_close(model(x, t, text=text, action=action), model.eval()(x, t))
    model = small(dropout=0.0, cond_drop_prob=0.5).train()
    torch.manual_seed(3)
    a = model(x, t, text=text, action=action)
    torch.manual_seed(3)
    b = model(x, t, text=text, action=action)
    torch.testing.assert_close(a, b)  # deterministic under the torch seed
    model.eval()
    variants = [
        model(x, t, text=tx, action=ac)
        for tx in (text, torch.zeros_like(text))
        for ac in (action, None)
    ]  # the four keep/drop combinations
    seen = set()
    for seed in range(40):
        torch.manual_seed(seed)
        out = model.train()(x, t, text=text, action=action)
        for i in range(3):
            seen |= {k for k, v in enumerate(variants) if torch.allclose(out[i], v[i], atol=1e-6)}
    assert seen == {0, 1, 2, 3}


def test_gradients_reach_every_parameter():
    model = small(cond_drop_prob=0.0).train()
    x, t, text, action = inputs()
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 6:] = False
    x0, latents = model(x, t, text=text, action=action, mask=mask, return_latents=True)
    ((x0 - x) ** 2).mean().add(latents.pow(2).mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_add_actions_and_errors_that_teach():
    model = small(num_actions=0)
    x, t, text, _ = inputs()
    with pytest.raises(ValueError, match="add_actions"):
        model(x, t, action=torch.zeros(3, dtype=torch.long))
    model.add_actions(7)
    assert model.embed_action.weight.shape == (7, 32) and model.config.num_actions == 7
    assert model(x, t, action=torch.full((3,), 6)).shape == x.shape
    with pytest.raises(ValueError, match=r"action ids must be in \[0, 7\)"):
        model(x, t, action=torch.full((3,), 7))
    with pytest.raises(ValueError, match="text should have shape"):
        model(x, t, text=torch.randn(3, E + 1))
    with pytest.raises(ValueError, match="mask should have shape"):
        model(x, t, mask=torch.ones(3, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="no text condition"):
        small(text_dim=None)(x, t, text=text)


def test_layer_matches_torch_transformer_encoder_layer():
    model = small(dropout=0.0)
    ref = nn.TransformerEncoderLayer(
        32, 4, 64, dropout=0.0, activation="gelu", batch_first=True
    ).eval()
    ours = model.layers[0]
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(ours.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(ours.qkv.bias)
        for name in ("self_attn.out_proj", "linear1", "linear2", "norm1", "norm2"):
            src = ours.get_submodule(name.replace("self_attn.", ""))
            ref.get_submodule(name).load_state_dict(src.state_dict())
    h = torch.randn(2, 9, 32)
    valid = torch.ones(2, 9, dtype=torch.bool)
    valid[1, 5:] = False
    expected = ref(h, src_key_padding_mask=~valid)
    got = ours(h, valid[:, None, None, :])
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-5, rtol=1e-5)


def test_lora_target_names_are_linear_layers():
    model = small()
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    for target in LORA_TARGET_MODULES:
        hits = [n for n in names if n == target or n.endswith("." + target)]
        assert hits, f"LoRA target {target!r} names no nn.Linear"
    assert all(isinstance(m, nn.LayerNorm) for n, m in model.named_modules() if "norm" in n)


@pytest.mark.slow  # importing peft takes ~15 s on the 2-core CPU machine
def test_peft_lora_wraps_the_denoiser():
    peft = pytest.importorskip("peft")
    model = small()
    config = peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.1, target_modules=LORA_TARGET_MODULES
    )
    lora = peft.get_peft_model(model, config)
    x, t, text, action = inputs()
    out = lora(x, t, text=text, action=action, return_latents=True)
    assert out[0].shape == x.shape and out[1].shape == (3, 10, 32)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with lora.disable_adapter():
        torch.testing.assert_close(
            lora(x, t, text=text, action=action), model(x, t, text=text, action=action)
        )
