"""The data of a fine-tune, read and checked before any training: the few-shot target clips of
a split, and the soft-positive source clips of its classes.

Both are normalised with the *prior's* normaliser (the streams share the prior's input space).
Every problem a user can fix raises ``KinemicError`` / ``DataError`` naming the file: an
unknown split, a split that ``kinemic validate`` calls wrong (ids outside the dataset, missing
or listed twice, labels that contradict the ids), classes with fewer clips than the split's
shots, a class without a caption, non-finite features, source clips without captions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from kinemic.errors import DataError, KinemicError
from kinemic.features import Normalizer
from kinemic.io.humanml3d import HumanML3DDataset, parse_cut_clip_id
from kinemic.io.ntu_vibe import NTUVibeDataset
from kinemic.mining.config import FilterConfig

__all__ = ["SourceClips", "TargetClips", "load_sources", "load_targets"]


@dataclass
class TargetClips:
    """The shots of a few-shot split. ``features[i]`` (T_i, 263) normalised; ``labels[i]`` the
    class *index* (0..C−1, the position in ``classes``); ``classes`` the 0-based NTU labels in
    the split's order; ``class_lengths[label]`` the shots' lengths (feature rows)."""

    ids: list[str]
    features: list[np.ndarray]
    labels: np.ndarray
    classes: list[int]
    class_names: list[str]
    class_captions: list[str]
    class_lengths: dict[int, list[int]]

    def class_ids(self) -> list[list[str]]:
        """The shots' ids of each class index."""
        return [
            [i for i, y in zip(self.ids, self.labels, strict=True) if y == c]
            for c in range(len(self.classes))
        ]


@dataclass
class SourceClips:
    """Source clips used as soft positives: ``features[j]`` (T_j, 263) normalised;
    ``captions[j]`` indices into ``text`` (M, E) of the captions the prior stream may be
    conditioned on (whole-clip captions; all captions of a clip that has only sub-clip ones; of
    a cut clip ``<id>#<n>``, soft positives with ``FilterConfig.subclips`` "cut": its one)."""

    ids: list[str]
    features: list[np.ndarray]
    captions: list[np.ndarray]
    text: torch.Tensor


def _finite(path: Path, x: np.ndarray) -> np.ndarray:
    if x.ndim != 2 or len(x) < 1 or not np.isfinite(x).all():
        raise DataError(path, f"unusable features {x.shape}: expected finite (T >= 1, 263) rows")
    return x


def load_targets(target: str | Path, split: str, *, normalizer: Normalizer) -> TargetClips:
    """Read and check the train clips of few-shot ``split`` of an NTU-VIBE folder.

    ``NTUVibeDataset.fewshot_split`` checks the lists as ``kinemic validate`` does (plain ids,
    each once, with features; one label per id, in the split's classes and equal to the id's
    action code − 1); this adds what training needs: the split's shots per class, a name and a
    caption per class, finite features."""
    root = Path(target)
    if not root.is_dir():
        raise KinemicError(f"--target {root}: no such folder (expected an NTU-VIBE layout)")
    ds = NTUVibeDataset(root)
    names = ds.class_names()
    fs = ds.fewshot_split(split)
    listing = root / "splits" / "fewshot" / split / "xsub" / "train.txt"
    if not fs.class_list:
        raise DataError(root / "splits" / "fewshot" / split / "meta.json", "empty class_list")
    counts = {c: fs.train_labels.count(c) for c in fs.class_list}
    short = {c: n for c, n in counts.items() if n < fs.shots}
    if short:
        what = ", ".join(
            f"{c} ({names[c] if c < len(names) else '?'}): {n}" for c, n in short.items()
        )
        raise DataError(
            listing, f"classes with fewer clips than the split's {fs.shots} shots: {what}"
        )
    captions = ds.class_captions()
    meta = root / "ntu_metadata.json"
    for c in fs.class_list:
        if c not in captions or not captions[c].strip():
            raise DataError(meta, f"class {c} (A{c + 1:03d}) has no caption; every class needs one")
        if c >= len(names):
            raise DataError(root / "ntu_classes.txt", f"no name for class {c} (A{c + 1:03d})")
    index = {c: i for i, c in enumerate(fs.class_list)}
    features, lengths = [], {c: [] for c in fs.class_list}
    for clip_id, label in zip(fs.train_ids, fs.train_labels, strict=True):
        path = root / "new_joint_vecs" / f"{clip_id}.npy"
        x = _finite(path, ds.features(clip_id))
        features.append(normalizer.normalize(x).astype(np.float32))
        lengths[label].append(len(x))
    return TargetClips(
        ids=list(fs.train_ids),
        features=features,
        labels=np.array([index[y] for y in fs.train_labels], dtype=np.int64),
        classes=list(fs.class_list),
        class_names=[names[c] for c in fs.class_list],
        class_captions=[captions[c] for c in fs.class_list],
        class_lengths=lengths,
    )


