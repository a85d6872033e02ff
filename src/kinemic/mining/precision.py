"""Mining precision on the procedural world, where the true segments of every source are known.

For a target class, the world primitive that moves like it (``kinemic.world.target``:
``TargetClass.primitive``), and each window mined in one of the class's soft positives: the
window is a **hit** when it overlaps a ground-truth segment of that primitive with temporal
IoU ≥ 0.5. Precision = hits / mined windows. Three windows are compared, in the same soft
positives and of the same length:

- **attention**: KineMIC's window (the target-length window of largest summed MIC attention);
- **random**: a window of that length placed uniformly at random in the soft positive. By
  default its precision is the exact expectation, the mean over every possible start (what
  averaging infinitely many draws gives); ``random_draws=N`` averages N seeded draws instead;
- **whole clip**: the soft positive itself as the window (hit when the primitive's segment
  covers at least half of it).

Also reported: **retrieval**, the fraction of soft positives that contain the primitive at all.
A window can only hit inside such a source, so retrieval bounds every precision above; the
"in containing" figures divide by those sources' windows alone and so measure the mining
itself.

Which primitive counts: only the class's main primitive, not its ``variants``. The target
caption names the main action ("A person stretches."); variants are how some performers do it
(stretching by twisting), and a window cut from a source's *twist* segment is not what the
caption retrieved. ``class_primitives(..., variants=True)`` counts them too.

Frame indexing: a segment sidecar (``segments/<id>.json``) indexes the ``frames`` joint frames
the world generated; the stored features (``new_joint_vecs``) and the joints recovered from them
(``new_joints``) have ``frames - 1`` rows, feature row i being the step from frame i to i+1.
Windows are in **feature rows**, half-open ``[start, end)``, as the denoiser sees them; row i
is paired with frame i, so a segment ``[a, b)`` covers rows ``[a, min(b, frames - 1))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinemic.errors import KinemicError
from kinemic.mining.soft_positives import SoftPositives
from kinemic.world.truth import SourceTruth, read_truth

IOU_THRESHOLD = 0.5


def temporal_iou(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Intersection over union of the half-open intervals [a_start, a_end) and [b_start, b_end)
    (0 when both are empty)."""
    inter = max(0.0, min(a_end, b_end) - max(a_start, b_start))
    union = (a_end - a_start) + (b_end - b_start) - inter
    return float(inter / union) if union > 0 else 0.0


def window_hits(
    windows: np.ndarray, segments: np.ndarray, *, threshold: float = IOU_THRESHOLD
) -> np.ndarray:
    """(n,) bool: whether each window (n, 2) [start, end) reaches IoU ≥ ``threshold`` with at
    least one of ``segments`` (m, 2) [start, end). No segments: no hits."""
    w = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    if len(s) == 0:
        return np.zeros(len(w), dtype=bool)
    inter = np.clip(
        np.minimum(w[:, None, 1], s[None, :, 1]) - np.maximum(w[:, None, 0], s[None, :, 0]), 0, None
    )  # (n, m)
    union = (w[:, None, 1] - w[:, None, 0]) + (s[None, :, 1] - s[None, :, 0]) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return (iou >= threshold).any(axis=1)


def random_window_rate(
    length: int,
    rows: int,
    segments: np.ndarray,
    *,
    threshold: float = IOU_THRESHOLD,
    draws: int | None = None,
    rng: np.random.Generator | None = None,
) -> float:
    """The hit rate of a window of ``length`` rows placed uniformly in a clip of ``rows``
    (a window longer than the clip is the clip): the exact mean over all ``rows - length + 1``
    starts, or, with ``draws``, the mean of that many starts drawn from ``rng``."""
    length = max(1, min(int(length), int(rows)))
    if draws is None:
        starts = np.arange(rows - length + 1)
    else:
        if rng is None:
            raise ValueError("random_window_rate: draws needs an rng")
        starts = rng.integers(0, rows - length + 1, size=draws)
    hits = window_hits(np.stack([starts, starts + length], axis=1), segments, threshold=threshold)
    return float(hits.mean())


# ---------------------------------------------------------------------------------------------
# Ground truth


