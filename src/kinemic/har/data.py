"""Clips for the HAR protocol: which clips each mode trains on, read and prepared for ST-GCN.

Modes (``../shared/SPEC.md`` §6), for a target dataset (NTU-VIBE layout) and a few-shot split:

- ``real``: the split's few-shot training clips;
- ``gt``: every training clip of the split's classes in the split's default protocol
  (``splits/default/xsub/train``), the ceiling;
- ``synth (<method>)``: the clips of one synthetic folder (``synth.txt`` / ``synth_y.txt``);
- ``mixed (<method>)``: the few-shot clips plus that synthetic folder's clips.

Validation is always the split's validation clips. ``<method>`` is the synthetic folder's
``info.json`` "method" (its folder name when absent; the folder name is appended when two
folders share a method). Plain ``synth`` / ``mixed`` in a mode list mean one mode per
synthetic folder.

Preparation (:func:`prepare_clip`): joints (T, 22, 3) from ``new_joints`` are resampled
uniformly in time to 100 frames by linear interpolation (positions ``linspace(0, T-1, 100)``:
the world's clips are 1.5–4 s at 20 fps, shorter than 100 frames, so this stretches them; it is
deterministic, the same in training and evaluation), then translated so that the pelvis of the
*first* frame is at the origin (``centre="first-frame"``, the default: the clip keeps its own
trajectory, which tells a hop or a run on the spot from standing; ``"per-frame"`` removes all
root motion). HumanML3D-layout joints already face +Z at frame 0, so no rotation is applied.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from kinemic.errors import DataError, KinemicError
from kinemic.io.ntu_vibe import FewShotSplit, NTUVibeDataset
from kinemic.io.synthetic import SyntheticSet, read_synthetic
from kinemic.progress import progress_bar

FRAMES = 100
Centre = Literal["first-frame", "per-frame"]


def uniform_sample(joints: np.ndarray, frames: int = FRAMES) -> np.ndarray:
    """(T, V, C) → (frames, V, C) float32 by linear interpolation at ``linspace(0, T-1, frames)``
    (a one-frame clip is repeated)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or len(joints) == 0:
        raise ValueError(f"expected joints (T, V, C) with T >= 1, found {joints.shape}")
    pos = np.linspace(0.0, len(joints) - 1, frames)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(joints) - 1)
    w = (pos - lo)[:, None, None]
    return (joints[lo] * (1 - w) + joints[hi] * w).astype(np.float32)


def prepare_clip(joints: np.ndarray, frames: int = FRAMES, centre: Centre = "first-frame"):
    """Joints (T, V, 3) → ST-GCN input (frames, V, 3) float32 (module docstring); joint 0 is
    the pelvis (SMPL-22) or SpineBase (Kinect-25)."""
    x = uniform_sample(joints, frames)
    if centre == "first-frame":
        return x - x[:1, :1]
    if centre == "per-frame":
        return x - x[:, :1]
    raise ValueError(f"unknown centring {centre!r}: expected 'first-frame' or 'per-frame'")


@dataclass
class ClipSet:
    """Prepared clips of one training set or of the validation set."""

    ids: list[str]
    x: np.ndarray  # (N, frames, V, 3) float32
    y: np.ndarray  # (N,) int64: index into the split's class list
    synthetic: np.ndarray  # (N,) bool: True for clips from a synthetic folder

    def __len__(self) -> int:
        return len(self.ids)

    def counts(self, num_classes: int) -> list[int]:
        return np.bincount(self.y, minlength=num_classes).tolist()


@dataclass
class ModeSpec:
    """One training mode: its label, kind and (for synth/mixed) synthetic set."""

    label: str
    kind: Literal["real", "gt", "synth", "mixed"]
    synthetic: SyntheticSet | None = None


def resolve_modes(modes: Sequence[str], synthetic: Sequence[SyntheticSet]) -> list[ModeSpec]:
    """Expand ``real``/``gt``/``synth``/``mixed`` and exact labels like ``mixed (kinemic)``."""
    counts = Counter(s.method for s in synthetic)
    names = [s.method if counts[s.method] == 1 else f"{s.method}: {s.path.name}" for s in synthetic]
    specific = {
        f"{kind} ({n})": ModeSpec(f"{kind} ({n})", kind, s)
        for n, s in zip(names, synthetic, strict=True)
        for kind in ("synth", "mixed")
    }
    out: list[ModeSpec] = []
    for mode in modes:
        mode = mode.strip()
        if mode in ("real", "gt"):
            found = [ModeSpec(mode, mode)]
        elif mode in ("synth", "mixed"):
            if not synthetic:
                raise KinemicError(f"mode {mode!r} needs a synthetic set: pass --synthetic DIR")
            found = [v for k, v in specific.items() if v.kind == mode]
        elif mode in specific:
            found = [specific[mode]]
        else:
            have = ", ".join(["real", "gt", "synth", "mixed", *specific])
            raise KinemicError(f"unknown mode {mode!r}: expected one of {have}")
        out += [m for m in found if m.label not in {o.label for o in out}]
    if not out:
        raise KinemicError("no modes to evaluate")
    return out


