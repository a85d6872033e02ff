"""From a BVH skeleton to SMPL-22 joints, and a folder of BVH trials to a HumanML3D dataset.

A named skeleton (:data:`BVH_TO_SMPL`) says, for each of the 22 SMPL joints, which BVH joint
(or weighted blend of joints) stands in for it, and how many metres one file unit is. The CMU
table follows ``../shared/data/cmu-bvh/README.md``; the CMU files are Y up, face +Z at rest,
with the body's left at +X — the HumanML3D axes — so no axis change is needed (the tests check
the left hip really is on the body's left).
"""

from __future__ import annotations

import csv
import dataclasses
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kinemic.constants import MAX_FRAMES
from kinemic.errors import DataError, KinemicError
from kinemic.io.bvh import BVH, bvh_positions, read_bvh
from kinemic.io.conversion import (
    SkippedFile,
    encode_finite,
    file_error,
    nothing_converted,
    skip_lines,
    skip_reason,
    staged_dataset,
)
from kinemic.resample import resample_frames
from kinemic.skeleton import FOOT_LEFT, FOOT_RIGHT, SMPL22

#: A stand-in for one SMPL joint: a BVH joint name, or {BVH joint name: weight} (weights sum to 1).
Source = str | Mapping[str, float]


@dataclass(frozen=True)
class BVHSkeletonMap:
    """How a named BVH skeleton maps onto SMPL-22: ``joints[smpl_name]`` is a BVH joint name or
    a weighted blend of BVH joint positions; ``unit_scale`` is metres per file unit."""

    name: str
    unit_scale: float
    joints: Mapping[str, Source]

    def __post_init__(self) -> None:
        missing = [n for n in SMPL22.joint_names if n not in self.joints]
        extra = [n for n in self.joints if n not in SMPL22.joint_names]
        if missing or extra:
            raise ValueError(f"skeleton map {self.name}: missing {missing}, unknown {extra}")
        for smpl_name, src in self.joints.items():
            if not isinstance(src, str) and abs(sum(src.values()) - 1.0) > 1e-9:
                raise ValueError(f"skeleton map {self.name}: weights of {smpl_name} must sum to 1")

    def bvh_joints(self) -> list[str]:
        """The BVH joints the map reads, in first-use order."""
        names: dict[str, None] = {}
        for src in self.joints.values():
            names.update(dict.fromkeys([src] if isinstance(src, str) else src))
        return list(names)

    def weights(self) -> np.ndarray:
        """(22, K) matrix W with smpl = W @ bvh_points, K = len(self.bvh_joints())."""
        cols = {n: k for k, n in enumerate(self.bvh_joints())}
        w = np.zeros((SMPL22.num_joints, len(cols)))
        for s, smpl_name in enumerate(SMPL22.joint_names):
            src = self.joints[smpl_name]
            for name, weight in ({src: 1.0} if isinstance(src, str) else src).items():
                w[s, cols[name]] += weight
        return w


def _cmu() -> BVHSkeletonMap:
    side = {}
    for s, bvh_side in (("l", "Left"), ("r", "Right")):
        side |= {
            f"{s}_hip": f"{bvh_side}UpLeg",
            f"{s}_knee": f"{bvh_side}Leg",
            f"{s}_ankle": f"{bvh_side}Foot",
            f"{s}_foot": f"{bvh_side}ToeBase",
            # CMU's clavicle joint (Left/RightShoulder) has zero length and sits at Spine1, so
            # the collar goes halfway from Spine1 (= spine3 below) to the shoulder, as in the
            # HumanML3D skeleton (spine3→collar 0.137 m, collar→shoulder 0.132 m).
            f"{s}_collar": {"Spine1": 0.5, f"{bvh_side}Arm": 0.5},
            f"{s}_shoulder": f"{bvh_side}Arm",
            f"{s}_elbow": f"{bvh_side}ForeArm",
            f"{s}_wrist": f"{bvh_side}Hand",
        }
    # Spine: CMU has two nearly equal segments Hips→Spine→Spine1 (≈2.1 units each) where SMPL
    # has three, pelvis→spine1→spine2→spine3 = 0.132 + 0.143 + 0.057 m in HumanML3D. Each SMPL
    # spine joint goes at the same fraction of the path as in HumanML3D: spine1 at 0.40 (0.8 of
    # Hips→Spine), spine2 at 0.83 (0.65 of Spine→Spine1), spine3 at 1.0 (Spine1, the thorax
    # the collars hang from). Three distinct points, bent the way the CMU back bends.
    spine = {
        "spine1": {"Hips": 0.2, "Spine": 0.8},
        "spine2": {"Spine": 0.35, "Spine1": 0.65},
        "spine3": "Spine1",
    }
    joints = {"pelvis": "Hips", "neck": "Neck1", "head": "Head"} | spine | side
    # 1 CMU unit = 1/0.45 inch (CMU mocap FAQ).
    return BVHSkeletonMap("cmu", 0.0254 / 0.45, {n: joints[n] for n in SMPL22.joint_names})


