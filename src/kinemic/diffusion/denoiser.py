"""The motion denoiser: MDM's transformer encoder that predicts the clean sample x0.

Architecture (SPEC §4; Tevet et al. 2023, "Human Motion Diffusion Model"), batch-first::

    x (B, T, F) ──input_proj──► (B, T, D) ─┐
    cond token (B, 1, D) ──────────────────┴─► cat (B, 1+T, D) + PE ─► L post-norm layers
    ─► drop the cond token ─► latents (B, T, D) ──output_proj──► x0 (B, T, F)

The condition token is ``time_mlp(pe[t]) + embed_text(text·keep) + embed_action(a)·keep``: a
dropped text is a zero vector fed to ``embed_text`` (so its bias remains, exactly like MDM's
``mask_cond``), a dropped action contributes nothing. The official checkpoint layout maps onto
this module one-to-one (see ``mdm_import.py``); every projection is an ``nn.Linear`` so that
peft LoRA can target it by name (``LORA_TARGET_MODULES``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kinemic.constants import FEATURE_DIM
from kinemic.errors import check_known_settings

__all__ = [
    "LORA_TARGETS",
    "LORA_TARGET_MODULES",
    "Denoiser",
    "DenoiserConfig",
    "EncoderLayer",
    "SplitQKV",
    "sinusoidal_table",
]

# Module-name suffixes for peft's ``LoraConfig(target_modules=...)`` (SPEC §5: attention, FF,
# input/output projections and the timestep MLP; LayerNorms and the text projection excluded).
LORA_TARGET_MODULES = [
    "qkv",
    "out_proj",
    "linear1",
    "linear2",
    "input_proj",
    "output_proj",
    "time_mlp.0",
    "time_mlp.2",
]
# Per LoRA layout: "packed" adapts each layer's q|k|v projection as one Linear; "separate"
# adapts q, k and v each (after ``Denoiser.split_qkv``), as the reference implementation does.
LORA_TARGETS = {
    "packed": LORA_TARGET_MODULES,
    "separate": ["q", "k", "v", *LORA_TARGET_MODULES[1:]],
}

_PRESETS: dict[str, dict[str, Any]] = {
    # The official MDM prior: 17.9 M parameters with CLIP text (512-d).
    "mdm": dict(latent_dim=512, num_layers=8, num_heads=4, ff_dim=1024, dropout=0.1, text_dim=512),
    # A CPU-sized prior for the procedural world, with MiniLM text (384-d): ~0.7 M parameters.
    # MiniLM embeddings are unit vectors (components ~0.05); scaled by √384 their components
    # have unit variance like the normalised motion features, and the prior learns to use the
    # text far sooner (docs/prior.md, "the text probe").
    "tiny": dict(
        latent_dim=128,
        num_layers=4,
        num_heads=4,
        ff_dim=256,
        dropout=0.1,
        text_dim=384,
        text_scale=math.sqrt(384),
    ),
}


@dataclass
class DenoiserConfig:
    """Hyper-parameters of ``Denoiser``; ``DenoiserConfig.preset("mdm" | "tiny", **overrides)``."""

    feature_dim: int = FEATURE_DIM  # F: HumanML3D features per frame
    latent_dim: int = 512  # D
    num_layers: int = 8
    num_heads: int = 4
    ff_dim: int = 1024
    dropout: float = 0.1
    text_dim: int | None = 512  # E; None = no text condition
    num_actions: int = 0  # 0 = no action condition
    cond_drop_prob: float = 0.1  # classifier-free guidance: p(drop) for text and action, each
    max_len: int = 5000  # rows of the sinusoidal table (frames + 1 and timesteps must fit)
    text_scale: float = 1.0  # text embeddings are multiplied by this before the projection
    # (1 = the official MDM computation on raw CLIP features)

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"DenoiserConfig: {what}")

        for name in ("feature_dim", "latent_dim", "num_layers", "num_heads", "ff_dim", "max_len"):
            need(getattr(self, name) > 0, f"{name} must be positive, found {getattr(self, name)}")
        need(self.latent_dim % 2 == 0, f"latent_dim must be even, found {self.latent_dim}")
        need(
            self.latent_dim % self.num_heads == 0,
            f"latent_dim {self.latent_dim} is not divisible by num_heads {self.num_heads}",
        )
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), found {self.dropout}")
        need(0.0 <= self.cond_drop_prob <= 1.0, f"cond_drop_prob in [0, 1]: {self.cond_drop_prob}")
        need(self.text_dim is None or self.text_dim > 0, f"text_dim: {self.text_dim}")
        need(self.text_scale > 0, f"text_scale must be positive, found {self.text_scale}")
        need(self.num_actions >= 0, f"num_actions must be >= 0, found {self.num_actions}")

    @classmethod
    def preset(cls, name: Literal["mdm", "tiny"], **overrides: Any) -> DenoiserConfig:
        """The named preset with ``overrides`` applied, e.g. ``preset("tiny", num_actions=120)``."""
        if name not in _PRESETS:
            raise ValueError(f"unknown denoiser preset {name!r}; choose one of {sorted(_PRESETS)}")
        return cls(**{**_PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DenoiserConfig:
        """Inverse of ``to_dict``; unknown keys are an error (a config from another version)."""
        check_known_settings(cls, data, "denoiser config")
        return cls(**data)


def sinusoidal_table(max_len: int, dim: int) -> Tensor:
    """MDM's positional-encoding table (max_len, dim): even columns sin, odd columns cos."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (L, 1)
    div = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))  # (D/2,)
    pe = torch.zeros(max_len, dim)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)
    return pe


