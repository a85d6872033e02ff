"""The HAR evaluation protocol (``kinemic evaluate``): does synthetic data help a classifier?

For every mode (``real``, ``gt``, ``synth (<method>)``, ``mixed (<method>)``; see
:mod:`kinemic.har.data`) and every seed, an ST-GCN is trained from scratch on the mode's
training clips and scored on the split's validation clips; :mod:`kinemic.har.results` turns
the runs into top-1 mean ± 95% confidence interval over seeds per mode (final epoch: the
protocol's figure; best validation epoch: optimistic, labelled), per-class accuracy and
confusion matrices, ``results.json`` and ``results.md``. Seeds are ``0..seeds-1``; seed s
initialises and orders every mode's run alike, so modes are compared on paired seeds. Nothing
is tuned on the validation clips: the training length follows from the training set's size
alone. The settings: :class:`kinemic.har.config.ProtocolConfig`.

Runs are independent; ``jobs=N`` runs N at a time in separate processes (started with
``spawn``: a script calling :func:`evaluate` with ``jobs > 1`` needs the usual ``if __name__ ==
"__main__":`` guard), each with ``threads`` torch threads (default: cores // N; more threads
than cores slows PyTorch's CPU kernels down many times). The figures depend on the thread
count (floating-point sums), not on ``jobs``: the same ``threads`` give the same numbers
serially and in parallel.

**GPUs.** ``config.device`` says where runs train (:mod:`kinemic.devices`): by default, or with
``"cuda"``, worker i of ``jobs`` trains on visible GPU i mod their number (``kinemic evaluate``
starts one worker per visible GPU unless told ``--jobs``); ``"cuda:N"`` puts every worker on
GPU N, ``"cpu"`` on the CPU. Under ``accelerate launch``/``torchrun`` the processes are
independent workers, one per GPU (``jobs=1`` each): each trains whole runs alone on its own
device, in a worker process outside the launcher's process group, and they share the runs
through ``out/runs/`` exactly as separate ``kinemic evaluate`` calls do (below), so ``out`` is
required there; every process ends with the whole document, the main one writes it. (Training
each small ST-GCN run with DDP over all processes would spend more on communication than on
computing, and processes claiming different runs inside one group would deadlock.)

With an output folder, every finished run is also recorded in ``out/runs/`` with a key of
everything its figures depend on (:mod:`kinemic.har.runs`). A later evaluation into the same
folder reuses a run whose key matches instead of training it again, so an interrupted
``kinemic evaluate`` resumes where it stopped, adding a mode trains only that mode, and runs
trained ahead of time (:func:`prerun`, which the demo uses while a core would idle) are picked
up. Each run is claimed before it trains, so several processes evaluating into the same folder
share the runs: a run that another live process has claimed is waited for (saying so) and
read. A claim whose process is gone, reused its pid or hangs expires; ``--reclaim`` takes
claimed runs over.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from kinemic.errors import KinemicError
from kinemic.har.config import HARTrainConfig, ProtocolConfig
from kinemic.har.data import ProtocolData, load_protocol_data
from kinemic.har.results import results_document, results_markdown
from kinemic.har.runs import (
    ClaimHeartbeat,
    claim_note,
    claim_run,
    finished_run,
    release_run,
    run_keys,
    write_run,
)
from kinemic.progress import progress_bar

__all__ = ["ProtocolConfig", "evaluate", "prerun", "run_protocol"]

#: A process waiting for runs that others have claimed says so this often, in seconds.
WAIT_NOTE_SECONDS = 30.0


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


# ------------------------------------------------------------------------------- one run

_WORKER: dict[str, Any] = {}

#: What ``torchrun``/``accelerate launch`` set to join a process group; a worker trains alone.
LAUNCH_VARIABLES = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def _init_worker(payload: dict[str, Any], devices: Any = None) -> None:
    """Set a pool worker up: the run data, its device (one of ``devices``, a queue holding one
    per worker; None: the default device), no launcher's process group, and an end with its
    parent."""
    for name in LAUNCH_VARIABLES:
        os.environ.pop(name, None)
    _WORKER.clear()
    _WORKER.update(payload, device=None if devices is None else devices.get())
    exit_with_parent()


def default_jobs(device: str | None = None) -> int:
    """Workers ``kinemic evaluate`` starts unless told ``--jobs``: one per visible GPU when
    runs train on CUDA with ``device`` None or "cuda" (see the module doc), else 1; always 1
    under a launcher (its processes are the workers)."""
    import torch

    from kinemic.devices import resolve_device

    if _world_size() > 1 or (device is not None and ":" in device):
        return 1
    return torch.cuda.device_count() if resolve_device(device).type == "cuda" else 1


def exit_with_parent(every: float = 2.0) -> None:
    """End this (child) process when the process that started it is gone. A killed evaluation
    or demo would otherwise leave its workers, and the demo's second process, training their
    current run, minutes long, on cores that nothing will read from again."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(every)
            if os.getppid() != parent:  # re-parented: the parent died
                os._exit(1)

    threading.Thread(target=watch, name="kinemic-parent-watch", daemon=True).start()