#: Named BVH skeletons; the CLI's ``--skeleton`` picks one by name.
BVH_TO_SMPL: dict[str, BVHSkeletonMap] = {"cmu": _cmu()}


def source_fps(bvh: BVH) -> float:
    """The file's frame rate, snapped to a whole number when within 1e-4 of one (``Frame Time:
    0.0333333`` is 30 fps, not 30.00003, so 30→20 fps resampling keeps every third frame)."""
    fps = 1.0 / bvh.frame_time
    return float(round(fps)) if abs(fps - round(fps)) < 1e-4 * fps else fps


def resample_motion(bvh: BVH, fps: float) -> BVH:
    """The same BVH at ``fps``: channels interpolated linearly between neighbouring frames.

    Rotation channels are unwrapped over time first, so an angle crossing ±180° interpolates
    the short way. Interpolating the channels, not the joint positions, keeps every bone
    rigid: positions interpolated between two frames of a fast limb shorten its bones.
    """
    motion = bvh.motion.copy()
    rot_cols = [
        bvh.channel_start[j] + k
        for j, chans in enumerate(bvh.channels)
        for k, name in enumerate(chans)
        if name.lower().endswith("rotation")
    ]
    if rot_cols and len(motion) > 1:
        motion[:, rot_cols] = np.rad2deg(np.unwrap(np.deg2rad(motion[:, rot_cols]), axis=0))
    motion = resample_frames(motion, fps_in=source_fps(bvh), fps_out=fps)
    return dataclasses.replace(bvh, motion=motion, frame_time=1.0 / fps)


def _skeleton(skeleton: str | BVHSkeletonMap) -> BVHSkeletonMap:
    if isinstance(skeleton, BVHSkeletonMap):
        return skeleton
    if skeleton not in BVH_TO_SMPL:
        raise KinemicError(f"unknown BVH skeleton {skeleton!r}; known: {', '.join(BVH_TO_SMPL)}")
    return BVH_TO_SMPL[skeleton]


def bvh_to_smpl(
    path_or_bvh: str | Path | BVH,
    *,
    skeleton: str | BVHSkeletonMap = "cmu",
    fps: float | None = 20.0,
    unit_scale: float | None = None,
) -> np.ndarray:
    """SMPL-22 joints (T', 22, 3) in metres, Y up, floor at y = 0, from a BVH file.

    Forward kinematics, the skeleton's joint map, ``unit_scale`` (default: the named
    skeleton's), linear resampling from the file's frame rate to ``fps`` (``None`` keeps the
    native rate), then a vertical shift putting the lowest foot joint (ankles and toes) of the
    clip at y = 0.
    """
    bvh = path_or_bvh if isinstance(path_or_bvh, BVH) else read_bvh(path_or_bvh)
    skel = _skeleton(skeleton)
    names = skel.bvh_joints()
    missing = [n for n in names if n not in bvh.names]
    if missing:
        raise DataError(
            bvh.path,
            f"the {skel.name!r} skeleton map needs joints {missing}, which this file lacks "
            f"(its joints: {', '.join(bvh.names)})",
        )
    if fps is not None:
        bvh = resample_motion(bvh, fps)
    points = bvh_positions(bvh, joints=names)  # (T, K, 3) file units
    smpl = skel.weights() @ points  # (22, K) @ (T, K, 3) -> (T, 22, 3)
    smpl *= skel.unit_scale if unit_scale is None else unit_scale
    if len(smpl):
        smpl[..., 1] -= smpl[:, FOOT_LEFT + FOOT_RIGHT, 1].min()
    return smpl


# --------------------------------------------------------------------------------------------
# A folder of trials -> HumanML3D layout


