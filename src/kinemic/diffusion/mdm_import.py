"""Import (and export) the official MDM checkpoint layout (SPEC §4) onto ``Denoiser``.

Every layout official MDM writes is read. Its training loop saves the state dict of its ``MDM``
class without the ``clip_model.*`` keys, and with ``--use_ema`` the dict ``{'model': ...,
'model_avg': ...}``; the optimiser goes to a separate ``opt*.pt``. So the importer takes:

* a bare state dict, or one under ``'model'`` (or ``'state_dict'`` / ``'model_state_dict'``);
* the EMA copy under ``'model_avg'`` by default, like MDM's sampler and the KineMIC reference
  (``weights="raw"`` takes ``'model'``);
* ``clip_model.*`` keys (dropped: kinemic encodes text itself) and a DataParallel ``module.``
  prefix; other entries (an optimiser state, an argparse ``Namespace``) load under
  ``weights_only=True`` and are ignored.

The mapping is one-to-one (``nn.MultiheadAttention``'s ``in_proj`` is our ``qkv``, stacked
q, k, v)::

    input_process.poseEmbedding.*                 -> input_proj.*
    embed_timestep.time_embed.{0,2}.*             -> time_mlp.{0,2}.*
    embed_text.*                                  -> embed_text.*
    embed_action.action_embedding (A, D)          -> embed_action.weight
    seqTransEncoder.layers.{i}.self_attn.in_proj_{weight,bias}  -> layers.{i}.qkv.{weight,bias}
    seqTransEncoder.layers.{i}.self_attn.out_proj.*             -> layers.{i}.out_proj.*
    seqTransEncoder.layers.{i}.{linear1,linear2,norm1,norm2}.*  -> layers.{i}.<same>.*
    output_process.poseFinal.*                    -> output_proj.*

``sequence_pos_encoder.pe`` (max_len, 1, D) and its twin ``embed_timestep.sequence_pos_encoder.pe``
(MDM's ``TimestepEmbedder`` holds the positional encoder as a child) are no weights: both are
checked against the sinusoid ``Denoiser`` builds for the same rows and width, and refused only
if they differ.

Sizes come from the tensor shapes. ``args.json``, which MDM writes beside its checkpoints, gives
what the shapes cannot (condition dropout, diffusion steps, text encoder) and is checked against
them where both say something. MDM's code fixes 4 heads and dropout 0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from kinemic.diffusion.denoiser import Denoiser, DenoiserConfig
from kinemic.diffusion.mdm_args import (
    ARGS_FILE,
    ASSUMED_STEPS,
    MDM_COND_MASK_PROB,
    MDM_DROPOUT,
    MDM_HEADS,
    MDM_MAX_LEN,
    MdmArgs,
    MdmSizes,
    read_mdm_args,
)
from kinemic.errors import DataError

__all__ = [
    "MdmCheckpoint",
    "Weights",
    "from_mdm_checkpoint",
    "load_mdm_state_dict",
    "read_mdm_checkpoint",
    "to_mdm_state_dict",
]

Weights = Literal["ema", "raw"]

_LAYER = re.compile(r"^seqTransEncoder\.layers\.(\d+)\.(.+)$")
_LAYER_KEYS = {
    "self_attn.in_proj_weight": "qkv.weight",
    "self_attn.in_proj_bias": "qkv.bias",
    "self_attn.out_proj.weight": "out_proj.weight",
    "self_attn.out_proj.bias": "out_proj.bias",
    **{
        f"{m}.{p}": f"{m}.{p}"
        for m in ("linear1", "linear2", "norm1", "norm2")
        for p in ("weight", "bias")
    },
}
_TOP_KEYS = {
    "input_process.poseEmbedding.weight": "input_proj.weight",
    "input_process.poseEmbedding.bias": "input_proj.bias",
    "embed_timestep.time_embed.0.weight": "time_mlp.0.weight",
    "embed_timestep.time_embed.0.bias": "time_mlp.0.bias",
    "embed_timestep.time_embed.2.weight": "time_mlp.2.weight",
    "embed_timestep.time_embed.2.bias": "time_mlp.2.bias",
    "embed_text.weight": "embed_text.weight",
    "embed_text.bias": "embed_text.bias",
    "embed_action.action_embedding": "embed_action.weight",
    "output_process.poseFinal.weight": "output_proj.weight",
    "output_process.poseFinal.bias": "output_proj.bias",
}
_OPTIONAL = {"embed_text.weight", "embed_text.bias", "embed_action.action_embedding"}
_PE = "sequence_pos_encoder.pe"
_PE_TWIN = "embed_timestep.sequence_pos_encoder.pe"
_WRAPPERS = ("model", "state_dict", "model_state_dict")
_EMA = "model_avg"


@dataclass
class MdmCheckpoint:
    """An official MDM checkpoint read onto ``Denoiser`` (see :func:`read_mdm_checkpoint`)."""

    denoiser: Denoiser  # the chosen weights, eval mode, CPU
    weights: Weights  # "ema" ('model_avg') or "raw" ('model', or a bare state dict)
    raw: Denoiser | None  # the raw weights as well when ``denoiser`` holds the EMA ones
    diffusion_steps: int
    text_encoder: str | None  # "clip" (MDM's text tower), None for a model without text
    args: dict[str, Any] = field(default_factory=dict)  # the args.json entries used
    notes: list[str] = field(default_factory=list)  # what was read, and what was assumed


def load_mdm_state_dict(
    path_or_state_dict: str | PathLike | Mapping[str, Any],
    *,
    weights: Weights | None = None,
    trust_pickle: bool = False,
) -> dict[str, Tensor]:
    """The official state dict of a ``.pt``/``.pth`` or ``.safetensors`` file or an in-memory
    dict, in any layout of the module docstring: the EMA copy unless ``weights="raw"`` or there
    is none; ``clip_model.*`` and a ``module.`` prefix removed. Pickled files load with
    ``weights_only=True`` unless ``trust_pickle`` (only for files from a source you trust)."""
    obj, where = _load(path_or_state_dict, trust_pickle)
    model, ema, layout = _layout(obj, where)
    state, _, _ = _choose(model, ema, weights, where, layout)
    return _clean(state)[0]


def read_mdm_checkpoint(
    path_or_state_dict: str | PathLike | Mapping[str, Any],
    *,
    weights: Weights | None = None,
    num_heads: int | None = None,
    cond_drop_prob: float | None = None,
    diffusion_steps: int | None = None,
    dropout: float = MDM_DROPOUT,
    mdm_args: Mapping[str, Any] | None = None,
    trust_pickle: bool = False,
) -> MdmCheckpoint:
    """Read an official MDM checkpoint and its ``args.json``.

    ``weights``: "ema" ('model_avg', an error if the checkpoint has none), "raw" ('model'), or
    None: the EMA copy when there is one. ``mdm_args``: MDM's arguments; by default the
    ``args.json`` beside a checkpoint file. ``num_heads``, ``cond_drop_prob`` and
    ``diffusion_steps`` given here must agree with ``args.json`` where it has them; neither
    saying, MDM's values are assumed (4 heads, 0.1) and 50 steps. ``notes`` says which.
    Raises ``DataError`` naming the file and key for an unsupported or inconsistent checkpoint
    (``FileNotFoundError`` for a missing one).
    """
    obj, where = _load(path_or_state_dict, trust_pickle)
    if mdm_args is not None:
        args, args_where = dict(mdm_args), "mdm_args"
    elif isinstance(path_or_state_dict, Mapping):
        args, args_where = None, None
    else:  # the file was found by _load
        args = read_mdm_args(path_or_state_dict)
        args_where = str(Path(path_or_state_dict).parent / ARGS_FILE)
    model, ema, layout = _layout(obj, where)
    state, chosen, weights_note = _choose(model, ema, weights, where, layout)
    state, dropped_clip, had_prefix = _clean(state)
    chosen_where = where if chosen == "raw" else f"{where} ['{_EMA}']"
    shapes = _shapes(state, chosen_where)
    a = MdmArgs(args or {}, args_where or ARGS_FILE)
    a.check(shapes)
    heads = a.setting("num_heads", num_heads, MDM_HEADS, "fixed in MDM's code", alt="heads")
    drop = a.setting("cond_mask_prob", cond_drop_prob, MDM_COND_MASK_PROB, "MDM's default", float)
    steps = a.setting(
        "diffusion_steps",
        diffusion_steps,
        ASSUMED_STEPS,
        "humanml_enc_512_50steps, the checkpoint KineMIC fine-tunes; MDM's default is 1000",
    )
    text_encoder = None
    if shapes.text_dim is not None:
        text_encoder = a.get("text_encoder_type") or a.assume("text_encoder_type", "clip", "MDM")
    max_len = shapes.pe_rows or a.setting(
        "pos_embed_max_len", None, MDM_MAX_LEN, "MDM's default; no positional table saved"
    )
    config = DenoiserConfig(
        feature_dim=shapes.feature_dim,
        latent_dim=shapes.latent_dim,
        num_layers=shapes.num_layers,
        num_heads=heads,
        ff_dim=shapes.ff_dim,
        dropout=dropout,
        text_dim=shapes.text_dim,
        num_actions=shapes.num_actions,
        cond_drop_prob=drop,
        max_len=max_len,
    )
    denoiser = _build(state, config, chosen_where)
    raw = None
    if chosen == "ema":
        raw_state = _clean(model)[0]
        if _shapes(raw_state, where) != shapes:
            raise DataError(where, f"'model' and '{_EMA}' do not hold the same model")
        raw = _build(raw_state, config, f"{where} ['model']")
    if a.args.get("use_ema") and ema is None:
        weights_note += f"; args.json says use_ema, yet the checkpoint holds no '{_EMA}'"
    what = [layout]
    if dropped_clip:
        what.append(f"{dropped_clip} clip_model.* keys dropped")
    if had_prefix:
        what.append("'module.' prefix removed")
    notes = [f"{where}: {', '.join(what)}", weights_note]
    if args is None:
        beside = "beside the checkpoint" if args_where else "with an in-memory state dict"
        notes.append(f"no {ARGS_FILE} {beside}")
    else:
        read = ", ".join(f"{k}={v!r}" for k, v in a.read.items())
        notes.append(f"{args_where}: read {read or 'nothing kinemic uses'}")
    if a.assumed:
        notes.append("assumed: " + "; ".join(a.assumed))
    return MdmCheckpoint(
        denoiser=denoiser,
        weights=chosen,
        raw=raw,
        diffusion_steps=int(steps),
        text_encoder=text_encoder,
        args=dict(a.read),
        notes=notes,
    )


def from_mdm_checkpoint(
    path_or_state_dict: str | PathLike | Mapping[str, Any],
    num_heads: int | None = None,
    *,
    weights: Weights | None = None,
    dropout: float = MDM_DROPOUT,
    cond_drop_prob: float | None = None,
    mdm_args: Mapping[str, Any] | None = None,
    trust_pickle: bool = False,
) -> Denoiser:
    """A ``Denoiser`` carrying the weights of an official MDM checkpoint (eval mode, CPU): the
    ``denoiser`` of :func:`read_mdm_checkpoint` with the same arguments."""
    return read_mdm_checkpoint(
        path_or_state_dict,
        weights=weights,
        num_heads=num_heads,
        cond_drop_prob=cond_drop_prob,
        dropout=dropout,
        mdm_args=mdm_args,
        trust_pickle=trust_pickle,
    ).denoiser


def to_mdm_state_dict(model: Denoiser) -> dict[str, Tensor]:
    """The official key layout for ``model``'s weights (inverse of ``from_mdm_checkpoint``),
    both positional tables included, as official MDM's loader expects them. A ``text_scale``
    other than 1 is folded into ``embed_text.weight`` (the official model projects the
    embedding as it is), so the official computation gives the same output."""
    back = {v: k for k, v in _TOP_KEYS.items()}
    for i in range(model.config.num_layers):
        back |= {
            f"layers.{i}.{v}": f"seqTransEncoder.layers.{i}.{k}" for k, v in _LAYER_KEYS.items()
        }
    out = {back[k]: v.detach().clone() for k, v in model.state_dict().items()}
    if "embed_text.weight" in out:
        out["embed_text.weight"] *= model.config.text_scale
    for key in (_PE, _PE_TWIN):  # separate copies: safetensors refuses shared tensors
        out[key] = model.pe.detach().clone()[:, None, :]  # (max_len, 1, D)
    return out


# ------------------------------------------------------------------------------ the file


def _load(path_or_state_dict: str | PathLike | Mapping[str, Any], trust_pickle: bool) -> tuple:
    """(the loaded object, a name for it in messages)."""
    if isinstance(path_or_state_dict, Mapping):
        return dict(path_or_state_dict), "<state dict>"
    path = Path(path_or_state_dict)
    if not path.is_file():
        raise FileNotFoundError(f"MDM checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from kinemic.files import read_safetensors

        return read_safetensors(path), str(path)
    try:
        if trust_pickle:
            return torch.load(path, map_location="cpu", weights_only=False), str(path)
        with _harmless_globals():
            return torch.load(path, map_location="cpu", weights_only=True), str(path)
    except pickle.UnpicklingError as err:
        if trust_pickle:
            raise DataError(path, f"not a readable torch checkpoint ({err})") from None
        raise DataError(
            path,
            f"torch.load(weights_only=True) refuses it: besides tensors it holds "
            f"{_unsafe_globals(path, err)}. If the file comes from a source you trust, pass "
            "--trust-pickle (trust_pickle=True) to unpickle it fully",
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise DataError(path, f"not a readable torch checkpoint ({err})") from None


def _harmless_globals() -> contextlib.AbstractContextManager:
    """Allow an argparse ``Namespace`` (a bag of attributes, as training scripts store their
    arguments) under ``weights_only=True``; torch before 2.5 has no way to."""
    safe = getattr(torch.serialization, "safe_globals", None)
    return safe([argparse.Namespace]) if safe is not None else contextlib.nullcontext()


def _unsafe_globals(path: Path, err: Exception) -> str:
    finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    try:
        found = [g for g in finder(path) if g != "argparse.Namespace"] if finder else []
    except Exception:  # only used to word the message
        found = []
    if found:
        return "objects of " + ", ".join(found)
    lines = [line.strip() for line in str(err).splitlines() if "Unsupported" in line]
    return lines[0] if lines else "objects that are not tensors"


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def _layout(obj: Any, where: str) -> tuple[dict[str, Tensor], dict[str, Tensor] | None, str]:
    """(the state dict, the EMA copy or None, the layout in words)."""
    if _is_state_dict(obj):
        return dict(obj), None, "a bare state dict"
    if isinstance(obj, Mapping):
        for name in _WRAPPERS:
            if _is_state_dict(obj.get(name)):
                ema = obj.get(_EMA) if name == "model" else None
                if ema is not None and not _is_state_dict(ema):
                    raise DataError(where, f"'{_EMA}' is not a state dict of tensors")
                if ema is None:
                    return dict(obj[name]), None, f"a state dict in '{name}'"
                return dict(obj[name]), dict(ema), f"state dicts in 'model' and '{_EMA}'"
        found = f"a dict with keys {sorted(map(str, obj))[:12]}"
    else:
        found = type(obj).__name__
    raise DataError(
        where,
        "expected a state dict of tensors, or a dict holding one under 'model' (with MDM's EMA "
        f"copy under '{_EMA}'), 'state_dict' or 'model_state_dict'; found {found}",
    )


def _choose(
    model: dict[str, Tensor],
    ema: dict[str, Tensor] | None,
    weights: Weights | None,
    where: str,
    layout: str,
) -> tuple[dict[str, Tensor], Weights, str]:
    """(the chosen state dict, "ema" | "raw", a note saying which and why)."""
    if weights not in (None, "ema", "raw"):
        raise DataError(None, f"weights must be 'ema' or 'raw', found {weights!r}")
    if ema is None:
        if weights == "ema":
            raise DataError(
                where,
                f"weights 'ema' asked for, but it holds {layout} and no '{_EMA}' (the EMA copy "
                "MDM saves when trained with --use_ema); import its raw weights instead",
            )
        how = "as asked" if weights == "raw" else f"no '{_EMA}' in the checkpoint"
        return model, "raw", f"weights: raw ({how})"
    if weights == "raw":
        return model, "raw", f"weights: raw ('model', as asked; the EMA copy '{_EMA}' left out)"
    how = "as asked" if weights == "ema" else "the default when there is one; raw takes 'model'"
    return ema, "ema", f"weights: EMA ('{_EMA}', {how})"


def _clean(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], int, bool]:
    """(the state without a ``module.`` prefix and ``clip_model.*``, keys dropped, prefixed)."""
    prefixed = bool(state) and all(k.startswith("module.") for k in state)
    if prefixed:
        state = {k[len("module.") :]: v for k, v in state.items()}
    kept = {k: v for k, v in state.items() if not k.startswith("clip_model.")}
    return kept, len(state) - len(kept), prefixed


# ---------------------------------------------------------------------- shapes and weights


def _rename(key: str) -> str | None:
    if key in _TOP_KEYS:
        return _TOP_KEYS[key]
    m = _LAYER.match(key)
    if m and m.group(2) in _LAYER_KEYS:
        return f"layers.{m.group(1)}.{_LAYER_KEYS[m.group(2)]}"
    return None


def _shapes(state: dict[str, Tensor], where: str) -> MdmSizes:
    """The sizes the tensor shapes say, after checking the key set."""
    unknown = sorted(k for k in state if k not in (_PE, _PE_TWIN) and _rename(k) is None)
    if unknown:
        raise DataError(
            where,
            f"{len(unknown)} unknown key(s) {unknown[:20]}; expected the official trans_enc "
            "layout (input_process, sequence_pos_encoder, embed_timestep, embed_text, "
            "embed_action, seqTransEncoder.layers.N, output_process)",
        )
    missing = sorted({k for k in _TOP_KEYS if k not in _OPTIONAL} - set(state))
    if "embed_text.weight" in state or "embed_text.bias" in state:
        missing += sorted({"embed_text.weight", "embed_text.bias"} - set(state))
    if missing:
        raise DataError(where, f"missing key(s) {missing}")
    layers = sorted({int(m.group(1)) for k in state if (m := _LAYER.match(k))})
    if layers != list(range(len(layers))) or not layers:
        raise DataError(where, f"transformer layers should be numbered 0..N-1, found {layers}")
    missing = [f"seqTransEncoder.layers.{i}.{k}" for i in layers for k in _LAYER_KEYS]
    missing = [k for k in missing if k not in state]
    if missing:
        raise DataError(where, f"missing key(s) {missing[:20]}")
    D, feature_dim = state["input_process.poseEmbedding.weight"].shape
    rows = None
    for key in (_PE, _PE_TWIN):
        pe = state.get(key)
        if pe is None:
            continue
        if pe.dim() != 3 or pe.shape[1:] != (1, D) or rows not in (None, pe.shape[0]):
            expected = f"({'max_len' if rows is None else rows}, 1, {D})"
            raise DataError(where, f"{key} should have shape {expected}, found {tuple(pe.shape)}")
        rows = pe.shape[0]
    text = state.get("embed_text.weight")
    action = state.get("embed_action.action_embedding")
    return MdmSizes(
        feature_dim=int(feature_dim),
        latent_dim=int(D),
        num_layers=len(layers),
        ff_dim=int(state["seqTransEncoder.layers.0.linear1.weight"].shape[0]),
        text_dim=None if text is None else int(text.shape[1]),
        num_actions=0 if action is None else int(action.shape[0]),
        pe_rows=rows,
    )


def _build(state: dict[str, Tensor], config: DenoiserConfig, where: str) -> Denoiser:
    """A ``Denoiser`` with ``state``'s weights, its positional tables checked against ours."""
    model = Denoiser(config)
    ours = {_rename(k): v for k, v in state.items() if k not in (_PE, _PE_TWIN)}
    expected = model.state_dict()
    wrong = [
        f"{k}: {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
        for k, v in ours.items()
        if v.shape != expected[k].shape
    ]
    if wrong:
        raise DataError(where, f"tensors of unexpected shape: {wrong[:20]}")
    model.load_state_dict({k: v.float() for k, v in ours.items()}, strict=True)
    for key in (_PE, _PE_TWIN):
        if key in state:
            pe = state[key][:, 0]  # (max_len, D)
            tol = max(1e-5, torch.finfo(pe.dtype).eps) if pe.is_floating_point() else 0.0
            diff = float((pe.float() - model.pe).abs().max())
            if not diff <= tol:
                raise DataError(
                    where,
                    f"{key} is not MDM's sinusoidal positional table: it differs by up to "
                    f"{diff:.3g} from the one kinemic computes for {pe.shape[0]} rows of width "
                    f"{pe.shape[1]}; kinemic recomputes this table, so it cannot carry another",
                )
    return model.eval()
