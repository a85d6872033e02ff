"""The settings of a fine-tune, in a module that imports no torch: ``kinemic finetune`` builds
its parser from these defaults, and a run records them (``config.json``, key ``finetune``).

:class:`FinetuneConfig` holds the nested :class:`LoraSettings` (the target stream's adapters)
and ``kinemic.mining.config.FilterConfig`` (the soft-positive selection). Two kinds of steps,
two names: ``train_steps`` (optimiser steps) and ``diffusion_steps`` (the fine-tuning noise
schedule).

**Recipes** are whole sets of settings shipped as TOML files in ``kinemic/finetune/recipes/``
(keys: the fields of :class:`FinetuneConfig`, with ``[lora]`` and ``[filter]`` as tables; a key
left out takes the dataclass default). ``paper`` reproduces the reference implementation of
KineMIC on the official MDM prior; ``cpu`` is sized for the shipped ``tiny`` CPU prior and is
the dataclass defaults. :meth:`FinetuneConfig.from_recipe` reads one, with overrides;
:func:`default_recipe` picks ``paper`` for a prior that ``kinemic import-mdm`` wrote and
``cpu`` for any other.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kinemic.errors import KinemicError
from kinemic.mining.config import DEFAULT_K, DEFAULT_WEIGHT, FLAT_KEYS, FilterConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    from kinemic.mining.mic import MICConfig
    from kinemic.training import TrainConfig

__all__ = [
    "BATCHINGS",
    "LORA_LAYOUTS",
    "MDM_FT",
    "METHODS",
    "RECIPES",
    "FilterConfig",
    "FinetuneConfig",
    "LoraSettings",
    "Method",
    "default_recipe",
    "recipe_path",
]

Method = Literal["kinemic", "mdm-ft"]
METHODS = ("kinemic", "mdm-ft")
#: "packed": one LoRA pair on the packed q|k|v projection of each layer; "separate": one pair
#: each on q, k and v (the reference implementation's, through its LoRA MultiheadAttention)
LoraLayout = Literal["packed", "separate"]
LORA_LAYOUTS = ("packed", "separate")
#: "sampled": B shots drawn with replacement per step; "all-shots": the shots in a shuffled
#: order, B per step, every shot once per epoch (the reference's DataLoader)
Batching = Literal["sampled", "all-shots"]
BATCHINGS = ("sampled", "all-shots")
#: how the mdm-ft baseline adapts the target stream: "lora" (the adapters and action table,
#: like kinemic) or "full" (every weight but the LayerNorms and the text projection, like the
#: reference's baseline)
MdmFt = Literal["lora", "full"]
MDM_FT = ("lora", "full")
#: the recipes that ship with kinemic (``kinemic/finetune/recipes/<name>.toml``)
RECIPES = ("paper", "cpu")
RECIPE_DIR = Path(__file__).resolve().parent / "recipes"


@dataclass
class LoraSettings:
    """peft LoRA settings of the target stream (SPEC §5: rank 16, α 32, dropout 0.1).

    ``layout``: "packed" or "separate" (see ``LORA_LAYOUTS``). ``target_modules`` None: the
    denoiser's ``kinemic.diffusion.LORA_TARGETS[layout]``, filled in by :meth:`resolved`
    (which imports the denoiser, and so torch)."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.1
    target_modules: list[str] | None = None
    layout: LoraLayout = "packed"

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise KinemicError(
                f"LoRA settings: rank >= 1, alpha > 0 and dropout in [0, 1) expected, found "
                f"rank={self.rank}, alpha={self.alpha}, dropout={self.dropout}"
            )
        if self.layout not in LORA_LAYOUTS:
            raise KinemicError(
                f"LoRA settings: layout must be one of {', '.join(LORA_LAYOUTS)}, found "
                f"{self.layout!r}"
            )
        if self.target_modules is not None:
            if not self.target_modules:
                raise KinemicError("LoRA settings: target_modules is empty")
            self.target_modules = list(self.target_modules)
            # the packed projection is a Linear in one layout and three in the other
            wrong = {"packed": {"q", "k", "v"}, "separate": {"qkv"}}[self.layout]
            named = sorted(wrong & set(self.target_modules))
            if named:
                raise KinemicError(
                    f"LoRA settings: target_modules {named} do not exist in layout "
                    f"{self.layout!r} (packed: 'qkv'; separate: 'q', 'k', 'v')"
                )

    def resolved(self) -> LoraSettings:
        """These settings with ``target_modules`` named (the layout's defaults when None)."""
        if self.target_modules is not None:
            return self
        from kinemic.diffusion.denoiser import LORA_TARGETS

        return replace(self, target_modules=list(LORA_TARGETS[self.layout]))

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


