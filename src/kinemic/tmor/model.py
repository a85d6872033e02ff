"""The T-MOR networks: a skeleton encoder, a visual tower, projection heads into one space.

``TMOR`` composes three towers that meet in a shared L2-normalised space of ``embed_dim``:

- **MotionEncoder** (used alone at inference): per-frame skeleton input (B, T, 132) from
  :func:`kinemic.tmor.inputs.motion_input` → a per-frame joint embedding (an MLP over the 22
  joints' positions and velocities of each frame) → a strided temporal convolution (20 fps →
  10 or 5 tokens per second, ``frame_stride`` 2 or 4; the CPU preset ``small`` uses 4, which
  trained 1.7× faster than 2 on the 2-core machine) → sinusoidal positions and a transformer
  over frames with
  a learned summary token. Outputs per-frame features (B, T, D) (tokens repeated back to the
  input frame rate) and a pooled clip feature (B, D) (the summary token).

  Why a transformer over frames rather than an ST-GCN: the joint count is fixed (SMPL-22), so a
  per-frame MLP sees all joints at once at no cost, and attention over the whole clip relates
  distant frames (a kick's chamber and its extension, the two halves of a "then"
  composition) in one layer, where an ST-GCN needs a deep stack of 9-frame convolutions; the
  per-frame embedding is also what gives per-frame features for detection for free. On a CPU
  it is also the cheaper of the two at equal width (one token per two frames instead of 22
  nodes per frame).
- **Text projection**: a frozen sentence encoder's embedding (``kinemic.text``; MiniLM 384-d by
  default, computed once and cached) → a trainable two-layer MLP.
- **VisualEncoder** (optional, pretraining only): per-frame visual features (B, T, F) (the world's
  2-D keypoint proxy as :func:`kinemic.tmor.inputs.keypoint_input`, or any video model's
  features) → a small transformer, or per-clip features (B, F) → an MLP.

Each pairing has its own learnable temperature (a logit scale, CLIP-style, clamped to ≤ 100).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from kinemic.errors import KinemicError, check_known_settings
from kinemic.tmor.inputs import MOTION_DIM

MAX_LOGIT_SCALE = 100.0


@dataclass
class TMORConfig:
    """Sizes of the T-MOR towers. ``PRESETS``: ``tiny`` (tests), ``small`` (CPU), ``base``."""

    dim: int = 128  # motion transformer width D
    layers: int = 4
    heads: int = 4
    ff_dim: int = 256
    dropout: float = 0.1
    frame_stride: Literal[1, 2, 4] = 2  # input frames per transformer token
    embed_dim: int = 256  # the shared space
    text_dim: int = 384  # the frozen text encoder's output size
    text_hidden: int = 512
    visual: Literal["none", "frames", "clip"] = "none"
    visual_dim: int = 0  # input features per frame (frames) or per clip (clip)
    visual_width: int = 64
    visual_layers: int = 1
    visual_stride: int = 4  # visual frames per visual-tower token
    init_temperature: float = 0.07

    def __post_init__(self) -> None:
        problems = []
        if self.dim % self.heads:
            problems.append(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.frame_stride not in (1, 2, 4):
            problems.append(f"frame_stride must be 1, 2 or 4, found {self.frame_stride}")
        if self.visual_stride < 1:
            problems.append(f"visual_stride must be >= 1, found {self.visual_stride}")
        if self.visual not in ("none", "frames", "clip"):
            problems.append(f"visual must be 'none', 'frames' or 'clip', found {self.visual!r}")
        if (self.visual == "none") != (self.visual_dim == 0):
            problems.append(
                f"visual={self.visual!r} needs visual_dim {'0' if self.visual == 'none' else '> 0'}"
                f", found {self.visual_dim}"
            )
        if self.visual == "frames" and self.visual_width % 4:
            problems.append(f"visual_width must be divisible by 4, found {self.visual_width}")
        for name in ("dim", "layers", "ff_dim", "embed_dim", "text_dim", "text_hidden"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, found {getattr(self, name)}")
        if not 0.0 < self.init_temperature < 1.0:
            problems.append(f"init_temperature must be in (0, 1), found {self.init_temperature}")
        if problems:
            raise KinemicError("T-MOR model settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TMORConfig:
        check_known_settings(cls, data, "T-MOR config")
        return cls(**data)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TMORConfig:
        if name not in PRESETS:
            raise KinemicError(f"unknown T-MOR preset {name!r}; known: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        dim=32, layers=1, heads=2, ff_dim=64, embed_dim=32, text_hidden=64, visual_width=16
    ),
    "small": dict(
        dim=128, layers=4, heads=4, ff_dim=256, embed_dim=256, text_hidden=512, frame_stride=4
    ),
    "base": dict(
        dim=256,
        layers=6,
        heads=8,
        ff_dim=1024,
        embed_dim=256,
        text_hidden=512,
        visual_width=128,
        visual_layers=2,
    ),
}


def sinusoid(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Sinusoidal positions (length, dim)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / dim)
    )
    out = torch.zeros(length, dim, device=device)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return out


class _FrameTransformer(nn.Module):
    """Tokens (B, N, D) + mask (B, N) → (summary (B, D), tokens (B, N, D)): a learned summary
    token, sinusoidal positions, a pre-norm transformer encoder."""

    def __init__(self, dim: int, layers: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.summary = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.summary, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, ff_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor):
        b, n, d = tokens.shape
        x = tokens + sinusoid(n, d, tokens.device)[None]
        x = torch.cat([self.summary.expand(b, 1, d), x], dim=1)  # (B, 1 + N, D)
        keep = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask], 1)
        x = self.norm(self.encoder(x, src_key_padding_mask=~keep))
        return x[:, 0], x[:, 1:]


class MotionEncoder(nn.Module):
    """Skeleton input (B, T, 132) + mask (B, T) → per-frame features (B, T, D), clip (B, D)."""

    def __init__(self, config: TMORConfig):
        super().__init__()
        c = config
        self.config = c
        self.frame = nn.Sequential(  # the per-frame joint embedding
            nn.Linear(MOTION_DIM, c.dim), nn.GELU(), nn.Linear(c.dim, c.dim)
        )
        k = 2 * c.frame_stride + 1
        self.conv = nn.Conv1d(c.dim, c.dim, k, stride=c.frame_stride, padding=c.frame_stride)
        self.body = _FrameTransformer(c.dim, c.layers, c.heads, c.ff_dim, c.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        s = self.config.frame_stride
        t = x.shape[1]
        h = self.frame(x) * mask[..., None]  # (B, T, D)
        h = F.gelu(self.conv(h.transpose(1, 2))).transpose(1, 2)  # (B, ceil(T/s), D)
        token_mask = mask[:, ::s]  # (B, N): a token is valid when its first frame is
        clip, tokens = self.body(h, token_mask)
        frames = tokens.repeat_interleave(s, dim=1)[:, :t] * mask[..., None]  # (B, T, D)
        return frames, clip


class VisualEncoder(nn.Module):
    """Visual features → (B, W): per-frame (B, T, F) + mask through a small transformer, or
    per-clip (B, F) through an MLP."""

    def __init__(self, config: TMORConfig):
        super().__init__()
        c = config
        self.kind = c.visual
        w = c.visual_width
        self.inp = nn.Sequential(nn.Linear(c.visual_dim, w), nn.GELU(), nn.Linear(w, w))
        self.stride = c.visual_stride
        self.body = None
        if c.visual == "frames":
            k = 2 * c.visual_stride + 1
            self.conv = nn.Conv1d(w, w, k, stride=c.visual_stride, padding=c.visual_stride)
            self.body = _FrameTransformer(w, c.visual_layers, 4, 2 * w, c.dropout)

    def forward(self, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(v)
        if self.body is None:
            return h  # (B, W)
        assert mask is not None
        h = F.gelu(self.conv((h * mask[..., None]).transpose(1, 2))).transpose(1, 2)
        summary, _ = self.body(h, mask[:, :: self.stride])
        return summary


def _head(d_in: int, hidden: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class TMOR(nn.Module):
    """The three towers and their projections into the shared space (see the module docs)."""

    def __init__(self, config: TMORConfig):
        super().__init__()
        c = config
        self.config = c
        self.motion = MotionEncoder(c)
        self.motion_proj = nn.Linear(c.dim, c.embed_dim)
        self.text_proj = _head(c.text_dim, c.text_hidden, c.embed_dim)
        self.visual = VisualEncoder(c) if c.visual != "none" else None
        self.visual_proj = nn.Linear(c.visual_width, c.embed_dim) if c.visual != "none" else None
        init = math.log(1.0 / c.init_temperature)
        self.logit_scale_text = nn.Parameter(torch.tensor(init))
        self.logit_scale_visual = nn.Parameter(torch.tensor(init))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode_motion(
        self, x: torch.Tensor, mask: torch.Tensor, *, frames: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Skeleton input (B, T, 132) → unit clip embeddings (B, E); with ``frames`` also the
        per-frame features (B, T, D) (before projection)."""
        per_frame, clip = self.motion(x, mask)
        z = F.normalize(self.motion_proj(clip), dim=-1)
        return (z, per_frame) if frames else z

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """Frozen text-encoder embeddings (B, text_dim) → unit embeddings (B, E)."""
        return F.normalize(self.text_proj(text), dim=-1)

    def encode_visual(self, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Visual features (B, T, F) + mask, or (B, F) → unit embeddings (B, E)."""
        if self.visual is None or self.visual_proj is None:
            raise KinemicError("this T-MOR model was built without a visual tower")
        return F.normalize(self.visual_proj(self.visual(v, mask)), dim=-1)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        text: torch.Tensor,
        visual: torch.Tensor | None = None,
        visual_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One pretraining forward: unit embeddings of the motions (B, E), of their captions'
        frozen text embeddings (B, E) and, when given, of their visual features (B, E), with
        the logit scales (what a wrapped model must return for the loss)."""
        out = {
            "motion": self.encode_motion(x, mask),
            "text": self.encode_text(text),
            "scale_text": self.scale("text"),
        }
        if visual is not None:
            out["visual"] = self.encode_visual(visual, visual_mask)
            out["scale_visual"] = self.scale("visual")
        return out

    def scale(self, which: Literal["text", "visual"]) -> torch.Tensor:
        """exp(logit scale), clamped to ≤ 100."""
        p = self.logit_scale_text if which == "text" else self.logit_scale_visual
        return p.exp().clamp(max=MAX_LOGIT_SCALE)