class EncoderLayer(nn.Module):
    """One post-norm transformer layer, the computation of
    ``nn.TransformerEncoderLayer(norm_first=False, activation="gelu")``, batch-first, with
    attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)  # = MHA in_proj (q, k, v stacked in that order)
        self.out_proj = nn.Linear(dim, dim)
        self.linear1 = nn.Linear(dim, ff_dim)
        self.linear2 = nn.Linear(ff_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """h (B, S, D); attn_mask (B, 1, 1, S) bool, True = key may be attended; -> (B, S, D)."""
        B, S, D = h.shape
        q, k, v = self.qkv(h).view(B, S, 3, self.num_heads, D // self.num_heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, S, D/H)
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        a = self.out_proj(a.transpose(1, 2).reshape(B, S, D))  # (B, S, D)
        h = self.norm1(h + self.drop(a))
        f = self.linear2(self.drop(F.gelu(self.linear1(h))))  # (B, S, D)
        return self.norm2(h + self.drop(f))


class SplitQKV(nn.Module):
    """A packed q|k|v projection (D -> 3D) as three Linears ``q``, ``k``, ``v`` (D -> D each),
    so that LoRA can adapt each; it computes what the packed Linear did (up to float rounding)."""

    def __init__(self, packed: nn.Linear) -> None:
        super().__init__()
        D, bias = packed.out_features // 3, packed.bias is not None
        w, b = packed.weight.detach(), None if packed.bias is None else packed.bias.detach()
        like = dict(device=w.device, dtype=w.dtype)
        self.q, self.k, self.v = (
            nn.Linear(packed.in_features, D, bias=bias, **like) for _ in "qkv"
        )
        with torch.no_grad():
            for i, part in enumerate((self.q, self.k, self.v)):
                part.weight.copy_(w[i * D : (i + 1) * D])
                if b is not None:
                    part.bias.copy_(b[i * D : (i + 1) * D])

    def forward(self, h: Tensor) -> Tensor:
        """h (..., D) -> q|k|v (..., 3D), the packed projection's layout."""
        return torch.cat([self.q(h), self.k(h), self.v(h)], dim=-1)


