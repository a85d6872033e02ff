"""A killed evaluation leaves no HAR worker behind: workers end when their parent is gone."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def _long_run(pidfile: str) -> None:
    """Stands in for a HAR run: minutes of work in the worker."""
    Path(pidfile).write_text(str(os.getpid()))
    time.sleep(120)


def _evaluation(pidfile: str) -> None:
    """Stands in for `kinemic evaluate --jobs 2`: a pool of protocol workers."""
    from kinemic.har.protocol import _init_worker

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_worker, initargs=({},)) as pool:
        pool.submit(_long_run, pidfile).result()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purpose
        return f.read().split(")")[-1].split()[0] != "Z"


def test_workers_end_when_the_evaluation_is_killed(tmp_path):
    pidfile = tmp_path / "worker.pid"
    parent = multiprocessing.get_context("spawn").Process(target=_evaluation, args=(str(pidfile),))
    parent.start()
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    worker = int(pidfile.read_text())
    assert _alive(worker)
    os.kill(parent.pid, signal.SIGKILL)
    parent.join()
    deadline = time.monotonic() + 15
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker), "the worker outlived its killed parent"
