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
        1,
        2,
        4,
        5,
        8,
        9,
        13,
        14,
        15,
        16,
        17,
        18,
        19,
        25,
        27,
        28,
        31,
        34,
        35,
        38,
        45,
        46,
        47,
        49,
        50,
        52,
        53,
        54,
        55,
        56,
        57,
        58,
        59,
        70,
        74,
        78,
        80,
        81,
        82,
        83,
        84,
        85,
        86,
        89,
        91,
        92,
        93,
        94,
        95,
        97,
        98,
        100,
        103,
    )
)

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


_NAMES = """\
drink water|eat meal|brush teeth|brush hair|drop|pick up|throw|sit down|stand up|clapping|
reading|writing|tear up paper|put on jacket|take off jacket|put on a shoe|take off a shoe|
put on glasses|take off glasses|put on a hat/cap|take off a hat/cap|cheer up|hand waving|
kicking something|reach into pocket|hopping|jump up|phone call|play with phone/tablet|
type on a keyboard|point to something|taking a selfie|check time (from watch)|rub two hands|
nod head/bow|shake head|wipe face|salute|put palms together|cross hands in front|
sneeze/cough|staggering|falling down|headache|chest pain|back pain|neck pain|nausea/vomiting|
fan self|punch/slap|kicking|pushing|pat on back|point finger|hugging|giving object|
touch pocket|shaking hands|walking towards|walking apart|put on headphone|take off headphone|
shoot at basket|bounce ball|tennis bat swing|juggle table tennis ball|hush|flick hair|
thumb up|thumb down|make OK sign|make victory sign|staple book|counting money|cutting nails|
cutting paper|snap fingers|open bottle|sniff/smell|squat down|toss a coin|fold paper|
ball up paper|play magic cube|apply cream on face|apply cream on hand|put on bag|
take off bag|put object into bag|take object out of bag|open a box|move heavy objects|
shake fist|throw up cap/hat|capitulate|cross arms|arm circles|arm swings|run on the spot|
butt kicks|cross toe touch|side kick|yawn|stretch oneself|blow nose|hit with object|
wield knife|knock over|grab stuff|shoot with gun|step on foot|high-five|cheers and drink|
carry object|take a photo|follow|whisper|exchange things|support somebody|
rock-paper-scissors
"""
#: The 120 action names of NTU RGB+D 120 (Liu et al., 2019); index i = class A{i+1:03d}.
NTU_CLASS_NAMES: tuple[str, ...] = tuple(_NAMES.replace("\n", "").split("|"))
