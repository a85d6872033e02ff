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
6. the HAR protocol: ST-GCN trained on ``real``, ``mixed (mdm-ft)``, ``mixed (kinemic)``,
   ``synth (kinemic)`` and ``gt`` over several seeds, top-1 on the validation clips
   (``kinemic evaluate``);
7. ``report.md`` and a self-contained ``report.html``.

With two or more jobs the cores are kept busy: while the main process embeds the captions
(stage 2) and fine-tunes ``kinemic`` (stage 3, the long one), a second process fine-tunes
``mdm-ft`` (three times faster), synthesises its set and then trains HAR runs that need no
KineMIC output (``real``, ``gt``, ``mixed (mdm-ft)``) into ``out/eval/runs/``
(``kinemic.har.protocol.prerun``) until KineMIC's synthetic set exists; in stage 6 it is one
of the jobs, the two processes sharing the remaining runs by claiming them in that folder
(``kinemic.har.protocol.run_protocol``). The figures are the same as when every run trains in
stage 6: a run's numbers depend on its data, settings, seed and thread count, which are the
same (the CI's quick demo gives identical tables either way).

A rerun reuses what is complete (a world of the same scale and seed, finished fine-tunes,
synthetic sets with the same settings, HAR runs with the same key) and resumes an interrupted
fine-tune; ``fresh=True`` starts over. The numbers are what the same verbs give on a user's
data: nothing here is tuned on the validation clips, and the seeds are recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

Scale = Literal["tiny", "small", "default"]
METHODS = ("mdm-ft", "kinemic")
MODES = ("real", "mixed (mdm-ft)", "mixed (kinemic)", "synth (kinemic)", "gt")
WORLD_MARK = "demo-world.json"


@dataclass
class DemoConfig:
    """Settings of a demo run; ``DemoConfig.quick()`` is the CI-sized one."""

    scale: Scale = "default"
    world_seed: int = 0
    split: str = "S0000"
    finetune_steps: int = 200  # per method; 300 took the first run to the 15-min budget
    # (14:50-15:01 on 2 cores), 200 leaves a margin (README, the demo section)
    finetune_batch: int = 16
    per_class: int = 100  # synthetic clips per class
    ddim: int | None = 10  # synthesis sampler: DDIM steps, or None for full DDPM
    guidance: float = 2.5
    seeds: int = 5
    har_width: float = 0.125  # ST-GCN channel multiplier (1 = 64→128→256; full size takes
    # about 70 min per run on 2 CPU cores, see bench/har.py)
    har_steps: int = 160  # optimiser steps per HAR run (the protocol sets epochs from this;
    # the calibration in the README uses 480: the demo's 25 runs get less to fit its budget)
    har_epochs: int | None = None  # None: the protocol's rule (from the training set size)
    har_min_epochs: int = 3  # fewest epochs of any run; the calibration's 60 fits the 330-clip
    # modes too (DemoConfig.fitted(); its HAR stage took 45 min on 2 cores)
    jobs: int = 2  # HAR runs in parallel processes
    gifs: bool = True
    seed: int = 0  # fine-tuning and synthesis seed
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick(cls, **overrides: Any) -> DemoConfig:
        """Fewer seeds and steps, on the tiny world: the CI-sized run (≲ 3 minutes)."""
        base = dict(
            scale="tiny",
            finetune_steps=30,
            finetune_batch=8,
            per_class=12,
            seeds=2,
            har_width=0.25,
            har_epochs=8,
            gifs=True,
        )
        return cls(**{**base, **overrides})

    @classmethod
    def fitted(cls, **overrides: Any) -> DemoConfig:
        """The demo with the HAR training of the world's calibration (480 steps, at least 60
        epochs): every classifier is fitted, the large training sets included."""
        return cls(**{**dict(har_steps=480, har_min_epochs=60), **overrides})


def _stage(n: int, title: str) -> float:
    print(f"\n== {n}/7 {title}", flush=True)
    return time.perf_counter()


def _done(t0: float, timing: dict[str, float], key: str) -> None:
    timing[key] = round(time.perf_counter() - t0, 1)
    print(f"   ({timing[key]:.1f} s)", flush=True)


def run_demo(
    config: DemoConfig | None = None,
    *,
    out: str | Path = Path("out/demo"),
    json_path: str | Path | None = None,
    fresh: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every stage; return (and write to ``out/demo.json`` and ``json_path``) the figures."""
    config = config or DemoConfig()
    out = Path(out)
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"kinemic demo: KineMIC on the embedded world ({config.scale} scale, split "
        f"{config.split}) with the shipped prior: mine → fine-tune (mdm-ft, kinemic) → "
        f"synthesise → evaluate {len(MODES)} modes × {config.seeds} seeds → report in {out}"
    )
    timing: dict[str, float] = {}
    world, generated = _world(config, out / "world", timing, progress)
    source, target = world / "source", world / "target"
    if generated:  # what earlier runs derived from another world is stale
        for m in METHODS:
            for stale in (out / m, out / f"synth-{m}"):
                shutil.rmtree(stale, ignore_errors=True)

    from kinemic.mining.report import mine

    two = min(config.jobs, os.cpu_count() or 1) >= 2
    side = _SideWork.start(config, target, source, out) if two else None
    try:
        t0 = _stage(2, "soft positives: source motions whose captions match each class")
        if side is not None:
            print(
                "   meanwhile a second process fine-tunes mdm-ft, synthesises its set and "
                "trains HAR runs that need no KineMIC output: real, gt, mixed (mdm-ft)"
            )
        soft = mine(source, target, split=config.split, show=3, progress=progress)
        print(soft.text())
        _done(t0, timing, "soft positives")

        t0 = _stage(3, f"fine-tuning the shipped prior ({config.finetune_steps} steps per method)")
        if side is None:
            runs = {m: _finetune(config, m, target, source, out / m, progress) for m in METHODS}
        else:
            runs = {
                "kinemic": _finetune(config, "kinemic", target, source, out / "kinemic", progress)
            }
        _done(t0, timing, "fine-tuning")

        t0 = _stage(4, "mining precision of the attention windows (world ground truth)")
        mined = mine(
            source, target, model=runs["kinemic"], show=0, seed=config.seed, progress=progress
        )
        if mined.precision is not None:
            print(mined.precision.table())
        _done(t0, timing, "mining precision")

        t0 = _stage(5, f"synthesis: {config.per_class} clips per class from each generator")
        synth = {"kinemic": _synthesize(config, runs["kinemic"], out / "synth-kinemic", progress)}
        if side is None:
            synth["mdm-ft"] = _synthesize(config, runs["mdm-ft"], out / "synth-mdm-ft", progress)
        else:
            runs["mdm-ft"], synth["mdm-ft"] = side.ready()
            side.go()  # every mode's data is there now: it joins stage 6
        synth = {m: synth[m] for m in METHODS}
        from kinemic.har.motion import motion_markdown, split_motion

        motion = split_motion(target, config.split, [synth[m] for m in METHODS])
        print("   how much the clips move, per class: local joint speed (m/s) / root travel (m)")
        print(motion_markdown(motion))
        _done(t0, timing, "synthesis")

        t0 = _stage(6, f"HAR protocol: ST-GCN, {len(MODES)} modes × {config.seeds} seeds")
        if side is not None:
            print("   the second process trains its share of the runs (claimed in eval/runs/)")
        results = _evaluate(config, target, synth, out / "eval", progress, shared=side is not None)
        from kinemic.har.results import results_table

        print(results_table(results))
        ahead = shared = 0  # HAR runs the second process trained before and in stage 6
        if side is not None:
            done = side.join()
            timing["second process"], ahead = done["seconds"], done["runs_ahead"]
            shared = done["runs_shared"]
            print(
                f"   second process: mdm-ft fine-tuned and synthesised; HAR runs trained "
                f"{ahead} ahead of this stage and {shared} in it"
            )
        _done(t0, timing, "evaluation")
    finally:
        if side is not None:
            side.close()

    t0 = _stage(7, "report")
    from kinemic.report.demo import build_report

    figures = _figures(config, results, mined, timing, out)
    figures["motion"] = motion
    report = build_report(
        config=asdict(config),
        results=results,
        mined=mined,
        soft=soft,
        world=world,
        synth=synth,
        figures=figures,
        gifs=config.gifs,
    )
    from kinemic.report.html import write_report

    md, page = write_report(report, out)
    _done(t0, timing, "report")
    figures["timing_s"] = timing
    figures["har_runs_ahead"], figures["har_runs_shared"] = ahead, shared
    _write_json(figures, out / "demo.json", json_path)
    print(f"\nreport: {page}\n        {md}\nfigures: {out / 'demo.json'}")
    return figures


# ------------------------------------------------------------------------------------ stages


def _world(config: DemoConfig, world: Path, timing: dict, progress: bool) -> tuple[Path, bool]:
    """The demo's world folder, generated unless an earlier run left the same one; and
    whether it was generated now."""
    from kinemic.world.generate import WORLD_VERSION, generate_world

    t0 = _stage(1, f"procedural world ({config.scale} scale, seed {config.world_seed}) → {world}")
    want = {"scale": config.scale, "seed": config.world_seed, "version": WORLD_VERSION}
    mark = world / WORLD_MARK
    generated = not (mark.is_file() and json.loads(mark.read_text(encoding="utf-8")) == want)
    if not generated:
        print("   reusing the world generated by an earlier run")
    else:
        summary = generate_world(
            world, seed=config.world_seed, scale=config.scale, overwrite=True, progress=progress
        )
        print(summary.table())
        from kinemic.files import write_text

        write_text(mark, json.dumps(want) + "\n")
    _done(t0, timing, "world")
    return world, generated


def _finetune(
    config: DemoConfig,
    method: str,
    target: Path,
    source: Path,
    run: Path,
    progress: bool,
) -> Path:
    from kinemic.finetune.run import FinetuneConfig, finetune
    from kinemic.training import LATEST, TRAINER_FILE

    settings = FinetuneConfig(
        method=method,
        train_steps=config.finetune_steps,
        batch_size=config.finetune_batch,
        seed=config.seed,
    )
    resume = None
    if (run / LATEST).exists():
        ckpt = run / (run / LATEST).read_text(encoding="utf-8").strip()
        step = json.loads((ckpt / TRAINER_FILE).read_text(encoding="utf-8"))["step"]
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


SIDE_MODES = ("real", "gt", "mixed (mdm-ft)")  # the HAR modes that need no KineMIC output
SIDE_READY = "second-process-ready.json"
SIDE_RESULT = "second-process.json"
SIDE_GO = ".second-process-go"


class _SideWork:
    """The second process of a demo with two or more jobs (see the module docstring).

    Phase 1 (stages 2–5): the mdm-ft fine-tune and synthesis (then ``SIDE_READY`` is written),
    then runs of ``SIDE_MODES`` until ``go()`` says every synthetic set exists. Phase 2 (stage
    6): one job of the protocol beside the main process's, sharing the runs by claims in
    ``out/eval/runs``; it ends when every run has a record. Its figures: ``SIDE_RESULT``."""

    def __init__(self, process, out: Path, threads: int):
        self.process, self.out, self.threads = process, out, threads

    @classmethod
    def start(cls, config: DemoConfig, target: Path, source: Path, out: Path) -> _SideWork:
        import multiprocessing

        for stale in (out / SIDE_READY, out / SIDE_RESULT, out / SIDE_GO):
            stale.unlink(missing_ok=True)
        threads = _protocol(config).run_threads()  # stage 6's, so that the run keys agree
        context = multiprocessing.get_context("spawn")  # fork after torch threads can deadlock
        process = context.Process(
            target=_side_work,
            args=(config, target, source, out, threads),
            name="kinemic-demo-second",
            daemon=True,
        )
        process.start()
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)  # the main process now has one core
        return cls(process, out, before)

    def _failed(self) -> Exception:
        from kinemic.errors import KinemicError

        return KinemicError(
            f"the demo's second process (mdm-ft fine-tune and synthesis, HAR runs) failed with "
            f"exit code {self.process.exitcode}; its error is printed above"
        )

    def ready(self) -> tuple[Path, Path]:
        """The mdm-ft run and synthetic set, once the second process has made them."""
        path = self.out / SIDE_READY
        while not path.is_file():
            if not self.process.is_alive():
                raise self._failed()
            time.sleep(0.5)
        info = json.loads(path.read_text(encoding="utf-8"))
        return Path(info["run"]), Path(info["synth"])

    def go(self) -> None:
        (self.out / SIDE_GO).touch()

    def join(self) -> dict[str, Any]:
        self.process.join()
        result = self.out / SIDE_RESULT
        if self.process.exitcode != 0 or not result.is_file():
            raise self._failed()
        return json.loads(result.read_text(encoding="utf-8"))

    def close(self) -> None:
        """Stop the process if it still runs (the main process failed or was interrupted)."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        (self.out / SIDE_GO).unlink(missing_ok=True)
        import torch

        torch.set_num_threads(self.threads)


def _side_work(config: DemoConfig, target: Path, source: Path, out: Path, threads: int) -> None:
    """The second process (``_SideWork``)."""
    import torch

    from kinemic.files import write_text
    from kinemic.har.protocol import prerun

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    run = _finetune(config, "mdm-ft", target, source, out / "mdm-ft", progress=False)
    t1 = time.perf_counter()
    synth = _synthesize(config, run, out / "synth-mdm-ft", progress=False)
    write_text(out / SIDE_READY, json.dumps({"run": str(run), "synth": str(synth)}) + "\n")
    t2 = time.perf_counter()
    protocol = replace(_protocol(config), jobs=1, threads=threads)
    go = (out / SIDE_GO).exists
    ahead = prerun(
        target,
        config.split,
        out=out / "eval",
        synthetic=[synth],
        config=replace(protocol, modes=SIDE_MODES),
        stop=go,
    )
    t3 = time.perf_counter()
    while not go():  # every side mode is done before KineMIC's set exists
        time.sleep(0.5)
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
    write_text(out / SIDE_RESULT, json.dumps(result) + "\n")


def _synthesize(config: DemoConfig, model: Path, folder: Path, progress: bool) -> Path:
    from kinemic.finetune.synthesize import synthesize

    info = folder / "info.json"
    if info.is_file():
        have = json.loads(info.read_text(encoding="utf-8"))
        same = (
            have.get("guidance") == config.guidance
            and have.get("seed") == config.seed
            and set(map(int, have.get("per_class", {}).values())) == {config.per_class}
        )
        if same and Path(have.get("model", "")).resolve().parent.parent == model.resolve():
            print(f"   reusing {folder}")
            return folder
        shutil.rmtree(folder)
    synthesize(
        model,
        folder,
        per_class=config.per_class,
        guidance=config.guidance,
        ddim=config.ddim,
        seed=config.seed,
        progress=progress,
    )
    print(f"   {folder}")
    return folder


def _protocol(config: DemoConfig):
    """The HAR protocol settings of stage 6."""
    from kinemic.har.config import ProtocolConfig

    protocol = ProtocolConfig(
        modes=MODES,
        seeds=config.seeds,
        jobs=min(config.jobs, os.cpu_count() or 1),
        width=config.har_width,
    )
    train = replace(
        protocol.train, steps=config.har_steps, min_epochs=config.har_min_epochs, evaluations=2
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
    """Stage 6; ``shared``: the second process is one of the jobs (its runs are claimed in
    ``folder/runs``), so this process runs one job fewer, with the same threads per run."""
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


def _figures(config: DemoConfig, results: dict, mined, timing: dict, out: Path) -> dict[str, Any]:
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
