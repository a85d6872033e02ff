"""The kinematic filter: re-rank KineMIC's text soft positives by how they *move*.

KineMIC picks each target class' source motions ("soft positives") by caption similarity, and
text similarity confuses motions that are named alike but move differently (the paper's own
example: punch and kick; "kicking something" matches every kick). The filter looks at the
motion instead: each candidate source motion is cut into sliding windows of the class' typical
length (the median length of its few-shot clips), every window is embedded by the T-MOR
skeleton encoder, and the candidate's score is its best window's cosine to the class prototype
(the mean embedding of the class' few-shot clips). Candidates are re-ordered by that score;
the best window's start comes along (a window miner of its own).

The motion score alone discards what the caption knew: on world v3, whose target classes are
performed in ways the frozen encoder never saw, re-ranking the caption top-500 by motion alone
gains on the legs (side kick 50 -> 84% precision) and loses on the arms (throw, waving: 20-30
points), 62.0 -> 60.9% on average. So the ranking key is a weighted sum of both scores, each
standardised within the class's candidate pool (:func:`fused_scores`): ``w`` times the motion
z-score plus ``1 - w`` times the caption z-score. With ``w = 0.5`` (equal weights, fixed before
it was measured) the mean precision is 68.2%; ``w = 1`` is the motion ranking alone
(``bench/filter_fusion.py`` scores other weights).

:func:`kinematic_rerank` is what ``kinemic mine`` / ``finetune`` call (through
``kinemic.mining.soft_positives.select_soft_positives``), on the text ranking of
``kinemic.mining.soft_positives.soft_positives``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kinemic.errors import KinemicError
from kinemic.io.humanml3d import HumanML3DDataset
from kinemic.mining.config import DEFAULT_WEIGHT  # the motion score's share of the key
from kinemic.progress import progress_bar
from kinemic.tmor.encoder import window_starts

MIN_WINDOW = 16


@dataclass
class KinematicScores:
    """Per class c and candidate j: ``score[c, j]`` (best window cosine to the class
    prototype), ``start[c, j]`` and ``length[c]`` of that best window (frames of the
    candidate's joints)."""

    score: np.ndarray  # (C, k) float
    start: np.ndarray  # (C, k) int
    length: np.ndarray  # (C,) int


def class_window(clips: Sequence[np.ndarray]) -> int:
    """A class' window length: the median length of its few-shot clips (≥ 16 frames)."""
    return max(MIN_WINDOW, int(np.median([len(c) for c in clips])))


def _source_reader(source_dir, source_ids: Sequence[str]):
    if isinstance(source_dir, (str, Path)):
        ds = HumanML3DDataset(source_dir)
        return lambda i: ds.joints(source_ids[i])
    dirs = list(source_dir)
    if len(dirs) != len(source_ids):
        raise KinemicError(
            f"{len(dirs)} source folders for {len(source_ids)} source ids: give one folder, or "
            "one per id"
        )
    readers = {d: HumanML3DDataset(d) for d in set(map(str, dirs))}
    return lambda i: readers[str(dirs[i])].joints(source_ids[i])


def kinematic_scores(
    encoder,
    source_dir: str | Path | Sequence[str | Path],
    source_ids: Sequence[str],
    candidate_indices: np.ndarray,
    fewshot_joints: Sequence[Sequence[np.ndarray]],
    *,
    stride: int = 4,
    window: int | None = None,
    batch_size: int = 128,
    progress: bool = True,
) -> KinematicScores:
    """Score every candidate (see the module docstring). ``candidate_indices`` (C, k) index
    ``source_ids``; ``fewshot_joints[c]`` is class c's few-shot clips (T, 22, 3); ``window``
    overrides the per-class window length. Window embeddings are computed once per (source
    motion, window length) and shared between classes."""
    from kinemic.tmor.encoder import TMOREncoder, load_tmor

    enc = encoder if isinstance(encoder, TMOREncoder) else load_tmor(encoder)
    cand = np.asarray(candidate_indices)
    if cand.ndim != 2:
        raise KinemicError(f"candidate_indices: expected (classes, k), found shape {cand.shape}")
    if len(fewshot_joints) != len(cand):
        raise KinemicError(
            f"{len(fewshot_joints)} classes of few-shot clips for {len(cand)} rows of candidates"
        )
    if cand.size and (cand.min() < 0 or cand.max() >= len(source_ids)):
        raise KinemicError(f"candidate indices outside 0..{len(source_ids) - 1}")
    for c, clips in enumerate(fewshot_joints):
        if len(clips) == 0:
            raise KinemicError(f"class {c} has no few-shot clips to compare with")
    read = _source_reader(source_dir, source_ids)
    lengths = np.array([window or class_window(clips) for clips in fewshot_joints])
    protos = torch.nn.functional.normalize(
        torch.stack([enc.embed_motions(list(clips)).mean(0) for clips in fewshot_joints]), dim=-1
    )  # (C, E)
    # every (source motion, window length) pair needed, embedded in large batches
    need: dict[tuple[int, int], None] = {}
    for c in range(len(cand)):
        for i in cand[c]:
            need[(int(i), int(lengths[c]))] = None
    joints_cache: dict[int, np.ndarray] = {}
    clips, owner, starts_of = [], [], {}
    for i, w in progress_bar(need, desc="cutting windows", enabled=progress, leave=False):
        if i not in joints_cache:
            joints_cache[i] = read(i)
        j = joints_cache[i]
        starts = window_starts(len(j), min(w, len(j)), stride) if len(j) >= 2 else np.zeros(1, int)
        starts_of[(i, w)] = starts
        for s in starts:
            clips.append(j[s : s + w])
            owner.append((i, w))
    joints_cache.clear()
    z = enc.embed_motions(clips, batch_size=batch_size, progress=progress, desc="source windows")
    rows: dict[tuple[int, int], list[int]] = {}
    for r, key in enumerate(owner):
        rows.setdefault(key, []).append(r)
    score = np.zeros(cand.shape)
    start = np.zeros(cand.shape, dtype=np.int64)
    for c in range(len(cand)):
        for j, i in enumerate(cand[c]):
            key = (int(i), int(lengths[c]))
            sims = (z[rows[key]] @ protos[c]).numpy()
            best = int(sims.argmax())
            score[c, j] = sims[best]
            start[c, j] = starts_of[key][best]
    return KinematicScores(score=score, start=start, length=lengths)


def _standardise(x: np.ndarray) -> np.ndarray:
    """Each row shifted to mean 0 and scaled to standard deviation 1 (a constant row: 0)."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std(axis=-1, keepdims=True)
    centred = x - x.mean(axis=-1, keepdims=True)
    return np.divide(centred, std, out=np.zeros_like(centred), where=std > 1e-12)


def check_weight(weight: float) -> None:
    """Refuse a motion weight outside [0, 1] (before any scoring work)."""
    if not 0.0 <= weight <= 1.0:
        raise KinemicError(
            f"filter weight must be in [0, 1] (the motion score's share), found {weight}"
        )


def fused_scores(
    text: np.ndarray, motion: np.ndarray, weight: float = DEFAULT_WEIGHT
) -> np.ndarray:
    """The ranking key of each candidate (rows: classes): ``weight`` times the motion score
    plus ``1 - weight`` times the caption score, each standardised within its row, so that
    the two cosines, of different spreads, count as the weights say."""
    check_weight(weight)
    text, motion = np.asarray(text), np.asarray(motion)
    if text.shape != motion.shape:
        raise KinemicError(f"text scores {text.shape} and motion scores {motion.shape} differ")
    return weight * _standardise(motion) + (1.0 - weight) * _standardise(text)


def ranking_key(text: np.ndarray | None, motion: np.ndarray, weight: float) -> np.ndarray:
    """What the filter sorts by: the kinematic scores themselves for ``weight`` 1 (the
    motion-only filter, whose keys are cosines; ``text`` may be None), else
    :func:`fused_scores`."""
    return np.asarray(motion) if weight == 1.0 else fused_scores(text, motion, weight)


def kinematic_rerank(
    encoder,
    source_dir: str | Path | Sequence[str | Path],
    source_ids: Sequence[str],
    candidate_indices: np.ndarray,
    fewshot_joints: Sequence[Sequence[np.ndarray]],
    *,
    text_scores: np.ndarray | None = None,
    weight: float = 1.0,
    stride: int = 4,
    window: int | None = None,
    batch_size: int = 128,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Each class' candidates (C, k) re-ordered by their ranking key, best first, and the keys
    (C, k) in that order. The key is the kinematic score (``weight`` 1), or its fusion with
    ``text_scores`` (C, k), the candidates' caption cosines (:func:`fused_scores`). Each row
    is a permutation of the input row (ties keep the text order). ``encoder``: a
    ``TMOREncoder``, a path, or None for the shipped one."""
    check_weight(weight)
    if weight < 1.0 and text_scores is None:
        raise KinemicError("a filter weight below 1 fuses with the caption scores: pass them")
    ks = kinematic_scores(
        encoder,
        source_dir,
        source_ids,
        candidate_indices,
        fewshot_joints,
        stride=stride,
        window=window,
        batch_size=batch_size,
        progress=progress,
    )
    key = ranking_key(text_scores, ks.score, weight)
    order = np.argsort(-key, axis=1, kind="stable")
    cand = np.asarray(candidate_indices)
    return np.take_along_axis(cand, order, 1), np.take_along_axis(key, order, 1)
