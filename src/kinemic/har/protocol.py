"""The HAR evaluation protocol (``kinemic evaluate``): does synthetic data help a classifier?

For every mode (``real``, ``gt``, ``synth (<method>)``, ``mixed (<method>)``; see
:mod:`kinemic.har.data`) and every seed, an ST-GCN is trained from scratch on the mode's
training clips and scored on the split's validation clips. Per mode the report gives top-1 as
mean ± 95% confidence interval over seeds (Student t with n−1 degrees of freedom: ``t(0.975,
n−1) · s / √n``, ``s`` the sample standard deviation) for the **final epoch** — the protocol's
figure — and, labelled as optimistic, for the best validation epoch; per-class accuracy (final
epoch, mean ± CI over seeds) and the confusion matrix (final epoch, counts summed over seeds;
rows = true class, columns = prediction). Seeds are ``0..seeds-1``; seed s initialises and
orders every mode's run alike, so modes are compared on paired seeds. Nothing is tuned on the
validation clips: the training length follows from the training set's size alone.

Runs are independent; ``jobs=N`` runs N at a time in separate processes (started with
``spawn``: a script calling :func:`evaluate` with ``jobs > 1`` needs the usual ``if __name__ ==
"__main__":`` guard), each with ``threads`` torch threads (default: cores // N; more threads
than cores slows PyTorch's CPU kernels down many times). The figures depend on the thread
count (floating-point sums), not on ``jobs``: the same ``threads`` give the same numbers
serially and in parallel. Under ``accelerate launch`` (several processes or GPUs) every run is
trained by all processes together, with ``jobs=1``; the main process writes the results.

With an output folder, every finished run is also written to ``out/runs/<mode>-seed<s>.json``
with a key: the SHA-256 of everything its figures depend on (the mode's training clips and
labels, the validation clips, the model and training settings, the seed and the thread
count). A later evaluation into the same folder reuses a run whose key matches instead of
training it again, so an interrupted ``kinemic evaluate`` resumes where it stopped, adding a
mode trains only that mode, and runs trained ahead of time (:func:`prerun`, which the demo
uses while a core would idle) are picked up. A record whose key differs is trained again and
overwritten. Before a run trains it is claimed (``runs/<mode>-seed<s>.claim``, holding the
process id), so several processes evaluating into the same folder share the runs: a run that
another live process has claimed is waited for and read, and a claim whose process is gone is
taken over.

``results.json`` (also written to ``json_path``)::

    {"format": "kinemic-har-evaluation", "version": 1, "target", "split", "protocol",
     "classes": [0-based NTU labels], "class_names", "validation": {"clips", "per_class"},
     "seeds": [...], "settings": {...}, "timing": {"seconds", "jobs", "threads"},
     "modes": [{"mode": label, "kind", "method", "synthetic": path|null, "train_clips",
                "train_real", "train_synthetic", "train_per_class", "epochs", "steps",
                "final": {"mean", "ci95", "values"}, "best": {"mean", "ci95", "values",
                "epochs"}, "per_class": {"mean": [...], "ci95": [...]},
                "confusion": [[...]]}, ...],
     "runs": [{"mode", "seed", "final_top1", "best_top1", "best_epoch", "history",
               "per_class", "confusion", "seconds", "samples_per_second", ...}, ...]}

Accuracies are percentages; an interval of a single seed is ``null``.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from kinemic.errors import KinemicError
from kinemic.har.data import FRAMES, Centre, ProtocolData, load_protocol_data
from kinemic.har.train import HARTrainConfig

FORMAT = "kinemic-har-evaluation"


@dataclass
class ProtocolConfig:
    """Settings of one protocol evaluation (the model is ST-GCN on SMPL-22)."""

    modes: tuple[str, ...] = ("real", "gt")
    seeds: int = 5
    jobs: int = 1
    threads: int | None = None  # torch threads per run; None: cores // jobs
    frames: int = FRAMES
    centre: Centre = "first-frame"
    width: float = 1.0  # ST-GCN channel multiplier (1 = 64→128→256)
    dropout: float = 0.0
    train: HARTrainConfig = field(default_factory=HARTrainConfig)

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            self.train = HARTrainConfig(**self.train)
        self.modes = tuple(self.modes)
        if self.seeds < 1 or self.jobs < 1 or (self.threads is not None and self.threads < 1):
            raise KinemicError(
                f"seeds, jobs and threads must be >= 1, found {self.seeds}, {self.jobs}, "
                f"{self.threads}"
            )

    def run_threads(self) -> int:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return self.threads or max(1, (cores or 1) // self.jobs)


def mean_ci95(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and half-width of the 95% Student-t interval (None for fewer than 2 values)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), None
    if len(v) < 2:
        return float(v.mean()), None
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(half)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


# ------------------------------------------------------------------------------- one run

_WORKER: dict[str, Any] = {}


def _init_worker(payload: dict[str, Any]) -> None:
    _WORKER.clear()
    _WORKER.update(payload)


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
            x, y, model_config=model_cfg, config=train_cfg, val_x=p["val"][0], val_y=p["val"][1]
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
        "steps": res.steps,
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


# ------------------------------------------------------------------------------- protocol


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def run_keys(data: ProtocolData, config: ProtocolConfig, threads: int) -> dict[str, str]:
    """Per mode label, the SHA-256 of everything a run's figures depend on but its seed."""
    settings = {**asdict(config), "train": {**asdict(config.train), "progress": None}}
    for free in ("modes", "seeds", "jobs", "threads"):  # what picks runs, not what they compute
        settings.pop(free)
    from kinemic import __version__

    common = json.dumps(
        {
            "settings": settings,
            "threads": threads,
            "classes": data.num_classes,
            "val": _digest(data.val.x, data.val.y),
            "kinemic": __version__,
        },
        sort_keys=True,
    )
    return {
        label: hashlib.sha256(f"{common}\0{label}\0{_digest(s.x, s.y)}".encode()).hexdigest()
        for label, s in data.train.items()
    }