@dataclass
class FinetuneConfig:
    """Settings of a fine-tune. The defaults are the ``cpu`` recipe, sized for the shipped
    ``tiny`` CPU prior (see docs/prior.md); :meth:`from_recipe` ("paper") gives the reference's
    (MDM on a GPU: lr 2e-5, every one of the 30 shots per step, 10,000 steps).

    ``recipe`` names the recipe the other values started from (recorded with them).
    ``batching`` and ``crop_unit`` make the batches: ``crop_unit`` 0 takes each clip whole (a
    random window of the longest length the prior takes when longer); n >= 1 crops a random
    window whose length is a multiple of n (the reference's ``to_unit_length``: the length
    floored to a multiple of n, one n shorter with probability 1/3 when n < 10). ``mdm_ft``
    applies to method "mdm-ft" only. ``mic_arch``, ``contrastive_loss``, ``min_logit_scale``
    and ``logit_scale_clamp`` configure MIC (``kinemic.mining.mic.MICConfig``'s ``arch``,
    ``loss``, ``min_logit_scale`` and ``logit_scale_clamp``).
    """

    recipe: str = "cpu"
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
    mic_arch: Literal["small", "reference"] = "small"
    contrastive_loss: Literal["supcon", "soft-nn"] = "supcon"
    min_logit_scale: float = 0.0  # 0: none; the logit scale's upper bound is 100
    logit_scale_clamp: Literal["value", "parameter"] = "value"
    bank_size: int = 60
    temperature: float = 0.07
    batching: Batching = "sampled"
    crop_unit: int = 0
    mdm_ft: MdmFt = "lora"
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
        for name, choices in (
            ("method", METHODS),
            ("batching", BATCHINGS),
            ("mdm_ft", MDM_FT),
            ("mic_arch", ("small", "reference")),
            ("contrastive_loss", ("supcon", "soft-nn")),
            ("logit_scale_clamp", ("value", "parameter")),
        ):
            if getattr(self, name) not in choices:
                problems.append(
                    f"{name} must be one of {', '.join(choices)}, found {getattr(self, name)!r}"
                )
        positive = ("train_steps", "batch_size", "k", "diffusion_steps", "mic_hidden", "mic_embed")
        for name in positive:
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, found {getattr(self, name)}")
        for name in ("contrastive_weight", "window_weight", "distill_weight", "crop_unit"):
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

    @property
    def full_finetune(self) -> bool:
        """Whether the target stream is fine-tuned whole (mdm-ft with ``mdm_ft="full"``)."""
        return self.method == "mdm-ft" and self.mdm_ft == "full"

    def mic_config(self, latent_dim: int) -> MICConfig:
        """The ``kinemic.mining.mic.MICConfig`` of these settings for a ``latent_dim`` prior."""
        from kinemic.mining.mic import MICConfig

        return MICConfig(
            latent_dim=latent_dim,
            hidden_dim=self.mic_hidden,
            embed_dim=self.mic_embed,
            bank_size=self.bank_size,
            temperature=self.temperature,
            arch=self.mic_arch,
            loss=self.contrastive_loss,
            min_logit_scale=self.min_logit_scale,
            logit_scale_clamp=self.logit_scale_clamp,
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
            flat = {k: settings.pop(k) for k in FLAT_KEYS if k in settings}
            settings["filter"] = FilterConfig.from_flat(flat)
        return cls(**settings)

    @classmethod
    def from_recipe(cls, recipe: str | Path, **overrides: Any) -> FinetuneConfig:
        """The settings of ``recipe`` (a name in ``RECIPES``, or the path of a TOML file laid
        out like them) with ``overrides`` applied: a field's value, or for ``lora`` and
        ``filter`` a dict of the entries to change (a ``LoraSettings`` / ``FilterConfig``
        replaces the table whole). An unknown key, in the file or the overrides, or a bad value
        is a ``KinemicError`` naming the file.

        Example:
            >>> from kinemic.finetune.config import FinetuneConfig
            >>> paper = FinetuneConfig.from_recipe("paper", train_steps=500)
            >>> paper.recipe, paper.lr, paper.batch_size, paper.train_steps, paper.lora.layout
            ('paper', 2e-05, 30, 500, 'separate')
            >>> FinetuneConfig.from_recipe("cpu") == FinetuneConfig()
            True
        """
        path = recipe_path(recipe)
        name = str(recipe) if str(recipe) in RECIPES else str(path)
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise KinemicError(f"{path}: cannot read the recipe ({e.strerror})") from None
        except tomllib.TOMLDecodeError as e:
            raise KinemicError(f"{path}: not a valid TOML file ({e})") from None
        _check_keys(path, table, "the recipe")
        _check_keys(path, overrides, "overrides of the recipe")
        for key, kind in (("lora", LoraSettings), ("filter", FilterConfig)):
            if key in table and not isinstance(table[key], dict):
                raise KinemicError(f"{path}: [{key}] must be a table of {kind.__name__} entries")
            change = overrides.pop(key, None)
            if isinstance(change, dict):
                table[key] = {**table.get(key, {}), **change}
            elif change is not None:
                table[key] = asdict(change)
        try:
            return cls(**{**table, **overrides, "recipe": name})
        except (KinemicError, TypeError, ValueError) as e:
            raise KinemicError(f"{path}: {e}") from None


def _check_keys(path: Path, table: dict[str, Any], what: str) -> None:
    """Refuse keys that are no field (nor a field of the ``lora`` / ``filter`` tables)."""
    known = {f.name for f in fields(FinetuneConfig)} - {"recipe"}
    unknown = sorted(set(table) - known)
    for key, kind in (("lora", LoraSettings), ("filter", FilterConfig)):
        if isinstance(table.get(key), dict):
            inner = {f.name for f in fields(kind)}
            unknown += [f"{key}.{k}" for k in sorted(set(table[key]) - inner)]
    if unknown:
        raise KinemicError(
            f"{path}: unknown settings in {what}: {', '.join(unknown)}; known are the fields of "
            f"FinetuneConfig ({', '.join(sorted(known))}), [lora] and [filter] tables"
        )


def recipe_path(recipe: str | Path) -> Path:
    """The TOML file of a recipe: a shipped one by name, or a path ending in ``.toml``."""
    if str(recipe) in RECIPES:
        return RECIPE_DIR / f"{recipe}.toml"
    path = Path(recipe)
    if path.suffix != ".toml":
        raise KinemicError(
            f"unknown recipe {str(recipe)!r}: choose one of {', '.join(RECIPES)}, or pass the "
            "path of a .toml file laid out like them"
        )
    return path


def default_recipe(prior_config: dict[str, Any]) -> str:
    """The recipe a prior is fine-tuned with unless one is named: ``paper`` for an official
    MDM checkpoint that ``kinemic import-mdm`` turned into a prior folder (its ``config.json``
    records ``training.imported_from``), ``cpu`` for any other prior."""
    training = prior_config.get("training") or {}
    imported = isinstance(training, dict) and "imported_from" in training
    return "paper" if imported else "cpu"
