"""How much the kinematic filter helps KineMIC on the world, where the truth is known.

For each target class of a few-shot split: the text soft positives (the ``pool`` source
motions of highest caption similarity to the class caption) are re-ranked by
:func:`~kinemic.mining.kinematic_filter.kinematic_scores` against the class' few-shot clips,
fused with the caption score by the motion weight
(:func:`kinemic.mining.kinematic_filter.fused_scores`; 1: motion alone), as
``kinemic finetune --filter kinematic`` does. Figures, per class and averaged over classes:

- **soft-positive precision@k**: the share of a class' k kept source motions whose
  ground-truth segments (``source/segments/<id>.json``) contain the class' primitive
  (``kinemic.world.target.CLASSES``) — text top-k before, re-ranked pool top-k after; with
  ``pool == k`` the set is unchanged and only the order moves, so precision at k/5 is given
  too;
- **window precision**: the share of kept motions whose best T-MOR window overlaps a segment of
  the primitive with IoU ≥ 0.5, against a random window of the same length in the same motion
  (KineMIC's "mining precision", computed for the filter's windows).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kinemic.errors import DataError, KinemicError
from kinemic.io.ntu_vibe import NTUVibeDataset

if TYPE_CHECKING:
    from kinemic.mining.kinematic_filter import KinematicScores


@dataclass
class FilterReport:
    """Precisions in percent, per class name and their mean (``"mean"``)."""

    k: int
    pool: int
    weight: float  # the motion score's share of the ranking key
    text_precision: dict[str, float]
    filtered_precision: dict[str, float]
    text_precision_top: dict[str, float]  # precision@(k // 5) of the text order
    filtered_precision_top: dict[str, float]  # ... of the re-ranked order
    window_precision: dict[str, float]
    random_window_precision: dict[str, float]
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        top = max(1, self.k // 5)
        rows = [
            f"| class | text P@{self.k} | filtered P@{self.k} (pool {self.pool}, motion weight "
            f"{self.weight:g}) | text P@{top} | "
            f"filtered P@{top} | best-window P (IoU≥0.5) | random window |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name in self.text_precision:
            rows.append(
                f"| {name} | {self.text_precision[name]:.1f} | {self.filtered_precision[name]:.1f}"
                f" | {self.text_precision_top[name]:.1f} | {self.filtered_precision_top[name]:.1f}"
                f" | {self.window_precision[name]:.1f} | {self.random_window_precision[name]:.1f} |"
            )
        return "\n".join(rows)


def _iou(a0: int, a1: int, b0: int, b1: int) -> float:
    inter = max(0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0 else 0.0


@dataclass
class FilterCandidates:
    """A split's text soft-positive pools on a world, scored both ways, with the truth: per
    class row r (``classes[r]``, ``names[r]``), ``indices[r]`` into ``source_ids`` in text
    order, ``text_scores[r]`` and ``kinematic`` scores aligned with them, and ``hits[r]`` True
    where the candidate's ground-truth segments contain the class's primitive; ``segments``
    maps each candidate index to its segments."""

    classes: list[int]
    names: list[str]
    primitives: list[str]
    source_ids: list[str]
    indices: np.ndarray  # (C, pool)
    text_scores: np.ndarray  # (C, pool)
    kinematic: KinematicScores
    hits: np.ndarray  # (C, pool) bool
    segments: dict[int, list[dict]]


def score_candidates(
    world: str | Path,
    *,
    encoder=None,
    split: str = "S0001",
    pool: int = 1000,
    stride: int = 8,
    progress: bool = True,
) -> FilterCandidates:
    """Text top-``pool`` of each class of ``split`` on the world folder ``world``, their
    kinematic scores against the class's shots, and which contain the class's primitive."""
    from kinemic.mining.kinematic_filter import kinematic_scores
    from kinemic.mining.soft_positives import soft_positives
    from kinemic.tmor.encoder import TMOREncoder, load_tmor
    from kinemic.world.target import class_of

    world = Path(world)
    source, target = world / "source", world / "target"
    enc = encoder if isinstance(encoder, TMOREncoder) else load_tmor(encoder)
    ds = NTUVibeDataset(target)
    fs = ds.fewshot_split(split)
    classes = list(fs.class_list)
    captions = ds.class_captions()
    names = ds.class_names()
    shots = [
        [ds.joints(i) for i, y in zip(fs.train_ids, fs.train_labels, strict=True) if y == c]
        for c in classes
    ]
    text = soft_positives(
        source,
        [captions[c] for c in classes],
        encoder=enc.text_spec["name"],
        k=pool,
        progress=progress,
    )
    ids, cand = text.source_ids, text.indices
    segs = {}
    for i in {int(x) for x in cand.ravel()}:
        path = source / "segments" / f"{ids[i]}.json"
        if not path.is_file():
            raise DataError(path, "missing segment sidecar: the filter figures need a world source")
        segs[i] = json.loads(path.read_text(encoding="utf-8"))["segments"]
    ks = kinematic_scores(enc, source, ids, cand, shots, stride=stride, progress=progress)
    prims = [class_of(c + 1).primitive for c in classes]
    hits = np.array(
        [
            [any(s["primitive"] == prim for s in segs[int(i)]) for i in row]
            for prim, row in zip(prims, cand, strict=True)
        ]
    )
    return FilterCandidates(
        classes, [names[c] for c in classes], prims, ids, cand, text.scores, ks, hits, segs
    )


def evaluate_filter(
    world: str | Path,
    *,
    encoder=None,
    split: str = "S0001",
    k: int = 250,
    pool: int | None = None,
    weight: float | None = None,
    stride: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> FilterReport:
    """The figures of the module docstring on the world folder ``world`` (source/ + target/);
    ``pool`` defaults to 2k and ``weight`` to the filter's default, as in ``finetune``."""
    from kinemic.mining.kinematic_filter import DEFAULT_WEIGHT, check_weight, ranking_key
    from kinemic.tmor.encoder import TMOREncoder, load_tmor

    pool = 2 * k if pool is None else pool
    weight = DEFAULT_WEIGHT if weight is None else weight
    if pool < k:
        raise KinemicError(f"pool ({pool}) must be at least k ({k})")
    check_weight(weight)
    enc = encoder if isinstance(encoder, TMOREncoder) else load_tmor(encoder)
    fc = score_candidates(
        world, encoder=enc, split=split, pool=pool, stride=stride, progress=progress
    )
    cand, segs, ks = fc.indices, fc.segments, fc.kinematic
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {
        key: {} for key in ("text", "filtered", "text_top", "filtered_top", "window", "random")
    }
    top = max(1, k // 5)
    key = ranking_key(fc.text_scores, ks.score, weight)
    for row, (name, prim) in enumerate(zip(fc.names, fc.primitives, strict=True)):
        has = fc.hits[row]
        order = np.argsort(-key[row], kind="stable")
        out["text"][name] = 100 * has[:k].mean()
        out["filtered"][name] = 100 * has[order[:k]].mean()
        out["text_top"][name] = 100 * has[:top].mean()
        out["filtered_top"][name] = 100 * has[order[:top]].mean()
        win, rnd = [], []
        w = int(ks.length[row])
        for j in order[:k]:
            i = int(cand[row, j])
            length = max(s["end"] for s in segs[i])
            ww = min(w, length)
            good = [(s["start"], s["end"]) for s in segs[i] if s["primitive"] == prim]
            a = int(ks.start[row, j])
            r = int(rng.integers(0, length - ww + 1))
            win.append(any(_iou(a, a + ww, s, e) >= 0.5 for s, e in good))
            rnd.append(any(_iou(r, r + ww, s, e) >= 0.5 for s, e in good))
        out["window"][name] = 100 * float(np.mean(win))
        out["random"][name] = 100 * float(np.mean(rnd))
    for d in out.values():
        d["mean"] = float(np.mean(list(d.values())))
    return FilterReport(
        k=k,
        pool=pool,
        weight=weight,
        text_precision=out["text"],
        filtered_precision=out["filtered"],
        text_precision_top=out["text_top"],
        filtered_precision_top=out["filtered_top"],
        window_precision=out["window"],
        random_window_precision=out["random"],
        settings={
            "encoder": str(enc.path),
            "world": str(Path(world)),
            "split": split,
            "stride": stride,
            "seed": seed,
        },
    )
