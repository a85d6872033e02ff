"""Every layout official MDM saves imports, with its args.json, and the imported Denoiser
computes MDM's forward.

The checkpoints are built here with the complete official key set of MDM's ``MDM`` class
(model/mdm.py, arch trans_enc, text condition): both positional tables, ``clip_model.*`` keys
(fp16, as CLIP's ``convert_weights`` leaves them), and an EMA copy ``model_avg`` that differs
from ``model`` — saved as MDM's training loop saves them. ``mdm_forward`` is MDM's forward
written out with plain torch ops on the official weights, independently of ``Denoiser``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kinemic.cli import main
from kinemic.diffusion.mdm_import import read_mdm_checkpoint
from kinemic.errors import DataError, KinemicError
from kinemic.io.humanml3d import write_mean_std
from kinemic.prior.folder import import_mdm, load_prior

FEATS, D, LAYERS, HEADS, FF, CLIP, MAX_LEN = 263, 64, 2, 4, 128, 512, 5000
PE, PE_TWIN = "sequence_pos_encoder.pe", "embed_timestep.sequence_pos_encoder.pe"
pytestmark = pytest.mark.usefixtures("one_thread")
ARGS = {  # what MDM's train_mdm.py writes (a subset; the rest is training bookkeeping)
    "arch": "trans_enc",
    "dataset": "humanml",
    "layers": LAYERS,
    "latent_dim": D,
    "cond_mask_prob": 0.2,
    "diffusion_steps": 50,
    "noise_schedule": "cosine",
    "text_encoder_type": "clip",
    "pos_embed_max_len": MAX_LEN,
    "unconstrained": False,
    "use_ema": True,
    "mask_frames": True,
    "emb_trans_dec": False,
    "lr": 1e-4,
    "save_dir": "save/my_humanml_trans_enc_512",
}


def sinusoid(rows: int, width: int) -> torch.Tensor:
    """MDM's PositionalEncoding buffer (rows, 1, width)."""
    position = torch.arange(0, rows, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, width, 2).float() * (-np.log(10000.0) / width))
    pe = torch.zeros(rows, width)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.unsqueeze(0).transpose(0, 1)


def mdm_encoder() -> nn.TransformerEncoder:
    """``seqTransEncoder`` as MDM builds it (sequence-first, post-norm, GELU)."""
    layer = nn.TransformerEncoderLayer(
        d_model=D, nhead=HEADS, dim_feedforward=FF, dropout=0.1, activation="gelu"
    )
    return nn.TransformerEncoder(layer, num_layers=LAYERS, enable_nested_tensor=False)