def _run_one(mode: str, seed: int, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one classifier of ``mode`` with ``seed``; the run's JSON record."""
    import torch

    from kinemic.har.stgcn import STGCNConfig
    from kinemic.har.train import train_classifier

    p = payload if payload is not None else _WORKER
    cfg: ProtocolConfig = p["config"]
    threads = torch.get_num_threads()
    torch.set_num_threads(p["threads"])
    try:
        x, y = p["train"][mode]
        k = p["num_classes"]
        train_cfg = HARTrainConfig(**{**asdict(cfg.train), "seed": seed, "progress": p["progress"]})
        model_cfg = STGCNConfig(num_classes=k, width=cfg.width, dropout=cfg.dropout)
        res = train_classifier(
            x,
            y,
            model_config=model_cfg,
            config=train_cfg,
            val_x=p["val"][0],
            val_y=p["val"][1],
            device=p["device"],
        )
    finally:
        torch.set_num_threads(threads)
    val_y = p["val"][1]
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (val_y, res.val_pred), 1)
    per_class = (np.diag(confusion) / np.maximum(confusion.sum(1), 1) * 100).tolist()
    best_epoch, best_top1 = res.best
    return {
        "mode": mode,
        "seed": seed,
        "train_clips": len(x),
        "epochs": res.epochs,
        "planned_epochs": res.planned_epochs,
        "fitted_epoch": res.fitted_epoch,
        "steps": res.steps,
        "final_loss": res.final_loss,
        "final_top1": res.final_top1,
        "best_top1": best_top1,
        "best_epoch": best_epoch,
        "history": [list(h) for h in res.history],
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "losses": res.losses,
        "seconds": res.seconds,
        "samples_per_second": res.samples_per_second,
        "threads": p["threads"],
    }


