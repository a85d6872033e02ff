"""Settings of the soft-positive selection, in a module that imports no torch: ``kinemic mine``
and ``kinemic finetune`` build their parsers from these defaults.

:class:`FilterConfig` is the selection: the caption ranking alone (``kind="none"``), or the
caption top-``pool`` re-ranked by the T-MOR kinematic filter (``kind="kinematic"``; see
``kinemic.mining.kinematic_filter``). ``kinemic.mining.soft_positives.select_soft_positives``
applies it.

Its source options say *what* is ranked and with which caption context, for either kind:
``subclips`` ("include": sub-clip captions count towards their motion; "exclude": they are
ignored; "cut": each is a cut clip of its own, ``kinemic.io.humanml3d.cut_clip_id``),
``min_frames`` / ``max_frames`` (inclusive bounds on the feature rows of each ranked motion and
cut clip) and ``text_tokens`` (word pieces of each caption the CLIP text encoder reads for the
ranking; conditioning keeps the encoder's own). :meth:`FilterConfig.reference` sets them as the
KineMIC reference does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from kinemic.errors import KinemicError

Filter = Literal["none", "kinematic"]
FILTERS = ("none", "kinematic")
Subclips = Literal["include", "exclude", "cut"]
SUBCLIPS = ("include", "exclude", "cut")
#: The reference's source clips: HumanML3D's loader keeps 40 <= T < 200 feature rows, i.e. 40 to
#: 199 inclusive, for whole motions and for the clips it cuts at sub-clip captions alike.
REFERENCE_FRAMES = (40, 199)
#: CLIP's whole context in word pieces (``kinemic.text.CLIP_FULL_TOKENS``; this module imports
#: no torch): the reference embeds captions so to find soft positives.
CLIP_CONTEXT = 75
_SOURCE_OPTIONS = ("subclips", "min_frames", "max_frames", "text_tokens")
#: Every key of a flat record (:meth:`FilterConfig.flat`).
FLAT_KEYS = (
    "filter",
    "filter_pool",
    "filter_encoder",
    "filter_weight",
    *(f"filter_{name}" for name in _SOURCE_OPTIONS),
)
DEFAULT_K = 250  # soft positives per class
DEFAULT_WEIGHT = 0.5  # the motion score's share of the kinematic filter's key; the caption's 1 - w


@dataclass
class FilterConfig:
    """How the soft positives of a class are selected.

    ``kind``: "none" (the caption top-k) or "kinematic" (the caption top-``pool`` re-ranked by
    the kinematic filter, of which the first k are kept). The other options apply to
    "kinematic" only: ``pool`` the caption candidates re-ranked (None: 2k); ``encoder`` the
    T-MOR encoder folder or run (None: the shipped one); ``weight`` the motion score's share of
    the ranking key, the caption score's being the rest (None: ``DEFAULT_WEIGHT``; 1 ranks by
    motion alone). On the command line: ``--filter``, ``--filter-pool``, ``--filter-encoder``,
    ``--filter-weight``.

    The source options apply to both kinds (see the module docstring): ``subclips``,
    ``min_frames`` and ``max_frames`` (None: no bound), ``text_tokens`` (None: the text
    encoder's own context; 1..75, CLIP only).
    """

    kind: Filter = "none"
    pool: int | None = None
    encoder: str | None = None
    weight: float | None = None
    subclips: Subclips = "include"
    min_frames: int | None = None
    max_frames: int | None = None
    text_tokens: int | None = None

    @classmethod
    def reference(cls, **changes: Any) -> FilterConfig:
        """The soft positives of the KineMIC reference: the caption ranking, each sub-clip
        caption a cut clip of its own, motions and cut clips of 40 to 199 rows, captions read
        at CLIP's whole context (75 word pieces). ``changes`` override any of these."""
        low, high = REFERENCE_FRAMES
        settings: dict[str, Any] = dict(
            subclips="cut", min_frames=low, max_frames=high, text_tokens=CLIP_CONTEXT
        )
        return cls(**{**settings, **changes})

    def __post_init__(self) -> None:
        if self.encoder is not None:
            self.encoder = str(self.encoder)  # a Path would not go into JSON
        problems = self.problems()
        if problems:
            raise KinemicError("soft-positive filter: " + "; ".join(problems))

    def problems(self, k: int | None = None) -> list[str]:
        """What is wrong with this selection (empty when nothing is); with ``k``, the soft
        positives kept, also whether the pool holds them."""
        if self.kind not in FILTERS:
            return [f"filter must be one of {', '.join(FILTERS)}, found {self.kind!r}"]
        if self.kind == "none" and (
            self.pool is not None or self.encoder is not None or self.weight is not None
        ):
            return [
                "filter_pool, filter_encoder and filter_weight apply to filter 'kinematic' only"
            ]
        problems = []
        if k is not None and self.pool is not None and self.pool < k:
            problems.append(
                f"filter_pool ({self.pool}) must be at least k ({k}): the filter keeps k of "
                "the pool"
            )
        if self.weight is not None and not 0.0 <= self.weight <= 1.0:
            problems.append(
                f"filter_weight must be in [0, 1] (the motion score's share), found {self.weight}"
            )
        if self.subclips not in SUBCLIPS:
            problems.append(
                f"subclips must be one of {', '.join(SUBCLIPS)}, found {self.subclips!r}"
            )
        for name in ("min_frames", "max_frames"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                problems.append(f"{name} must be a whole number of frames or None, found {value!r}")
            elif value is not None and value < 1:
                problems.append(f"{name} must be >= 1 or None, found {value}")
        low, high = self.min_frames, self.max_frames
        if isinstance(low, int) and isinstance(high, int) and low > high:
            problems.append(f"min_frames ({low}) must not exceed max_frames ({high})")
        if self.text_tokens is not None and not (
            isinstance(self.text_tokens, int) and 1 <= self.text_tokens <= CLIP_CONTEXT
        ):
            problems.append(
                f"text_tokens must be in 1..{CLIP_CONTEXT} word pieces (CLIP's context is 77 "
                f"tokens) or None, found {self.text_tokens!r}"
            )
        return problems

    def source_options(self) -> dict[str, Any]:
        """The source options that differ from the defaults (empty for today's selection): what
        a record of the selection adds, so records of default selections stay as they were."""
        default = FilterConfig()
        return {
            name: getattr(self, name)
            for name in _SOURCE_OPTIONS
            if getattr(self, name) != getattr(default, name)
        }

    def with_recorded_source(self, record: dict[str, Any]) -> FilterConfig:
        """This selection with the source options of ``record`` (a ``SoftPositives.filter``,
        e.g. a fine-tuned model's) wherever this one leaves them at their defaults: mining a
        model ranks what it was trained with unless told otherwise."""
        default = FilterConfig()
        recorded = {
            name: record[name]
            for name in _SOURCE_OPTIONS
            if name in record and getattr(self, name) == getattr(default, name)
        }
        return replace(self, **recorded) if recorded else self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_flat(cls, settings: dict[str, Any]) -> FilterConfig:
        """The selection of a flat record with the keys ``filter``, ``filter_pool``,
        ``filter_encoder`` and ``filter_weight`` (missing keys: None), the layout fine-tuning
        settings had before the four options became one config, and the source options
        ``filter_<option>`` (missing keys: their defaults); ``FLAT_KEYS`` lists them all."""
        default = cls()
        return cls(
            kind=settings.get("filter", "none"),
            pool=settings.get("filter_pool"),
            encoder=settings.get("filter_encoder"),
            weight=settings.get("filter_weight"),
            **{
                name: settings.get(f"filter_{name}", getattr(default, name))
                for name in _SOURCE_OPTIONS
            },
        )

    def flat(self) -> dict[str, Any]:
        """The inverse of :meth:`from_flat`. The source options appear only where they differ
        from their defaults, so the record of a default selection has the four keys it had."""
        return {
            "filter": self.kind,
            "filter_pool": self.pool,
            "filter_encoder": self.encoder,
            "filter_weight": self.weight,
            **{f"filter_{name}": value for name, value in self.source_options().items()},
        }
