"""``kinemic evaluate`` under accelerate launch or torchrun: the processes are independent
workers sharing the runs through OUT/runs/, never one process group claiming runs apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kinemic.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _argv(tiny_world) -> list[str]:
    return [
        "evaluate",
        *("--target", str(tiny_world / "target"), "--split", "S0000", "--modes", "real"),
        *("--seeds", "2", "--width", "0.125", "--frames", "12", "--epochs", "1"),
        *("--cpu", "--threads", "1"),
    ]


def test_launched_evaluate_needs_an_out_folder_and_one_job(tiny_world, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(_argv(tiny_world)) == 2
    assert "independent workers that share the runs through OUT/runs/" in capsys.readouterr().err


@pytest.mark.slow
def test_two_launched_processes_share_the_runs_and_match_one_process(tiny_world, tmp_path):
    argv = _argv(tiny_world)
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    cmd = [sys.executable, "-m", "kinemic", *argv, "--out", str(tmp_path / "two")]
    procs = [
        subprocess.Popen(
            cmd,
            env={**os.environ, "WORLD_SIZE": "2", "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    one, two = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two"))
    assert [r["final_top1"] for r in two["runs"]] == [r["final_top1"] for r in one["runs"]]
    assert [r["losses"] for r in two["runs"]] == [r["losses"] for r in one["runs"]]
    assert len(list((tmp_path / "two" / "runs").glob("*.json"))) == 2
