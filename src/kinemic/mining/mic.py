"""MIC (Mining In Context): an attention-pooled bidirectional GRU over denoiser latents.

KineMIC (``../shared/SPEC.md`` §5 step 4) reads the last-layer frame tokens of the denoiser
(``Denoiser.forward(..., return_latents=True)``, (B, T, D)) with a small module that gives

- an embedding z (B, E), L2-normalised: what the clip does, and
- a per-frame attention a (B, T), a softmax over the valid frames: *where* it does it.

Trained with a supervised InfoNCE loss, the target stream's embedding of a few-shot clip is
pulled towards the prior stream's embeddings of source clips paired with the same class (and
pushed from the other classes'), so the attention learns to sit on the part of a long source
clip that moves like the target class; ``kinemic.mining.windows`` then cuts that part out.

The keys of the loss are the batch's prior-stream embeddings plus a FIFO memory bank of the
``bank_size`` most recent past ones with their (pseudo-)labels. The bank is held in buffers
(``bank``, ``bank_labels``, ``bank_next``), so it is part of the module's state dict and a
resumed training run continues with exactly the bank it stopped with.

Computation::

    latents (B, T, D) ──BiGRU (packed: padding never enters)──► h (B, T, 2H)
    h ──Linear–tanh–Linear──► scores (B, T) ──softmax over valid frames──► a (B, T)
    Σ_t a·h (B, 2H) ──Linear──► L2-normalise ──► z (B, E)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from kinemic.errors import check_known_settings

__all__ = ["MIC", "MICConfig", "MICOutput", "supervised_info_nce"]


@dataclass
class MICConfig:
    """Hyper-parameters of :class:`MIC` (SPEC §5: τ = 0.07, logit scale ≤ 100, bank of 60)."""

    latent_dim: int  # D: the denoiser's latent width
    hidden_dim: int = 128  # H: GRU units per direction
    embed_dim: int = 128  # E
    num_layers: int = 1
    bank_size: int = 60  # past prior-stream embeddings kept as extra keys; 0 = no bank
    temperature: float = 0.07  # initial τ; the logit scale 1/τ is learnt
    max_logit_scale: float = 100.0

    def __post_init__(self) -> None:
        for name in ("latent_dim", "hidden_dim", "embed_dim", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"MICConfig: {name} must be >= 1, found {getattr(self, name)}")
        if self.bank_size < 0:
            raise ValueError(f"MICConfig: bank_size must be >= 0, found {self.bank_size}")
        if not (self.temperature > 0 and 1 / self.temperature <= self.max_logit_scale):
            raise ValueError(
                f"MICConfig: temperature {self.temperature} must be > 0 with 1/temperature <= "
                f"max_logit_scale {self.max_logit_scale}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MICConfig:
        check_known_settings(cls, data, "MIC config")
        return cls(**data)


class MICOutput(NamedTuple):
    z: Tensor  # (B, E) unit rows
    attention: Tensor  # (B, T), sums to 1 over each row's valid frames, 0 where padded


def supervised_info_nce(
    anchors: Tensor,
    anchor_labels: Tensor,
    keys: Tensor,
    key_labels: Tensor,
    scale: Tensor | float,
) -> Tensor:
    """Supervised InfoNCE (Khosla et al. 2020, "SupCon" with anchors and keys apart).

    anchors (B, E) and keys (N, E) unit rows; labels (B,) / (N,) long. For anchor i the
    positives are the keys with its label; its loss is the mean over positives of
    −log softmax_j(scale · ⟨a_i, k_j⟩) over all N keys. Anchors without a positive key are left
    out; the result is the mean over the others (0, still differentiable, when there are none).
    """
    logits = scale * anchors @ keys.T  # (B, N)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (anchor_labels[:, None] == key_labels[None, :]).to(log_prob.dtype)  # (B, N)
    count = positive.sum(1)  # (B,)
    per_anchor = -(log_prob * positive).sum(1) / count.clamp(min=1)
    has = (count > 0).to(log_prob.dtype)
    return (per_anchor * has).sum() / has.sum().clamp(min=1)


class MIC(nn.Module):
    """Attention-pooled BiGRU over latents with a supervised InfoNCE loss and a memory bank."""

    def __init__(self, config: MICConfig) -> None:
        super().__init__()
        self.config = c = config
        self.gru = nn.GRU(
            c.latent_dim,
            c.hidden_dim,
            num_layers=c.num_layers,
            batch_first=True,
            bidirectional=True,
        )
        width = 2 * c.hidden_dim
        self.score = nn.Sequential(
            nn.Linear(width, c.hidden_dim), nn.Tanh(), nn.Linear(c.hidden_dim, 1)
        )
        self.proj = nn.Linear(width, c.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / c.temperature)))
        # FIFO memory bank: embeddings, labels (-1 = empty slot), the slot written next.
        self.register_buffer("bank", torch.zeros(c.bank_size, c.embed_dim))
        self.register_buffer("bank_labels", torch.full((c.bank_size,), -1, dtype=torch.long))
        self.register_buffer("bank_next", torch.zeros((), dtype=torch.long))

    def forward(self, latents: Tensor, mask: Tensor | None = None) -> MICOutput:
        """latents (B, T, D), mask (B, T) bool True = valid (None: all valid) -> (z, attention).

        Every row needs at least one valid frame; padding must follow the valid frames.
        """
        B, T, D = latents.shape
        if self.config.latent_dim != D:
            raise ValueError(
                f"MIC: latents have width {D}, the module takes {self.config.latent_dim}"
            )
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=latents.device)
        if tuple(mask.shape) != (B, T):
            raise ValueError(f"MIC: mask should have shape {(B, T)}, found {tuple(mask.shape)}")
        lengths = mask.sum(1)
        if B and int(lengths.min()) < 1:
            raise ValueError("MIC: every clip needs at least one valid frame")
        x = latents.to(self.proj.weight.dtype)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.gru(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=T)  # (B, T, 2H)
        scores = self.score(h).squeeze(-1).float()  # (B, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        attention = torch.softmax(scores, dim=1)  # (B, T), 0 at padded frames
        pooled = (attention[..., None].to(h.dtype) * h).sum(1)  # (B, 2H)
        z = F.normalize(self.proj(pooled).float(), dim=-1)  # (B, E)
        return MICOutput(z, attention)

    @property
    def scale(self) -> Tensor:
        """The logit scale 1/τ, clamped to ``max_logit_scale`` (as CLIP does)."""
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def bank_keys(self) -> tuple[Tensor, Tensor]:
        """The filled part of the memory bank: (embeddings (K, E), labels (K,))."""
        filled = self.bank_labels >= 0
        return self.bank[filled], self.bank_labels[filled]

    def contrastive_loss(
        self, anchors: Tensor, labels: Tensor, keys: Tensor, key_labels: Tensor
    ) -> Tensor:
        """Supervised InfoNCE of ``anchors`` (B, E) (target stream) against ``keys`` (N, E)
        (prior stream of this batch) plus the memory bank; labels (B,), (N,) long. Does not
        change the bank: call :meth:`enqueue` afterwards."""
        bank, bank_labels = self.bank_keys()
        all_keys = torch.cat([keys.float(), bank.detach().clone().to(keys.device)])
        all_labels = torch.cat([key_labels, bank_labels.to(key_labels.device)])
        return supervised_info_nce(anchors.float(), labels, all_keys, all_labels, self.scale)

    @torch.no_grad()
    def enqueue(self, z: Tensor, labels: Tensor) -> None:
        """Push embeddings z (B, E) with labels (B,) into the bank, the oldest leaving first
        (when B exceeds the bank, its last ``bank_size`` rows are kept)."""
        K = self.config.bank_size
        if K == 0 or z.shape[0] == 0:
            return
        z, labels = z.detach()[-K:], labels.detach()[-K:]
        slots = (self.bank_next + torch.arange(z.shape[0], device=self.bank.device)) % K
        self.bank[slots] = z.to(self.bank.dtype)
        self.bank_labels[slots] = labels.to(self.bank_labels.device, torch.long)
        self.bank_next.copy_((self.bank_next + z.shape[0]) % K)

    def reset_bank(self) -> None:
        self.bank.zero_()
        self.bank_labels.fill_(-1)
        self.bank_next.zero_()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
