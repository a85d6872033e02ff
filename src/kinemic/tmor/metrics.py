"""The arithmetic of the T-MOR evaluations: retrieval ranks, average precision, probes.

Pure functions of arrays, so each is tested on constructed examples with known answers.

- Retrieval: ``sim`` (N, N) with queries as rows and the matching item of query i in column i.
  The rank of a query is 1 + the number of *non-relevant* items scoring strictly higher than
  its best relevant item (``relevant`` (N, N) bool marks extra correct answers, e.g.
  near-duplicate captions; default: the diagonal only). Recall@k = share of queries with rank ≤
  k. The HumanML3D protocol ranks within batches of 32 (:func:`batched_recall`): a seeded
  shuffle, groups of 32 (an incomplete last group is dropped, as there), mean over groups.
- Average precision (:func:`average_precision`) is computed over distinct score thresholds, so
  tied scores count together and a constant score gets exactly the class' prevalence (the
  trivial baseline). Per-frame mAP (:func:`frame_map`) averages AP over the classes present.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def ranks(sim: np.ndarray, relevant: np.ndarray | None = None) -> np.ndarray:
    """(N,) 1-based rank of each row's best relevant column (see the module docstring)."""
    sim = np.asarray(sim, dtype=np.float64)
    n, m = sim.shape
    rel = np.eye(n, m, dtype=bool) if relevant is None else np.asarray(relevant, dtype=bool)
    if rel.shape != sim.shape:
        raise ValueError(f"relevant {rel.shape} does not match sim {sim.shape}")
    rel = rel | np.eye(n, m, dtype=bool)
    best = np.where(rel, sim, -np.inf).max(1)  # (N,)
    above = (sim > best[:, None]) & ~rel
    return above.sum(1) + 1


def recall_at(rank: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``{"R@k": percent of ranks <= k}`` plus ``median_rank`` and ``mean_rank``."""
    rank = np.asarray(rank)
    out = {f"R@{k}": float((rank <= k).mean() * 100) for k in ks}
    out["median_rank"] = float(np.median(rank))
    out["mean_rank"] = float(rank.mean())
    return out


def retrieval_metrics(
    sim: np.ndarray, relevant: np.ndarray | None = None, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, dict[str, float]]:
    """Text→motion (rows of ``sim`` = texts) and motion→text (columns) recall and ranks."""
    sim = np.asarray(sim)
    rel_t = None if relevant is None else np.asarray(relevant).T
    return {
        "t2m": recall_at(ranks(sim, relevant), ks),
        "m2t": recall_at(ranks(sim.T, rel_t), ks),
    }


def batched_recall(
    sim: np.ndarray,
    relevant: np.ndarray | None = None,
    *,
    batch: int = 32,
    seed: int = 0,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, dict[str, float]]:
    """Retrieval within groups of ``batch`` pairs (seeded shuffle; the incomplete last group is
    dropped), metrics averaged over groups. Needs at least ``batch`` pairs."""
    n = len(sim)
    if n < batch:
        raise ValueError(f"batched retrieval needs at least {batch} pairs, found {n}")
    order = np.random.default_rng(seed).permutation(n)
    groups = [order[a : a + batch] for a in range(0, n - batch + 1, batch)]
    per = []
    for g in groups:
        sub = np.asarray(sim)[np.ix_(g, g)]
        rel = None if relevant is None else np.asarray(relevant)[np.ix_(g, g)]
        per.append(retrieval_metrics(sub, rel, ks))
    return {
        d: {k: float(np.mean([p[d][k] for p in per])) for k in per[0][d]} for d in ("t2m", "m2t")
    }


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """AP of ``scores`` (N,) for the boolean ``positive`` (N,): Σ (R_n − R_{n−1}) P_n over
    distinct thresholds, high to low. NaN when there is no positive."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    total = positive.sum()
    if total == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order]
    tp = np.cumsum(p)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tp_at, n_at = tp[last], last + 1
    recall = tp_at / total
    precision = tp_at / n_at
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def frame_map(
    scores: np.ndarray, labels: np.ndarray, *, num_classes: int | None = None
) -> tuple[float, np.ndarray]:
    """Per-frame mAP: scores (F, C), labels (F,) int in [0, C). Returns (mean AP over the
    classes that occur, AP per class (C,) with NaN for absent classes)."""
    scores = np.asarray(scores)
    c = scores.shape[1] if num_classes is None else num_classes
    aps = np.array([average_precision(scores[:, k], labels == k) for k in range(c)])
    present = ~np.isnan(aps)
    if not present.any():
        raise ValueError("no class occurs in labels")
    return float(aps[present].mean()), aps


def trivial_frame_map(labels: np.ndarray, num_classes: int) -> float:
    """mAP of a constant score (predicting every frame to be the most frequent class — or any
    constant): each class' AP is its prevalence, so this is the mean prevalence of the classes
    that occur."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    present = counts > 0
    return float((counts[present] / len(labels)).mean())


def linear_probe(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    *,
    l2: float = 1e-3,
    steps: int = 100,
    seed: int = 0,
) -> torch.nn.Linear:
    """A multinomial logistic regression on features x (N, E) with labels y (N,), fitted by
    full-batch L-BFGS with an L2 penalty ``l2`` on the weights. Features are used as given
    (T-MOR embeddings are unit vectors; the probe scales them by 10 inside: ``probe_logits``)."""
    gen = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.01, generator=gen)
        head.bias.zero_()
    x, y = x.float(), y.long()
    opt = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x * PROBE_SCALE), y)
        loss = loss + l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return head


PROBE_SCALE = 10.0


def probe_logits(head: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return head(x.float() * PROBE_SCALE)


def prototypes(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Unit class means (C, E) of unit features x (N, E) with labels y (N,) in [0, C)."""
    protos = torch.zeros(num_classes, x.shape[1])
    protos.index_add_(0, y.long(), x.float())
    return torch.nn.functional.normalize(protos, dim=-1)


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95% half-width (1.96·σ/√n; 0 for one value)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(1.96 * v.std(ddof=1) / np.sqrt(len(v)))
