"""Claims on HAR runs expire (issue 25, item 11): a claim names its process by host, pid and
start time and carries a heartbeat, so a reused pid or a silent process does not keep
``kinemic evaluate`` waiting forever; the wait is reported, and ``--reclaim`` takes over."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kinemic.cli import main
from kinemic.har.runs import (
    EXPIRY_SECONDS,
    ClaimHeartbeat,
    claim_note,
    claim_run,
    process_start,
    release_run,
    run_record_path,
)

pytestmark = pytest.mark.usefixtures("one_thread")
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="process start times come from /proc"
)


@pytest.fixture
def other_process():
    """A live process that is not this one (the holder of the claims below)."""
    sleep = shutil.which("sleep")
    argv = [sleep, "120"] if sleep else [sys.executable, "-c", "import time; time.sleep(120)"]
    child = subprocess.Popen(argv)
    yield child
    child.kill()
    child.wait()


def _claim(runs: Path, pid: int, *, started: str | None, host: str | None = None) -> Path:
    """Write the claim of run ("real", 0) as another process would."""
    path = run_record_path(runs, "real", 0).with_suffix(".claim")
    path.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname() if host is None else host
    since = time.time()
    path.write_text(json.dumps({"host": host, "pid": pid, "started": started, "since": since}))
    return path


def _holder(path: Path) -> int:
    return json.loads(path.read_text())["pid"]


@needs_proc
def test_a_claim_whose_pid_now_belongs_to_a_process_started_later_has_expired(
    tmp_path, other_process
):
    pid = other_process.pid
    path = _claim(tmp_path, pid, started=process_start(pid))
    assert not claim_run(tmp_path, "real", 0)  # the process that claimed it: alive
    assert _holder(path) == pid
    _claim(tmp_path, pid, started=f"{process_start(pid)}0")  # the pid was reused since
    assert claim_run(tmp_path, "real", 0)
    assert _holder(path) == os.getpid()
    assert json.loads(path.read_text())["started"] == process_start(os.getpid())


def test_a_claim_whose_heartbeat_stopped_has_expired(tmp_path, other_process):
    pid = other_process.pid
    for host in (None, "another-machine"):  # a live local process, or one we cannot see
        path = _claim(tmp_path, pid, started=process_start(pid), host=host)
        assert not claim_run(tmp_path, "real", 0)
        stale = time.time() - EXPIRY_SECONDS - 5
        os.utime(path, (stale, stale))
        assert claim_run(tmp_path, "real", 0)
        assert _holder(path) == os.getpid()
        release_run(tmp_path, "real", 0)
        assert not path.exists()


def test_the_heartbeat_keeps_a_held_claim_fresh_until_dropped(tmp_path):
    assert claim_run(tmp_path, "real", 0)
    path = run_record_path(tmp_path, "real", 0).with_suffix(".claim")
    old = time.time() - 1000
    os.utime(path, (old, old))
    with ClaimHeartbeat(tmp_path, every=0.02) as beat:
        beat.hold("real", 0)
        deadline = time.monotonic() + 5
        while path.stat().st_mtime == old and time.monotonic() < deadline:
            time.sleep(0.01)
        assert time.time() - path.stat().st_mtime < 5
        beat.drop("real", 0)
        os.utime(path, (old, old))
        time.sleep(0.1)
        assert path.stat().st_mtime == old  # dropped: no longer refreshed


def test_reclaim_takes_over_a_live_claim_and_its_holder_cannot_release_it(tmp_path, other_process):
    pid = other_process.pid
    path = _claim(tmp_path, pid, started=process_start(pid))
    release_run(tmp_path, "real", 0)  # not this process's claim: left alone
    assert _holder(path) == pid
    assert not claim_run(tmp_path, "real", 0)
    assert claim_run(tmp_path, "real", 0, reclaim=True)
    assert _holder(path) == os.getpid()


def test_the_note_says_which_run_which_process_and_since_when(tmp_path, other_process):
    pid = other_process.pid
    path = _claim(tmp_path, pid, started=process_start(pid))
    os.utime(path, (1000.0, 1000.0))
    note = claim_note(tmp_path, "real", 0, now=1042.0)
    since = time.strftime(
        "%Y-%m-%d %H:%M:%S", time.localtime(json.loads(path.read_text())["since"])
    )
    assert note.startswith(f"waiting for run 'real' seed 0, claimed by pid {pid} on ")
    assert f"since {since} (heartbeat 42 s ago" in note and "--reclaim" in note


def _argv(tiny_world: Path, out: Path) -> list[str]:
    return [
        "evaluate",
        *("--target", str(tiny_world / "target"), "--modes", "real", "--seeds", "1"),
        *("--width", "0.125", "--frames", "12", "--train-steps", "2", "--evaluations", "1"),
        *("--cpu", "--threads", "1", "--out", str(out)),
    ]


def test_evaluate_says_what_it_waits_for_and_reclaim_does_not_wait(
    tiny_world, tmp_path, other_process, capsys
):
    pid = other_process.pid
    out = tmp_path / "res"
    path = _claim(out / "runs", pid, started=process_start(pid))

    def give_up() -> None:  # the other process lets the run go after a while
        time.sleep(1.5)
        path.unlink()

    threading.Thread(target=give_up, daemon=True).start()
    assert main(_argv(tiny_world, out)) == 0
    err = capsys.readouterr().err
    assert f"waiting for run 'real' seed 0, claimed by pid {pid} on {socket.gethostname()}" in err
    assert json.loads((out / "results.json").read_text())["timing"]["reused_runs"] == 0

    run_record_path(out / "runs", "real", 0).unlink()
    _claim(out / "runs", pid, started=process_start(pid))
    timer = threading.Timer(60, path.unlink, kwargs={"missing_ok": True})
    timer.start()  # were --reclaim ignored: no endless wait
    t0 = time.monotonic()
    try:
        assert main([*_argv(tiny_world, out), "--reclaim"]) == 0
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 60 and "waiting for run" not in capsys.readouterr().err
    assert run_record_path(out / "runs", "real", 0).is_file()
    assert not path.exists()  # trained and released