class Denoiser(nn.Module):
    """MDM denoiser predicting x0 from (x_t, t, condition); see the module docstring."""

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        D = c.latent_dim
        self.input_proj = nn.Linear(c.feature_dim, D)  # MDM input_process.poseEmbedding
        # Recomputed, not saved (saves 10 MB at D=512); the importer copies the official table.
        self.register_buffer("pe", sinusoidal_table(c.max_len, D), persistent=False)  # (L, D)
        self.pe_drop = nn.Dropout(c.dropout)
        self.time_mlp = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, D))
        self.embed_text = nn.Linear(c.text_dim, D) if c.text_dim is not None else None
        self.embed_action = nn.Embedding(c.num_actions, D) if c.num_actions > 0 else None
        self.layers = nn.ModuleList(
            EncoderLayer(D, c.num_heads, c.ff_dim, c.dropout) for _ in range(c.num_layers)
        )
        self.output_proj = nn.Linear(D, c.feature_dim)  # MDM output_process.poseFinal

    def add_actions(self, num_actions: int) -> None:
        """Create (or replace) the action table (num_actions, D), N(0, 1) like MDM's EmbedAction."""
        if num_actions <= 0:
            raise ValueError(f"add_actions: num_actions must be positive, found {num_actions}")
        ref = self.pe  # follows .to(device, dtype) like the parameters
        table = nn.Embedding(
            num_actions, self.config.latent_dim, device=ref.device, dtype=ref.dtype
        )
        self.embed_action = table
        self.config.num_actions = num_actions

    def split_qkv(self) -> None:
        """Replace each layer's packed q|k|v Linear by a :class:`SplitQKV` (the same weights,
        held once), for LoRA layout "separate". The state dict then names ``qkv.q.weight``
        etc.: do it on a loaded model, as fine-tuning does, never before loading a prior."""
        for layer in self.layers:
            if isinstance(layer.qkv, nn.Linear):
                layer.qkv = SplitQKV(layer.qkv)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def condition(
        self,
        t: Tensor,
        *,
        text: Tensor | None = None,
        action: Tensor | None = None,
        uncond: Tensor | None = None,
    ) -> Tensor:
        """The prefix condition token (B, D) for timesteps t (B,) long (see ``forward``)."""
        B = t.shape[0]
        cond = self.time_mlp(self.pe[t])  # (B, D)
        # keep (B, 1): 0 where the condition is dropped (forced by uncond, or at random in training)
        forced = torch.zeros(B, dtype=torch.bool, device=t.device)
        if uncond is not None:
            _check_shape("uncond", uncond, (B,))
            forced = uncond.to(device=t.device, dtype=torch.bool)

        def keep() -> Tensor:
            drop = forced
            if self.training and self.config.cond_drop_prob > 0:
                drop = drop | (torch.rand(B, device=t.device) < self.config.cond_drop_prob)
            return (~drop).to(cond.dtype)[:, None]

        if self.embed_text is not None:
            if text is None:
                text = cond.new_zeros(B, self.embed_text.in_features)
                cond = cond + self.embed_text(text)
            else:
                _check_shape("text", text, (B, self.embed_text.in_features))
                cond = cond + self.embed_text(
                    text.to(cond.dtype) * (self.config.text_scale * keep())
                )
        elif text is not None:
            raise ValueError("this denoiser has no text condition (config.text_dim is None)")
        if action is not None:
            if self.embed_action is None:
                raise ValueError("this denoiser has no action table: call add_actions(n) first")
            _check_shape("action", action, (B,))
            n = self.embed_action.num_embeddings
            if action.numel() and (int(action.min()) < 0 or int(action.max()) >= n):
                raise ValueError(f"action ids must be in [0, {n}), found {action.tolist()}")
            cond = cond + self.embed_action(action.long()) * keep()
        return cond

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        *,
        text: Tensor | None = None,
        action: Tensor | None = None,
        mask: Tensor | None = None,
        uncond: Tensor | None = None,
        return_latents: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Predict x0.

        x (B, T, F) noisy normalised features; t (B,) long timesteps; text (B, E) embeddings or
        None (= dropped for all); action (B,) long ids or None; mask (B, T) bool, True = valid
        frame (padded frames never influence valid ones); uncond (B,) bool forces the
        unconditional branch per sample (classifier-free guidance in one batch). In training
        mode text and action are dropped independently with ``cond_drop_prob`` (torch RNG).

        Returns x0 (B, T, F); with ``return_latents`` also the last layer's frame tokens
        (B, T, D) (condition token removed). Outputs at padded frames are meaningless.
        """
        B, T, _ = x.shape
        _check_shape("x", x, (B, T, self.config.feature_dim))
        _check_shape("t", t, (B,))
        if self.pe.shape[0] < T + 1:
            raise ValueError(f"{T} frames exceed max_len {self.pe.shape[0]} - 1 of the denoiser")
        cond = self.condition(t, text=text, action=action, uncond=uncond)  # (B, D)
        h = torch.cat([cond[:, None], self.input_proj(x)], dim=1)  # (B, 1+T, D)
        h = self.pe_drop(h + self.pe[: T + 1])
        attn_mask = None
        if mask is not None:
            _check_shape("mask", mask, (B, T))
            if not bool(mask.all()):  # all-valid batches take the unmasked (faster) kernel
                cond_valid = torch.ones(B, 1, dtype=torch.bool, device=mask.device)
                valid = torch.cat([cond_valid, mask.bool()], dim=1)  # (B, 1+T)
                attn_mask = valid[:, None, None, :]  # (B, 1, 1, 1+T)
        for layer in self.layers:
            h = layer(h, attn_mask)
        latents = h[:, 1:]  # (B, T, D)
        x0 = self.output_proj(latents)  # (B, T, F)
        return (x0, latents) if return_latents else x0


def _check_shape(name: str, tensor: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != expected:
        raise ValueError(
            f"Denoiser: {name} should have shape {expected}, found {tuple(tensor.shape)}"
        )
