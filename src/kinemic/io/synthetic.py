"""Synthetic split folders (``kinemic synthesize``), read and checked against a few-shot split.

A synthetic folder is NTU-VIBE-layout clips (``new_joint_vecs/``, ``new_joints/``) plus
``synth.txt`` (clip ids), ``synth_y.txt`` (0-based NTU labels, one per id) and ``info.json``
(how the set was made: model, split, method, guidance, seed, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kinemic.errors import DataError
from kinemic.io.ntu_vibe import FewShotSplit, NTUVibeDataset, read_labels

SYNTH_IDS, SYNTH_LABELS, INFO = "synth.txt", "synth_y.txt", "info.json"


@dataclass
class SyntheticSet:
    """A synthetic split folder (``kinemic synthesize``): its clip ids and 0-based NTU labels."""

    path: Path
    method: str
    ids: list[str]
    labels: list[int]
    info: dict = field(default_factory=dict)


def read_synthetic(folder: str | Path, split: FewShotSplit) -> SyntheticSet:
    """Read and check a synthetic folder against ``split``; KinemicError/DataError otherwise.

    Refused: no ``synth.txt``/``synth_y.txt``, an empty set, ids without clip files, labels
    outside the split's classes, a split class without clips, an ``info.json`` made for another
    split, and clips that are the split's validation clips.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a folder: expected a synthetic split (kinemic synthesize)")
    info: dict = {}
    if (folder / INFO).is_file():
        try:
            info = json.loads((folder / INFO).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(folder / INFO, f"not valid JSON ({e})") from None
    if info.get("split") not in (None, split.name):
        raise DataError(
            folder / INFO,
            f"this synthetic set was made for split {info['split']!r}, not {split.name!r}: "
            "evaluate it with --split " + str(info["split"]),
        )
    ds = NTUVibeDataset(folder)
    ids = ds.read_ids(folder / SYNTH_IDS)  # plain ids, each once, with new_joint_vecs/<id>.npy
    if not ids:
        raise DataError(folder / SYNTH_IDS, "empty synthetic set: no clip ids listed")
    labels = read_labels(folder / SYNTH_LABELS, ids, ids_file=SYNTH_IDS)
    wanted = set(split.class_list)
    foreign = sorted({y for y in labels if y not in wanted})
    if foreign:
        raise DataError(
            folder / SYNTH_LABELS,
            f"classes {foreign} (0-based) are not in split {split.name}'s classes "
            f"{sorted(wanted)}: this synthetic set was made for other classes",
        )
    missing = sorted(wanted - set(labels))
    if missing:
        raise DataError(
            folder / SYNTH_LABELS,
            f"no synthetic clips of classes {missing} (0-based) of split {split.name}: "
            "synthesise every class of the split",
        )
    leaked = sorted(set(ids) & set(split.val_ids))
    if leaked:
        raise DataError(
            folder / SYNTH_IDS,
            f"{len(leaked)} ids are validation clips of split {split.name} (e.g. {leaked[0]}); "
            "validation clips must never be training data",
        )
    method = str(info.get("method") or folder.name)
    return SyntheticSet(folder, method, ids, labels, info)