def official_state(seed: int) -> dict[str, torch.Tensor]:
    """An ``MDM.state_dict()`` with random weights (LayerNorms too), CLIP keys included."""
    g = torch.Generator().manual_seed(seed)

    def w(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    state = {
        "input_process.poseEmbedding.weight": w(D, FEATS, scale=0.05),
        "input_process.poseEmbedding.bias": w(D),
        PE: sinusoid(MAX_LEN, D),
        "embed_timestep.time_embed.0.weight": w(D, D),
        "embed_timestep.time_embed.0.bias": w(D),
        "embed_timestep.time_embed.2.weight": w(D, D),
        "embed_timestep.time_embed.2.bias": w(D),
        PE_TWIN: sinusoid(MAX_LEN, D),
        "clip_model.positional_embedding": w(77, 8).half(),
        "clip_model.token_embedding.weight": w(10, 8).half(),
        "clip_model.ln_final.weight": w(8).half(),
        "clip_model.logit_scale": torch.tensor(4.6052),
        "embed_text.weight": w(D, CLIP, scale=0.05),
        "embed_text.bias": w(D),
        "output_process.poseFinal.weight": w(FEATS, D),
        "output_process.poseFinal.bias": w(FEATS),
    }
    for key, value in mdm_encoder().state_dict().items():
        state[f"seqTransEncoder.{key}"] = value + w(*value.shape, scale=0.1)
    return state


def mdm_forward(state, x, t, text, *, uncond: bool) -> torch.Tensor:
    """MDM.forward in eval mode: x (B, T, F) features, t (B,), text (B, 512) CLIP embeddings,
    ``uncond`` = y['uncond'] -> x0 (B, T, F)."""
    B, T, _ = x.shape
    x = x.permute(0, 2, 1)[:, :, None, :]  # (B, njoints=263, nfeats=1, T), MDM's layout
    pe = state[PE]  # (max_len, 1, D)
    # TimestepEmbedder: time_embed(pe[t]) -> (B, 1, D) -> permute -> (1, B, D)
    h = F.linear(pe[t], state["embed_timestep.time_embed.0.weight"])
    h = F.silu(h + state["embed_timestep.time_embed.0.bias"])
    time_emb = F.linear(
        h, state["embed_timestep.time_embed.2.weight"], state["embed_timestep.time_embed.2.bias"]
    ).permute(1, 0, 2)
    enc_text = text[None]  # (1, B, 512), as clip_encode_text returns it
    enc_text = torch.zeros_like(enc_text) if uncond else enc_text  # mask_cond(force_mask)
    emb = F.linear(enc_text, state["embed_text.weight"], state["embed_text.bias"]) + time_emb
    seq = x.permute(3, 0, 1, 2).reshape(T, B, FEATS)  # InputProcess
    seq = F.linear(
        seq, state["input_process.poseEmbedding.weight"], state["input_process.poseEmbedding.bias"]
    )  # (T, B, D)
    xseq = torch.cat((emb, seq), dim=0)  # (1+T, B, D)
    xseq = xseq + pe[: xseq.shape[0], :]  # PositionalEncoding (dropout off)
    encoder = mdm_encoder()
    prefix = "seqTransEncoder."
    encoder.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    out = encoder.eval()(xseq)[1:]  # (T, B, D)
    out = F.linear(
        out, state["output_process.poseFinal.weight"], state["output_process.poseFinal.bias"]
    )  # OutputProcess: (T, B, F) -> (B, F, 1, T)
    out = out.reshape(T, B, FEATS, 1).permute(1, 2, 3, 0)
    return out[:, :, 0, :].permute(0, 2, 1)  # (B, T, F)


def inputs(B: int = 3, T: int = 7):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, FEATS, generator=g)
    text = torch.randn(B, CLIP, generator=g)
    return x, torch.tensor([0, 17, 49])[:B], text


