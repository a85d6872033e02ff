"""``kinemic demo``: the whole KineMIC pipeline on the embedded world, end to end, with a report.

Stages (each writes a folder under ``out/`` in its documented layout, so every one can be
inspected or rerun on its own with the verb named in brackets):

1. the procedural world: source corpus + few-shot HAR target (``kinemic world``);
2. soft positives: the source motions whose captions match each class (``kinemic mine``);
3. fine-tuning the shipped prior to the split's classes, with the ``mdm-ft`` baseline and with
   ``kinemic`` (``kinemic finetune``);
4. mining precision of KineMIC's attention windows against the world's ground truth, beside a
   random window and the whole soft positive (``kinemic mine --model``);
5. synthetic datasets from both generators (``kinemic synthesize``);
6. the HAR protocol: ST-GCN trained on ``real``, ``mixed (mdm-ft)``, ``mixed (kinemic)`` and
   ``gt`` (``synth (kinemic)`` on request) over three seeds, each classifier to the fitting
   rule, top-1 on the validation clips (``kinemic evaluate``);
7. ``report.md`` and a self-contained ``report.html``.

With two or more jobs the cores are kept busy: while the main process embeds the captions
(stage 2) and fine-tunes ``kinemic`` (stage 3, the long one), a second process
(:class:`_SecondProcess`, started with ``spawn``) fine-tunes ``mdm-ft`` (three times faster),
synthesises its set and sends its folder over a pipe, then trains HAR runs that need no KineMIC
output (``real``, ``gt``, ``mixed (mdm-ft)``) into ``out/eval/runs/``
(``kinemic.har.protocol.prerun``) until the main process sets an event: every synthetic set
exists (stage 5). In stage 6 it is one of the jobs, the two processes sharing the remaining
runs by claiming them in that folder (``kinemic.har.runs``); it sends its figures when every
run has a record. The figures are the same as when every run trains in stage 6: a run's
numbers depend on its data, settings, seed and thread count, which are the same (the CI's
quick demo gives identical tables either way).

A rerun reuses what is complete (a world of the same scale and seed, finished fine-tunes,
synthetic sets with the same settings, HAR runs with the same key) and resumes an interrupted
fine-tune; ``fresh=True`` starts over. The numbers are what the same verbs give on a user's
data: nothing here is tuned on the validation clips, and the seeds are recorded.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kinemic.errors import KinemicError

if TYPE_CHECKING:
    from kinemic.har.config import ProtocolConfig
    from kinemic.mining.report import MineReport

Scale = Literal["tiny", "small", "default"]
METHODS = ("mdm-ft", "kinemic")
MODES = ("real", "mixed (mdm-ft)", "mixed (kinemic)", "synth (kinemic)", "gt")
SECOND_MODES = ("real", "gt", "mixed (mdm-ft)")  # the HAR modes that need no KineMIC output
WORLD_MARK = "demo-world.json"


@dataclass
class DemoConfig:
    """Settings of a demo run; ``DemoConfig.quick()`` is the CI-sized one."""

    scale: Scale = "default"
    world_seed: int = 0
    split: str = "S0000"
    finetune_steps: int = 200  # per method; sized to the demo's time budget (why 200 and not
    # 300: docs/demo-results.md)
    finetune_batch: int = 16
    per_class: int = 100  # synthetic clips per class
    ddim: int | None = 10  # synthesis sampler: DDIM steps, or None for full DDPM
    guidance: float = 2.5
    # Three seeds, not the protocol's five: five fitted classifiers per mode take the demo to
    # about 20 minutes on a 2-core machine (docs/demo-results.md); the report says so, and
    # gives the interval's method (Student t over the seeds, 2 degrees of freedom)
    seeds: int = 3
    # ``synth (kinemic)`` is left out by default: it answers no question of the verdict and
    # its 300 clips would cost a fifth of the HAR stage; ``modes`` (``--modes``) adds it back
    modes: tuple[str, ...] = ("real", "mixed (mdm-ft)", "mixed (kinemic)", "gt")
    har_width: float = 0.125  # ST-GCN channel multiplier (1 = 64→128→256: far too slow for
    # the demo on a CPU, see bench/har.py)
    # Every classifier trains to the fitting rule (kinemic.har.train): the first epoch with a
    # mean training loss <= har_fit_loss, then as many epochs again annealed, within the bounds
    # of har_steps optimiser steps and at least har_min_epochs epochs (a 30-clip set plans 240
    # epochs, a 330-clip one 30: why 30, docs/demo-results.md)
    har_steps: int = 480
    har_min_epochs: int = 30
    har_fit_loss: float | None = 0.05  # None: every planned epoch
    har_epochs: int | None = None  # fixed epochs instead (the quick smoke test)
    har_frames: int = 50  # frames per clip: the world's clips are 29-79 frames long, so the
    # protocol's 100 would upsample every one at twice the cost
    jobs: int = 2  # HAR runs in parallel processes
    gifs: bool = True
    seed: int = 0  # fine-tuning and synthesis seed
    smoke_test: bool = False  # --quick: its report says its numbers mean nothing
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.modes = tuple(self.modes)
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.modes:
            raise KinemicError(
                f"demo modes: unknown {', '.join(map(repr, unknown)) or '(none given)'}; "
                f"choose from {', '.join(MODES)}"
            )

    @classmethod
    def quick(cls, **overrides: Any) -> DemoConfig:
        """Fewer seeds and steps, on the tiny world: the CI-sized run."""
        base = dict(
            scale="tiny",
            finetune_steps=30,
            finetune_batch=8,
            per_class=12,
            seeds=2,
            modes=MODES,  # every mode, so the smoke test runs every path
            har_width=0.25,
            har_epochs=8,
            har_fit_loss=None,
            gifs=True,
            smoke_test=True,
        )
        return cls(**{**base, **overrides})


def run_demo(
    config: DemoConfig | None = None,
    *,
    out: str | Path = Path("out/demo"),
    json_path: str | Path | None = None,
    fresh: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the seven stages; return (and write to ``out/demo.json`` and ``json_path``) the
    figures."""
    config = config or DemoConfig()
    out = Path(out)
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"kinemic demo: KineMIC on the embedded world ({config.scale} scale, split "
        f"{config.split}) with the shipped prior: mine → fine-tune (mdm-ft, kinemic) → "
        f"synthesise → evaluate {len(config.modes)} modes × {config.seeds} seeds → report in {out}"
    )
    if config.smoke_test:
        print(
            "   --quick is a smoke test: a tiny world and a few steps show that every stage runs; "
            "its numbers say nothing about the method (run without --quick for that)"
        )
    timing: dict[str, Any] = {}
    started = time.perf_counter()
    world = out / "world"
    source, target = world / "source", world / "target"

    title = f"procedural world ({config.scale} scale, seed {config.world_seed}) → {world}"
    with _stage(1, title, timing, "world"):
        _world(config, out, progress)
    second = _SecondProcess.start(config, target, source, out) if _two_jobs(config) else None
    try:
        title = "soft positives: source motions whose captions match each class"
        with _stage(2, title, timing, "soft positives"):
            soft = _soft_positives(config, source, target, second, progress)
        title = f"fine-tuning the shipped prior ({config.finetune_steps} steps per method)"
        with _stage(3, title, timing, "fine-tuning"):
            runs = _finetunes(config, target, source, out, second, progress)
        title = "mining precision of the attention windows (world ground truth)"
        with _stage(4, title, timing, "mining precision"):
            mined = _mining_precision(config, source, target, runs["kinemic"], progress)
        title = f"synthesis: {config.per_class} clips per class from each generator"
        with _stage(5, title, timing, "synthesis"):
            synth, motion = _synthesis(config, target, runs, out, second, progress)
        title = f"HAR protocol: ST-GCN, {len(config.modes)} modes × {config.seeds} seeds"
        with _stage(6, title, timing, "evaluation"):
            results, ahead, shared = _har_protocol(
                config, target, synth, out, second, timing, progress
            )
    finally:
        if second is not None:
            second.close()
    with _stage(7, "report", timing, "report"):
        figures, md, page = _report(config, world, soft, mined, synth, motion, results, out, timing)

    figures["timing_s"] = timing
    figures["har_runs_ahead"], figures["har_runs_shared"] = ahead, shared
    _write_json(figures, out / "demo.json", json_path)
    print(f"\nreport: {page}\n        {md}\nfigures: {out / 'demo.json'}")
    print(_summary_line(figures, time.perf_counter() - started, page), flush=True)
    return figures