def load_sources(
    source: str | Path,
    class_captions: list[str],
    *,
    encoder,
    k: int,
    normalizer: Normalizer,
    target: str | Path,
    fewshot_ids: list[list[str]],
    filter_config: FilterConfig | None = None,
    progress: bool = True,
) -> tuple[SourceClips, np.ndarray, dict[str, Any]]:
    """The soft positives of each class caption (``kinemic.mining.soft_positives.
    select_soft_positives``: top-k by caption similarity with ``encoder``, or as
    ``filter_config`` selects, e.g. re-ranked by the kinematic filter against the class's shots
    ``fewshot_ids`` of ``target``) and those source clips, read and normalised.

    Returns (clips, positives (C, k) int64 indices into ``clips``, a JSON-able summary with a
    sha256 of the pairing and the filter used)."""
    from kinemic.mining.soft_positives import select_soft_positives
    from kinemic.text import encode_all

    root = Path(source)
    sp = select_soft_positives(
        root,
        class_captions,
        target=target,
        fewshot_ids=fewshot_ids,
        encoder=encoder,
        k=k,
        filter_config=filter_config,
        progress=progress,
    )
    if sp.indices.ndim != 2 or sp.indices.shape[0] != len(class_captions) or sp.k < 1:
        raise KinemicError(
            f"soft positives of {root}: expected ({len(class_captions)}, k) indices, found "
            f"{sp.indices.shape}"
        )
    used = sorted({int(i) for i in sp.indices.ravel()})
    local = {s: j for j, s in enumerate(used)}
    ds = HumanML3DDataset(root)
    ids = [sp.source_ids[s] for s in used]
    features, owners, texts = [], [], {}
    for clip_id in tqdm(ids, desc="reading soft positives", disable=not progress or None):
        stem = (parse_cut_clip_id(clip_id) or (clip_id,))[0]  # a cut clip <id>#<n>: <id>'s files
        path = root / "new_joint_vecs" / f"{stem}.npy"
        features.append(
            normalizer.normalize(_finite(path, ds.features(clip_id))).astype(np.float32)
        )
        caps = ds.captions(clip_id)  # a cut clip's: its one caption, whole-clip for the cut
        chosen = [c.text for c in caps if c.whole_clip] or [c.text for c in caps]
        if not chosen:
            raise DataError(root / "texts" / f"{stem}.txt", "no captions")
        owners.append(np.array([texts.setdefault(t, len(texts)) for t in chosen], dtype=np.int64))
    text = encode_all(encoder, list(texts), progress=progress)
    positives = np.vectorize(local.__getitem__, otypes=[np.int64])(sp.indices)
    digest = hashlib.sha256(positives.tobytes() + "\n".join(ids).encode()).hexdigest()
    info = {
        "k": sp.k,
        "encoder": sp.encoder,
        "split": sp.split,
        "notes": list(sp.notes),
        "filter": sp.filter,
        "clips": len(ids),
        "sha256": digest,
        "top": [sp.ids(c)[:5] for c in range(len(class_captions))],
    }
    return SourceClips(ids, features, owners, text), positives, info