@dataclass
class BVHConversionSummary:
    """What :func:`convert_bvh_folder` did. Seconds are joint-frame spans at the output rate."""

    out: Path
    clips: list[str] = field(default_factory=list)
    trials: list[str] = field(default_factory=list)  # converted trials
    skipped: list[SkippedFile] = field(default_factory=list)
    uncaptioned: list[str] = field(default_factory=list)  # clips written without texts/
    seconds_in: float = 0.0  # duration of the converted trials
    seconds_out: float = 0.0  # duration covered by the written clips
    subjects: dict[str, list[str]] = field(default_factory=dict)  # split -> subjects

    def __str__(self) -> str:
        lines = [
            f"wrote {len(self.clips)} clips ({self.seconds_out / 60:.1f} min) from "
            f"{len(self.trials)} trials ({self.seconds_in / 60:.1f} min) to {self.out}",
            "subjects: "
            + "; ".join(f"{k} {', '.join(v) or '-'}" for k, v in self.subjects.items()),
        ]
        if self.uncaptioned:
            lines.append(f"{len(self.uncaptioned)} clips have no caption (no texts/ file)")
        lines += skip_lines(self.skipped, what="trials")
        if any(s.kind == "too-short" for s in self.skipped):
            lines.append(
                "too-short trials are kept with min_seconds=0 (in CMU subjects 01-09 they are "
                "the 12 running trials of 1.07-1.47 s)"
            )
        return "\n".join(lines)


