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
from typing import Literal

from tqdm import tqdm

from kinemic.errors import DataError
from kinemic.io.ntu_skeleton import skeleton_file_to_smpl

SkipKind = Literal["two-person", "too-short", "broken"]


@dataclass
class SkippedFile:
    name: str
    kind: SkipKind
    reason: str


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

    def count(self, kind: SkipKind) -> int:
        return sum(s.kind == kind for s in self.skipped)

    def __str__(self) -> str:
        lines = [
            f"converted {len(self.converted)} clips; skipped {len(self.skipped)} "
            f"(two-person {self.count('two-person')}, too short {self.count('too-short')}, "
            f"broken {self.count('broken')}); interpolated {self.filled_frames} missing-actor "
            f"frames in {sum(n > 0 for n in self.filled.values())} clips"
        ]
        lines += [f"  skipped {s.name} ({s.kind}): {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def _problem(error: DataError) -> str:
    return error.problem if error.line is None else f"line {error.line}: {error.problem}"


def load_class_captions(path: str | Path) -> dict[int, list[str]]:
    """``ntu_metadata.json`` -> {action number (1-based): [caption, ...]}."""
    path = Path(path)
    try:
        actions = json.loads(path.read_text(encoding="utf-8"))["actions"]
        table = {int(a["tag"].lstrip("Aa")): [str(c) for c in a["captions"]] for a in actions}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(
            path,
            f"cannot read class captions ({type(e).__name__}: {e}); expected JSON with "
            '"actions": [{"tag": "A001", "captions": ["..."]}, ...]',
        ) from e
    return table


def convert_ntu_folder(
    src: str | Path,
    out: str | Path,
    *,
    captions: str | Path | None = None,
    lenient: bool = False,
    min_frames: int = 10,
    fps: float = 20,
) -> NTUConversionSummary:
    """Convert every ``src/*.skeleton`` into an NTU-VIBE-layout dataset under ``out``.

    Writes the clips (features, joints recovered from them, captions), the default xsub and
    xset splits with 0-based labels (from the performer and setup ids of each name),
    ``Mean.npy``/``Std.npy`` fitted on the xsub training clips, and, given ``captions``,
    ``ntu_classes.txt`` and ``ntu_metadata.json``.

    captions: path to ``ntu_metadata.json``; each clip then gets its class's captions.
    lenient: skip and count broken files instead of raising on the first one.
    min_frames: clips with fewer joint frames than this at ``fps`` are skipped and counted.
    Returns a :class:`NTUConversionSummary`; ``str(summary)`` lists every skipped file.
    """
    from kinemic.features import encode_clip
    from kinemic.io.humanml3d import Caption, tokenize, write_clip
    from kinemic.io.ntu_names import NTUName, is_two_person

    if min_frames < 2:
        raise ValueError(
            f"min_frames must be at least 2 (features need 2 frames), not {min_frames}"
        )
    src, out = Path(src), Path(out)
    files = sorted(src.glob("*.skeleton"))
    if not files:
        raise DataError(src, "no *.skeleton files in this folder")
    class_captions = None if captions is None else load_class_captions(captions)
    summary = NTUConversionSummary()

    for path in tqdm(files, desc="NTU skeletons", unit="file", disable=None):
        clip_id = path.stem
        try:
            action = NTUName.parse(clip_id).action
        except DataError as e:
            if not lenient:
                raise DataError(path, e.problem) from None
            summary.skipped.append(SkippedFile(path.name, "broken", e.problem))
            continue
        if is_two_person(action):
            summary.skipped.append(
                SkippedFile(path.name, "two-person", f"A{action:03d} is a two-person action")
            )
            continue
        try:
            smpl, actor = skeleton_file_to_smpl(path, fps_out=fps)
        except DataError as e:
            if not lenient:
                raise
            summary.skipped.append(SkippedFile(path.name, "broken", _problem(e)))
            continue
        if len(smpl) < min_frames:
            summary.skipped.append(
                SkippedFile(
                    path.name, "too-short", f"{len(smpl)} frames at {fps:g} fps < {min_frames}"
                )
            )
            continue
        clip_captions = None
        if class_captions is not None:
            if action not in class_captions:
                raise DataError(captions, f"no captions for class A{action:03d}")
            clip_captions = [Caption(text, tokenize(text)) for text in class_captions[action]]
        features, joints = encode_clip(smpl, convention="humanml3d")
        write_clip(out, clip_id, features=features, joints=joints, captions=clip_captions)
        summary.converted.append(clip_id)
        summary.filled[clip_id] = actor.filled
    if summary.converted:
        _write_dataset_files(out, summary.converted, captions)
    return summary


def _write_dataset_files(out: Path, ids: list[str], captions: str | Path | None) -> None:
    """Default splits, normaliser statistics and (given the metadata) class names."""
    from kinemic.features import Normalizer
    from kinemic.files import write_bytes
    from kinemic.io.humanml3d import HumanML3DDataset, write_mean_std
    from kinemic.io.ntu_names import NTUName, is_train
    from kinemic.io.ntu_vibe import write_class_names, write_default_split

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
        actions = json.loads(Path(captions).read_text(encoding="utf-8"))["actions"]
        write_class_names(out, [str(a.get("action", a["tag"])) for a in actions])
        write_bytes(Path(out) / "ntu_metadata.json", Path(captions).read_bytes())
