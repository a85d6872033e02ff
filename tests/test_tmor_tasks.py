"""T-MOR tasks end to end on the tiny world with a tiny encoder trained here: retrieval,
zero-/few-shot and supervised classification, detection, the kinematic filter, the t2m
evaluator and the CLI; and the shipped encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kinemic.cli import main
from kinemic.errors import KinemicError
from kinemic.io.humanml3d import HumanML3DDataset
from kinemic.io.ntu_vibe import NTUVibeDataset
from kinemic.mining.kinematic_filter import fused_scores, kinematic_rerank
from kinemic.tmor.classify import evaluate_classification
from kinemic.tmor.detect import concat_clips, detect_concat, detect_world, frame_scores_from_windows
from kinemic.tmor.encoder import SHIPPED_TMOR, load_tmor, window_starts
from kinemic.tmor.pretrain import pretrain_tmor
from kinemic.tmor.retrieve import evaluate_retrieval

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tiny_world: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tmor") / "run"
    pretrain_tmor(
        [tiny_world / "source"],
        out,
        preset="tiny",
        text_encoder="hash-64",
        train_steps=20,
        batch_size=16,
        cpu=True,
        progress=False,
        checkpoint_every=20,
        max_frames=64,
    )
    return out


@pytest.fixture(scope="module")
def enc(run: Path):
    return load_tmor(run)


def test_retrieval_end_to_end(enc, tiny_world: Path) -> None:
    rep = evaluate_retrieval(tiny_world / "source", encoder=enc, split="train", progress=False)
    assert rep.pairs == 48
    for block in (rep.whole, rep.batches_of_32, rep.whole_dedup, rep.batches_of_32_dedup):
        for d in ("t2m", "m2t"):
            assert 0 <= block[d]["R@1"] <= block[d]["R@5"] <= block[d]["R@10"] <= 100
            assert 1 <= block[d]["median_rank"] <= 48
    assert rep.batches_of_32["t2m"]["median_rank"] <= 32
    assert rep.whole_dedup["t2m"]["R@10"] >= rep.whole["t2m"]["R@10"]
    assert "| batches of 32 | t2m |" in rep.table()


def test_zero_and_few_shot_classification_end_to_end(enc, tiny_world: Path) -> None:
    rep = evaluate_classification(
        tiny_world / "target", encoder=enc, split="S0001", seeds=2, progress=False
    )
    assert len(rep.classes) == 6 and rep.chance == pytest.approx(100 / 6)
    assert rep.val_clips == 60 and 0 <= rep.zero_shot <= 100
    assert "butt kicks" in rep.zero_shot_per_class and rep.never_named is not None
    assert set(rep.fewshot) == {"prototype", "linear probe"}
    assert set(rep.fewshot["prototype"]) == {1, 5, 10}
    assert rep.fewshot["prototype"][10][1] == 0.0  # all 10 shots: one draw, no interval
    assert 0 <= rep.supervised <= 100 and rep.supervised_train_clips == 120
    with pytest.raises(KinemicError, match="11 shots"):
        evaluate_classification(
            tiny_world / "target", encoder=enc, shots=(11,), regimes=("few-shot",), progress=False
        )


def test_detection_end_to_end(enc, tiny_world: Path) -> None:
    rep = detect_world(
        tiny_world / "source",
        encoder=enc,
        max_train_sequences=20,
        max_test_sequences=4,
        progress=False,
    )
    assert rep.sequences == 4 and len(rep.classes) == 34 and 0 < rep.map <= 100
    assert 0 < rep.trivial_map < 100 and rep.frames_per_second > 0
    rep = detect_concat(tiny_world / "target", encoder=enc, clips_per_sequence=20, progress=False)
    assert rep.sequences == 3 and len(rep.classes) == 6  # 60 validation clips
    zs = detect_concat(
        tiny_world / "target",
        encoder=enc,
        method="zero-shot",
        clips_per_sequence=30,
        progress=False,
    )
    assert zs.frames == rep.frames and zs.method == "zero-shot"


def test_window_scores_and_concatenation() -> None:
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert window_starts(11, 4, 3).tolist() == [0, 3, 6, 7]
    assert window_starts(3, 4, 3).tolist() == [0]
    # two windows with opposite votes: the middle frame listens to both, the ends to one
    s = frame_scores_from_windows(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 2]), 6, 4)
    assert s[0].tolist() == [1.0, 0.0] and s[5].tolist() == [0.0, 1.0]
    assert s[2, 0] == pytest.approx(s[3, 1]) and 0 < s[2, 0] < 1
    a = np.zeros((3, 22, 3))
    a[:, 0, 0] = [0, 1, 2]
    b = np.full((2, 22, 3), 5.0)
    joined = concat_clips([a, b])
    assert joined.shape == (5, 22, 3) and joined[3, 0, 0] == 2.0 and joined[3, 0, 1] == 5.0


def test_kinematic_filter_returns_a_permutation_of_the_candidates(enc, tiny_world: Path) -> None:
    source = tiny_world / "source"
    ids = HumanML3DDataset(source).split("train")
    target = NTUVibeDataset(tiny_world / "target")
    fs = target.fewshot_split("S0000")
    shots = [
        [target.joints(i) for i, y in zip(fs.train_ids, fs.train_labels, strict=True) if y == c][:3]
        for c in fs.class_list
    ]
    rng = np.random.default_rng(0)
    cand = np.stack([rng.choice(len(ids), 7, replace=False) for _ in fs.class_list])
    order, scores = kinematic_rerank(enc, source, ids, cand, shots, progress=False)
    assert order.shape == cand.shape == scores.shape
    for row, new in zip(cand, order, strict=True):
        assert sorted(row.tolist()) == sorted(new.tolist())
    assert (np.diff(scores, axis=1) <= 1e-7).all() and (np.abs(scores) <= 1 + 1e-6).all()
    with pytest.raises(KinemicError, match="classes of few-shot clips"):
        kinematic_rerank(enc, source, ids, cand, shots[:1], progress=False)
    with pytest.raises(KinemicError, match="candidate indices outside"):
        kinematic_rerank(enc, source, ids, cand + 100, shots, progress=False)


def test_cli_verbs_write_json(run: Path, tiny_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = ["tmor", "retrieve", "--encoder", str(run), "--source", str(tiny_world / "source")]
    assert main([*args, "--split", "train", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["pairs"] == 48
    out = tmp_path / "c.json"
    assert (
        main(
            [
                "tmor",
                "classify",
                "--encoder",
                str(run),
                "--target",
                str(tiny_world / "target"),
                "--regimes",
                "zero-shot",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["fewshot"] == {}
    out = tmp_path / "g.json"  # real clips judged as if generated: the two columns agree
    assert (
        main(
            [
                "tmor",
                "t2m",
                "--encoder",
                str(run),
                "--source",
                str(tiny_world / "source"),
                "--split",
                "train",
                "--generated",
                str(tiny_world / "source"),
                "--n",
                "48",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    t2m = json.loads(out.read_text())
    assert t2m["pairs"] == 60 and set(t2m["real"]) == set(t2m["generated"])
    assert main([*args, "--text-encoder", "minilm"]) == 2  # trained with hash-64


def test_the_shipped_encoder() -> None:
    if not (SHIPPED_TMOR / "config.json").is_file():
        pytest.fail(f"the shipped T-MOR encoder is missing from {SHIPPED_TMOR}")
    size = sum(p.stat().st_size for p in SHIPPED_TMOR.iterdir())
    assert size <= 15 * 2**20
    enc = load_tmor()
    assert enc.path == SHIPPED_TMOR and enc.text_spec["name"] == "minilm-l6-v2"
    from tests.synthetic import walking_clip

    z = enc.embed_motions([walking_clip(60, seed=0).astype(np.float32)])
    assert z.shape == (1, enc.embed_dim)


def test_filter_figures_agree_with_the_candidates_truth(enc, tiny_world: Path) -> None:
    from kinemic.mining.filter_eval import evaluate_filter, score_candidates

    fc = score_candidates(tiny_world, encoder=enc, split="S0000", pool=20, progress=False)
    assert fc.indices.shape == fc.text_scores.shape == fc.kinematic.score.shape == fc.hits.shape
    assert fc.names == ["run on the spot", "side kick", "stretch oneself"]
    assert (np.diff(fc.text_scores, axis=1) <= 1e-6).all()  # text order
    for r, prim in enumerate(fc.primitives):
        for j, i in enumerate(fc.indices[r]):
            assert fc.hits[r, j] == any(s["primitive"] == prim for s in fc.segments[int(i)])
    rep = evaluate_filter(tiny_world, encoder=enc, split="S0000", k=10, pool=20, progress=False)
    for r, name in enumerate(fc.names):
        assert rep.text_precision[name] == pytest.approx(100 * fc.hits[r, :10].mean())
    assert rep.weight == 0.5 and rep.pool == 20
    key = fused_scores(fc.text_scores, fc.kinematic.score, 0.5)
    for r, name in enumerate(fc.names):
        kept = np.argsort(-key[r], kind="stable")[:10]
        assert rep.filtered_precision[name] == pytest.approx(100 * fc.hits[r, kept].mean())
    alone = evaluate_filter(
        tiny_world, encoder=enc, split="S0000", k=10, weight=1.0, progress=False
    )
    assert alone.pool == 20  # 2k by default, as finetune
    for r, name in enumerate(fc.names):
        kept = np.argsort(-fc.kinematic.score[r], kind="stable")[:10]
        assert alone.filtered_precision[name] == pytest.approx(100 * fc.hits[r, kept].mean())
    same = evaluate_filter(tiny_world, encoder=enc, split="S0000", k=20, pool=20, progress=False)
    assert same.filtered_precision == pytest.approx(same.text_precision)  # same set, reordered
    with pytest.raises(KinemicError, match="pool"):
        evaluate_filter(tiny_world, encoder=enc, split="S0000", k=20, pool=10, progress=False)
    with pytest.raises(KinemicError, match="weight must be in"):
        evaluate_filter(tiny_world, encoder=enc, split="S0000", k=10, weight=2, progress=False)