def _summary_line(figures: dict[str, Any], seconds: float, page: Path) -> str:
    """The run's last line: time, the headline of the verdict, the report's path."""
    minutes, secs = divmod(round(seconds), 60)
    head = figures.get("verdict", [""])[0]
    if figures["settings"].get("smoke_test"):
        head = "Smoke test (--quick): the numbers mean nothing."
    return f"kinemic demo: done in {minutes}:{secs:02d}. {head} Report: {page}"


@contextmanager
def _stage(n: int, title: str, timing: dict[str, Any], key: str) -> Iterator[None]:
    """Print a stage's heading; on success record and print its wall time as ``timing[key]``."""
    print(f"\n== {n}/7 {title}", flush=True)
    t0 = time.perf_counter()
    yield
    timing[key] = round(time.perf_counter() - t0, 1)
    print(f"   ({timing[key]:.1f} s)", flush=True)


def _two_jobs(config: DemoConfig) -> bool:
    """Whether a second process shares the work (module docstring)."""
    return min(config.jobs, os.cpu_count() or 1) >= 2


# ------------------------------------------------------------------------------------ stages


def _world(config: DemoConfig, out: Path, progress: bool) -> None:
    """Stage 1: ``out/world``, generated unless an earlier run left the same one. A new world
    makes what earlier runs derived from the old one stale: it is removed."""
    from kinemic.world.generate import WORLD_VERSION, generate_world

    world = out / "world"
    want = {"scale": config.scale, "seed": config.world_seed, "version": WORLD_VERSION}
    mark = world / WORLD_MARK
    if mark.is_file() and json.loads(mark.read_text(encoding="utf-8")) == want:
        print("   reusing the world generated by an earlier run")
        return
    summary = generate_world(
        world, seed=config.world_seed, scale=config.scale, overwrite=True, progress=progress
    )
    print(summary.table())
    from kinemic.files import write_text

    write_text(mark, json.dumps(want) + "\n")
    for m in METHODS:
        for stale in (out / m, out / f"synth-{m}"):
            shutil.rmtree(stale, ignore_errors=True)


