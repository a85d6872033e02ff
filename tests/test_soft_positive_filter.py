"""The kinematic filter as a soft-positive selection: ``select_soft_positives``, ``kinemic mine
--filter`` and ``kinemic finetune --filter`` (tiny world, the shipped T-MOR encoder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kinemic.cli import main
from kinemic.errors import KinemicError
from kinemic.finetune.config import FinetuneConfig
from kinemic.finetune.run import finetune
from kinemic.io.ntu_vibe import NTUVibeDataset
from kinemic.mining.config import FilterConfig
from kinemic.mining.kinematic_filter import fused_scores, kinematic_scores
from kinemic.mining.soft_positives import select_soft_positives, soft_positives
from kinemic.prior.folder import SHIPPED_PRIOR

pytestmark = pytest.mark.usefixtures("one_thread")

KINEMATIC = {"name": "kinematic", "pool": 12, "encoder": None, "weight": 0.5}
KINEMATIC_CONFIG = {"kind": "kinematic", "pool": 12, "encoder": None, "weight": 0.5}
# the source options at their defaults, as a run's config.json records them
SOURCE_DEFAULTS = {
    "subclips": "include",
    "min_frames": None,
    "max_frames": None,
    "text_tokens": None,
}


def _classes(world: Path) -> tuple[list[str], list[list[str]]]:
    """The class captions of split S0000 and each class's shots."""
    target = NTUVibeDataset(world / "target")
    fs = target.fewshot_split("S0000")
    captions = target.class_captions()
    shots = [
        [i for i, y in zip(fs.train_ids, fs.train_labels, strict=True) if y == c]
        for c in fs.class_list
    ]
    return [captions[c] for c in fs.class_list], shots


def test_kinematic_selection_keeps_k_of_the_reranked_caption_pool(tiny_world, tmp_path) -> None:
    captions, shots = _classes(tiny_world)
    source = tiny_world / "source"
    opts = dict(encoder="hash-64", cache_dir=tmp_path, progress=False)
    pick = dict(target=tiny_world / "target", fewshot_ids=shots, **opts)
    text = soft_positives(source, captions, k=12, **opts)
    kinematic = FilterConfig(kind="kinematic", pool=12)
    kin = select_soft_positives(source, captions, k=6, filter_config=kinematic, **pick)
    assert kin.k == 6 and kin.source_ids == text.source_ids and kin.filter == KINEMATIC
    for row, pool in zip(kin.indices, text.indices, strict=True):
        assert len(set(row.tolist())) == 6 and set(row.tolist()) <= set(pool.tolist())
    assert not np.array_equal(kin.indices, text.indices[:, :6])  # the filter changes the pick
    assert (np.diff(kin.scores, axis=1) <= 1e-6).all()  # best kinematic score first
    assert kin.to_json()["filter"] == KINEMATIC
    # the default pool is 2k; the caption ranking is the "none" selection
    default_pool = FilterConfig(kind="kinematic")
    again = select_soft_positives(source, captions, k=6, filter_config=default_pool, **pick)
    np.testing.assert_array_equal(again.indices, kin.indices)
    none = select_soft_positives(source, captions, k=6, **pick)
    np.testing.assert_array_equal(none.indices, text.indices[:, :6])
    assert none.filter == {"name": "none"}
    # the order is the fused key: half the standardised motion score, half the caption score
    fewshot = [[NTUVibeDataset(tiny_world / "target").joints(i) for i in ids] for ids in shots]
    motion = kinematic_scores(
        None, source, text.source_ids, text.indices, fewshot, progress=False
    ).score
    z = lambda x: (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)  # noqa: E731
    key = 0.5 * z(motion) + 0.5 * z(text.scores.astype(np.float64))
    expect = np.take_along_axis(text.indices, np.argsort(-key, 1, kind="stable")[:, :6], 1)
    np.testing.assert_array_equal(kin.indices, expect)
    # weight 1 ranks by motion alone; weight 0 keeps the caption order
    alone = select_soft_positives(
        source,
        captions,
        k=6,
        filter_config=FilterConfig(kind="kinematic", pool=12, weight=1.0),
        **pick,
    )
    expect = np.take_along_axis(text.indices, np.argsort(-motion, 1, kind="stable")[:, :6], 1)
    np.testing.assert_array_equal(alone.indices, expect)
    np.testing.assert_allclose(alone.scores, -np.sort(-motion, 1)[:, :6], rtol=1e-6)
    assert alone.filter["weight"] == 1.0
    caption = select_soft_positives(
        source,
        captions,
        k=6,
        filter_config=FilterConfig(kind="kinematic", pool=12, weight=0.0),
        **pick,
    )
    np.testing.assert_array_equal(caption.indices, text.indices[:, :6])
    # k and the pool are capped at the 48 train motions, with notes
    big = select_soft_positives(source, captions, k=40, filter_config=default_pool, **pick)
    assert big.k == 40 and big.filter["pool"] == 48
    assert big.notes == ["filter pool 80 capped at the 48 motions of split 'train'"]
    # only the caption embeddings are cached, never a selection
    assert len(list(tmp_path.rglob("*.safetensors"))) == 1


