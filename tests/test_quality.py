"""The prior's quality gate: plausibility flags, single-action clips and the text probe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kinemic.quality import plausibility, single_action_clips, text_probe
from kinemic.skeleton import FOOT_LEFT


def standing(frames: int = 40) -> np.ndarray:
    """A still body: joints (T, 22, 3) on a 0.1 m grid, toes at the floor."""
    rest = np.stack([np.arange(22) * 0.01, np.linspace(0.0, 1.7, 22), np.zeros(22)], -1)
    return np.repeat(rest[None], frames, axis=0)


def test_plausibility_flags_speed_and_skating_only_where_they_occur():
    assert plausibility(standing()) == (False, False)
    fast = standing()
    fast[20:, 5, 0] += 1.0  # a joint jumps 1 m in one frame: 20 m/s
    assert plausibility(fast) == (True, False)
    skate = standing()
    toe = FOOT_LEFT[1]
    skate[:, toe, 0] += 0.05 * np.arange(len(skate))  # a grounded toe slides 5 cm per frame
    assert plausibility(skate) == (False, True)
    lifted = skate.copy()
    lifted[:, toe, 1] += 0.3  # the same motion in the air is a swing, not a skate
    assert plausibility(lifted) == (False, False)


def test_single_action_clips_are_one_action_windows(tiny_world):
    source = tiny_world / "source"
    windows, names, captions = single_action_clips(source, "train", frames=40)
    assert windows, "the tiny world has single-action training sequences"
    assert len(windows) == len(names) == len(captions)
    assert all(w.shape == (40, 263) for w in windows)
    assert all(captions) and "stand" not in names
    ids = (source / "train.txt").read_text().split()
    single = 0
    for clip_id in ids:
        segments = json.loads((source / "segments" / f"{clip_id}.json").read_text())["segments"]
        length = len(np.load(source / "new_joint_vecs" / f"{clip_id}.npy"))
        single += len([s for s in segments if s["primitive"] != "stand"]) == 1 and length >= 40
    assert len(windows) == single


class _Judge:
    """Calls a window 'class 0' when its mean pelvis height is above the batch's median: a
    judge that sees every change of the predicted x0's height, with no training."""

    def predict(self, clips):
        heights = np.array([c[:, 0, 1].mean() for c in clips])
        return (heights <= np.median(heights)).astype(int)


def test_text_probe_is_blind_for_a_prior_without_text(tiny_world):
    from kinemic.prior import load_prior

    prior = load_prior("shipped")
    windows, _, _ = single_action_clips(tiny_world / "source", "train", frames=40)
    labels = [i % 2 for i in range(len(windows))]
    text = torch.randn(len(windows), prior.denoiser.config.text_dim)
    # the text-free branch does not see the text, and the probe's noise is seeded
    first = text_probe(prior, _Judge(), windows, labels, text)
    second = text_probe(prior, _Judge(), windows, labels, torch.zeros_like(text))
    assert first[1] == second[1]
    assert first == text_probe(prior, _Judge(), windows, labels, text)
    with torch.no_grad():
        prior.denoiser.embed_text.weight.zero_()  # the text projection now ignores the text
    with_text, without = text_probe(prior, _Judge(), windows, labels, text)
    assert with_text == pytest.approx(without)
    assert 0 <= with_text <= 100