class _Inline:
    """``submit`` runs the call at once in this process (``jobs=1``)."""

    def submit(self, fn: Callable, *args: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future


def run_protocol(
    data: ProtocolData,
    config: ProtocolConfig,
    *,
    progress: bool = True,
    runs_dir: str | Path | None = None,
    stop: Callable[[], bool] | None = None,
    reclaim: bool = False,
) -> dict[str, Any]:
    """Train every (mode, seed) run on prepared ``data``; the results document (module doc).

    ``runs_dir``: where run records are read (reused when their key matches) and written.
    Each run is claimed there before it trains, so that several processes (several
    ``kinemic evaluate`` calls, or the demo's two processes) can share the work: a run another
    live process has claimed is waited for, and its record read, not trained again; the wait
    is reported on stderr every :data:`WAIT_NOTE_SECONDS`. A claim whose process is gone or
    hangs expires (:mod:`kinemic.har.runs`); ``reclaim`` takes over live claims too.
    ``stop``: asked before each run is started; when it answers True no further run starts,
    runs under way finish, and the document covers the runs done so far (``prerun``).
    Under a launcher, each process is one independent worker (module doc)."""
    from kinemic.devices import resolve_device, worker_devices

    threads = config.run_threads()
    launched = _world_size() > 1
    if launched and config.jobs > 1:
        raise KinemicError(
            "--jobs starts worker processes; under accelerate launch or torchrun each launched "
            "process already is one worker (on its own GPU): use --jobs 1 there"
        )
    if launched and runs_dir is None:
        raise KinemicError(
            "under accelerate launch or torchrun the processes are independent workers that "
            "share the runs through OUT/runs/: give --out (or run one process, with --jobs N)"
        )
    devices = (
        [resolve_device(config.device)] if launched else worker_devices(config.device, config.jobs)
    )
    pooled = config.jobs > 1 or launched  # a launched process trains in a worker, outside its group
    runs_dir = None if runs_dir is None else Path(runs_dir)
    keys = run_keys(data, config, threads)
    payload = {
        "config": config,
        "threads": threads,
        "num_classes": data.num_classes,
        "train": {m: (s.x, s.y) for m, s in data.train.items()},
        "val": (data.val.x, data.val.y),
        "progress": progress and not pooled,
    }
    work = [(m.label, s) for m in data.modes for s in range(config.seeds)]
    runs: dict[tuple[str, int], dict] = {}
    todo = list(work)
    mine: set[tuple[str, int]] = set()  # claimed here
    beat = None if runs_dir is None else ClaimHeartbeat(runs_dir).start()
    t0 = time.perf_counter()
    bar = progress_bar(
        total=len(work), desc="HAR runs", unit="run", enabled=progress, every_unit=True
    )

    def next_run() -> tuple[str, int] | None:
        """The next run to train here; records finished meanwhile are picked up."""
        for w in list(todo):
            found = None if runs_dir is None else finished_run(runs_dir, *w, keys[w[0]])
            if found is not None:
                runs[w] = found
                todo.remove(w)
                bar.set_postfix_str(f"{w[0]} seed {w[1]}: trained by another process")
                bar.update(1)
            elif runs_dir is None or claim_run(runs_dir, *w, reclaim=reclaim):
                todo.remove(w)
                mine.add(w)
                if beat is not None:
                    beat.hold(*w)
                return w
        return None

    ctx = multiprocessing.get_context("spawn")  # fork after torch threads can deadlock
    if pooled:
        queue = ctx.Queue()
        for device in devices:
            queue.put(str(device))
        pool: _Inline | ProcessPoolExecutor = ProcessPoolExecutor(
            config.jobs, mp_context=ctx, initializer=_init_worker, initargs=(payload, queue)
        )
    else:
        pool = _Inline()
    args = () if pooled else ({**payload, "device": str(devices[0])},)
    inflight: dict[Future, tuple[str, int]] = {}
    trained, stopped = 0, False
    noted = -math.inf  # when the wait for other processes' runs was last reported
    try:
        while True:
            while len(inflight) < config.jobs and not stopped:
                if stop is not None and stop():
                    stopped = True
                    break
                w = next_run()
                if w is None:
                    break
                inflight[pool.submit(_run_one, *w, *args)] = w
            if inflight:
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    w = inflight.pop(fut)
                    runs[w] = {**fut.result(), "key": keys[w[0]]}
                    if runs_dir is not None:  # trained here alone: recorded here
                        write_run(runs_dir, runs[w])
                    if beat is not None:  # the record is there: the claim has done its job
                        release_run(runs_dir, *w)
                        mine.discard(w)
                        beat.drop(*w)
                    trained += 1
                    r = runs[w]
                    bar.set_postfix_str(
                        f"{w[0]} seed {w[1]}: {r['final_top1']:.1f}% after {r['epochs']} epochs, "
                        f"training loss {r['final_loss']:.3f}"
                    )
                    bar.update(1)
                continue
            if stopped or not todo:
                break
            if time.monotonic() - noted >= WAIT_NOTE_SECONDS:
                for w in todo:
                    tqdm.write(claim_note(runs_dir, *w), file=sys.stderr)
                noted = time.monotonic()
            time.sleep(1.0)  # the rest is claimed by other processes: wait for their records
    finally:
        if isinstance(pool, ProcessPoolExecutor):
            pool.shutdown(wait=True, cancel_futures=True)
        if beat is not None:  # runs that did not finish (an error, an interruption)
            beat.stop()
            for w in mine:
                release_run(runs_dir, *w)
    bar.close()
    seconds = time.perf_counter() - t0
    ordered = [runs[w] for w in work if w in runs]
    return results_document(
        data, config, ordered, seconds=seconds, threads=threads, reused=len(ordered) - trained
    )


def evaluate(
    target: str | Path,
    split: str = "S0000",
    *,
    synthetic: Sequence[str | Path] = (),
    config: ProtocolConfig | None = None,
    out: str | Path | None = None,
    json_path: str | Path | None = None,
    progress: bool = True,
    reclaim: bool = False,
) -> dict[str, Any]:
    """``kinemic evaluate``: read and check every input, run the protocol, write
    ``out/results.json`` and ``out/results.md`` (and ``json_path``); returns the document.
    Runs already recorded under ``out/runs/`` with the same key are reused (module doc);
    ``reclaim`` trains runs that other processes have claimed here too (:func:`run_protocol`)."""
    from kinemic.files import write_text

    config = config or ProtocolConfig()
    data = _load(target, split, synthetic, config, progress)
    runs_dir = None if out is None else Path(out) / "runs"
    doc = run_protocol(data, config, progress=progress, runs_dir=runs_dir, reclaim=reclaim)
    if not _is_main_process():  # under `accelerate launch`: every process trains, one writes
        return doc
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    if out is not None:
        write_text(Path(out) / "results.json", text)
        write_text(Path(out) / "results.md", results_markdown(doc))
    if json_path is not None:
        write_text(json_path, text)
    return doc


def _load(
    target: str | Path,
    split: str,
    synthetic: Sequence[str | Path],
    config: ProtocolConfig,
    progress: bool,
) -> ProtocolData:
    return load_protocol_data(
        target,
        split,
        synthetic=synthetic,
        modes=config.modes,
        frames=config.frames,
        centre=config.centre,
        progress=progress,
    )


def prerun(
    target: str | Path,
    split: str,
    *,
    out: str | Path,
    synthetic: Sequence[str | Path] = (),
    config: ProtocolConfig,
    stop: Callable[[], bool] | None = None,
    progress: bool = False,
    reclaim: bool = False,
) -> int:
    """Train runs of ``config.modes`` one after another into ``out/runs/`` until ``stop()``
    answers True (asked before each run) or every run has a record (other processes' claimed
    runs included), for a later :func:`evaluate` into ``out`` to reuse. ``config`` must be
    the later evaluation's with ``jobs=1`` and its ``threads`` given (the key holds the thread
    count). ``reclaim``: as for :func:`evaluate`. Returns the number of runs trained by this
    call."""
    if config.jobs != 1 or config.threads is None:
        raise KinemicError("prerun: give jobs=1 and the later evaluation's threads")
    data = _load(target, split, synthetic, config, progress)
    runs_dir = Path(out) / "runs"
    doc = run_protocol(
        data, config, progress=progress, runs_dir=runs_dir, stop=stop, reclaim=reclaim
    )
    return len(doc["runs"]) - doc["timing"]["reused_runs"]
