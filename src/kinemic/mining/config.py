"""Settings of the soft-positive selection, in a module that imports no torch: ``kinemic mine``
and ``kinemic finetune`` build their parsers from these defaults.

:class:`FilterConfig` is the selection: the caption ranking alone (``kind="none"``), or the
caption top-``pool`` re-ranked by the T-MOR kinematic filter (``kind="kinematic"``; see
``kinemic.mining.kinematic_filter``). ``kinemic.mining.soft_positives.select_soft_positives``
applies it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from kinemic.errors import KinemicError

Filter = Literal["none", "kinematic"]
FILTERS = ("none", "kinematic")
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
    """

    kind: Filter = "none"
    pool: int | None = None
    encoder: str | None = None
    weight: float | None = None

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
        return problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_flat(cls, settings: dict[str, Any]) -> FilterConfig:
        """The selection of a flat record with the keys ``filter``, ``filter_pool``,
        ``filter_encoder`` and ``filter_weight`` (missing keys: None), the layout fine-tuning
        settings had before the four options became one config."""
        return cls(
            kind=settings.get("filter", "none"),
            pool=settings.get("filter_pool"),
            encoder=settings.get("filter_encoder"),
            weight=settings.get("filter_weight"),
        )

    def flat(self) -> dict[str, Any]:
        """The inverse of :meth:`from_flat`."""
        return {
            "filter": self.kind,
            "filter_pool": self.pool,
            "filter_encoder": self.encoder,
            "filter_weight": self.weight,
        }
