"""MIC (Mining In Context): an attention-pooled bidirectional GRU over denoiser latents.

KineMIC (``../shared/SPEC.md`` §5 step 4) reads the last-layer frame tokens of the denoiser
(``Denoiser.forward(..., return_latents=True)``, (B, T, D)) with a small module that gives

- an embedding z (B, E), L2-normalised: what the clip does, and
- a per-frame attention a (B, T), a softmax over the valid frames: *where* it does it.

Trained with a contrastive loss, the target stream's embedding of a few-shot clip is pulled
towards the prior stream's embeddings of source clips paired with the same class (and pushed
from the other classes'), so the attention learns to sit on the part of a long source clip
that moves like the target class; ``kinemic.mining.windows`` then cuts that part out.

The keys of the loss are the batch's prior-stream embeddings plus a FIFO memory bank of the
``bank_size`` most recent past ones with their (pseudo-)labels. The bank is held in buffers
(``bank``, ``bank_labels``, ``bank_next``), so it is part of the module's state dict and a
resumed training run continues with exactly the bank it stopped with.

Two architectures (``MICConfig.arch``), both packed (padding never enters the GRU)::

    "small" (kinemic's CPU-sized module: 246,785 parameters at D = 512, H = 64, E = 128)
    latents (B, T, D) ──BiGRU──► h (B, T, 2H) ──Linear–tanh–Linear──► scores (B, T)
    "reference" (the reference's MotionEncoderAttentionBiGRU: 4,730,369 at D = H = E = 512)
    latents ──Linear(D→H)──► BiGRU from a learnt initial state ──► h (B, T, 2H)
    h ──Linear(2H→H)–LayerNorm–LeakyReLU(0.2)–Linear(H→1)──► scores (B, T)

    then both: scores ──softmax over valid frames──► a;  Σ_t a·h (B, 2H) ──head──► z (B, E)
    head: "small" Linear(2H→E); "reference" Linear(2H→H)–LayerNorm–LeakyReLU(0.2)–Linear(H→E)
    z ──L2-normalise──► unit rows  (the reference normalises in its loss: the same cosines)

Two losses (``MICConfig.loss``): ``supervised_info_nce`` ("supcon") and
``soft_nearest_neighbour_loss`` ("soft-nn", the reference's); see each. The logit scale
s = 1/τ is learnt as log s, starting at log(1/``temperature``), and kept in
[``min_logit_scale``, ``max_logit_scale``] in one of two ways (``logit_scale_clamp``):
"value" clamps s where it is used (no gradient beyond a bound; kinemic's, upper bound 100
only), "parameter" clamps log s itself in place before each loss (the gradient always flows;
the reference's, log s in [0, ln 100]).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from kinemic.distributed import gather
from kinemic.errors import KinemicError, check_known_settings

__all__ = [
    "ARCHS",
    "LOGIT_SCALE_CLAMPS",
    "LOSSES",
    "MIC",
    "MICConfig",
    "MICOutput",
    "mic_parameter_count",
    "soft_nearest_neighbour_loss",
    "supervised_info_nce",
]

Arch = Literal["small", "reference"]
ARCHS = ("small", "reference")
Loss = Literal["supcon", "soft-nn"]
LOSSES = ("supcon", "soft-nn")
LogitScaleClamp = Literal["value", "parameter"]
LOGIT_SCALE_CLAMPS = ("value", "parameter")


@dataclass
class MICConfig:
    """Hyper-parameters of :class:`MIC` (SPEC §5: τ = 0.07, logit scale ≤ 100, bank of 60).

    The defaults are kinemic's small module with the supervised InfoNCE; :meth:`reference`
    gives the KineMIC reference implementation's settings."""

    latent_dim: int  # D: the denoiser's latent width
    hidden_dim: int = 128  # H: GRU units per direction
    embed_dim: int = 128  # E
    num_layers: int = 1
    bank_size: int = 60  # past prior-stream embeddings kept as extra keys; 0 = no bank
    temperature: float = 0.07  # initial τ; the logit scale 1/τ is learnt
    max_logit_scale: float = 100.0
    arch: Arch = "small"  # "small" | "reference" (see the module docstring)
    loss: Loss = "supcon"  # "supcon" (supervised_info_nce) | "soft-nn" (the reference's)
    min_logit_scale: float = 0.0  # 0: no lower bound; the reference's is 1 (log s >= 0)
    logit_scale_clamp: LogitScaleClamp = "value"  # "value" | "parameter" (the reference's)

    def __post_init__(self) -> None:
        problems = []
        for name in ("latent_dim", "hidden_dim", "embed_dim", "num_layers"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, found {getattr(self, name)}")
        if self.bank_size < 0:
            problems.append(f"bank_size must be >= 0, found {self.bank_size}")
        for name, known in (
            ("arch", ARCHS),
            ("loss", LOSSES),
            ("logit_scale_clamp", LOGIT_SCALE_CLAMPS),
        ):
            if getattr(self, name) not in known:
                problems.append(
                    f"{name} must be one of {', '.join(known)}, found {getattr(self, name)!r}"
                )
        if not 0.0 <= self.min_logit_scale < self.max_logit_scale:
            problems.append(
                f"logit scale bounds need 0 <= min_logit_scale < max_logit_scale, found "
                f"{self.min_logit_scale} and {self.max_logit_scale}"
            )
        elif not (
            self.temperature > 0
            and self.min_logit_scale <= 1 / self.temperature <= self.max_logit_scale
        ):
            problems.append(
                f"temperature {self.temperature} must be > 0 with 1/temperature in "
                f"[min_logit_scale, max_logit_scale] = "
                f"[{self.min_logit_scale}, {self.max_logit_scale}]"
            )
        if problems:
            raise KinemicError("MIC config: " + "; ".join(problems))

    @classmethod
    def reference(cls, latent_dim: int, **changes: Any) -> MICConfig:
        """The KineMIC reference implementation's MIC for a ``latent_dim`` prior: its
        architecture with H = E = D, the soft nearest-neighbour loss, τ starting at 0.07, log s
        clamped in place to [0, ln 100], a bank of 60 (``changes`` override any of these)."""
        settings: dict[str, Any] = dict(
            latent_dim=latent_dim,
            hidden_dim=latent_dim,
            embed_dim=latent_dim,
            num_layers=1,
            bank_size=60,
            temperature=0.07,
            max_logit_scale=100.0,
            arch="reference",
            loss="soft-nn",
            min_logit_scale=1.0,
            logit_scale_clamp="parameter",
        )
        return cls(**{**settings, **changes})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MICConfig:
        """The config ``to_dict`` wrote; a record from before ``arch``, ``loss`` and the
        clamp options reads as the small module with the supervised InfoNCE, as it was."""
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


def soft_nearest_neighbour_loss(
    anchors: Tensor,
    anchor_labels: Tensor,
    keys: Tensor,
    key_labels: Tensor,
    scale: Tensor | float,
) -> Tensor:
    """Soft nearest-neighbour loss (Frosst et al. 2019) as the KineMIC reference computes it.

    anchors (B, E) and keys (N, E) unit rows; labels (B,) / (N,) long. Anchor i's loss is
    −log of the softmax mass on the keys with its label:
    −log(Σ_{j: y_j = y_i} exp(s⟨a_i, k_j⟩) / Σ_j exp(s⟨a_i, k_j⟩)), computed as a difference
    of log-sum-exps. Every key counts, in the numerator when it shares the label and always in
    the denominator: anchors (target stream) and keys (prior stream) are different embeddings,
    so there is no self-similarity to leave out. The result is the mean over anchors, as the
    reference's training step takes it. An anchor without a positive key is left out (the mean
    is over the others; 0, still differentiable, when there are none): the reference's value
    there is +inf, which its training never meets, since each anchor's own paired source clip
    is a key with its label, as in kinemic's fine-tuning.
    """
    logits = scale * anchors @ keys.T  # (B, N)
    positive = anchor_labels[:, None] == key_labels[None, :]  # (B, N)
    has = positive.any(1)  # (B,)
    # Rows without a positive sum over every key instead: finite, and weighted 0 below (an
    # all -inf row would give NaN gradients through the weight 0).
    numerator = logits.masked_fill(~(positive | ~has[:, None]), float("-inf"))
    per_anchor = torch.logsumexp(logits, dim=1) - torch.logsumexp(numerator, dim=1)
    weight = has.to(per_anchor.dtype)
    return (per_anchor * weight).sum() / weight.sum().clamp(min=1)


_LOSSES = {"supcon": supervised_info_nce, "soft-nn": soft_nearest_neighbour_loss}


def _xavier(module: nn.Module) -> None:
    """The reference's initialisation of its linear layers: Xavier-normal weights, zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)


def _mlp(width: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out)
    )


class MIC(nn.Module):
    """Attention-pooled BiGRU over latents with a contrastive loss and a memory bank; the
    architecture and loss are the config's (see the module docstring)."""

    def __init__(self, config: MICConfig) -> None:
        super().__init__()
        self.config = c = config
        H, width = c.hidden_dim, 2 * c.hidden_dim
        self.in_proj: nn.Module = nn.Identity()
        self.initial_state: nn.Parameter | None = None
        if c.arch == "small":
            self.gru = nn.GRU(
                c.latent_dim, H, num_layers=c.num_layers, batch_first=True, bidirectional=True
            )
            self.score: nn.Module = nn.Sequential(nn.Linear(width, H), nn.Tanh(), nn.Linear(H, 1))
            self.proj: nn.Module = nn.Linear(width, c.embed_dim)
        else:  # "reference", built in the reference's order (its random draws come the same)
            self.in_proj = nn.Linear(c.latent_dim, H)
            self.gru = nn.GRU(H, H, num_layers=c.num_layers, batch_first=True, bidirectional=True)
            self.score = _mlp(width, H, 1)
            self.proj = _mlp(width, H, c.embed_dim)
            for part in (self.in_proj, self.proj, self.score):
                _xavier(part)
            self.initial_state = nn.Parameter(torch.randn(2 * c.num_layers, 1, H))
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
        x = self.in_proj(latents.to(self.gru.weight_ih_l0.dtype))  # (B, T, D or H)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h0 = None
        if self.initial_state is not None:  # (2 layers, B, H): the same learnt state for all
            h0 = self.initial_state.expand(-1, B, -1).contiguous()
        h, _ = self.gru(packed, h0)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=T)  # (B, T, 2H)
        scores = self.score(h).squeeze(-1).float()  # (B, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        attention = torch.softmax(scores, dim=1)  # (B, T), 0 at padded frames
        pooled = (attention[..., None].to(h.dtype) * h).sum(1)  # (B, 2H)
        z = F.normalize(self.proj(pooled).float(), dim=-1)  # (B, E)
        return MICOutput(z, attention)

    @property
    def scale(self) -> Tensor:
        """The logit scale s = 1/τ. With ``logit_scale_clamp`` "value", s clamped to
        [``min_logit_scale``, ``max_logit_scale``] (as CLIP does); with "parameter", exp of the
        parameter, which :meth:`clamp_logit_scale_` keeps in bounds before each loss."""
        if self.config.logit_scale_clamp == "parameter":
            return self.logit_scale.exp()
        c = self.config
        return self.logit_scale.exp().clamp(min=c.min_logit_scale, max=c.max_logit_scale)

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Clamp the parameter log s in place to [ln ``min_logit_scale``, ln
        ``max_logit_scale``] (the reference's way; a no-op bound where the minimum is 0)."""
        c = self.config
        low = math.log(c.min_logit_scale) if c.min_logit_scale > 0 else -math.inf
        self.logit_scale.clamp_(low, math.log(c.max_logit_scale))

    def bank_keys(self) -> tuple[Tensor, Tensor]:
        """The filled part of the memory bank: (embeddings (K, E), labels (K,))."""
        filled = self.bank_labels >= 0
        return self.bank[filled], self.bank_labels[filled]

    def contrastive_loss(
        self, anchors: Tensor, labels: Tensor, keys: Tensor, key_labels: Tensor
    ) -> Tensor:
        """The config's loss (``supcon`` or ``soft-nn``) of ``anchors`` (B, E) (target stream)
        against ``keys`` (N, E) (prior stream of this batch) plus the memory bank; labels (B,),
        (N,) long. With ``logit_scale_clamp`` "parameter", clamps log s first. Does not change
        the bank: call :meth:`enqueue` afterwards. Under several processes the anchors and
        keys of all of them take part (``kinemic.distributed.gather``): each computes the loss
        of the whole batch, as one process would."""
        if self.config.logit_scale_clamp == "parameter":
            self.clamp_logit_scale_()
        anchors, labels = gather(anchors), gather(labels)
        keys, key_labels = gather(keys), gather(key_labels)
        bank, bank_labels = self.bank_keys()
        all_keys = torch.cat([keys.float(), bank.detach().clone().to(keys.device)])
        all_labels = torch.cat([key_labels, bank_labels.to(key_labels.device)])
        loss = _LOSSES[self.config.loss]
        return loss(anchors.float(), labels, all_keys, all_labels, self.scale)

    @torch.no_grad()
    def enqueue(self, z: Tensor, labels: Tensor) -> None:
        """Push embeddings z (B, E) with labels (B,) into the bank, the oldest leaving first
        (when B exceeds the bank, its last ``bank_size`` rows are kept). Under several
        processes, every process's z in rank order: the banks stay equal, and equal to one
        process's."""
        K = self.config.bank_size
        if K == 0:
            return
        z, labels = gather(z.detach()), gather(labels.detach())
        if z.shape[0] == 0:
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
        """Every parameter, the logit scale included."""
        return sum(p.numel() for p in self.parameters())


def mic_parameter_count(config: MICConfig) -> int:
    """The parameters of the MIC encoder ``config`` describes, without the logit scale (the
    reference keeps its logit scale beside the module, not in it; add 1 for
    :meth:`MIC.num_parameters`). Builds the module once (19 MB at the reference's D = 512)."""
    mic = MIC(config)
    return mic.num_parameters() - mic.logit_scale.numel()