def test_bad_filter_settings_are_refused(tiny_world, tmp_path) -> None:
    captions, shots = _classes(tiny_world)
    pick = dict(
        target=tiny_world / "target",
        fewshot_ids=shots,
        encoder="hash-64",
        k=6,
        cache_dir=tmp_path,
        progress=False,
    )
    source = tiny_world / "source"
    for kwargs, message in [  # refused as they are made
        (dict(kind="bogus"), "filter must be one of none, kinematic, found 'bogus'"),
        (dict(pool=12), "apply to filter 'kinematic' only"),
        (dict(weight=0.5), "apply to filter 'kinematic' only"),
        (dict(kind="kinematic", weight=1.5), r"filter_weight must be in \[0, 1\]"),
        (dict(kind="kinematic", weight=-0.1), r"filter_weight must be in \[0, 1\]"),
    ]:
        with pytest.raises(KinemicError, match=message):
            FilterConfig(**kwargs)
    cases = [  # refused by the selection
        (dict(kind="kinematic", pool=3), r"filter_pool \(3\) must be at least k \(6\)"),
        (dict(kind="kinematic", encoder=tmp_path), f"{tmp_path}: not a T-MOR encoder"),
        (
            dict(kind="kinematic", encoder=SHIPPED_PRIOR),
            f"{SHIPPED_PRIOR}/config.json: format 'kinemic-prior', expected 'kinemic-tmor'",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(KinemicError, match=message):
            select_soft_positives(source, captions, filter_config=FilterConfig(**kwargs), **pick)
    for kwargs, message in [
        (
            dict(k=10, filter=dict(kind="kinematic", pool=5)),
            r"filter_pool \(5\) must be at least k",
        ),
        (dict(method="mdm-ft", filter=dict(kind="kinematic")), "mdm-ft has no soft positives"),
    ]:
        with pytest.raises(KinemicError, match=message):
            FinetuneConfig(**kwargs)
    out = tmp_path / "run"
    config = FinetuneConfig(filter=FilterConfig(kind="kinematic", encoder=tmp_path))
    with pytest.raises(KinemicError, match=f"{tmp_path}: not a T-MOR encoder"):
        finetune(tiny_world / "target", out, source=source, config=config, progress=False)
    assert not out.exists()


def test_mine_verb_with_the_kinematic_filter(tiny_world, tmp_path, capsys) -> None:
    out = tmp_path / "mine.json"
    base = [
        "mine",
        "--source",
        str(tiny_world / "source"),
        "--target",
        str(tiny_world / "target"),
        "--split",
        "S0000",
        "--k",
        "6",
        "--show",
        "1",
        "--encoder",
        "hash-64",
        "--no-progress",
    ]
    assert main([*base, "--filter", "kinematic", "--filter-pool", "12", "--json", str(out)]) == 0
    assert "kinematic filter: the caption top 12 re-ranked by" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["filter"] == KINEMATIC and report["k"] == 6
    assert all(len(c["soft_positives"]) == 6 for c in report["classes"])
    assert 0 <= report["precision"]["overall"]["retrieval"] <= 1
    assert main([*base, "--filter", "kinematic", "--filter-pool", "3"]) == 2
    assert "filter_pool (3) must be at least k (6)" in capsys.readouterr().err
    assert main([*base, "--filter", "kinematic", "--filter-encoder", str(tmp_path)]) == 2
    assert f"{tmp_path}: not a T-MOR encoder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--filter", "bogus"])
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_finetune_records_the_filter_and_mine_reuses_it(tiny_world, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    args = [
        "finetune",
        "--target",
        str(tiny_world / "target"),
        "--source",
        str(tiny_world / "source"),
        "--batch-size",
        "2",
        "--k",
        "4",
        "--filter",
        "kinematic",
        "--filter-pool",
        "12",
        "--checkpoint-every",
        "1",
        "--out",
        str(run),
    ]
    assert main([*args, "--train-steps", "1"]) == 0
    ckpt = run / "checkpoints" / "step-00000001"
    config = json.loads((ckpt / "config.json").read_text())
    # the default weight is recorded as a number
    assert config["finetune"]["filter"] == {**KINEMATIC_CONFIG, **SOURCE_DEFAULTS}
    assert config["soft_positives"]["filter"] == KINEMATIC and config["soft_positives"]["k"] == 4
    fingerprint = json.loads((ckpt / "trainer.json").read_text())["fingerprint"]
    assert fingerprint["filter"] == "kinematic" and fingerprint["filter_pool"] == 12
    assert fingerprint["filter_weight"] == 0.5
    # resuming takes the same filter (another selection changes the pairing: refused)
    assert main([*args, "--train-steps", "2", "--resume", str(run)]) == 0
    changed = [a if a != "12" else "8" for a in args]
    assert main([*changed, "--train-steps", "3", "--resume", str(run)]) == 2
    assert "filter_pool: checkpoint 12, now 8" in capsys.readouterr().err
    assert main([*args, "--filter-weight", "1", "--train-steps", "3", "--resume", str(run)]) == 2
    assert "filter_weight: checkpoint 0.5, now absent" in capsys.readouterr().err
    # mine --model selects as the run did
    out = tmp_path / "mine.json"
    assert (
        main(
            [
                "mine",
                "--source",
                str(tiny_world / "source"),
                "--target",
                str(tiny_world / "target"),
                "--model",
                str(run),
                "--show",
                "0",
                "--t",
                "20",
                "--no-progress",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["filter"] == KINEMATIC and report["k"] == 4
    top = [c["soft_positives"] for c in report["classes"]]
    assert top == config["soft_positives"]["top"]


def test_fused_scores_standardise_each_row_then_weigh() -> None:
    text = np.array([[0.9, 0.8, 0.7, 0.1], [0.5, 0.5, 0.5, 0.5]])
    motion = np.array([[0.1, 0.2, 0.9, 0.3], [0.4, 0.1, 0.2, 0.3]])
    np.testing.assert_allclose(fused_scores(text, motion, 0.0)[0].argsort(), [3, 2, 1, 0])
    np.testing.assert_allclose(fused_scores(text, motion, 1.0)[0].argsort(), [0, 1, 3, 2])
    fused = fused_scores(text, motion, 0.5)
    z = (motion[1] - motion[1].mean()) / motion[1].std()
    np.testing.assert_allclose(fused[1], 0.5 * z)  # a constant caption row adds nothing
    np.testing.assert_allclose(fused.mean(1), 0, atol=1e-12)
    # scaling one score leaves the key as it was: only the order within the pool counts
    np.testing.assert_allclose(fused_scores(10 * text, motion, 0.5), fused, atol=1e-12)
    with pytest.raises(KinemicError, match=r"filter weight must be in \[0, 1\]"):
        fused_scores(text, motion, 1.5)
    with pytest.raises(KinemicError, match="differ"):
        fused_scores(text, motion[:, :3], 0.5)


def test_a_run_from_before_the_weight_resumes_and_mines_by_motion_alone(
    tiny_world, tmp_path, capsys
) -> None:
    """Runs of the filter before the weight option ranked by motion alone (weight 1) and
    recorded no weight: weight 1 leaves no trace in the fingerprint, and ``mine --model``
    reads a record without a weight as 1."""
    run = tmp_path / "run"
    args = [
        "finetune",
        "--target",
        str(tiny_world / "target"),
        "--source",
        str(tiny_world / "source"),
        "--batch-size",
        "2",
        "--k",
        "4",
        "--filter",
        "kinematic",
        "--filter-pool",
        "12",
        "--filter-weight",
        "1",
        "--checkpoint-every",
        "1",
        "--out",
        str(run),
    ]
    assert main([*args, "--train-steps", "1"]) == 0
    ckpt = run / "checkpoints" / "step-00000001"
    assert "filter_weight" not in json.loads((ckpt / "trainer.json").read_text())["fingerprint"]
    config_path = ckpt / "config.json"
    config = json.loads(config_path.read_text())
    del config["soft_positives"]["filter"]["weight"]  # as written before the option
    config_path.write_text(json.dumps(config))
    out = tmp_path / "mine.json"
    assert (
        main(
            [
                "mine",
                "--source",
                str(tiny_world / "source"),
                "--target",
                str(tiny_world / "target"),
                "--model",
                str(run),
                "--show",
                "0",
                "--t",
                "20",
                "--no-progress",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["filter"] == {**KINEMATIC, "weight": 1.0}
    assert [c["soft_positives"] for c in report["classes"]] == config["soft_positives"]["top"]
    assert "scores: best window cosine" in capsys.readouterr().out
