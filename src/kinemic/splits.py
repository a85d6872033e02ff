"""Draw a few-shot split (``splits/fewshot/S%04d``) from an NTU-VIBE-layout dataset.

Per chosen class, ``shots`` training clips are drawn with ``numpy.random.default_rng(seed)``
from the class's *usable* training clips; validation is every validation clip of the chosen
classes. Training and validation parts come from ``splits/default/<protocol>/`` when present,
otherwise from the clip names (performer ids for xsub, setup ids for xset; mirrors skipped).

A training clip is unusable when

1. its features hold NaN or inf (``non_finite``);
2. it has fewer than ``min_frames`` feature rows (``too_short``);
3. its root moves far beyond its class's typical clip (``outlier``): the mean root speed or the
   largest root distance from the first frame exceeds ``outlier_factor`` × the class median
   (the median floored at 0.01 m/frame and 0.25 m, so a class standing still does not turn
   every step into an outlier). ``outlier_factor=None`` turns this test off.

Every excluded clip is listed with its reason under ``"excluded"`` in ``meta.json``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kinemic.errors import DataError, KinemicError
from kinemic.files import name_problem
from kinemic.io.ntu_names import NTUName, is_train
from kinemic.io.ntu_vibe import PROTOCOLS, FewShotSplit, NTUVibeDataset, write_fewshot_split

SPEED_FLOOR = 0.01  # m/frame: medians below this count as this when judging outliers
EXTENT_FLOOR = 0.25  # m


def sample_fewshot_split(
    root: str | Path,
    *,
    shots: int = 10,
    seed: int = 42,
    classes: Sequence[int | str] | None = None,
    protocol: str = "xsub",
    name: str | None = None,
    min_frames: int = 8,
    outlier_factor: float | None = 4.0,
) -> Path:
    """Sample and write a few-shot split; returns its folder ``root/splits/fewshot/<name>``.

    ``classes``: 0-based class indices, class names from ``ntu_classes.txt`` or tags like
    ``"A099"``; None takes every class that has training clips. ``name=None`` picks the next
    free ``S%04d``; a given name must be one plain folder name (``kinemic.files.name_problem``).
    The same dataset, seed and options always give identical files.
    """
    if protocol not in PROTOCOLS:
        raise KinemicError(f"unknown protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise KinemicError(f"shots must be a whole number of at least 1, found {shots!r}")
    if name is not None and (why := name_problem(name)) is not None:
        raise KinemicError(
            f"split name {name!r}: {why}; a few-shot split is one folder in "
            f"{Path(root) / 'splits' / 'fewshot'}, e.g. S0007"
        )
    ds = NTUVibeDataset(root)
    (train_ids, train_labels), (val_ids, val_labels), source = _parts(ds, protocol)
    class_list = _resolve_classes(ds, classes, train_labels)
    name = _next_free_name(ds) if name is None else name
    folder = ds.root / "splits" / "fewshot" / name
    if folder.exists():
        problem = "a few-shot split of this name exists already: choose another name, delete it, "
        raise DataError(folder, problem + "or leave the name unset to take the next free one")

    by_class: dict[int, list[str]] = {c: [] for c in class_list}
    for clip_id, label in zip(train_ids, train_labels, strict=True):
        if label in by_class:
            by_class[label].append(clip_id)
    rng = np.random.default_rng(seed)
    chosen_ids: list[str] = []
    chosen_labels: list[int] = []
    excluded: dict[str, dict[str, str]] = {}
    for c in class_list:
        candidates = sorted(by_class[c])
        usable, reasons = screen_clips(
            ds, candidates, min_frames=min_frames, outlier_factor=outlier_factor
        )
        if reasons:
            excluded[str(c)] = reasons
        if len(usable) < shots:
            counts = {r: list(reasons.values()).count(r) for r in sorted(set(reasons.values()))}
            raise DataError(
                ds.root,
                f"class {c} ({_class_label(ds, c)}) has {len(usable)} usable training clips but "
                f"{shots} shots were asked: {len(candidates)} clips in the {protocol} training "
                f"part ({source}), excluded {counts or 'none'}. Ask for fewer shots or choose "
                "another class",
            )
        picks = rng.choice(len(usable), size=shots, replace=False)
        chosen_ids += [usable[i] for i in picks]
        chosen_labels += [c] * shots

    keep = set(class_list)
    val = [(i, y) for i, y in zip(val_ids, val_labels, strict=True) if y in keep]
    split = FewShotSplit(
        name=name,
        class_list=class_list,
        seed=seed,
        shots=shots,
        train_ids=chosen_ids,
        train_labels=chosen_labels,
        val_ids=[i for i, _ in val],
        val_labels=[y for _, y in val],
        extra={
            "protocol": protocol,
            "source": source,
            "min_frames": min_frames,
            "outlier_factor": outlier_factor,
            "num_excluded": sum(len(r) for r in excluded.values()),
            "excluded": excluded,
        },
    )
    return write_fewshot_split(ds.root, split, protocol=protocol)


def screen_clips(
    ds: NTUVibeDataset,
    ids: Sequence[str],
    *,
    min_frames: int = 8,
    outlier_factor: float | None = 4.0,
) -> tuple[list[str], dict[str, str]]:
    """Split the clips of one class into usable ids (input order) and ``{id: reason}``.

    Reasons: ``non_finite``, ``too_short`` or ``outlier`` (see the module docstring).
    """
    reasons: dict[str, str] = {}
    stats: dict[str, tuple[float, float]] = {}
    for clip_id in tqdm(ids, desc="screening clips", unit="clip", disable=None, leave=False):
        features = ds.features(clip_id)
        if not np.isfinite(features).all():
            reasons[clip_id] = "non_finite"
        elif len(features) < min_frames:
            reasons[clip_id] = "too_short"
        else:
            stats[clip_id] = _root_motion(ds, clip_id, features)
    if outlier_factor is not None and stats:
        speed_med, extent_med = np.median(np.array(list(stats.values())), axis=0)
        max_speed = outlier_factor * max(float(speed_med), SPEED_FLOOR)
        max_extent = outlier_factor * max(float(extent_med), EXTENT_FLOOR)
        for clip_id, (speed, extent) in stats.items():
            if not (speed <= max_speed and extent <= max_extent):  # NaN counts as an outlier
                reasons[clip_id] = "outlier"
    return [i for i in ids if i not in reasons], reasons


def _root_motion(ds: NTUVibeDataset, clip_id: str, features: np.ndarray) -> tuple[float, float]:
    """(mean root speed in m/frame, largest root distance from the first frame in m)."""
    if (ds.root / "new_joints" / f"{clip_id}.npy").is_file():
        root = ds.joints(clip_id)[:, 0]
    else:
        from kinemic.features import features_to_joints

        root = features_to_joints(features)[:, 0]
    speed = np.linalg.norm(np.diff(root, axis=0), axis=1).mean() if len(root) > 1 else 0.0
    return float(speed), float(np.linalg.norm(root - root[0], axis=1).max())


def _parts(
    ds: NTUVibeDataset, protocol: str
) -> tuple[tuple[list[str], list[int]], tuple[list[str], list[int]], str]:
    """(train ids, labels), (val ids, labels) and where they came from."""
    if ds.has_default_split(protocol):
        train = ds.default_split(protocol, "train")
        val = ds.default_split(protocol, "val")
        return train, val, f"splits/default/{protocol}"
    parts: dict[bool, tuple[list[str], list[int]]] = {True: ([], []), False: ([], [])}
    for clip_id in ds.ids():
        if clip_id.startswith("M"):
            continue  # mirrors: never a separate shot
        try:
            ntu = NTUName.parse(clip_id)
        except DataError as e:
            raise DataError(
                ds.root / "new_joint_vecs" / f"{clip_id}.npy",
                f"no splits/default/{protocol}/ lists, so the {protocol} split is taken from "
                f"the clip names, but {e.problem}",
            ) from None
        ids, labels = parts[is_train(ntu, protocol)]
        ids.append(clip_id)
        labels.append(ntu.label)
    return parts[True], parts[False], f"clip names ({protocol} rule)"


def _class_label(ds: NTUVibeDataset, c: int) -> str:
    names = ds.class_names() if (ds.root / "ntu_classes.txt").is_file() else []
    return f"A{c + 1:03d} {names[c]}" if c < len(names) else f"A{c + 1:03d}"


def _resolve_classes(
    ds: NTUVibeDataset, classes: Sequence[int | str] | None, train_labels: Sequence[int]
) -> list[int]:
    """Sorted, de-duplicated 0-based classes."""
    if classes is None:
        return sorted(set(train_labels))
    if isinstance(classes, (str, int)):
        classes = [classes]
    names_path = ds.root / "ntu_classes.txt"
    names = ds.class_names() if names_path.is_file() else []
    lowered = [n.lower() for n in names]
    out = set()
    for c in classes:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            index = int(c)
        elif isinstance(c, str) and re.fullmatch(r"[Aa]\d{3}", c.strip()):
            index = int(c.strip()[1:]) - 1
        elif isinstance(c, str) and c.strip().lower() in lowered:
            index = lowered.index(c.strip().lower())
        else:
            close = difflib.get_close_matches(str(c).lower(), lowered, n=5, cutoff=0.5)
            hint = f"close matches: {', '.join(repr(names[lowered.index(m)]) for m in close)}"
            raise DataError(
                names_path,
                f"unknown class {c!r}: give a 0-based index, a tag like 'A099' or a name from "
                f"this file; {hint if close else 'no close matches'}",
            )
        if index < 0 or (names and index >= len(names)):
            raise DataError(names_path, f"class {c!r} is not one of the {len(names)} classes here")
        out.add(index)
    return sorted(out)


def _next_free_name(ds: NTUVibeDataset) -> str:
    folder = ds.root / "splits" / "fewshot"
    taken = [int(p.name[1:]) for p in folder.glob("S*") if re.fullmatch(r"S\d{4}", p.name)]
    return f"S{max(taken, default=-1) + 1:04d}"
