"""The prior's quality gate: plausibility flags, single-action clips and the text probe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import standing
from kinemic.prior.quality import (
    captions_by_primitive,
    motion_by_group,
    plausibility,
    single_action_clips,
    text_match,
    text_probe,
)
from kinemic.skeleton import FOOT_LEFT


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


def test_captions_by_primitive_keeps_one_action_captions_only(tiny_world):
    from kinemic.io.humanml3d import HumanML3DDataset
    from kinemic.world.primitives import PRIMITIVES

    source = tiny_world / "source"
    grouped = captions_by_primitive(source, "train")
    assert grouped and set(grouped) <= set(PRIMITIVES)
    data = HumanML3DDataset(source)
    every = [c.text for i in data.split("train") for c in data.captions(i)]
    kept = [t for texts in grouped.values() for t in texts]
    assert 0 < len(kept) < len(every) and all(t in every for t in kept)
    # whole captions of sequences that do two different actions are left out
    mixed = set()
    for clip_id in data.split("train"):
        sidecar = json.loads((source / "segments" / f"{clip_id}.json").read_text())
        if len({s["primitive"] for s in sidecar["segments"]} - {"stand"}) > 1:
            mixed |= {c.text for c in data.captions(clip_id) if c.whole_clip}
    assert mixed and not mixed & set(kept)


class _Words:
    """A bag-of-words text encoder over a fixed vocabulary (the TextEncoder protocol)."""

    name, dim = "words", 6
    vocab = ("kick", "leg", "wave", "hand", "foot", "arm")

    def encode(self, texts):
        return torch.tensor(
            [[float(w in t.split()) for w in self.vocab] for t in texts], dtype=torch.float32
        )


def test_text_match_finds_the_primitive_with_the_nearest_captions():
    seen = {"kick": ["kick leg", "kick foot"], "wave": ["wave hand", "wave arm"]}
    top1, misses = text_match(_Words(), seen, {"kick": ["leg foot"], "wave": ["hand arm"]})
    assert (top1, misses) == (100.0, {})
    # a paraphrase whose words belong to the other primitive is a miss, named with its match
    top1, misses = text_match(_Words(), seen, {"kick": ["leg foot", "hand"], "wave": ["arm"]})
    assert top1 == pytest.approx(100 * 2 / 3) and misses == {"hand": "wave"}
    # an unseen primitive's captions cannot be matched
    top1, misses = text_match(_Words(), seen, {"punch": ["kick"]})
    assert (top1, misses) == (0.0, {"kick": "kick"})
    with pytest.raises(ValueError, match="no seen captions"):
        text_match(_Words(), {}, {"kick": ["leg"]})


class _Judge:
    """Calls a window 'class 0' when its mean pelvis height is above the batch's median: a
    judge that sees every change of the predicted x0's height, with no training."""

    def predict(self, clips):
        heights = np.array([c[:, 0, 1].mean() for c in clips])
        return (heights <= np.median(heights)).astype(int)


def test_text_probe_is_blind_for_a_prior_without_text(tiny_world):
    from kinemic.prior.folder import load_prior

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


def test_motion_by_group_splits_locomotion_from_the_rest():
    still, moving = standing(), standing()
    moving[:, 21, 0] += 0.022 * np.arange(len(moving))  # 0.02 m/s averaged over 22 joints
    groups = motion_by_group([moving, still, still], ["walk", "punch", "wave"])
    assert groups["locomotion"] == pytest.approx(0.02)
    assert groups["other"] == 0.0
    assert np.isnan(motion_by_group([still], ["punch"])["locomotion"])


def test_evaluate_prior_reports_every_figure_on_the_tiny_world(tiny_world):
    from kinemic.prior.quality import evaluate_prior

    report = evaluate_prior(
        "shipped", tiny_world, samples=2, seconds=2.0, ddim=2, judge_epochs=1, progress=False
    )
    assert 0.0 <= report.top1 <= 100.0 and report.samples_per_primitive == 2
    assert set(report.motion) == {
        "samples_locomotion",
        "samples_other",
        "real_locomotion",
        "real_other",
    }
    assert report.motion["samples_other"] > 0.0 and report.motion["real_other"] > 0.0
    assert "local joint speed, other primitives" in report.table()
    assert json.loads(report.to_json())["motion"] == pytest.approx(report.motion, nan_ok=True)