def _soft_positives(
    config: DemoConfig, source: Path, target: Path, second: _SecondProcess | None, progress: bool
) -> MineReport:
    """Stage 2: the soft positives of each class (a ``MineReport``), printed."""
    from kinemic.mining.report import mine

    if second is not None:
        print(
            "   meanwhile a second process fine-tunes mdm-ft, synthesises its set and "
            "trains HAR runs that need no KineMIC output: real, gt, mixed (mdm-ft)"
        )
    soft = mine(source, target, split=config.split, show=3, progress=progress)
    print(soft.text())
    return soft


def _finetunes(
    config: DemoConfig,
    target: Path,
    source: Path,
    out: Path,
    second: _SecondProcess | None,
    progress: bool,
) -> dict[str, Path]:
    """Stage 3: the fine-tuning runs made here, per method: both, or ``kinemic`` alone while
    the second process fine-tunes ``mdm-ft``."""
    methods = METHODS if second is None else ("kinemic",)
    return {m: _finetune(config, m, target, source, out / m, progress) for m in methods}


def _finetune(
    config: DemoConfig,
    method: str,
    target: Path,
    source: Path,
    run: Path,
    progress: bool,
) -> Path:
    """One fine-tuning run: reused when finished, resumed when interrupted."""
    from kinemic.finetune.run import FinetuneConfig, finetune
    from kinemic.training import finished_step

    settings = FinetuneConfig.from_recipe(  # the CPU-sized recipe, named: never the paper's
        "cpu",
        method=method,
        train_steps=config.finetune_steps,
        batch_size=config.finetune_batch,
        seed=config.seed,
    )
    resume = None
    step = finished_step(run)
    if step is not None:
        if step >= config.finetune_steps:
            print(f"   {method}: reusing the finished run {run} ({step} steps)")
            return run
        print(f"   {method}: resuming {run} from step {step}")
        resume = run
    print(f"   {method} → {run}", flush=True)
    finetune(
        target,
        run,
        split=config.split,
        source=source,
        config=settings,
        resume=resume,
        progress=progress,
    )
    return run


