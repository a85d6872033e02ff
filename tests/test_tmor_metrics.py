"""The arithmetic of T-MOR: the masked InfoNCE, retrieval ranks, AP/mAP, FID, R-precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kinemic.prior.t2m import fid, r_precision
from kinemic.tmor.loss import duplicate_mask, info_nce
from kinemic.tmor.metrics import (
    average_precision,
    batched_recall,
    frame_map,
    linear_probe,
    probe_logits,
    prototypes,
    ranks,
    recall_at,
    retrieval_metrics,
    trivial_frame_map,
)

# ----------------------------------------------------------------------------------- loss


def test_identical_captions_leave_no_false_negatives() -> None:
    torch.manual_seed(0)
    text = F.normalize(torch.randn(1, 8), dim=-1).repeat(6, 1)  # one caption, six clips
    dup = duplicate_mask(text, threshold=0.9)
    assert dup.sum() == 6 * 5 and not dup.diagonal().any()
    a, b = F.normalize(torch.randn(6, 4), dim=-1), F.normalize(torch.randn(6, 4), dim=-1)
    loss = info_nce(a, b, torch.tensor(14.0), ignore=dup)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0, abs=1e-6)
    # without the mask the same batch is punished for what it cannot change
    assert info_nce(a, b, torch.tensor(14.0)).item() > 0.5


def test_masking_removes_exactly_the_duplicates_from_the_denominator() -> None:
    torch.manual_seed(1)
    a, b = F.normalize(torch.randn(4, 5), dim=-1), F.normalize(torch.randn(4, 5), dim=-1)
    text = torch.eye(4)
    text[1] = text[0]  # captions 0 and 1 say the same thing
    ignore = duplicate_mask(text, threshold=0.9, groups=torch.tensor([0, 1, 2, 2]))
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[0, 1] = expected[1, 0] = expected[2, 3] = expected[3, 2] = True
    assert torch.equal(ignore, expected)
    scale = torch.tensor(3.0)
    logits = scale * a @ b.T
    manual = 0.0
    for i in range(4):
        keep = ~ignore[i]
        manual += -logits[i, i] + torch.logsumexp(logits[i][keep], 0)
        keep_c = ~ignore[:, i]
        manual += -logits[i, i] + torch.logsumexp(logits[:, i][keep_c], 0)
    assert info_nce(a, b, scale, ignore=ignore).item() == pytest.approx(manual.item() / 8, rel=1e-5)
    # perfectly aligned pairs at a high scale cost ~nothing; the chance level is log B
    assert info_nce(a, a, torch.tensor(100.0)).item() < 0.05
    z = F.normalize(torch.ones(4, 5), dim=-1)
    assert info_nce(z, z, torch.tensor(10.0)).item() == pytest.approx(math.log(4), rel=1e-5)


# ------------------------------------------------------------------------------ retrieval


def test_ranks_and_recall_on_a_constructed_similarity_matrix() -> None:
    # row i's own column (i) is ranked 1, 2, 3, 1, 5
    sim = np.array(
        [
            [9, 1, 2, 3, 4],
            [5, 4, 1, 2, 3],
            [5, 6, 3, 2, 1],
            [1, 2, 3, 9, 4],
            [5, 6, 7, 8, 0],
        ],
        dtype=float,
    )
    r = ranks(sim)
    assert r.tolist() == [1, 2, 3, 1, 5]
    m = recall_at(r, ks=(1, 2, 5))
    assert m["R@1"] == 40.0 and m["R@2"] == 60.0 and m["R@5"] == 100.0
    assert m["median_rank"] == 2.0 and m["mean_rank"] == pytest.approx(2.4)
    both = retrieval_metrics(sim, ks=(1,))
    assert both["t2m"]["R@1"] == 40.0
    assert ranks(sim.T).tolist() == [1, 3, 2, 1, 5]  # columns as queries
    assert both["m2t"]["R@1"] == 40.0
    # counting a near-duplicate (row 2 <-> column 1) as correct lifts row 2 to rank 1
    rel = np.zeros((5, 5), dtype=bool)
    rel[2, 1] = True
    assert ranks(sim, rel).tolist() == [1, 2, 1, 1, 5]


def test_batched_recall_uses_groups_of_32() -> None:
    n = 70  # two groups of 32; the last 6 pairs are dropped
    sim = np.eye(n)
    out = batched_recall(sim, batch=32, seed=0)
    assert out["t2m"]["R@1"] == 100.0 and out["m2t"]["median_rank"] == 1.0
    # within a group of 32 a random matrix cannot rank worse than 32
    rnd = np.random.default_rng(0).normal(size=(n, n))
    worst = batched_recall(-np.eye(n) * 100 + rnd * 0, batch=32, seed=0)
    assert worst["t2m"]["median_rank"] == 32.0 and worst["t2m"]["R@10"] == 0.0
    with pytest.raises(ValueError, match="at least 32"):
        batched_recall(np.eye(10))


# ---------------------------------------------------------------------------- detection


def test_average_precision_and_frame_map() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert average_precision(scores, np.array([1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(scores, np.array([1, 1, 0, 0])) == pytest.approx(1.0)
    assert average_precision(np.ones(8), np.array([1, 0, 0, 0, 1, 0, 0, 0])) == 0.25  # ties
    assert math.isnan(average_precision(scores, np.zeros(4)))
    # 6 frames, 3 classes; class 2 never occurs and is left out of the mean
    labels = np.array([0, 0, 0, 1, 1, 0])
    perfect = np.eye(3)[labels]
    m, aps = frame_map(perfect, labels)
    assert m == 1.0 and np.isnan(aps[2])
    swapped = np.eye(3)[1 - labels]
    m, aps = frame_map(swapped, labels, num_classes=3)
    # class 0 (4 frames) ranked below both class-1 frames: AP = 4/6 at recall 1
    assert aps[0] == pytest.approx(4 / 6) and aps[1] == pytest.approx(2 / 6)
    assert trivial_frame_map(labels, 3) == pytest.approx((4 / 6 + 2 / 6) / 2)
    constant = np.tile([0.7, 0.2, 0.1], (6, 1))
    assert frame_map(constant, labels)[0] == pytest.approx(trivial_frame_map(labels, 3))


# ------------------------------------------------------------------- probes and t2m metrics


def test_probe_and_prototypes_separate_separable_classes() -> None:
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    y = torch.arange(3).repeat_interleave(10)
    x = F.normalize(centres[y] + 0.1 * torch.randn(30, 8, generator=g), dim=-1)
    head = linear_probe(x, y, 3)
    assert (probe_logits(head, x).argmax(1) == y).all()
    p = prototypes(x, y, 3)
    assert ((x @ p.T).argmax(1) == y).all()


def test_fid_and_r_precision() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fid(a, a + np.array([2.0, 0, 0, 0])) == pytest.approx(4.0, abs=1e-6)
    text = rng.normal(size=(64, 4))
    assert r_precision(text + 1e-3, text) == [100.0, 100.0, 100.0]
    shuffled = r_precision(text[::-1].copy(), text, top=3)
    assert shuffled[0] < 20.0 and shuffled[0] <= shuffled[1] <= shuffled[2]
