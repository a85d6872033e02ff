"""Official MDM checkpoint import: a sequence-first reference built from nn.TransformerEncoder
under the official key names must match the imported Denoiser."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kinemic.diffusion import Denoiser, DenoiserConfig, from_mdm_checkpoint, to_mdm_state_dict

F, D, E, A, MAX_LEN = 10, 32, 12, 6, 64


class _Holder(nn.Module):
    pass


class ReferenceMDM(nn.Module):
    """The official computation, written independently of ``Denoiser``: poseEmbedding, prepend
    the condition token, add PE, nn.TransformerEncoder (post-norm, GELU, sequence-first) with a
    key padding mask, poseFinal on the frames."""

    def __init__(self, *, layers: int = 2, heads: int = 4, ff: int = 48, actions: int = 0) -> None:
        super().__init__()
        self.input_process = _Holder()
        self.input_process.poseEmbedding = nn.Linear(F, D)
        pe = torch.zeros(MAX_LEN, D)
        position = torch.arange(MAX_LEN).float()[:, None]
        div = torch.exp(torch.arange(0, D, 2).float() * (-math.log(10000.0) / D))
        pe[:, 0::2], pe[:, 1::2] = torch.sin(position * div), torch.cos(position * div)
        self.sequence_pos_encoder = _Holder()
        self.sequence_pos_encoder.register_buffer("pe", pe[:, None, :])  # (max_len, 1, D)
        self.embed_timestep = _Holder()
        self.embed_timestep.time_embed = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, D))
        self.embed_text = nn.Linear(E, D)
        if actions:
            self.embed_action = _Holder()
            self.embed_action.action_embedding = nn.Parameter(torch.randn(actions, D))
        layer = nn.TransformerEncoderLayer(D, heads, ff, dropout=0.1, activation="gelu")
        self.seqTransEncoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.output_process = _Holder()
        self.output_process.poseFinal = nn.Linear(D, F)
        with torch.no_grad():  # non-trivial LayerNorms too
            for p in self.parameters():
                p.add_(0.1 * torch.randn_like(p))

    def forward(self, x, t, text, *, text_dropped, mask=None, action=None):
        """x (B, T, F), t (B,), text (B, E), text_dropped (B,) bool, mask (B, T) -> (B, T, F)."""
        pe = self.sequence_pos_encoder.pe
        emb = self.embed_timestep.time_embed(pe[t]).permute(1, 0, 2)  # (1, B, D)
        keep = (~text_dropped).float()[:, None]
        emb = emb + self.embed_text(text * keep)  # mask_cond: zero the raw vector, then Linear
        if action is not None:
            emb = emb + self.embed_action.action_embedding[action] * keep
        seq = self.input_process.poseEmbedding(x.permute(1, 0, 2))  # (T, B, D)
        seq = torch.cat([emb, seq], dim=0)  # (1+T, B, D)
        seq = seq + pe[: seq.shape[0]]
        pad = None
        if mask is not None:
            pad = ~torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)  # (B, 1+T) True = pad
        out = self.seqTransEncoder(seq, src_key_padding_mask=pad)[1:]  # (T, B, D)
        return self.output_process.poseFinal(out).permute(1, 0, 2)


def reference(**kw) -> ReferenceMDM:
    torch.manual_seed(0)
    return ReferenceMDM(**kw).eval()


def batch(B=3, T=9):
    g = torch.Generator().manual_seed(5)
    x, text = torch.randn(B, T, F, generator=g), torch.randn(B, E, generator=g)
    t = torch.tensor([0, 17, 49])[:B]
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 6:] = False
    mask[2, 2:] = False
    return x, t, text, mask


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("dropped", [[False, False, False], [True, False, True]])
def test_import_matches_the_official_computation(padded, dropped):
    ref = reference()
    model = from_mdm_checkpoint(ref.state_dict(), num_heads=4)
    assert model.config == DenoiserConfig(
        feature_dim=F,
        latent_dim=D,
        num_layers=2,
        num_heads=4,
        ff_dim=48,
        text_dim=E,
        max_len=MAX_LEN,
    )
    assert not model.training
    x, t, text, mask = batch()
    mask = mask if padded else None
    dropped = torch.tensor(dropped)
    with torch.no_grad():
        expected = ref(x, t, text, text_dropped=dropped, mask=mask)
        got = model(x, t, text=text, mask=mask, uncond=dropped)
    valid = torch.ones(x.shape[:2], dtype=torch.bool) if mask is None else mask
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-5, rtol=1e-5)


def test_import_with_actions_and_wrapped_file(tmp_path):
    ref = reference(actions=A)
    state = {**ref.state_dict(), "clip_model.token_embedding.weight": torch.zeros(3, 4)}
    path = tmp_path / "model000475000.pt"
    torch.save({"model": state, "step": 475000}, path)
    model = from_mdm_checkpoint(path)
    assert model.config.num_actions == A
    x, t, text, mask = batch()
    action = torch.tensor([5, 0, 3])
    dropped = torch.tensor([False, True, False])
    with torch.no_grad():
        expected = ref(x, t, text, text_dropped=dropped, mask=mask, action=action)
        got = model(x, t, text=text, action=action, mask=mask, uncond=dropped)
    torch.testing.assert_close(got[mask], expected[mask], atol=1e-5, rtol=1e-5)


def test_export_round_trip():
    model = Denoiser(
        DenoiserConfig(
            feature_dim=F, latent_dim=D, num_layers=3, ff_dim=40, text_dim=None, max_len=50
        )
    )
    state = to_mdm_state_dict(model)
    assert state["sequence_pos_encoder.pe"].shape == (50, 1, D)
    assert "seqTransEncoder.layers.2.self_attn.in_proj_weight" in state
    back = from_mdm_checkpoint({"state_dict": state})
    assert back.config.text_dim is None and back.config.num_layers == 3
    for (k, v), (k2, v2) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)


def test_export_folds_the_text_scale_into_the_projection():
    torch.manual_seed(0)
    model = Denoiser(
        DenoiserConfig(
            feature_dim=F,
            latent_dim=D,
            num_layers=2,
            ff_dim=40,
            text_dim=E,
            max_len=50,
            text_scale=7.0,
        )
    ).eval()
    back = from_mdm_checkpoint({"state_dict": to_mdm_state_dict(model)})
    assert back.config.text_scale == 1.0  # the official computation, weights rescaled
    x, t, text, mask = batch()
    with torch.no_grad():
        torch.testing.assert_close(
            back.eval()(x, t, text=text, mask=mask), model(x, t, text=text, mask=mask)
        )


def test_bad_checkpoints_are_explained(tmp_path):
    state = reference().state_dict()
    with pytest.raises(ValueError, match=r"unknown key.*'extra\.weight'"):
        from_mdm_checkpoint({**state, "extra.weight": torch.zeros(1)})
    missing = {k: v for k, v in state.items() if k != "output_process.poseFinal.bias"}
    with pytest.raises(ValueError, match=r"missing key.*output_process\.poseFinal\.bias"):
        from_mdm_checkpoint(missing)
    gap = {k: v for k, v in state.items() if not k.startswith("seqTransEncoder.layers.0.")}
    with pytest.raises(ValueError, match=r"numbered 0\.\.N-1"):
        from_mdm_checkpoint(gap)
    with pytest.raises(ValueError, match="not divisible"):
        from_mdm_checkpoint(state, num_heads=5)
    with pytest.raises(FileNotFoundError):
        from_mdm_checkpoint(tmp_path / "absent.pt")
