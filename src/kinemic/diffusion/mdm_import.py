"""Import (and export) the official MDM checkpoint layout (SPEC §4) onto ``Denoiser``.

The official model is sequence-first and names its modules after MDM's classes; the mapping is
one-to-one (``nn.MultiheadAttention``'s ``in_proj`` is our ``qkv``, stacked q, k, v)::

    input_process.poseEmbedding.*                 -> input_proj.*
    sequence_pos_encoder.pe (max_len, 1, D)       -> pe (max_len, D)  (buffer, not saved)
    embed_timestep.time_embed.{0,2}.*             -> time_mlp.{0,2}.*
    embed_text.*                                  -> embed_text.*
    embed_action.action_embedding (A, D)          -> embed_action.weight
    seqTransEncoder.layers.{i}.self_attn.in_proj_{weight,bias}  -> layers.{i}.qkv.{weight,bias}
    seqTransEncoder.layers.{i}.self_attn.out_proj.*             -> layers.{i}.out_proj.*
    seqTransEncoder.layers.{i}.{linear1,linear2,norm1,norm2}.*  -> layers.{i}.<same>.*
    output_process.poseFinal.*                    -> output_proj.*

``clip_model.*`` (the frozen text tower) is dropped. Sizes are read from the tensor shapes;
only the number of heads cannot be, so it is an argument (4 in every official checkpoint).
"""

from __future__ import annotations

import re
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kinemic.diffusion.denoiser import Denoiser, DenoiserConfig

__all__ = ["from_mdm_checkpoint", "load_mdm_state_dict", "to_mdm_state_dict"]

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
_PE = "sequence_pos_encoder.pe"
_OPTIONAL = {"embed_text.weight", "embed_text.bias", "embed_action.action_embedding"}


def load_mdm_state_dict(
    path_or_state_dict: str | PathLike | dict[str, Any], *, trust_pickle: bool = False
) -> dict[str, Tensor]:
    """The official state dict from a ``.pt``/``.pth`` file (plain, or a dict holding it under
    "model" / "state_dict"), a ``.safetensors`` file, or an in-memory dict; ``clip_model.*`` and
    a DataParallel ``module.`` prefix removed. Pickled files load with ``weights_only=True``
    unless ``trust_pickle`` (only for files from a source you trust)."""
    if isinstance(path_or_state_dict, dict):
        state: Any = path_or_state_dict
        where = "<state dict>"
    else:
        path = Path(path_or_state_dict)
        where = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"MDM checkpoint {path} does not exist")
        if path.suffix == ".safetensors":
            from kinemic.files import read_safetensors

            state = read_safetensors(path)
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
            except Exception as err:  # the pickle holds more than tensors
                raise ValueError(
                    f"{path}: could not be loaded with torch.load(weights_only=True) ({err}). "
                    "If the file comes from a source you trust, pass trust_pickle=True."
                ) from err
    for wrapper in ("model", "state_dict", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"{where}: expected a state dict of tensors (or a dict with 'model'/'state_dict')"
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith("clip_model.")}


def _rename(key: str) -> str | None:
    if key in _TOP_KEYS:
        return _TOP_KEYS[key]
    m = _LAYER.match(key)
    if m and m.group(2) in _LAYER_KEYS:
        return f"layers.{m.group(1)}.{_LAYER_KEYS[m.group(2)]}"
    return None


def from_mdm_checkpoint(
    path_or_state_dict: str | PathLike | dict[str, Any],
    num_heads: int = 4,
    *,
    dropout: float = 0.1,
    cond_drop_prob: float = 0.1,
    trust_pickle: bool = False,
) -> Denoiser:
    """A ``Denoiser`` carrying the weights of an official MDM checkpoint (eval mode, CPU).

    Feature dim, latent dim, layer count, FF width, text dim, action count and max_len come from
    the tensor shapes. Unknown keys or missing keys raise ``ValueError`` listing them.
    """
    state = load_mdm_state_dict(path_or_state_dict, trust_pickle=trust_pickle)
    unknown = sorted(k for k in state if k != _PE and _rename(k) is None)
    if unknown:
        raise ValueError(
            f"MDM checkpoint: {len(unknown)} unknown key(s) {unknown[:20]}; expected the official "
            "trans_enc layout (input_process, sequence_pos_encoder, embed_timestep, embed_text, "
            "embed_action, seqTransEncoder.layers.N, output_process)"
        )
    required = {k for k in _TOP_KEYS if k not in _OPTIONAL} | {_PE}
    missing = sorted(required - set(state))
    if "embed_text.weight" in state or "embed_text.bias" in state:
        missing += sorted({"embed_text.weight", "embed_text.bias"} - set(state))
    if missing:
        raise ValueError(f"MDM checkpoint: missing key(s) {missing}")
    layers = sorted({int(m.group(1)) for k in state if (m := _LAYER.match(k))})
    if layers != list(range(len(layers))) or not layers:
        raise ValueError(
            f"MDM checkpoint: transformer layers should be numbered 0..N-1, found {layers}"
        )
    missing = [f"seqTransEncoder.layers.{i}.{k}" for i in layers for k in _LAYER_KEYS]
    missing = [k for k in missing if k not in state]
    if missing:
        raise ValueError(f"MDM checkpoint: missing key(s) {missing[:20]}")

    D, feature_dim = state["input_process.poseEmbedding.weight"].shape
    pe = state[_PE]
    if pe.dim() != 3 or pe.shape[1:] != (1, D):
        raise ValueError(
            f"MDM checkpoint: {_PE} should have shape (max_len, 1, {D}), found {tuple(pe.shape)}"
        )
    text = state.get("embed_text.weight")
    action = state.get("embed_action.action_embedding")
    config = DenoiserConfig(
        feature_dim=feature_dim,
        latent_dim=D,
        num_layers=len(layers),
        num_heads=num_heads,
        ff_dim=state["seqTransEncoder.layers.0.linear1.weight"].shape[0],
        dropout=dropout,
        text_dim=None if text is None else text.shape[1],
        num_actions=0 if action is None else action.shape[0],
        cond_drop_prob=cond_drop_prob,
        max_len=pe.shape[0],
    )
    model = Denoiser(config)
    ours = {_rename(k): v for k, v in state.items() if k != _PE}
    expected = model.state_dict()
    wrong = [
        f"{k}: {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
        for k, v in ours.items()
        if v.shape != expected[k].shape
    ]
    if wrong:
        raise ValueError(f"MDM checkpoint: tensors of unexpected shape: {wrong[:20]}")
    model.load_state_dict({k: v.float() for k, v in ours.items()}, strict=True)
    model.pe.copy_(pe[:, 0].float())
    return model.eval()


def to_mdm_state_dict(model: Denoiser) -> dict[str, Tensor]:
    """The official key layout for ``model``'s weights (inverse of ``from_mdm_checkpoint``).
    A ``text_scale`` other than 1 is folded into ``embed_text.weight`` (the official model
    projects the embedding as it is), so the official computation gives the same output."""
    back = {v: k for k, v in _TOP_KEYS.items()}
    for i in range(model.config.num_layers):
        back |= {
            f"layers.{i}.{v}": f"seqTransEncoder.layers.{i}.{k}" for k, v in _LAYER_KEYS.items()
        }
    out = {back[k]: v.detach().clone() for k, v in model.state_dict().items()}
    if "embed_text.weight" in out:
        out["embed_text.weight"] *= model.config.text_scale
    out[_PE] = model.pe.detach().clone()[:, None, :]  # (max_len, 1, D)
    return out