def class_primitives(labels: Sequence[int], *, variants: bool = False) -> list[tuple[str, ...]]:
    """The world primitive(s) that move like each 0-based NTU label: the main primitive, plus
    the variants with ``variants=True``. A label the world does not have is a ``KinemicError``."""
    from kinemic.world.target import CLASSES

    by_label = {c.label: c for c in CLASSES}
    out = []
    for label in labels:
        if label not in by_label:
            known = ", ".join(f"{c.label} ({c.name})" for c in CLASSES)
            raise KinemicError(f"class {label} is not a world target class; known: {known}")
        c = by_label[label]
        out.append(c.primitives if variants else (c.primitive,))
    return out


# ---------------------------------------------------------------------------------------------
# Precision


@dataclass
class ClassPrecision:
    """Counts for one target class (or, in ``MiningPrecision.overall``, all of them)."""

    caption: str
    primitives: tuple[str, ...]
    soft_positives: int  # k
    containing: int  # soft positives with a segment of the primitive
    windows: int  # mined windows
    windows_containing: int  # of which in a containing soft positive
    attention_hits: int | None  # None: no attention windows given
    random_hits: float  # expected hits of the random windows
    whole_hits: int  # soft positives whose whole clip is a hit
    name: str | None = None  # the class's name, when known

    @property
    def retrieval(self) -> float:
        return self.containing / max(self.soft_positives, 1)

    @property
    def attention(self) -> float | None:
        return None if self.attention_hits is None else self.attention_hits / max(self.windows, 1)

    @property
    def random(self) -> float:
        return self.random_hits / max(self.windows, 1)

    @property
    def whole(self) -> float:
        return self.whole_hits / max(self.soft_positives, 1)

    def in_containing(self, hits: float | None) -> float | None:
        """A hit count as a precision over the windows of containing soft positives only."""
        return None if hits is None else hits / max(self.windows_containing, 1)

    def to_json(self) -> dict[str, Any]:
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        out.update(
            retrieval=self.retrieval,
            attention=self.attention,
            random=self.random,
            whole=self.whole,
            attention_in_containing=self.in_containing(self.attention_hits),
            random_in_containing=self.in_containing(self.random_hits),
        )
        return out


@dataclass
class MiningPrecision:
    """Mining precision per class and overall (micro-averaged: all windows pooled)."""

    classes: list[ClassPrecision]
    threshold: float
    random_draws: int | None
    seed: int

    @property
    def overall(self) -> ClassPrecision:
        att = [c.attention_hits for c in self.classes]
        return ClassPrecision(
            "overall",
            tuple(dict.fromkeys(p for c in self.classes for p in c.primitives)),
            *(
                sum(getattr(c, f) for c in self.classes)
                for f in ("soft_positives", "containing", "windows", "windows_containing")
            ),
            None if any(a is None for a in att) else sum(att),  # type: ignore[arg-type]
            sum(c.random_hits for c in self.classes),
            sum(c.whole_hits for c in self.classes),
        )

    def table(self) -> str:
        """A Markdown table (percent): retrieval, then the precision of the attention window
        (when mined), the random window and the whole clip, and the window precisions within
        the soft positives that contain the primitive."""

        def pct(x: float | None) -> str:
            return "—" if x is None else f"{100 * x:.1f}%"

        mined = any(c.attention_hits is not None for c in self.classes)
        head = ["class", "primitive", "soft positives containing it"]
        head += ["attention window"] if mined else []
        head += ["random window", "whole clip"]
        head += ["attention / random in containing" if mined else "random in containing"]
        rows = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
        named = [(c, c.name or c.caption) for c in self.classes]
        overall = self.overall
        for c, name in [*named, (overall, "**overall**")]:
            prims = ", ".join(c.primitives) if c is not overall or len(c.primitives) < 4 else "…"
            cells = [name, prims, f"{c.containing}/{c.soft_positives} ({pct(c.retrieval)})"]
            cells += [pct(c.attention)] if mined else []
            cells += [pct(c.random), pct(c.whole)]
            inside = pct(c.in_containing(c.random_hits))
            if mined:
                inside = f"{pct(c.in_containing(c.attention_hits))} / {inside}"
            rows.append("| " + " | ".join([*cells, inside]) + " |")
        random = (
            "exact mean over all starts"
            if self.random_draws is None
            else (f"{self.random_draws} draws, seed {self.seed}")
        )
        rows.append(
            f"\nhit: temporal IoU ≥ {self.threshold} with a segment of the primitive; "
            f"random window: same length, {random}"
        )
        return "\n".join(rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "random_draws": self.random_draws,
            "seed": self.seed,
            "classes": [c.to_json() for c in self.classes],
            "overall": self.overall.to_json(),
        }