def run_record_path(runs_dir: Path, mode: str, seed: int) -> Path:
    """Where a run's record lives: ``runs/<mode as a file name>-seed<s>.json``."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", mode).strip("-").lower()
    return Path(runs_dir) / f"{slug}-seed{seed}.json"


def _load_record(runs_dir: Path | None, mode: str, seed: int, key: str) -> dict | None:
    if runs_dir is None:
        return None
    path = run_record_path(runs_dir, mode, seed)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent or damaged: train it
        return None
    if record.get("key") != key or record.get("mode") != mode or record.get("seed") != seed:
        return None
    return record


def _save_record(runs_dir: Path | None, record: dict, key: str) -> dict:
    record = {**record, "key": key}
    if runs_dir is not None and _is_main_process():
        from kinemic.files import write_text

        path = run_record_path(runs_dir, record["mode"], record["seed"])
        write_text(path, json.dumps(record, allow_nan=False) + "\n")
    return record


def _claim_path(runs_dir: Path, mode: str, seed: int) -> Path:
    return run_record_path(runs_dir, mode, seed).with_suffix(".claim")


def _claim_alive(path: Path) -> bool:
    """Whether the process that wrote a claim may still be training its run."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):  # being written now, or left empty by a killed process
        return time.time() - path.stat().st_mtime < 30
    if info.get("host") != socket.gethostname():
        return True  # another machine's process: trust it
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except (OSError, KeyError, ValueError):  # not ours to signal, or an odd claim: trust it
        return True
    return True


