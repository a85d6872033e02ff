"""NTU RGB+D clip names (``SsssCcccPpppRrrrAaaa``) and the dataset authors' evaluation splits.

Cross-subject (xsub) splits on the **performer** id, cross-setup (xset) on the **setup** id.
The published KineMIC code swapped the two when splitting; here each rule reads its own field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kinemic.errors import DataError

NUM_ACTIONS = 120

#: Performer ids of the cross-subject training set of NTU RGB+D 120 (Liu et al., 2019); every
#: other performer is in the validation set.
XSUB_TRAIN_PERFORMERS: frozenset[int] = frozenset(
    (
        1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47,
        49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91,
        92, 93, 94, 95, 97, 98, 100, 103,
    )
)  # fmt: skip

_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


@dataclass(frozen=True)
class NTUName:
    """The fields of an NTU RGB+D clip name, all 1-based as written in the name."""

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    def __post_init__(self) -> None:
        for field_name in ("setup", "camera", "performer", "replication", "action"):
            value = getattr(self, field_name)
            if not 1 <= value <= 999:
                raise ValueError(f"NTU {field_name} must be in 1..999, found {value}")
        if self.action > NUM_ACTIONS:
            raise ValueError(f"NTU action must be in 1..{NUM_ACTIONS}, found {self.action}")

    @classmethod
    def parse(cls, name: str) -> NTUName:
        """Parse e.g. ``"S001C002P003R002A013"``; anything else raises :class:`DataError`."""
        m = _NAME.fullmatch(name)
        if m is None:
            raise DataError(
                None,
                f"{name!r} is not an NTU RGB+D clip name: expected SsssCcccPpppRrrrAaaa with "
                "three digits per field, e.g. S001C002P003R002A013",
            )
        try:
            return cls(*(int(g) for g in m.groups()))
        except ValueError as e:
            raise DataError(None, f"{name!r} is not a valid NTU RGB+D clip name: {e}") from None

    def __str__(self) -> str:
        return (
            f"S{self.setup:03d}C{self.camera:03d}P{self.performer:03d}"
            f"R{self.replication:03d}A{self.action:03d}"
        )

    @property
    def label(self) -> int:
        """The 0-based class index (``action - 1``)."""
        return self.action - 1


def is_two_person(action: int) -> bool:
    """True for the mutual actions A050–A060 and A106–A120 (1-based action number)."""
    return 50 <= action <= 60 or 106 <= action <= 120


def _as_name(name: str | NTUName) -> NTUName:
    return name if isinstance(name, NTUName) else NTUName.parse(name)


def xsub_is_train(name: str | NTUName) -> bool:
    """Cross-subject protocol: is the clip's performer one of the training subjects?"""
    return _as_name(name).performer in XSUB_TRAIN_PERFORMERS


def xset_is_train(name: str | NTUName) -> bool:
    """Cross-setup protocol: even setup ids train, odd setup ids validate."""
    return _as_name(name).setup % 2 == 0


def is_train(name: str | NTUName, protocol: str) -> bool:
    """``xsub_is_train`` or ``xset_is_train`` by protocol name."""
    rules = {"xsub": xsub_is_train, "xset": xset_is_train}
    if protocol not in rules:
        raise ValueError(f"unknown protocol {protocol!r}: expected 'xsub' or 'xset'")
    return rules[protocol](name)
