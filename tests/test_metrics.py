"""Generative metrics: FID, KID, diversity, multimodality, and the evaluator pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kinemic.cli import main
from kinemic.errors import KinemicError
from kinemic.har.metrics import (
    diversity,
    fid,
    generative_metrics,
    kid,
    load_evaluator,
    metrics_markdown,
    multimodality,
    train_evaluator,
)
from kinemic.har.train import HARTrainConfig
from tests.test_protocol import make_synthetic

# small models train fastest, and least disturbed by other jobs, on one thread
pytestmark = pytest.mark.usefixtures("one_thread")


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 8))
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    shifts = [fid(a, a + s) for s in (0.5, 1.0, 2.0)]
    assert shifts == pytest.approx([8 * 0.25, 8 * 1.0, 8 * 4.0], rel=1e-6)  # |Δμ|², same Σ
    assert fid(a, 2 * a) == pytest.approx(8 * (1 + 4 - 2 * 2), rel=0.2)  # Σ: I vs 4I → 8·(√4−1)²
    assert 0 < fid(a, rng.normal(size=(400, 8))) < 0.5  # another draw of the same Gaussian


def test_kid_is_unbiased_near_zero_for_one_distribution():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    same = kid(a, b, subsets=20, subset_size=200, rng=rng)
    shifted = kid(a, b + 0.5, subsets=20, subset_size=200, rng=rng)
    assert abs(same) < 0.02 and shifted > 0.2
    with pytest.raises(KinemicError, match="at least 2"):
        kid(a, a[:1], rng=rng)


def test_diversity_and_multimodality():
    rng = np.random.default_rng(2)
    assert diversity(np.ones((10, 4)), rng=rng) == 0.0
    f = np.concatenate([np.zeros((30, 2)), np.full((30, 2), [3.0, 4.0])])
    labels = np.repeat([0, 1], 30)
    assert diversity(f, pairs=2000, rng=rng) == pytest.approx(2.5, rel=0.1)  # half the pairs: 5
    assert multimodality(f, labels, rng=rng) == 0.0  # within a class, all clips are equal
    f2 = f.copy()
    f2[::2] += 1.0  # half of each class moves: pairs within a class now differ
    assert 0.0 < multimodality(f2, labels, rng=rng) < np.sqrt(2)
    assert np.isnan(multimodality(f[:1], labels[:1], rng=rng))  # one clip: no pair


@pytest.fixture(scope="module")
def evaluator(tiny_world, tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("evaluator") / "ev"
    train = HARTrainConfig(steps=4, min_epochs=1, cpu=True, progress=False)
    train_evaluator(
        tiny_world / "target", "S0000", out, width=0.125, frames=16, train=train, progress=False
    )
    return out


def test_evaluator_folder(evaluator, tiny_world):
    assert (evaluator / "config.json").is_file() and (evaluator / "model.safetensors").is_file()
    ev = load_evaluator(evaluator)
    assert ev.classes == [98, 101, 103] and ev.frames == 16 and ev.model.config.width == 0.125
    assert ev.info["train_clips"] == 60 and ev.info["val_clips"] == 30
    assert 0 <= ev.info["val_top1_final"] <= 100
    x = np.random.default_rng(0).normal(size=(5, 16, 22, 3)).astype(np.float32)
    assert ev.features(x).shape == (5, 32) and ev.predict(x).shape == (5,)
    with pytest.raises(KinemicError, match="already holds an evaluator"):
        train_evaluator(tiny_world / "target", "S0000", evaluator)


def test_generative_metrics(evaluator, tiny_world, tmp_path, one_thread):
    a = make_synthetic(tiny_world, tmp_path / "a", method="kinemic", per_class=5)
    b = make_synthetic(tiny_world, tmp_path / "b", method="mdm-ft", per_class=4)
    doc = generative_metrics(
        evaluator,
        tiny_world / "target",
        "S0000",
        synthetic=[a, b],
        repeats=3,
        kid_subsets=5,
        out=tmp_path / "m",
        json_path=tmp_path / "m.json",
        progress=False,
    )
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads(json.dumps(doc))
    assert [r["name"] for r in doc["rows"]] == ["real (validation)", "kinemic", "mdm-ft"]
    assert doc["sample_size"] == 12 and doc["reference"]["clips"] == 60  # the smallest set
    for row in doc["rows"]:
        for k in ("fid", "kid", "diversity", "multimodality", "accuracy"):
            assert len(row[k]["values"]) == 3 and row[k]["ci95"] >= 0
            assert row[k]["ci95"] == pytest.approx(1.96 * np.std(row[k]["values"]) / np.sqrt(3))
    assert doc["rows"][1]["clips"] == 15 and doc["rows"][1]["fid"]["mean"] >= 0
    md = (tmp_path / "m" / "metrics.md").read_text()
    assert md == metrics_markdown(doc) and "| real (validation) | 30 |" in md
    with pytest.raises(KinemicError, match="trained for classes"):
        generative_metrics(evaluator, tiny_world / "target", "S0001", progress=False)


def test_cli_metrics_trains_the_evaluator_once(tiny_world, tmp_path, capsys, one_thread):
    syn = make_synthetic(tiny_world, tmp_path / "syn", per_class=3)
    argv = [
        "metrics",
        "--evaluator",
        str(tmp_path / "ev"),
        "--target",
        str(tiny_world / "target"),
        "--synthetic",
        str(syn),
        "--repeats",
        "2",
        "--width",
        "0.125",
        "--frames",
        "12",
        "--epochs",
        "1",
        "--cpu",
    ]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "training one" in first and "| fake | 9 |" in first
    assert main(argv) == 0
    assert "training one" not in capsys.readouterr().out
