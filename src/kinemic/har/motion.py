"""How much real and synthetic clips move, per class: a check of a synthetic set that needs no
classifier.

Two figures per clip of joints (T, J, 3) at 20 fps: the *local speed*, the mean speed of the
joints relative to the root (how much the body moves, wherever it goes), and the *travel*, the
root's horizontal distance from the first frame to the last. A generator that settles on the
phase-averaged mean of an action draws a nearly static body (local speed far below the real
clips'); one that confuses "run on the spot" with running covers metres where the real clips
cover one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kinemic.constants import FPS


def local_speed(joints: np.ndarray, fps: float = FPS) -> float:
    """Mean speed (m/s) of the joints relative to the root (joint 0) over the joints and frames
    of one clip (T, J, 3)."""
    if len(joints) < 2:
        raise ValueError(f"local_speed: a clip of {len(joints)} frame(s) has no speed")
    local = joints - joints[:, :1]
    return float(np.linalg.norm(np.diff(local, axis=0), axis=-1).mean() * fps)


def root_travel(joints: np.ndarray) -> float:
    """Horizontal (XZ, Y up) distance in metres of the root from the first frame to the last."""
    return float(np.linalg.norm(joints[-1, 0, [0, 2]] - joints[0, 0, [0, 2]]))


def class_motion(
    clips: Sequence[np.ndarray], labels: Sequence[int], classes: Sequence[int]
) -> list[dict[str, float]]:
    """Per class of ``classes`` (in that order): clip count and mean local speed, travel and
    length in frames of its ``clips``; NaN figures for a class without clips."""
    if len(clips) != len(labels):
        raise ValueError(f"class_motion: {len(clips)} clips but {len(labels)} labels")
    stats = np.array([(local_speed(c), root_travel(c), len(c)) for c in clips]).reshape(-1, 3)
    labels_arr = np.asarray(labels)
    out = []
    for c in classes:
        sel = stats[labels_arr == c]
        mean = sel.mean(0) if len(sel) else np.full(3, np.nan)
        out.append(
            {
                "clips": len(sel),
                "local_speed": float(mean[0]),
                "travel": float(mean[1]),
                "frames": float(mean[2]),
            }
        )
    return out


def split_motion(
    target: str | Path, split: str, synthetic: Sequence[str | Path] = ()
) -> dict[str, object]:
    """:func:`class_motion` of a few-shot split's real training clips, its validation clips and
    each synthetic folder (checked like the protocol checks it), keyed by set name."""
    from kinemic.io.ntu_vibe import NTUVibeDataset
    from kinemic.io.synthetic import read_synthetic

    ds = NTUVibeDataset(target)
    fs = ds.fewshot_split(split)
    names = ds.class_names()
    sets: dict[str, list[dict[str, float]]] = {
        "real (few-shot training)": class_motion(
            [ds.joints(i) for i in fs.train_ids], fs.train_labels, fs.class_list
        ),
        "real (validation)": class_motion(
            [ds.joints(i) for i in fs.val_ids], fs.val_labels, fs.class_list
        ),
    }
    for folder in synthetic:
        s = read_synthetic(folder, fs)
        syn = NTUVibeDataset(s.path)
        sets[f"synthetic ({s.method})"] = class_motion(
            [syn.joints(i) for i in s.ids], s.labels, fs.class_list
        )
    return {"classes": [names[c] for c in fs.class_list], "sets": sets}


def motion_markdown(doc: dict) -> str:
    """The :func:`split_motion` figures as a Markdown table: local speed (m/s) / travel (m)."""
    classes = doc["classes"]
    rows = [
        "| set | " + " | ".join(classes) + " |",
        "|---|" + "---:|" * len(classes),
    ]
    for name, per_class in doc["sets"].items():
        cells = [f"{c['local_speed']:.2f} / {c['travel']:.2f}" for c in per_class]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