def read_trial_captions(path: str | Path) -> dict[str, str]:
    """{trial: description} from a TSV with a header naming columns ``trial`` and
    ``description`` (like CMU's ``index.tsv``). Empty descriptions are left out."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
    except OSError as e:
        raise DataError(path, f"cannot read the captions table ({e.strerror})") from e
    if not rows or "trial" not in rows[0] or "description" not in rows[0]:
        found = rows[0] if rows else "an empty file"
        raise DataError(
            path, f"expected a header with columns trial and description, found {found}", line=1
        )
    t, d = rows[0].index("trial"), rows[0].index("description")
    out = {}
    for n, row in enumerate(rows[1:], start=2):
        if len(row) <= max(t, d):
            raise DataError(
                path, f"expected {len(rows[0])} tab-separated columns, found {len(row)}", line=n
            )
        if "#" in row[d]:
            raise DataError(path, "a description holds '#', the caption-line separator", line=n)
        if row[d].strip():
            out[row[t].strip()] = " ".join(row[d].split())
    return out


def subject_splits(subjects: Sequence[str]) -> dict[str, list[str]]:
    """Whole subjects per split, decided by each subject's own id so that adding subjects
    never moves an existing one: key = the id as a number (``"05"`` → 5; CRC-32 of the id
    when it is not a number); key % 8 == 2 → val, key % 8 == 5 → test, else train (about
    75/12.5/12.5 %). For CMU 01-09 (no 04): val = 02, test = 05, train = the other six."""
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for s in sorted(set(subjects)):
        key = int(s) if s.isdigit() else zlib.crc32(s.encode("utf-8"))
        out["val" if key % 8 == 2 else "test" if key % 8 == 5 else "train"].append(s)
    return out


def clip_spans(
    num_frames: int, *, max_rows: int = MAX_FRAMES, min_rows: int = 40
) -> list[tuple[int, int]]:
    """Cut T joint frames into [start, stop) spans of at most ``max_rows + 1`` frames.

    Consecutive spans share their boundary frame, so the feature rows (one per frame pair)
    tile the trial without gaps. A trailing span with fewer than ``min_rows`` feature rows is
    dropped, unless it is the whole trial.
    """
    spans = []
    for start in range(0, max(num_frames - 1, 1), max_rows):
        stop = min(start + max_rows + 1, num_frames)
        if stop - start - 1 < min_rows and spans:
            break
        spans.append((start, stop))
    return spans


def trial_ids(src: str | Path, files: Sequence[str | Path]) -> dict[Path, str]:
    """A trial id per BVH file, unique within ``src``, from the file's path relative to it.

    The folders and the file stem are joined by ``_``, leaving out a folder whose name the
    next name starts with (it adds nothing, as CMU's subject folders): ``03/03_04.bvh`` and
    ``03_04.bvh`` give ``03_04``, ``walk/01.bvh`` gives ``walk_01``. The subject is the id up
    to its first ``_``. Two files with one id (also ids that differ only in case, one file on
    some file systems) are a :class:`DataError` naming both.
    """
    src = Path(src)
    out: dict[Path, str] = {}
    owner: dict[str, Path] = {}
    for path in map(Path, files):
        parts = path.relative_to(src).with_suffix("").parts
        kept = [
            part
            for part, after in pairwise(parts)
            if not (after == part or after.startswith(part + "_"))
        ]
        trial = "_".join([*kept, parts[-1]])
        other = owner.setdefault(trial.casefold(), path)
        if other != path:
            raise DataError(
                path,
                f"its trial id {trial!r} is also the id of {other}: clips of one would "
                "overwrite the other's; rename one of the files",
            )
        out[path] = trial
    return out


def convert_bvh_folder(
    src: str | Path,
    out: str | Path,
    *,
    captions: str | Path | None = None,
    skeleton: str | BVHSkeletonMap = "cmu",
    fps: float = 20.0,
    min_seconds: float = 2.0,
    max_frames: int | None = None,
    lenient: bool = False,
    overwrite: bool = False,
) -> BVHConversionSummary:
    """Convert every ``*.bvh`` under ``src`` (recursively) into a HumanML3D-layout dataset.

    Each trial (id from its path, :func:`trial_ids`) becomes SMPL-22 joints at ``fps``
    (:func:`bvh_to_smpl`), cut into clips of at most ``max_frames`` feature rows (default 196,
    HumanML3D's limit; a leftover under 40 rows is dropped) with ids ``<trial>_000``,
    ``<trial>_001``, …; each clip gets its 263-d features (``new_joint_vecs``), the joints
    recovered from them as HumanML3D stores them (``new_joints``, T−1 frames) and the trial's
    description as caption (``texts``).

    captions: TSV with columns ``trial`` (the trial id) and ``description``; ``None`` uses
        ``src/index.tsv`` when present. Trials without a description get no ``texts/`` file
        and are counted.
    min_seconds: trials shorter than this (frames × frame time) are skipped and counted; 0
        keeps all. lenient: skip and count every file with a problem (unreadable, degenerate
        joints) instead of raising on the first.
    out: written complete or not at all (:func:`kinemic.io.conversion.staged_dataset`); an
        existing non-empty ``out`` is an error unless ``overwrite``.
    Splits: ``train/val/test.txt`` by whole subject (the trial id up to its first ``_``), see
    :func:`subject_splits`; ``Mean.npy``/``Std.npy`` are fitted on the train clips.
    """
    from kinemic.features import Normalizer
    from kinemic.io.humanml3d import (
        Caption,
        clip_id_problem,
        tokenize,
        write_clip,
        write_mean_std,
        write_split,
    )

    src, out = Path(src), Path(out)
    files = sorted(src.rglob("*.bvh"))
    if not files:
        raise DataError(src, "no *.bvh files in this folder or below it")
    ids = trial_ids(src, files)
    skel = _skeleton(skeleton)
    if captions is None and (src / "index.tsv").is_file():
        captions = src / "index.tsv"
    texts = {} if captions is None else read_trial_captions(captions)
    max_rows = MAX_FRAMES if max_frames is None else int(max_frames)
    summary = BVHConversionSummary(out=out)
    features_of: dict[str, np.ndarray] = {}
    subject_of: dict[str, str] = {}

    with staged_dataset(out, overwrite=overwrite) as staging:
        for path in tqdm(files, desc="BVH trials", unit="trial", disable=None):
            trial = ids[path]
            try:
                why = clip_id_problem(f"{trial}_000")
                if why is not None:
                    raise DataError(path, f"its trial id cannot name clips: {why}; rename the file")
                bvh = read_bvh(path)
                if bvh.seconds < min_seconds:
                    reason = f"{bvh.seconds:.2f} s < {min_seconds:g} s"
                    summary.skipped.append(SkippedFile(trial, "too-short", reason))
                    continue
                smpl = bvh_to_smpl(bvh, skeleton=skel, fps=fps)
                if len(smpl) < 2:
                    reason = f"{len(smpl)} frame at {fps:g} fps"
                    summary.skipped.append(SkippedFile(trial, "too-short", reason))
                    continue
                spans = clip_spans(len(smpl), max_rows=max_rows)
                encoded = [encode_finite(smpl[a:b], path=path) for a, b in spans]
            except KinemicError as e:
                if not lenient:
                    raise file_error(e, path) from e
                summary.skipped.append(SkippedFile(trial, "broken", skip_reason(e, path)))
                continue
            text = texts.get(trial)
            caps = None if text is None else [Caption(text, tokenize(text))]
            summary.trials.append(trial)
            summary.seconds_in += bvh.seconds
            for k, ((a, b), (features, joints)) in enumerate(zip(spans, encoded, strict=True)):
                clip_id = f"{trial}_{k:03d}"
                write_clip(staging, clip_id, features=features, joints=joints, captions=caps)
                features_of[clip_id] = features
                subject_of[clip_id] = trial.split("_")[0]
                summary.clips.append(clip_id)
                summary.seconds_out += (b - a - 1) / fps
                if caps is None:
                    summary.uncaptioned.append(clip_id)

        if not summary.clips:
            raise nothing_converted(src, summary.skipped, len(files))
        summary.subjects = subject_splits(list(subject_of.values()))
        train = set(summary.subjects["train"])
        for name, subjects in summary.subjects.items():
            write_split(staging, name, [c for c in summary.clips if subject_of[c] in subjects])
        fit = [features_of[c] for c in summary.clips if subject_of[c] in train]
        norm = Normalizer.fit(fit or list(features_of.values()))
        write_mean_std(staging, norm.mean, norm.std)
    return summary
