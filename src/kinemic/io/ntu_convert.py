"""Convert a folder of NTU RGB+D ``.skeleton`` files into the HumanML3D / NTU-VIBE layout.

Each file: main actor -> SMPL-22 at 20 fps (:mod:`kinemic.io.ntu_skeleton`) -> canonical joints
and 263-dim features (:mod:`kinemic.features`, HumanML3D convention) -> ``new_joints``,
``new_joint_vecs`` and, given ``ntu_metadata.json``, ``texts`` with the class captions.
Two-person actions and clips shorter than ``min_frames`` are skipped and counted; broken files
raise, or are skipped and counted with ``lenient=True``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from kinemic.errors import DataError, KinemicError
from kinemic.files import write_bytes
from kinemic.io.conversion import (
    SkippedFile,
    encode_finite,
    file_error,
    nothing_converted,
    skip_reason,
    staged_dataset,
)
from kinemic.io.ntu_names import NTU_CLASS_NAMES, NUM_ACTIONS, NTUName, is_train, is_two_person
from kinemic.io.ntu_skeleton import skeleton_file_to_smpl
from kinemic.io.ntu_vibe import write_class_names, write_default_split


@dataclass
class NTUConversionSummary:
    """What :func:`convert_ntu_folder` did: converted clip ids, skipped files with reasons, and
    per clip how many 30 fps frames had the main actor missing and were interpolated."""

    converted: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    filled: dict[str, int] = field(default_factory=dict)

    @property
    def filled_frames(self) -> int:
        return sum(self.filled.values())

    def count(self, kind: str) -> int:
        return sum(s.kind == kind for s in self.skipped)

    def __str__(self) -> str:
        lines = [
            f"converted {len(self.converted)} clips; skipped {len(self.skipped)} "
            f"(two-person {self.count('two-person')}, too short {self.count('too-short')}, "
            f"broken {self.count('broken')}, no caption {self.count('no-caption')}); "
            f"interpolated {self.filled_frames} missing-actor frames in "
            f"{sum(n > 0 for n in self.filled.values())} clips"
        ]
        lines += [f"  skipped {s.name} ({s.kind}): {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def _read_metadata(path: Path) -> list[dict]:
    """The ``actions`` of ``ntu_metadata.json``, each with a ``tag`` A001..A120 (once) and a
    non-empty ``captions`` list of strings; anything else is a :class:`DataError`."""
    try:
        actions = json.loads(path.read_text(encoding="utf-8"))["actions"]
        tags = [a["tag"] for a in actions]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise DataError(
            path,
            f"cannot read class captions ({type(e).__name__}: {e}); expected JSON with "
            '"actions": [{"tag": "A001", "captions": ["..."]}, ...]',
        ) from e
    seen: set[int] = set()
    for i, (action, tag) in enumerate(zip(actions, tags, strict=True)):
        ok = isinstance(tag, str) and tag[:1] in ("A", "a") and tag[1:].isdigit()
        number = int(tag[1:]) if ok else 0
        if not 1 <= number <= NUM_ACTIONS:
            raise DataError(path, f"actions[{i}]: tag {tag!r} is not A001..A{NUM_ACTIONS}")
        if number in seen:
            raise DataError(path, f"actions[{i}]: tag {tag!r} appears twice")
        seen.add(number)
        caps = action.get("captions")
        if not (isinstance(caps, list) and caps and all(isinstance(c, str) for c in caps)):
            raise DataError(path, f"actions[{i}] ({tag}): expected a non-empty captions list")
        name = action.get("action")
        if name is not None and (not isinstance(name, str) or not name.strip() or "\n" in name):
            raise DataError(path, f"actions[{i}] ({tag}): action name {name!r} is not one line")
    return actions


def load_class_captions(path: str | Path) -> dict[int, list[str]]:
    """``ntu_metadata.json`` -> {action number (1-based): [caption, ...]}."""
    return {int(a["tag"][1:]): list(a["captions"]) for a in _read_metadata(Path(path))}


def class_names(path: str | Path) -> list[str]:
    """The 120 class names (index = 0-based label = action − 1): the ``action`` names that
    ``ntu_metadata.json`` gives, the NTU RGB+D 120 names for the classes it leaves out."""
    names = list(NTU_CLASS_NAMES)
    for a in _read_metadata(Path(path)):
        if a.get("action") is not None:
            names[int(a["tag"][1:]) - 1] = a["action"].strip()
    return names


def convert_ntu_folder(
    src: str | Path,
    out: str | Path,
    *,
    captions: str | Path | None = None,
    lenient: bool = False,
    min_frames: int = 10,
    fps: float = 20,
    overwrite: bool = False,
) -> NTUConversionSummary:
    """Convert every ``src/*.skeleton`` into an NTU-VIBE-layout dataset under ``out``.

    Writes the clips (features, joints recovered from them, captions), the default xsub and
    xset splits with 0-based labels (from the performer and setup ids of each name),
    ``Mean.npy``/``Std.npy`` fitted on the xsub training clips, and, given ``captions``,
    ``ntu_classes.txt`` (all 120 classes, line i = A{i:03d}) and ``ntu_metadata.json``.

    captions: path to ``ntu_metadata.json``; each clip then gets its class's captions (the
        file may cover a subset of the classes; a clip of another class is an error, or a
        counted skip with ``lenient``).
    lenient: skip and count every file with a problem (unreadable, bad name, degenerate
        joints, no caption for its class) instead of raising on the first one.
    min_frames: clips with fewer joint frames than this at ``fps`` are skipped and counted.
    out: written complete or not at all (:func:`kinemic.io.conversion.staged_dataset`); an
        existing non-empty ``out`` is an error unless ``overwrite``.
    Returns a :class:`NTUConversionSummary`; ``str(summary)`` lists every skipped file.
    """
    from kinemic.io.humanml3d import Caption, tokenize, write_clip

    if min_frames < 2:
        raise KinemicError(
            f"min_frames must be at least 2 (features need 2 frames), not {min_frames}"
        )
    src, out = Path(src), Path(out)
    files = sorted(src.glob("*.skeleton"))
    if not files:
        raise DataError(src, "no *.skeleton files in this folder")
    class_captions = None if captions is None else load_class_captions(captions)
    summary = NTUConversionSummary()

    with staged_dataset(out, overwrite=overwrite) as staging:
        for path in tqdm(files, desc="NTU skeletons", unit="file", disable=None):
            clip_id = path.stem
            try:
                action = NTUName.parse(clip_id).action
                if is_two_person(action):
                    reason = f"A{action:03d} is a two-person action"
                    summary.skipped.append(SkippedFile(path.name, "two-person", reason))
                    continue
                clip_captions = None
                if class_captions is not None:
                    if action not in class_captions:
                        if lenient:
                            reason = f"{captions} has no captions for class A{action:03d}"
                            summary.skipped.append(SkippedFile(path.name, "no-caption", reason))
                            continue
                        raise DataError(
                            captions, f"no captions for class A{action:03d} (of {path.name})"
                        )
                    texts = class_captions[action]
                    clip_captions = [Caption(text, tokenize(text)) for text in texts]
                smpl, actor = skeleton_file_to_smpl(path, fps_out=fps)
                if len(smpl) < min_frames:
                    reason = f"{len(smpl)} frames at {fps:g} fps < {min_frames}"
                    summary.skipped.append(SkippedFile(path.name, "too-short", reason))
                    continue
                features, joints = encode_finite(smpl, path=path)
            except KinemicError as e:
                if not lenient:
                    raise file_error(e, path) from e
                summary.skipped.append(SkippedFile(path.name, "broken", skip_reason(e, path)))
                continue
            write_clip(staging, clip_id, features=features, joints=joints, captions=clip_captions)
            summary.converted.append(clip_id)
            summary.filled[clip_id] = actor.filled
        if not summary.converted:
            raise nothing_converted(src, summary.skipped, len(files))
        _write_dataset_files(staging, summary.converted, captions)
    return summary


def _write_dataset_files(out: Path, ids: list[str], captions: str | Path | None) -> None:
    """Default splits, normaliser statistics and (given the metadata) class names."""
    from kinemic.features import Normalizer
    from kinemic.io.humanml3d import HumanML3DDataset, write_mean_std

    names = {i: NTUName.parse(i) for i in ids}
    for protocol in ("xsub", "xset"):
        for part, wanted in (("train", True), ("val", False)):
            part_ids = [i for i in ids if is_train(i, protocol) == wanted]
            write_default_split(out, protocol, part, part_ids, [names[i].label for i in part_ids])
    data = HumanML3DDataset(out)
    train = [i for i in ids if is_train(i, "xsub")] or ids
    norm = Normalizer.fit([data.features(i) for i in train])
    write_mean_std(out, norm.mean, norm.std)
    if captions is not None:
        write_class_names(out, class_names(captions))
        write_bytes(out / "ntu_metadata.json", Path(captions).read_bytes())