def assert_close(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Within 1e-5 (absolute, plus 1e-5 relative), like ``torch.testing.assert_close``."""
    err = (got - expected).abs() - 1e-5 * expected.abs()
    assert got.shape == expected.shape and float(err.max()) <= 1e-5, float(err.max())


def assert_computes(denoiser, state) -> None:
    """The imported denoiser's forward equals MDM's, with text and without."""
    x, t, text = inputs()
    B = x.shape[0]
    with torch.no_grad():
        for uncond in (False, True):
            expected = mdm_forward(state, x, t, text, uncond=uncond)
            got = denoiser(x, t, text=text, uncond=torch.full((B,), uncond))
            assert_close(got, expected)
        no_text = denoiser(x, t)  # no text at all: MDM's forced-unconditional branch
        assert_close(no_text, expected)


def without_clip(state):
    return {k: v for k, v in state.items() if not k.startswith("clip_model.")}


def save_layout(folder, layout: str, clip: bool, args: dict | None = ARGS):
    """Write ``folder/model000750000.pt`` (and args.json) in ``layout``; returns the path and
    the (raw, ema) official state dicts (ema None for layouts without one)."""
    raw, ema = official_state(0), official_state(1)
    ema = {k: v for k, v in ema.items() if k not in (PE, PE_TWIN)} | {
        PE: raw[PE],
        PE_TWIN: raw[PE_TWIN],
    }
    keep = (lambda s: s) if clip else without_clip
    if layout == "bare":
        obj, ema = keep(raw), None
    elif layout == "model":
        obj, ema = {"model": keep(raw)}, None
    elif layout == "model+avg":
        obj = {"model": keep(raw), "model_avg": keep(ema)}
    else:  # DataParallel-wrapped, with the optimiser and arguments in the same file
        w3 = torch.full((3,), 0.1)
        opt = {  # what AdamW.state_dict() holds (built by hand: a real step imports dynamo)
            "state": {0: {"step": torch.tensor(1.0), "exp_avg": w3, "exp_avg_sq": w3**2}},
            "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "params": [0]}],
        }
        obj = {
            "model": {f"module.{k}": v for k, v in keep(raw).items()},
            "model_avg": {f"module.{k}": v for k, v in keep(ema).items()},
            "opt": opt,
            "args": argparse.Namespace(**ARGS),
        }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model000750000.pt"
    torch.save(obj, path)
    if args is not None:
        (folder / "args.json").write_text(json.dumps(args, indent=4, sort_keys=True))
    return path, raw, ema


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("layout", ["bare", "model", "model+avg", "dataparallel+opt+args"])
def test_every_official_layout_imports_and_computes_mdm(tmp_path, layout, clip):
    path, raw, ema = save_layout(tmp_path, layout, clip)
    got = read_mdm_checkpoint(path)  # weights_only=True throughout
    cfg = got.denoiser.config
    assert (cfg.latent_dim, cfg.num_layers, cfg.num_heads, cfg.ff_dim) == (D, LAYERS, HEADS, FF)
    assert (cfg.text_dim, cfg.max_len, cfg.cond_drop_prob) == (CLIP, MAX_LEN, 0.2)
    assert (got.diffusion_steps, got.text_encoder) == (50, "clip")
    assert not got.denoiser.training
    if ema is None:
        assert got.weights == "raw" and got.raw is None
        assert_computes(got.denoiser, raw)
        with pytest.raises(DataError, match=r"weights 'ema' asked for.*no 'model_avg'"):
            read_mdm_checkpoint(path, weights="ema")
        return
    assert got.weights == "ema"  # the default when the checkpoint holds one
    assert any("'model_avg'" in note for note in got.notes)
    assert_computes(got.denoiser, ema)
    assert_computes(got.raw, raw)
    assert_computes(read_mdm_checkpoint(path, weights="ema").denoiser, ema)
    chosen = read_mdm_checkpoint(path, weights="raw")
    assert chosen.weights == "raw" and chosen.raw is None
    assert_computes(chosen.denoiser, raw)
    x, t, text = inputs()
    with torch.no_grad():  # the two copies really differ, so picking one is checked above
        assert not torch.allclose(got.denoiser(x, t, text=text), chosen.denoiser(x, t, text=text))


def test_the_cli_reports_what_it_read_and_assumed(tmp_path, capsys):
    path, raw, ema = save_layout(tmp_path / "save", "model+avg", clip=False)
    write_mean_std(tmp_path / "stats", np.zeros(FEATS), np.ones(FEATS))
    common = ["--mean-std", str(tmp_path / "stats")]
    assert main(["import-mdm", str(path), *common, "--out", str(tmp_path / "ema")]) == 0
    err = capsys.readouterr().err
    assert "weights: EMA ('model_avg'" in err
    assert "args.json: read" in err and "diffusion_steps=50" in err and "cond_mask_prob=0.2" in err
    assert "assumed: num_heads=4 (fixed in MDM's code)" in err
    prior = load_prior(tmp_path / "ema")
    assert prior.weights == "ema" and prior.schedule.num_steps == 50
    assert prior.text_encoder == "clip" and prior.config["training"]["weights"] == "ema"
    assert_computes(prior.denoiser, ema)
    assert_computes(load_prior(tmp_path / "ema", weights="raw").denoiser, raw)

    out = tmp_path / "raw"
    assert main(["import-mdm", str(path), *common, "--out", str(out), "--weights", "raw"]) == 0
    assert "weights: raw ('model', as asked" in capsys.readouterr().err
    assert load_prior(out).weights == "raw"
    assert_computes(load_prior(out).denoiser, raw)

    bare, _, _ = save_layout(tmp_path / "bare", "bare", clip=True, args=None)
    assert main(["import-mdm", str(bare), *common, "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "no args.json beside the checkpoint" in err and "weights: raw (no 'model_avg'" in err
    assert "diffusion_steps=50 (humanml_enc_512_50steps" in err
    assert "cond_mask_prob=0.1 (MDM's default)" in err and "4 clip_model.* keys dropped" in err
    code = main(
        ["import-mdm", str(bare), *common, "--out", str(tmp_path / "c"), "--weights", "ema"]
    )
    assert code == 2 and "no 'model_avg'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, problem",
    [
        (dict(layers=3), "layers: 3, but the checkpoint has 2 transformer layers"),
        (dict(latent_dim=512), "latent_dim: 512, but the checkpoint has 64"),
        (dict(pos_embed_max_len=1000), "pos_embed_max_len: 1000, but the checkpoint has 5000"),
        (dict(arch="trans_dec"), "arch: 'trans_dec'"),
        (dict(arch="gru"), "arch: 'gru'"),
        (dict(dataset="kit"), "dataset: 'kit'"),
        (dict(text_encoder_type="bert"), "text_encoder_type: 'bert'"),
        (dict(noise_schedule="linear"), "noise_schedule: 'linear'"),
        (dict(unconstrained=True), "unconstrained: True, but the checkpoint has embed_text"),
        (dict(context_len=20), "context_len: 20"),
    ],
)
def test_args_json_is_checked_against_the_weights(tmp_path, change, problem):
    path, _, _ = save_layout(tmp_path, "model", clip=False, args={**ARGS, **change})
    with pytest.raises(DataError, match=r"args\.json") as caught:
        read_mdm_checkpoint(path)
    assert problem in str(caught.value)


def test_given_settings_must_agree_with_args_json(tmp_path):
    path, _, _ = save_layout(tmp_path, "model", clip=False)
    with pytest.raises(DataError, match=r"args\.json: diffusion_steps: 50, but 1000 was given"):
        read_mdm_checkpoint(path, diffusion_steps=1000)
    assert read_mdm_checkpoint(path, diffusion_steps=50, num_heads=8).denoiser.config.num_heads == 8


@pytest.mark.parametrize("key", [PE, PE_TWIN])
def test_a_positional_table_other_than_the_sinusoid_is_refused(key):
    state = official_state(0)
    assert read_mdm_checkpoint(state).denoiser is not None  # both tables, neither unknown
    state[key] = state[key] + 1e-3
    with pytest.raises(DataError, match=f"{key} is not MDM's sinusoidal positional table"):
        read_mdm_checkpoint(state)
    state[key] = sinusoid(100, D)
    with pytest.raises(DataError, match=f"{key} should have shape"):
        read_mdm_checkpoint(state)


def test_pickled_objects_beyond_tensors(tmp_path):
    """An argparse Namespace and an optimiser state load under weights_only=True (the
    layout test); a NumPy scalar does not, and the error says which file and what to do."""
    path = tmp_path / "model.pt"
    torch.save({"model": official_state(0), "loss": np.float64(0.5)}, path)
    with pytest.raises(DataError, match="trust-pickle") as caught:
        read_mdm_checkpoint(path)
    assert str(path) in str(caught.value) and "numpy" in str(caught.value)
    assert read_mdm_checkpoint(path, trust_pickle=True).weights == "raw"
    with pytest.raises(KinemicError, match=str(path)):
        import_mdm(path, tmp_path / "p", mean_std=tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="not a readable torch checkpoint"):
        read_mdm_checkpoint(path)
