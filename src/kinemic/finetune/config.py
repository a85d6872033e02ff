"""The settings of a fine-tune, in a module that imports no torch: ``kinemic finetune`` builds
its parser from these defaults, and a run records them (``config.json``, key ``finetune``).

:class:`FinetuneConfig` holds the nested :class:`LoraSettings` (the target stream's adapters)
and ``kinemic.mining.config.FilterConfig`` (the soft-positive selection). Two kinds of steps,
two names: ``train_steps`` (optimiser steps) and ``diffusion_steps`` (the fine-tuning noise
schedule).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from kinemic.errors import KinemicError
from kinemic.mining.config import DEFAULT_K, DEFAULT_WEIGHT, FilterConfig

if TYPE_CHECKING:
    from kinemic.mining.mic import MICConfig
    from kinemic.training import TrainConfig

__all__ = ["METHODS", "FilterConfig", "FinetuneConfig", "LoraSettings", "Method"]

Method = Literal["kinemic", "mdm-ft"]
METHODS = ("kinemic", "mdm-ft")


@dataclass
class LoraSettings:
    """peft LoRA settings of the target stream (SPEC §5: rank 16, α 32, dropout 0.1).

    ``target_modules`` None: the denoiser's ``kinemic.diffusion.LORA_TARGET_MODULES``, filled
    in by :meth:`resolved` (which imports the denoiser, and so torch)."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.1
    target_modules: list[str] | None = None

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise KinemicError(
                f"LoRA settings: rank >= 1, alpha > 0 and dropout in [0, 1) expected, found "
                f"rank={self.rank}, alpha={self.alpha}, dropout={self.dropout}"
            )
        if self.target_modules is not None:
            if not self.target_modules:
                raise KinemicError("LoRA settings: target_modules is empty")
            self.target_modules = list(self.target_modules)

    def resolved(self) -> LoraSettings:
        """These settings with ``target_modules`` named (the denoiser's when None)."""
        if self.target_modules is not None:
            return self
        from kinemic.diffusion import LORA_TARGET_MODULES

        return replace(self, target_modules=list(LORA_TARGET_MODULES))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.resolved().target_modules or []),
            bias="none",
        )


# Keys of the flat records written before ``train_steps`` and ``filter`` got their names.
_RENAMED = {"steps": "train_steps"}
_FLAT_FILTER = ("filter", "filter_pool", "filter_encoder", "filter_weight")


@dataclass
class FinetuneConfig:
    """Settings of a fine-tune. Defaults are sized for the shipped ``tiny`` CPU prior (see
    docs/prior.md): the paper's (MDM, GPU) are lr 2e-5, batch 30, 10,000 steps."""

    method: Method = "kinemic"
    train_steps: int = 300  # optimiser steps
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    lora: LoraSettings = field(default_factory=LoraSettings)
    k: int = DEFAULT_K  # soft positives per class
    filter: FilterConfig = field(default_factory=FilterConfig)  # the soft-positive selection
    diffusion_steps: int = 100  # the fine-tuning schedule (the prior's steps: no mapping)
    contrastive_weight: float = 1.0
    window_weight: float = 1.0
    distill_weight: float = 0.0
    mic_hidden: int = 64  # GRU units per direction (BiGRU width 128 = the tiny latent width)
    mic_embed: int = 128
    bank_size: int = 60
    temperature: float = 0.07
    max_source_frames: int | None = None  # None: the prior's max_frames
    max_target_frames: int | None = None  # None: the prior's max_frames
    seed: int = 0
    mixed_precision: Literal["no", "bf16"] = "no"
    cpu: bool = False
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    log_every: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)
        if isinstance(self.filter, dict):
            self.filter = FilterConfig(**self.filter)
        problems = self.filter.problems(self.k)
        if self.filter.kind == "kinematic" and self.filter.weight is None:
            # recorded as a number: a run stays exact if the default changes
            self.filter = replace(self.filter, weight=DEFAULT_WEIGHT)
        if self.method == "mdm-ft" and self.filter.kind != "none":
            problems.append("filter applies to method 'kinemic' (mdm-ft has no soft positives)")
        if self.method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}, found {self.method!r}")
        positive = ("train_steps", "batch_size", "k", "diffusion_steps", "mic_hidden", "mic_embed")
        for name in positive:
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, found {getattr(self, name)}")
        for name in ("contrastive_weight", "window_weight", "distill_weight"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, found {getattr(self, name)}")
        for name in ("max_source_frames", "max_target_frames"):
            value = getattr(self, name)
            if value is not None and value < 4:
                problems.append(f"{name} must be >= 4 or None, found {value}")
        if self.bank_size < 0:
            problems.append(f"bank_size must be >= 0, found {self.bank_size}")
        if problems:
            raise KinemicError("fine-tuning settings: " + "; ".join(problems))

    def mic_config(self, latent_dim: int) -> MICConfig:
        """The ``kinemic.mining.mic.MICConfig`` of these settings for a ``latent_dim`` prior."""
        from kinemic.mining.mic import MICConfig

        return MICConfig(
            latent_dim=latent_dim,
            hidden_dim=self.mic_hidden,
            embed_dim=self.mic_embed,
            bank_size=self.bank_size,
            temperature=self.temperature,
        )

    def train_config(self, *, progress: bool, position: int | None = None) -> TrainConfig:
        """The ``kinemic.training.TrainConfig`` of these settings."""
        from kinemic.training import TrainConfig

        return TrainConfig(
            steps=self.train_steps,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_steps=self.warmup_steps,
            grad_clip=self.grad_clip,
            ema=None,
            seed=self.seed,
            mixed_precision=self.mixed_precision,
            cpu=self.cpu,
            checkpoint_every=self.checkpoint_every,
            keep_checkpoints=self.keep_checkpoints,
            log_every=self.log_every,
            progress=progress,
            progress_desc=f"fine-tuning ({self.method})",
            progress_position=position,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def flat(self) -> dict[str, Any]:
        """The settings as one flat record, the layout runs recorded before the filter's
        options became one config (``steps`` now ``train_steps``; :meth:`from_dict` reads both).
        A run's resume fingerprint keeps this layout, so that runs from then still resume."""
        out: dict[str, Any] = {}
        for key, value in self.to_dict().items():
            if key == "filter":
                out.update(self.filter.flat())
            else:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> FinetuneConfig:
        """The settings a run recorded (``to_dict()``), or a flat record of an earlier version
        (``steps``; ``filter`` a name with ``filter_pool``, ``filter_encoder``,
        ``filter_weight`` beside it)."""
        settings = {_RENAMED.get(k, k): v for k, v in settings.items()}
        if not isinstance(settings.get("filter", {}), dict):
            flat = {k: settings.pop(k, None) for k in _FLAT_FILTER}
            settings["filter"] = FilterConfig.from_flat(flat)
        return cls(**settings)