def _claim(runs_dir: Path, mode: str, seed: int) -> bool:
    """Claim a run for this process (an exclusive ``.claim`` file beside its record); False
    when a live process holds it. A claim whose process is gone is taken over."""
    path = _claim_path(runs_dir, mode, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _claim_alive(path):
                return False
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        return True
    return False


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
) -> dict[str, Any]:
    """Train every (mode, seed) run on prepared ``data``; the results document (module doc).

    ``runs_dir``: where run records are read (reused when their key matches) and written.
    Each run is claimed there before it trains, so that several processes (several
    ``kinemic evaluate`` calls, or the demo's two processes) can share the work: a run another
    live process has claimed is waited for, and its record read, not trained again.
    ``stop``: asked before each run is started; when it answers True no further run starts,
    runs under way finish, and the document covers the runs done so far (``prerun``)."""
    threads = config.run_threads()
    if config.jobs > 1 and _world_size() > 1:
        raise KinemicError(
            "--jobs runs separate processes; under `accelerate launch` every run already uses "
            "all processes: use --jobs 1 there"
        )
    runs_dir = None if runs_dir is None else Path(runs_dir)
    keys = run_keys(data, config, threads)
    payload = {
        "config": config,
        "threads": threads,
        "num_classes": data.num_classes,
        "train": {m: (s.x, s.y) for m, s in data.train.items()},
        "val": (data.val.x, data.val.y),
        "progress": progress and config.jobs == 1,
    }
    work = [(m.label, s) for m in data.modes for s in range(config.seeds)]
    runs: dict[tuple[str, int], dict] = {}
    todo = list(work)
    mine: set[tuple[str, int]] = set()  # claimed here
    t0 = time.perf_counter()
    bar = tqdm(total=len(work), desc="HAR runs", unit="run", disable=not progress or None)

    def next_run() -> tuple[str, int] | None:
        """The next run to train here; records finished meanwhile are picked up."""
        for w in list(todo):
            found = _load_record(runs_dir, *w, keys[w[0]])
            if found is not None:
                runs[w] = found
                todo.remove(w)
                bar.update(1)
            elif runs_dir is None or _claim(runs_dir, *w):
                todo.remove(w)
                mine.add(w)
                return w
        return None

    ctx = multiprocessing.get_context("spawn")  # fork after torch threads can deadlock
    pool = (
        _Inline()
        if config.jobs == 1
        else ProcessPoolExecutor(
            config.jobs, mp_context=ctx, initializer=_init_worker, initargs=(payload,)
        )
    )
    args = (payload,) if config.jobs == 1 else ()
    inflight: dict[Future, tuple[str, int]] = {}
    trained, stopped = 0, False
    try:
        while True:
            while len(inflight) < config.jobs and not stopped:
                if stop is not None and stop():
                    stopped = True
                    break
                w = next_run()
                if w is None:
                    break
                bar.set_postfix_str(f"{w[0]}, seed {w[1]}")
                inflight[pool.submit(_run_one, *w, *args)] = w
            if inflight:
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    w = inflight.pop(fut)
                    runs[w] = _save_record(runs_dir, fut.result(), keys[w[0]])
                    if runs_dir is not None:  # the record is there: the claim has done its job
                        _claim_path(runs_dir, *w).unlink(missing_ok=True)
                        mine.discard(w)
                    trained += 1
                    bar.update(1)
                continue
            if stopped or not todo:
                break
            time.sleep(1.0)  # the rest is claimed by other processes: wait for their records
    finally:
        if isinstance(pool, ProcessPoolExecutor):
            pool.shutdown(wait=True, cancel_futures=True)
        if runs_dir is not None:  # runs that did not finish (an error, an interruption)
            for w in mine:
                _claim_path(runs_dir, *w).unlink(missing_ok=True)
    bar.close()
    seconds = time.perf_counter() - t0
    ordered = [runs[w] for w in work if w in runs]
    return _document(
        data, config, ordered, seconds=seconds, threads=threads, reused=len(ordered) - trained
    )


def _document(
    data: ProtocolData,
    config: ProtocolConfig,
    runs: list[dict],
    *,
    seconds: float,
    threads: int,
    reused: int = 0,
) -> dict[str, Any]:
    k = data.num_classes
    modes = []
    for spec in data.modes:
        rs = [r for r in runs if r["mode"] == spec.label]
        if not rs:  # a stopped prerun: the mode was not reached
            continue
        ts = data.train[spec.label]
        final = [r["final_top1"] for r in rs]
        best = [r["best_top1"] for r in rs]
        per_class = np.array([r["per_class"] for r in rs])  # (seeds, K)
        cis = [mean_ci95(per_class[:, c]) for c in range(k)]
        syn = spec.synthetic
        modes.append(
            {
                "mode": spec.label,
                "kind": spec.kind,
                "method": None if syn is None else syn.method,
                "synthetic": None if syn is None else str(syn.path),
                "train_clips": len(ts),
                "train_real": int((~ts.synthetic).sum()),
                "train_synthetic": int(ts.synthetic.sum()),
                "train_per_class": ts.counts(k),
                "epochs": rs[0]["epochs"],
                "steps": rs[0]["steps"],
                "final": _summary(final),
                "best": {**_summary(best), "epochs": [r["best_epoch"] for r in rs]},
                "per_class": {"mean": [c[0] for c in cis], "ci95": [c[1] for c in cis]},
                "confusion": np.sum([r["confusion"] for r in rs], axis=0).tolist(),
            }
        )
    from kinemic import __version__

    return {
        "format": FORMAT,
        "version": 1,
        "kinemic": __version__,
        "target": str(data.target),
        "split": data.split.name,
        "protocol": str(data.split.extra.get("protocol", "xsub")),
        "classes": list(data.split.class_list),
        "class_names": list(data.class_names),
        "validation": {"clips": len(data.val), "per_class": data.val.counts(k)},
        "seeds": list(range(config.seeds)),
        "settings": {**asdict(config), "model": "ST-GCN", "graph": "smpl22"},
        "timing": {
            "seconds": seconds,
            "jobs": config.jobs,
            "threads": threads,
            "reused_runs": reused,
        },
        "modes": modes,
        "runs": runs,
    }


def _summary(values: list[float]) -> dict[str, Any]:
    mean, half = mean_ci95(values)
    return {"mean": mean, "ci95": half, "values": list(values)}


