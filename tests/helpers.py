"""Helpers shared by several test modules (importable: pytest puts tests/ on the path)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from kinemic.io.ntu_vibe import NTUVibeDataset


def standing(frames: int = 40) -> np.ndarray:
    """A still body: joints (T, 22, 3) on a 0.1 m grid, toes at the floor."""
    rest = np.stack([np.arange(22) * 0.01, np.linspace(0.0, 1.7, 22), np.zeros(22)], -1)
    return np.repeat(rest[None], frames, axis=0)


def make_synthetic(
    world: Path,
    out: Path,
    *,
    method: str = "fake",
    per_class: int = 4,
    split: str = "S0000",
    labels: list[int] | None = None,
) -> Path:
    """A synthetic folder in the contract's layout, made of real training clips of the split's
    classes that are not few-shot clips (a stand-in for ``kinemic synthesize``)."""
    ds = NTUVibeDataset(world / "target")
    fs = ds.fewshot_split(split)
    ids, ys = ds.default_split("xsub", "train")
    ids_out, ys_out = [], []
    for c in labels if labels is not None else fs.class_list:
        pool = [i for i, y in zip(ids, ys, strict=True) if y == c and i not in fs.train_ids]
        for k, src in enumerate(pool[:per_class]):
            new = f"synth_A{c + 1:03d}_{k:05d}"
            for sub in ("new_joint_vecs", "new_joints"):
                (out / sub).mkdir(parents=True, exist_ok=True)
                shutil.copy(ds.root / sub / f"{src}.npy", out / sub / f"{new}.npy")
            ids_out.append(new)
            ys_out.append(c)
    (out / "synth.txt").write_text("".join(f"{i}\n" for i in ids_out))
    (out / "synth_y.txt").write_text("".join(f"{y}\n" for y in ys_out))
    info = {"format": "kinemic-synthetic", "version": 1, "method": method, "split": split}
    (out / "info.json").write_text(json.dumps(info))
    return out