def _mining_precision(
    config: DemoConfig, source: Path, target: Path, run: Path, progress: bool
) -> MineReport:
    """Stage 4: the mining precision of the run's attention windows (a ``MineReport``)."""
    from kinemic.mining.report import mine

    mined = mine(source, target, model=run, show=0, seed=config.seed, progress=progress)
    if mined.precision is not None:
        print(mined.precision.table())
    return mined


def _synthesis(
    config: DemoConfig,
    target: Path,
    runs: dict[str, Path],
    out: Path,
    second: _SecondProcess | None,
    progress: bool,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Stage 5: the synthetic set of each method (the second process's for ``mdm-ft``; once
    both exist it may start the runs that need KineMIC's), and how much their clips move."""
    from kinemic.har.motion import motion_markdown, split_motion

    synth = {"kinemic": _synthesize(config, runs["kinemic"], out / "synth-kinemic", progress)}
    if second is None:
        synth["mdm-ft"] = _synthesize(config, runs["mdm-ft"], out / "synth-mdm-ft", progress)
    else:
        synth["mdm-ft"] = second.ready()
        second.go()  # every mode's data is there now: it joins stage 6
    synth = {m: synth[m] for m in METHODS}
    motion = split_motion(target, config.split, [synth[m] for m in METHODS])
    print("   how much the clips move, per class: local joint speed (m/s) / root travel (m)")
    print(motion_markdown(motion))
    return synth, motion


def _synthesize(config: DemoConfig, model: Path, folder: Path, progress: bool) -> Path:
    """One synthetic set: reused when it was made from ``model`` with these settings."""
    from kinemic.finetune.synthesize import matches, synthesize

    settings = dict(per_class=config.per_class, guidance=config.guidance, seed=config.seed)
    if matches(folder, model=model, **settings):
        print(f"   reusing {folder}")
        return folder
    if folder.exists():  # a set of other settings
        shutil.rmtree(folder)
    synthesize(model, folder, ddim=config.ddim, progress=progress, **settings)
    print(f"   {folder}")
    return folder


def _har_protocol(
    config: DemoConfig,
    target: Path,
    synth: dict[str, Path],
    out: Path,
    second: _SecondProcess | None,
    timing: dict[str, Any],
    progress: bool,
) -> tuple[dict[str, Any], int, int]:
    """Stage 6: the protocol's results, printed, and how many runs the second process trained
    before and in this stage (its timing goes to ``timing["second process"]``)."""
    from kinemic.har.results import results_table

    if second is not None:
        print("   the second process trains its share of the runs (claimed in eval/runs/)")
    results = _evaluate(config, target, synth, out / "eval", progress, shared=second is not None)
    print(results_table(results))
    if second is None:
        return results, 0, 0
    done = second.join()
    timing["second process"] = done["seconds"]
    ahead, shared = done["runs_ahead"], done["runs_shared"]
    print(
        f"   second process: mdm-ft fine-tuned and synthesised; HAR runs trained "
        f"{ahead} ahead of this stage and {shared} in it"
    )
    return results, ahead, shared


def _report(
    config: DemoConfig,
    world: Path,
    soft: MineReport,
    mined: MineReport,
    synth: dict[str, Path],
    motion: dict[str, Any],
    results: dict[str, Any],
    out: Path,
    timing: dict[str, Any],
) -> tuple[dict[str, Any], Path, Path]:
    """Stage 7: the figures, ``report.md`` and ``report.html``."""
    from kinemic.report.demo import build_report
    from kinemic.report.html import write_report
    from kinemic.report.verdict import verdict

    figures = _figures(config, results, mined, out)
    figures["motion"] = motion
    figures["timing_s"] = dict(timing)  # the stages before the report
    figures["verdict"] = verdict(
        results["modes"], num_classes=len(results["class_names"]), motion=motion
    )
    for line in figures["verdict"]:
        print(f"   {line}")
    left_out = [m for m in MODES if m not in config.modes]
    report = build_report(
        config={**asdict(config), "modes_left_out": left_out},
        results=results,
        mined=mined,
        soft=soft,
        world=world,
        synth=synth,
        figures=figures,
        gifs=config.gifs,
    )
    md, page = write_report(report, out)
    return figures, md, page


# ---------------------------------------------------------------------- the second process


class _SecondProcess:
    """The second process of a demo with two or more jobs (see the module docstring).

    Phase 1 (stages 2–5): the mdm-ft fine-tune and synthesis (then its synthetic folder comes
    over the pipe, :meth:`ready`), then runs of ``SECOND_MODES`` until :meth:`go` sets the
    event: every synthetic set exists. Phase 2 (stage 6): one job of the protocol beside the
    main process's, sharing the runs by claims in ``out/eval/runs``; it ends when every run
    has a record and sends its figures (:meth:`join`). The main process runs on one torch
    thread meanwhile (:meth:`close` restores its count)."""

    def __init__(self, process, reader: Connection, go, threads: int):
        self.process, self.reader, self.go_event, self.threads = process, reader, go, threads

    @classmethod
    def start(cls, config: DemoConfig, target: Path, source: Path, out: Path) -> _SecondProcess:
        context = multiprocessing.get_context("spawn")  # fork after torch threads can deadlock
        reader, writer = context.Pipe(duplex=False)
        go = context.Event()
        threads = _protocol(config).run_threads()  # stage 6's, so that the run keys agree
        process = context.Process(
            target=_second_process,
            args=(config, target, source, out, threads, writer, go),
            name="kinemic-demo-second",
            daemon=True,
        )
        process.start()
        writer.close()  # the child holds the sending end: the pipe ends when the child does
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)  # the main process now has one core
        return cls(process, reader, go, before)

    def _receive(self, kind: str) -> Any:
        """The next message, which must be ``kind``; an error when the process ended first."""
        wait([self.reader, self.process.sentinel])  # a message, or the process's end
        try:
            got, payload = self.reader.recv()
        except EOFError:  # it ended without sending
            self.process.join()
            got, payload = None, None
        if got != kind:
            raise KinemicError(
                f"the demo's second process (mdm-ft fine-tune and synthesis, HAR runs) failed "
                f"with exit code {self.process.exitcode}; its error is printed above"
            )
        return payload

    def ready(self) -> Path:
        """The mdm-ft synthetic set, once the second process has made it."""
        return self._receive("ready")

    def go(self) -> None:
        """Every synthetic set exists: the second process may train every mode's runs."""
        self.go_event.set()

    def join(self) -> dict[str, Any]:
        """The second process's figures, once every run has a record."""
        result = self._receive("done")
        self.process.join()
        return result

    def close(self) -> None:
        """Stop the process if it still runs (the main process failed or was interrupted)."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.reader.close()
        import torch

        torch.set_num_threads(self.threads)


def _second_process(
    config: DemoConfig,
    target: Path,
    source: Path,
    out: Path,
    threads: int,
    send: Connection,
    go,
) -> None:
    """The body of :class:`_SecondProcess`: ``send`` carries ("ready", synthetic folder) and
    ("done", figures) to the main process; ``go`` is the main process's event."""
    import torch

    from kinemic.har.protocol import exit_with_parent, prerun

    exit_with_parent()  # a killed demo leaves no second process training on
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    run = _finetune(config, "mdm-ft", target, source, out / "mdm-ft", progress=False)
    t1 = time.perf_counter()
    synth = _synthesize(config, run, out / "synth-mdm-ft", progress=False)
    send.send(("ready", synth))
    t2 = time.perf_counter()
    protocol = replace(_protocol(config), jobs=1, threads=threads)
    ahead = prerun(
        target,
        config.split,
        out=out / "eval",
        synthetic=[synth],
        config=replace(protocol, modes=_second_modes(config)),
        stop=go.is_set,
    )
    t3 = time.perf_counter()
    parent = multiprocessing.parent_process()
    while not go.wait(timeout=1.0):  # every second mode is done before KineMIC's set exists
        if parent is not None and not parent.is_alive():
            return  # the demo is gone
    t4 = time.perf_counter()
    shared = prerun(
        target,
        config.split,
        out=out / "eval",
        synthetic=[synth, out / "synth-kinemic"],
        config=protocol,
    )
    t5 = time.perf_counter()
    seconds = {
        "mdm-ft fine-tune": round(t1 - t0, 1),
        "mdm-ft synthesis": round(t2 - t1, 1),
        "HAR runs ahead": round(t3 - t2, 1),
        "idle": round(t4 - t3, 1),
        "HAR runs in stage 6": round(t5 - t4, 1),
        "total": round(t5 - t0, 1),
    }
    result = {
        "run": str(run),
        "synth": str(synth),
        "runs_ahead": ahead,
        "runs_shared": shared,
        "seconds": seconds,
    }
    send.send(("done", result))
    send.close()


# ------------------------------------------------------------------------------- protocol


def _second_modes(config: DemoConfig) -> tuple[str, ...]:
    """The modes the second process trains ahead of stage 6: those that need no KineMIC set."""
    return tuple(m for m in SECOND_MODES if m in config.modes)


def _protocol(config: DemoConfig) -> ProtocolConfig:
    """The HAR protocol settings of stage 6."""
    from kinemic.har.config import ProtocolConfig

    protocol = ProtocolConfig(
        modes=tuple(m for m in MODES if m in config.modes),
        seeds=config.seeds,
        jobs=min(config.jobs, os.cpu_count() or 1),
        width=config.har_width,
        frames=config.har_frames,
    )
    train = replace(
        protocol.train,
        steps=config.har_steps,
        min_epochs=config.har_min_epochs,
        fit_loss=config.har_fit_loss,
        evaluations=2,
    )
    if config.har_epochs is not None:
        train = replace(train, epochs=config.har_epochs)
    return replace(protocol, train=train)


def _evaluate(
    config: DemoConfig,
    target: Path,
    synth: dict[str, Path],
    folder: Path,
    progress: bool,
    *,
    shared: bool = False,
) -> dict[str, Any]:
    """The protocol's evaluation; ``shared``: the second process is one of the jobs (its runs
    are claimed in ``folder/runs``), so this process runs one job fewer, with the same threads
    per run."""
    from kinemic.har.protocol import evaluate

    protocol = _protocol(config)
    if shared:
        protocol = replace(protocol, jobs=max(1, protocol.jobs - 1), threads=protocol.run_threads())
    return evaluate(
        target,
        config.split,
        synthetic=[synth[m] for m in METHODS],
        config=protocol,
        out=folder,
        progress=progress,
    )


# -------------------------------------------------------------------------------- figures


def _figures(config: DemoConfig, results: dict, mined: MineReport, out: Path) -> dict[str, Any]:
    modes = {
        m["mode"]: {
            "final": {
                "mean": m["final"]["mean"],
                "ci95": m["final"]["ci95"],
                "values": m["final"]["values"],
            },
            "best": {"mean": m["best"]["mean"], "ci95": m["best"]["ci95"]},
            "train_clips": m["train_clips"],
        }
        for m in results["modes"]
    }
    return {
        "format": "kinemic-demo",
        "version": 1,
        "settings": asdict(config),
        "seeds": results["seeds"],
        "classes": results["class_names"],
        "validation_clips": results["validation"]["clips"],
        "accuracy": modes,
        "mining_precision": None if mined.precision is None else mined.precision.to_json(),
        "out": str(out),
    }


def _write_json(figures: dict, path: Path, extra: str | Path | None) -> None:
    from kinemic.files import write_text

    text = json.dumps(figures, indent=2, default=str) + "\n"
    write_text(path, text)
    if extra is not None:
        write_text(extra, text)