def evaluate(
    target: str | Path,
    split: str = "S0000",
    *,
    synthetic: Sequence[str | Path] = (),
    config: ProtocolConfig | None = None,
    out: str | Path | None = None,
    json_path: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``kinemic evaluate``: read and check every input, run the protocol, write
    ``out/results.json`` and ``out/results.md`` (and ``json_path``); returns the document.
    Runs already recorded under ``out/runs/`` with the same key are reused (module doc)."""
    import json

    from kinemic.files import write_text

    config = config or ProtocolConfig()
    data = _load(target, split, synthetic, config, progress)
    runs_dir = None if out is None else Path(out) / "runs"
    doc = run_protocol(data, config, progress=progress, runs_dir=runs_dir)
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
) -> int:
    """Train runs of ``config.modes`` one after another into ``out/runs/`` until ``stop()``
    answers True (asked before each run) or every run has a record (other processes' claimed
    runs included), for a later :func:`evaluate` into ``out`` to reuse. ``config`` must be
    the later evaluation's with ``jobs=1`` and its ``threads`` given (the key holds the thread
    count). Returns the number of runs trained by this call."""
    if config.jobs != 1 or config.threads is None:
        raise KinemicError("prerun: give jobs=1 and the later evaluation's threads")
    data = _load(target, split, synthetic, config, progress)
    doc = run_protocol(data, config, progress=progress, runs_dir=Path(out) / "runs", stop=stop)
    return len(doc["runs"]) - doc["timing"]["reused_runs"]


# ------------------------------------------------------------------------------- Markdown


def _pm(summary: dict[str, Any]) -> str:
    half = summary.get("ci95")
    return f"{summary['mean']:.1f}" + ("" if half is None else f" ± {half:.1f}")


def results_table(doc: dict[str, Any]) -> str:
    """The main table (Markdown): per mode, training clips and top-1 at the final and at the
    best validation epoch."""
    lines = [
        "| mode | training clips | epochs | top-1 %, final epoch | top-1 %, best val. epoch "
        "(optimistic) |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in doc["modes"]:
        clips = str(m["train_clips"])
        if m["train_synthetic"] and m["train_real"]:
            clips += f" ({m['train_real']} real + {m['train_synthetic']} synthetic)"
        lines.append(
            f"| {m['mode']} | {clips} | {m['epochs']} | **{_pm(m['final'])}** | {_pm(m['best'])} |"
        )
    return "\n".join(lines) + "\n"


def results_markdown(doc: dict[str, Any]) -> str:
    """``results.md``: settings, the main table, per-class accuracy and confusion matrices."""
    s, names = doc["settings"], doc["class_names"]
    t = s["train"]
    epochs = t["epochs"] or (
        f"from the training set's size: ceil({t['steps']} steps / batches per epoch) within "
        f"[{t['min_epochs']}, {t['max_epochs']}]"
    )
    out = [
        f"# HAR evaluation — split {doc['split']}",
        "",
        f"Target `{doc['target']}`, split {doc['split']} ({doc['protocol']}): "
        f"{len(names)} classes ({', '.join(names)}), {doc['validation']['clips']} validation "
        f"clips. ST-GCN on SMPL-22 (width {s['width']}, spatial partitioning, {s['frames']} "
        f"frames, centred on the first frame's pelvis: `{s['centre']}`), SGD lr {t['lr']} "
        f"Nesterov momentum {t['momentum']}, weight decay {t['weight_decay']}, cosine schedule, "
        f"batch {t['batch_size']}, epochs {epochs}. Seeds {doc['seeds']}; mean ± 95% CI "
        "(Student t over seeds).",
        "",
        "The **final epoch** is the protocol's figure. The best validation epoch (best of at most "
        f"{t['evaluations']} evaluated epochs) is chosen on the validation clips themselves and "
        "is shown only for comparison with work that reports it.",
        "",
        results_table(doc),
        "## Per-class top-1 % (final epoch, mean ± 95% CI over seeds)",
        "",
        "| mode | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for m in doc["modes"]:
        pc = m["per_class"]
        cells = [_pm({"mean": a, "ci95": h}) for a, h in zip(pc["mean"], pc["ci95"], strict=True)]
        out.append(f"| {m['mode']} | " + " | ".join(cells) + " |")
    out += [
        "",
        "## Confusion matrices (final epoch, summed over seeds)",
        "",
        "Rows: true class; columns: predicted class.",
        "",
    ]
    for m in doc["modes"]:
        out += [
            f"### {m['mode']}",
            "",
            "| true \\ predicted | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        out += [
            f"| {n} | " + " | ".join(str(v) for v in row) + " |"
            for n, row in zip(names, m["confusion"], strict=True)
        ]
        out.append("")
    tm = doc["timing"]
    reused = tm.get("reused_runs", 0)
    out.append(
        f"{len(doc['runs'])} runs ({reused} of them reused from `runs/`) in {tm['seconds']:.0f} s "
        f"({tm['jobs']} job(s), {tm['threads']} torch thread(s) each)."
    )
    return "\n".join(out) + "\n"