Windows = Mapping[tuple[int, str], np.ndarray | Sequence[int]] | np.ndarray


def _windows_of(windows: Windows, c: int, j: int, clip_id: str) -> np.ndarray:
    """(n, 2) windows of caption row ``c``'s ``j``-th soft positive ``clip_id``."""
    if isinstance(windows, np.ndarray):
        return windows[c, j].reshape(-1, 2)
    return np.asarray(windows.get((c, clip_id), ()), dtype=np.int64).reshape(-1, 2)


def window_lengths(soft: SoftPositives, lengths: Sequence[Sequence[int]]) -> np.ndarray:
    """(C, k) int64: the target length of the window mined in each soft positive, cycling
    through each class's target clip lengths (feature rows) in order: the j-th soft positive of
    class c gets ``lengths[c][j % len(lengths[c])]``."""
    if len(lengths) != len(soft.captions):
        raise KinemicError(f"{len(lengths)} length lists for {len(soft.captions)} classes")
    out = np.zeros(soft.indices.shape, dtype=np.int64)
    for c, ls in enumerate(lengths):
        if len(ls) == 0 or min(ls) < 1:
            raise KinemicError(f"class {c} ({soft.captions[c]!r}) needs target lengths ≥ 1")
        out[c] = np.resize(np.asarray(ls, dtype=np.int64), soft.k)
    return out


def mining_precision(
    source_dir: str | Path,
    soft: SoftPositives,
    class_primitives: Sequence[Sequence[str]],
    windows: Windows | None = None,
    *,
    lengths: np.ndarray | None = None,
    threshold: float = IOU_THRESHOLD,
    random_draws: int | None = None,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> MiningPrecision:
    """Mining precision of ``soft`` (C classes) against the world's ground truth.

    ``class_primitives[c]``: the primitive(s) of caption row ``c``. ``windows``: the mined
    (attention) windows in feature rows [start, end), either a (C, k, 2) array aligned with
    ``soft.indices`` or a mapping (c, source id) -> (n, 2); the random windows take the same
    lengths. Without ``windows`` only retrieval, random and whole-clip figures are computed,
    the random windows having ``lengths`` (C, k) (see ``window_lengths``). ``names``: class
    names for the table (default: the captions).
    """
    if len(class_primitives) != len(soft.captions):
        raise KinemicError(
            f"{len(class_primitives)} primitive lists for {len(soft.captions)} "
            "classes: give one per caption"
        )
    if windows is None and lengths is None:
        raise KinemicError("mining_precision needs the mined windows or the window lengths")
    if isinstance(windows, np.ndarray) and windows.shape[:2] != soft.indices.shape:
        raise KinemicError(
            f"windows {windows.shape} do not match the soft positives "
            f"{soft.indices.shape} (expected (C, k, 2))"
        )
    rng = np.random.default_rng(seed)
    truth: dict[str, SourceTruth] = {}
    classes = []
    for c, caption in enumerate(soft.captions):
        prims = tuple(class_primitives[c])
        n_win = n_win_cont = containing = whole = 0
        att: int | None = 0 if windows is not None else None
        rand = 0.0
        for j, clip_id in enumerate(soft.ids(c)):
            if clip_id not in truth:
                truth[clip_id] = read_truth(source_dir, clip_id)
            gt = truth[clip_id]
            spans = gt.spans(prims)
            contains = len(spans) > 0
            containing += contains
            whole += bool(window_hits(np.array([[0, gt.rows]]), spans, threshold=threshold)[0])
            if windows is not None:
                w = np.clip(_windows_of(windows, c, j, clip_id), 0, gt.rows)
            else:
                assert lengths is not None
                w = np.array([[0, int(lengths[c, j])]])  # only the length matters
            n_win += len(w)
            n_win_cont += len(w) if contains else 0
            if not contains:
                continue
            if att is not None:
                att += int(window_hits(w, spans, threshold=threshold).sum())
            for start, end in w:
                rand += random_window_rate(
                    end - start, gt.rows, spans, threshold=threshold, draws=random_draws, rng=rng
                )
        classes.append(
            ClassPrecision(
                caption,
                prims,
                soft.k,
                containing,
                n_win,
                n_win_cont,
                att,
                rand,
                whole,
                names[c] if names else None,
            )
        )
    return MiningPrecision(classes, threshold, random_draws, seed)
