"""Synthesis end to end: tiny world -> shipped prior -> finetune (each method) -> synthesize ->
a synthetic split valid under ``kinemic validate``; and composition sampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kinemic.cli import main
from kinemic.errors import KinemicError
from kinemic.finetune.synthesize import matches, plan_samples, synthesize
from kinemic.io.ntu_vibe import NTUVibeDataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("method", ["kinemic", "mdm-ft"])
def test_synthetic_split_is_valid_complete_and_free_of_few_shot_clips(
    method: str, tiny_generators: dict[str, Path], tiny_world: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "synth"
    args = [
        "synthesize",
        "--model",
        str(tiny_generators[method]),
        "--per-class",
        "3",
        "--ddim",
        "4",
        "--batch-size",
        "4",
        "--seed",
        "1",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert main(["validate", str(out)]) == 0, capsys.readouterr().out
    target = NTUVibeDataset(tiny_world / "target")
    fewshot = target.fewshot_split("S0000")
    ids = (out / "synth.txt").read_text().split()
    labels = [int(y) for y in (out / "synth_y.txt").read_text().split()]
    assert len(ids) == len(labels) == 9 and len(set(ids)) == 9
    assert sorted(set(labels)) == [98, 101, 103] and all(labels.count(c) == 3 for c in labels)
    assert not set(ids) & set(fewshot.train_ids + fewshot.val_ids)
    synth = NTUVibeDataset(out)
    captions = target.class_captions()
    for clip_id, label in zip(ids, labels, strict=True):
        assert clip_id.startswith(f"synth_A{label + 1:03d}_")
        shots = zip(fewshot.train_ids, fewshot.train_labels, strict=True)
        real = [len(target.features(i)) for i, y in shots if y == label]
        features = synth.features(clip_id)
        assert min(real) <= len(features) <= max(real) and len(features) in real
        assert np.isfinite(features).all() and set(np.unique(features[:, 259:])) <= {0.0, 1.0}
        assert np.load(out / "new_joints" / f"{clip_id}.npy").shape == (len(features), 22, 3)
        assert [c.text for c in synth.captions(clip_id)] == [captions[label]]
    info = json.loads((out / "info.json").read_text())
    assert info["format"] == "kinemic-synthetic" and info["method"] == method
    assert info["per_class"] == {"98": 3, "101": 3, "103": 3} and info["guidance"] == 2.5
    assert info["sampler"] == "ddim" and info["steps"] == 4 and info["seed"] == 1
    assert info["model"].endswith("step-00000004") and info["split"] == "S0000"
    assert synth.class_names() == target.class_names()
    assert not list(tmp_path.glob(".*partial"))


def test_same_seed_same_clips_and_bad_requests(
    tiny_generators: dict[str, Path], tmp_path: Path
) -> None:
    run = tiny_generators["kinemic"]
    a = synthesize(run, tmp_path / "a", per_class=1, ddim=2, seed=3, progress=False)
    b = synthesize(run, tmp_path / "b", per_class=1, ddim=2, seed=3, progress=False)
    for clip_id in (a / "synth.txt").read_text().split():
        x = np.load(a / "new_joint_vecs" / f"{clip_id}.npy")
        assert np.array_equal(x, np.load(b / "new_joint_vecs" / f"{clip_id}.npy"))
    with pytest.raises(KinemicError, match="not empty"):
        synthesize(run, a, per_class=1, progress=False)
    with pytest.raises(KinemicError, match="exactly one"):
        synthesize(run, tmp_path / "c", per_class=1, oversample=2.0, progress=False)
    with pytest.raises(KinemicError, match="ddim must be in"):
        synthesize(run, tmp_path / "c", per_class=1, ddim=101, progress=False)
    assert not (tmp_path / "c").exists()


def test_matches_tells_a_set_of_these_settings(
    tiny_generators: dict[str, Path], tmp_path: Path
) -> None:
    run = tiny_generators["kinemic"]
    settings = dict(model=run, per_class=1, guidance=2.5, seed=3)
    assert not matches(tmp_path / "set", **settings)  # nothing there yet
    folder = synthesize(
        run, tmp_path / "set", per_class=1, guidance=2.5, seed=3, ddim=2, progress=False
    )
    assert matches(folder, **settings)
    for other in (
        dict(per_class=2),
        dict(guidance=2.0),
        dict(seed=4),
        dict(model=tiny_generators["mdm-ft"]),
    ):
        assert not matches(folder, **{**settings, **other}), other


def test_plan_draws_lengths_of_each_class() -> None:
    rng = np.random.default_rng(0)
    plan = plan_samples({5: [10, 20], 9: [7]}, [5, 9], per_class=None, oversample=2.5, rng=rng)
    assert [c for c, _ in plan] == [0] * 5 + [1] * 3  # ceil(2.5 × shots)
    assert {n for c, n in plan if c == 0} <= {10, 20} and {n for c, n in plan if c == 1} == {7}


def test_composition_blends_an_action_and_a_text(
    tiny_generators: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "compose"
    args = [
        "sample",
        "--model",
        str(tiny_generators["kinemic"]),
        "--action",
        "side kick",
        "--text",
        "a person walks in a circle",
        "--n",
        "2",
        "--ddim",
        "3",
        "--length",
        "30",
        "--no-gif",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    info = json.loads((out / "info.json").read_text())
    assert [(s["action"], s["text"]) for s in info["samples"]] == [
        (1, "a person walks in a circle")
    ] * 2
    assert info["steps"] == 100 and np.load(out / "joints" / "0.npy").shape == (30, 22, 3)
    bad = [
        "sample",
        "--model",
        str(tiny_generators["kinemic"]),
        "--action",
        "moonwalk",
        "--out",
        str(tmp_path / "x"),
    ]
    assert main(bad) == 2