@dataclass
class ProtocolData:
    """Everything the protocol trains and validates on, prepared."""

    target: Path
    split: FewShotSplit
    class_names: list[str]  # of the split's classes, in class_list order
    val: ClipSet
    train: dict[str, ClipSet]  # mode label -> training set
    modes: list[ModeSpec]

    @property
    def num_classes(self) -> int:
        return len(self.split.class_list)


def gt_clips(ds: NTUVibeDataset, split: FewShotSplit) -> tuple[list[str], list[int]]:
    """Ids and labels of every default-split training clip of the split's classes."""
    protocol = str(split.extra.get("protocol", "xsub"))
    ids, labels = ds.default_split(protocol, "train")
    keep = set(split.class_list)
    pairs = [(i, y) for i, y in zip(ids, labels, strict=True) if y in keep]
    return [i for i, _ in pairs], [y for _, y in pairs]


def load_protocol_data(
    target: str | Path,
    split: str = "S0000",
    *,
    synthetic: Sequence[str | Path] = (),
    modes: Sequence[str] = ("real", "gt"),
    frames: int = FRAMES,
    centre: Centre = "first-frame",
    progress: bool = True,
) -> ProtocolData:
    """Read the split, the synthetic folders and every clip the ``modes`` need, prepared.

    Every input is checked before anything trains (see :func:`read_synthetic`); a clip listed
    by a split but absent, or with joints of the wrong shape or non-finite values, is a
    DataError naming its file.
    """
    ds = NTUVibeDataset(target)
    fs = ds.fewshot_split(split)
    if not fs.val_ids:
        raise DataError(
            ds.root / "splits" / "fewshot" / split, "the split has no validation clips (val.txt)"
        )
    names = ds.class_names()
    missing = [c for c in fs.class_list if c >= len(names)]
    if missing:
        raise DataError(ds.root / "ntu_classes.txt", f"has no names for classes {missing}")
    sets = [read_synthetic(p, fs) for p in synthetic]
    specs = resolve_modes(modes, sets)
    index = {c: i for i, c in enumerate(fs.class_list)}
    cache: dict[tuple[Path, str], np.ndarray] = {}

    def clips(
        root_ds: NTUVibeDataset, ids: Sequence[str], labels: Sequence[int], synth: bool, what: str
    ) -> ClipSet:
        x = np.zeros((len(ids), frames, 22, 3), dtype=np.float32)
        for k, clip_id in enumerate(
            progress_bar(ids, desc=f"reading {what}", enabled=progress, leave=False)
        ):
            key = (root_ds.root, clip_id)
            if key not in cache:
                joints = root_ds.joints(clip_id)
                if not np.isfinite(joints).all():
                    path = root_ds.root / "new_joints" / f"{clip_id}.npy"
                    raise DataError(path, "joints hold NaN or inf values")
                cache[key] = prepare_clip(joints, frames, centre)
            x[k] = cache[key]
        y = np.array([index[v] for v in labels], dtype=np.int64)
        return ClipSet(list(ids), x, y, np.full(len(ids), synth))

    real = clips(ds, fs.train_ids, fs.train_labels, False, "few-shot clips")
    train: dict[str, ClipSet] = {}
    for spec in specs:
        if spec.kind == "real":
            train[spec.label] = real
        elif spec.kind == "gt":
            ids, labels = gt_clips(ds, fs)
            train[spec.label] = clips(ds, ids, labels, False, "training clips")
        else:
            s = spec.synthetic
            assert s is not None
            syn = clips(NTUVibeDataset(s.path), s.ids, s.labels, True, f"synthetic ({s.method})")
            if spec.kind == "mixed":
                syn = ClipSet(
                    real.ids + syn.ids,
                    np.concatenate([real.x, syn.x]),
                    np.concatenate([real.y, syn.y]),
                    np.concatenate([real.synthetic, syn.synthetic]),
                )
            train[spec.label] = syn
    val = clips(ds, fs.val_ids, fs.val_labels, False, "validation clips")
    return ProtocolData(ds.root, fs, [names[c] for c in fs.class_list], val, train, specs)
