"""The HAR protocol (kinemic evaluate): results structure, CI maths, parallel runs, refusals."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from helpers import make_synthetic
from kinemic.cli import main
from kinemic.errors import DataError, KinemicError
from kinemic.har.config import HARTrainConfig, ProtocolConfig
from kinemic.har.data import load_protocol_data
from kinemic.har.protocol import evaluate, prerun
from kinemic.har.results import mean_ci95, results_table
from kinemic.har.runs import run_record_path
from kinemic.io.ntu_vibe import NTUVibeDataset

# small models train fastest, and least disturbed by other jobs, on one thread
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**kw) -> ProtocolConfig:
    train = HARTrainConfig(
        steps=4, min_epochs=1, batch_size=16, evaluations=2, cpu=True, progress=False
    )
    return ProtocolConfig(
        **{
            "modes": ("real", "gt"),
            "seeds": 2,
            "threads": 1,
            "frames": 16,
            "width": 0.125,
            "train": train,
            **kw,
        }
    )


def test_mean_ci95_known_values():
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    mean, half = mean_ci95([70.0, 80.0])  # t(0.975, 1) = 12.7062
    assert mean == 75.0 and half == pytest.approx(12.706205 * np.sqrt(50) / np.sqrt(2), rel=1e-6)
    assert mean_ci95([5.0]) == (5.0, None)
    assert mean_ci95([4.0, 4.0, 4.0])[1] == 0.0


@pytest.fixture(scope="module")
def evaluated(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    syn = make_synthetic(tiny_world, out / "syn")
    config = tiny_config(modes=("real", "synth", "mixed", "gt"))
    doc = evaluate(
        tiny_world / "target",
        "S0000",
        synthetic=[syn],
        config=config,
        out=out / "res",
        json_path=out / "figures.json",
        progress=False,
    )
    return out, doc


def test_results_document(evaluated, tiny_world):
    out, doc = evaluated
    on_disk = json.loads((out / "res" / "results.json").read_text())
    assert on_disk == json.loads((out / "figures.json").read_text()) == json.loads(json.dumps(doc))
    assert doc["format"] == "kinemic-har-evaluation" and doc["split"] == "S0000"
    assert doc["classes"] == [98, 101, 103] and len(doc["class_names"]) == 3
    assert doc["seeds"] == [0, 1] and doc["settings"]["width"] == 0.125
    n_val = doc["validation"]["clips"]
    assert n_val == 30 and sum(doc["validation"]["per_class"]) == n_val
    labels = [m["mode"] for m in doc["modes"]]
    assert labels == ["real", "synth (fake)", "mixed (fake)", "gt"]
    by = {m["mode"]: m for m in doc["modes"]}
    assert by["real"]["train_clips"] == 30 and by["real"]["train_synthetic"] == 0
    assert by["synth (fake)"]["train_clips"] == 12 == by["synth (fake)"]["train_synthetic"]
    assert by["mixed (fake)"]["train_real"] == 30 and by["mixed (fake)"]["train_synthetic"] == 12
    assert by["gt"]["train_clips"] == 60 and by["gt"]["train_per_class"] == [20, 20, 20]
    assert by["mixed (fake)"]["synthetic"].endswith("syn") and by["real"]["synthetic"] is None
    for m in doc["modes"]:
        for which in ("final", "best"):  # final AND best epoch, both with seeds' values
            assert len(m[which]["values"]) == 2 and m[which]["ci95"] is not None
            assert m[which]["mean"] == pytest.approx(np.mean(m[which]["values"]))
        assert all(b >= f for b, f in zip(m["best"]["values"], m["final"]["values"], strict=True))
        assert len(m["best"]["epochs"]) == 2
        assert np.array(m["confusion"]).shape == (3, 3)
        assert np.array(m["confusion"]).sum() == 2 * n_val  # summed over the two seeds
        assert len(m["per_class"]["mean"]) == 3
    assert len(doc["runs"]) == 8 and {r["seed"] for r in doc["runs"]} == {0, 1}
    for r in doc["runs"]:
        assert r["history"][-1][0] == r["epochs"]  # the final epoch is always evaluated
        assert r["final_top1"] == r["history"][-1][1]
        conf = np.array(r["confusion"])
        assert np.trace(conf) / n_val * 100 == pytest.approx(r["final_top1"])


def test_results_markdown(evaluated):
    out, doc = evaluated
    md = (out / "res" / "results.md").read_text()
    assert "top-1 %, final epoch" in md and "best val. epoch (optimistic)" in md
    assert "| mixed (fake) | 42 (30 real + 12 synthetic) |" in md
    for section in ("Per-class top-1", "Confusion matrices", "### gt", "true \\ predicted"):
        assert section in md
    assert results_table(doc) in md
    assert md.count("\n| real |") == 2  # the main table and the per-class table


def test_finished_runs_are_reused_when_their_key_matches(evaluated, tiny_world, tmp_path):
    """An evaluation into a folder with run records reuses those whose key (data, settings,
    seed, threads) matches; a changed setting or training set trains again."""
    out, first = evaluated
    res = tmp_path / "res"
    shutil.copytree(out / "res", res)
    syn = out / "syn"
    config = tiny_config(modes=("real", "synth", "mixed", "gt"))
    records = sorted(p.name for p in (res / "runs").glob("*.json"))
    assert len(records) == 8 and "mixed-fake-seed1.json" in records
    run_record_path(res / "runs", "gt", 1).unlink()
    again = evaluate(
        tiny_world / "target", "S0000", synthetic=[syn], config=config, out=res, progress=False
    )
    assert again["timing"]["reused_runs"] == 7
    assert again["modes"] == first["modes"]  # the retrained run gives the same numbers
    assert [r["history"] for r in again["runs"]] == [r["history"] for r in first["runs"]]
    assert "8 runs (7 of them reused from `runs/`)" in (res / "results.md").read_text()
    # another synthetic set: the modes that use it train again, real and gt are reused
    other = make_synthetic(tiny_world, tmp_path / "other", per_class=3)
    doc = evaluate(
        tiny_world / "target", "S0000", synthetic=[other], config=config, out=res, progress=False
    )
    assert doc["timing"]["reused_runs"] == 4
    assert [m["train_synthetic"] for m in doc["modes"]] == [0, 9, 9, 0]
    # another training length: every key changes
    longer = replace(config, train=replace(config.train, steps=5), modes=("real",), seeds=1)
    doc = evaluate(tiny_world / "target", "S0000", config=longer, out=res, progress=False)
    assert doc["timing"]["reused_runs"] == 0


def test_runs_claimed_by_a_live_process_are_waited_for_and_stale_claims_taken(
    evaluated, tiny_world, tmp_path
):
    """Several processes can share an evaluation folder: a run another live process has
    claimed is not trained again but read when its record appears; a claim whose process is
    gone is taken over."""
    out, _ = evaluated
    res = tmp_path / "res"
    shutil.copytree(out / "res", res)
    config = tiny_config(modes=("real", "gt"))
    record = run_record_path(res / "runs", "gt", 1)
    kept = record.read_text()
    record.unlink()
    claim = record.with_suffix(".claim")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        claim.write_text(json.dumps({"pid": child.pid, "host": socket.gethostname()}))

        def finish() -> None:  # the other process writes its record, then drops its claim
            time.sleep(2)
            record.write_text(kept)
            claim.unlink()

        threading.Thread(target=finish).start()
        doc = evaluate(tiny_world / "target", "S0000", config=config, out=res, progress=False)
        assert doc["timing"]["reused_runs"] == 4  # gt seed 1 was read, not trained
    finally:
        child.kill()
        child.wait()
    record.unlink()
    claim.write_text(json.dumps({"pid": child.pid, "host": socket.gethostname()}))  # dead now
    doc = evaluate(tiny_world / "target", "S0000", config=config, out=res, progress=False)
    assert doc["timing"]["reused_runs"] == 3 and record.is_file() and not claim.exists()


def test_prerun_trains_until_stopped_and_evaluate_reuses_it(tiny_world, tmp_path):
    config = tiny_config(seeds=2)
    asked = []

    def stop() -> bool:  # let two runs start, then stop
        asked.append(1)
        return len(asked) > 2

    assert prerun(tiny_world / "target", "S0000", out=tmp_path, config=config, stop=stop) == 2
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "real-seed0.json",
        "real-seed1.json",
    ]
    doc = evaluate(tiny_world / "target", "S0000", config=config, out=tmp_path, progress=False)
    assert doc["timing"]["reused_runs"] == 2 and len(doc["runs"]) == 4
    with pytest.raises(KinemicError, match="jobs=1 and the later evaluation's threads"):
        prerun(tiny_world / "target", "S0000", out=tmp_path, config=tiny_config(jobs=2), stop=stop)


@pytest.mark.slow  # two spawned processes import torch: ~10 s alone
def test_parallel_jobs_give_the_serial_numbers(tiny_world):
    serial = evaluate(tiny_world / "target", "S0000", config=tiny_config(seeds=1), progress=False)
    parallel = evaluate(
        tiny_world / "target", "S0000", config=tiny_config(seeds=1, jobs=2), progress=False
    )
    assert parallel["timing"]["jobs"] == 2
    for a, b in zip(serial["runs"], parallel["runs"], strict=True):
        assert (a["mode"], a["seed"]) == (b["mode"], b["seed"])
        assert a["history"] == b["history"] and a["losses"] == b["losses"]
        assert a["confusion"] == b["confusion"]


# ------------------------------------------------------------------------------ refusals


def test_refuses_synthetic_classes_outside_the_split(tiny_world, tmp_path):
    syn = make_synthetic(tiny_world, tmp_path / "syn", labels=[98, 23])  # 23: not in S0000
    with pytest.raises(DataError, match=r"synth_y.txt.*classes \[23\].*not in split S0000"):
        load_protocol_data(tiny_world / "target", "S0000", synthetic=[syn], modes=["synth"])


def test_refuses_a_synthetic_set_missing_a_class(tiny_world, tmp_path):
    syn = make_synthetic(tiny_world, tmp_path / "syn", labels=[98, 101])
    with pytest.raises(DataError, match=r"no synthetic clips of classes \[103\]"):
        load_protocol_data(tiny_world / "target", "S0000", synthetic=[syn], modes=["mixed"])


def test_refuses_empty_and_broken_synthetic_sets(tiny_world, tmp_path):
    syn = make_synthetic(tiny_world, tmp_path / "syn")
    target = tiny_world / "target"
    (syn / "info.json").write_text(json.dumps({"method": "x", "split": "S0001"}))
    with pytest.raises(DataError, match="made for split 'S0001'"):
        load_protocol_data(target, "S0000", synthetic=[syn], modes=["synth"])
    (syn / "info.json").unlink()
    first = (syn / "synth.txt").read_text().split()[0]
    bad = np.zeros((20, 25, 3), np.float32)  # Kinect-25 joints where SMPL-22 belong
    np.save(syn / "new_joints" / f"{first}.npy", bad)
    with pytest.raises(DataError, match=rf"new_joints/{first}.npy.*\(T, 22, 3\)"):
        load_protocol_data(target, "S0000", synthetic=[syn], modes=["synth"])
    (syn / "new_joint_vecs" / f"{first}.npy").unlink()
    with pytest.raises(DataError, match=rf"synth.txt, line 1.*{first}"):
        load_protocol_data(target, "S0000", synthetic=[syn], modes=["synth"])
    (syn / "synth.txt").write_text("")
    (syn / "synth_y.txt").write_text("")
    with pytest.raises(DataError, match=r"synth\.txt: empty synthetic set"):
        load_protocol_data(target, "S0000", synthetic=[syn], modes=["synth"])


def test_refuses_validation_clips_as_synthetic(tiny_world, tmp_path):
    syn = make_synthetic(tiny_world, tmp_path / "syn")
    ds = NTUVibeDataset(tiny_world / "target")
    fs = ds.fewshot_split("S0000")
    val_id, label = fs.val_ids[0], fs.val_labels[0]
    for sub in ("new_joint_vecs", "new_joints"):
        shutil.copy(ds.root / sub / f"{val_id}.npy", syn / sub / f"{val_id}.npy")
    with (syn / "synth.txt").open("a") as f:
        f.write(f"{val_id}\n")
    with (syn / "synth_y.txt").open("a") as f:
        f.write(f"{label}\n")
    with pytest.raises(DataError, match="validation clips of split S0000"):
        load_protocol_data(tiny_world / "target", "S0000", synthetic=[syn], modes=["synth"])


def test_refuses_a_split_with_missing_clips(tiny_world, tmp_path):
    target = tmp_path / "target"
    shutil.copytree(tiny_world / "target", target)
    fs = NTUVibeDataset(target).fewshot_split("S0000")
    (target / "new_joints" / f"{fs.val_ids[3]}.npy").unlink()
    with pytest.raises(DataError, match=rf"new_joints/{fs.val_ids[3]}.npy: missing file"):
        load_protocol_data(target, "S0000", modes=["real"], progress=False)
    (target / "new_joint_vecs" / f"{fs.train_ids[0]}.npy").unlink()
    with pytest.raises(DataError, match=rf"xsub/train.txt, line 1.*{fs.train_ids[0]}"):
        load_protocol_data(target, "S0000", modes=["real"], progress=False)


def test_mode_names(tiny_world, tmp_path):
    target = tiny_world / "target"
    with pytest.raises(KinemicError, match="needs a synthetic set"):
        load_protocol_data(target, "S0000", modes=["real", "mixed"])
    with pytest.raises(KinemicError, match="unknown mode 'fancy'"):
        load_protocol_data(target, "S0000", modes=["fancy"])
    a = make_synthetic(tiny_world, tmp_path / "a", method="kinemic", per_class=1)
    b = make_synthetic(tiny_world, tmp_path / "b", method="mdm-ft", per_class=1)
    c = make_synthetic(tiny_world, tmp_path / "c", method="kinemic", per_class=1)
    data = load_protocol_data(
        target,
        "S0000",
        synthetic=[a, b],
        modes=["real", "mixed (mdm-ft)", "mixed", "synth (kinemic)"],
        progress=False,
    )
    assert list(data.train) == ["real", "mixed (mdm-ft)", "mixed (kinemic)", "synth (kinemic)"]
    data = load_protocol_data(target, "S0000", synthetic=[a, c], modes=["synth"], progress=False)
    assert list(data.train) == ["synth (kinemic: a)", "synth (kinemic: c)"]


def test_cli_evaluate(tiny_world, tmp_path, capsys):
    out = tmp_path / "res"
    argv = [
        "evaluate",
        "--target",
        str(tiny_world / "target"),
        "--split",
        "S0000",
        "--modes",
        "real",
        "--seeds",
        "1",
        "--width",
        "0.125",
        "--frames",
        "12",
        "--steps",
        "2",
        "--epochs",
        "1",
        "--cpu",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert "| real | 30 | 1 |" in capsys.readouterr().out
    doc = json.loads((out / "results.json").read_text())
    assert doc["modes"][0]["final"]["ci95"] is None  # one seed: no interval
    syn = make_synthetic(tiny_world, tmp_path / "syn", labels=[98, 23])
    assert main([*argv, "--synthetic", str(syn), "--modes", "real,mixed"]) == 2
    assert "not in split S0000" in capsys.readouterr().err


def test_cli_evaluate_min_epochs_sets_the_epochs_of_a_small_budget(tiny_world, tmp_path):
    """--steps 2 would give the 30 few-shot clips one epoch; --min-epochs 3 raises it to 3."""
    out = tmp_path / "res"
    argv = [
        "evaluate",
        "--target",
        str(tiny_world / "target"),
        "--split",
        "S0000",
        "--modes",
        "real",
        "--seeds",
        "1",
        "--width",
        "0.125",
        "--frames",
        "12",
        "--steps",
        "2",
        "--min-epochs",
        "3",
        "--evaluations",
        "1",
        "--cpu",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["modes"][0]["epochs"] == 3
    assert doc["settings"]["train"]["min_epochs"] == 3
    assert main([*argv[:-2], "--min-epochs", "5", "--max-epochs", "4", "--out", str(out)]) == 2


def test_the_configs_the_cli_reads_its_defaults_from_import_no_torch():
    code = "import sys, kinemic.har.config; print('torch' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"


def test_the_epochs_column_counts_the_seeds_the_fitting_rule_left_unfitted():
    from kinemic.har.results import epochs_text

    assert epochs_text({"epochs": 30, "epochs_per_seed": [30, 30]}) == "30"
    assert epochs_text({"epochs": 24, "epochs_per_seed": [24, 30], "unfitted_seeds": 0}) == "24–30"
    mode = {"epochs": 30, "epochs_per_seed": [30, 30, 28], "unfitted_seeds": 2}
    assert epochs_text(mode) == "28–30 (2 of 3 not fitted)"
