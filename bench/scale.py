"""Benchmark: the training corpus at HumanML3D's scale — load time, memory per rank, loader speed.

Builds a synthetic corpus of HumanML3D's size in a temp folder under the OS temp dir (29,000
clips of 40..196 frames of 263 float32 features, ~3.6 GB; three captions per clip, one of them
a 2 s span), then measures, each in fresh processes:

- load time: cold (building the memory-mapped pack of ``kinemic.packed`` from the ``.npy``
  files) and warm (opening it), against today's in-memory read (``cache=False``);
- memory per rank with 1 and 2 processes loading the corpus at once and fitting the
  normaliser (which reads every row, as pretraining does): RSS, PSS (shared pages divided
  among the processes mapping them) and the process's own anonymous memory, read from
  ``/proc/<pid>/smaps_rollup`` and ``/proc/<pid>/status`` while every process is alive; the
  pack's rows are one copy in the page cache, so PSS per rank halves with 2 ranks while the
  in-memory corpus costs each rank its own copy;
- loader speed: batches/s of pretraining's batch (``kinemic.prior.batches``, the global batch
  of 64 of the ``mdm`` preset, and one rank's 32 of it) drawn in the process and through a
  ``StepLoader`` with 2 workers, against the ``mdm`` preset's training step (forward, backward,
  AdamW) at batch 64 on this CPU.

Prints the tables and appends them to bench/results.md (``--no-append`` to only print).
``--clips N`` scales the corpus down (the output says so); with too little free disk or
memory it scales down by itself and says so. Run: ``python bench/scale.py --clips 8000``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_log import append, heading

HUMANML3D_CLIPS = 29_000
MIN_FRAMES, MAX_FRAMES = 40, 196
FEATURES = 263
MEAN_FRAMES = (MIN_FRAMES + MAX_FRAMES) / 2


def corpus_bytes(clips: int) -> float:
    return clips * MEAN_FRAMES * FEATURES * 4


def make_corpus(root: Path, clips: int, seed: int = 0) -> tuple[int, float]:
    """Write ``clips`` random clips in the HumanML3D layout (plain np.save: no fsync per file,
    which would measure the disk, not the corpus); (frames, seconds)."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    frames = 0
    ids = []
    for i in range(clips):
        clip_id = f"{i:06d}"
        n = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
        np.save(
            root / "new_joint_vecs" / f"{clip_id}.npy",
            rng.standard_normal((n, FEATURES), np.float32),
        )
        lines = [
            f"a person does motion {i}#a/DET person/NOUN#0.0#0.0",
            f"someone moves in way {i % 997}#someone/PRON move/VERB#0.0#0.0",
            f"the first steps of motion {i}#the/DET first/ADJ step/NOUN#0.0#2.0",
        ]
        (root / "texts" / f"{clip_id}.txt").write_text("\n".join(lines) + "\n")
        frames += n
        ids.append(clip_id)
    (root / "train.txt").write_text("\n".join(ids) + "\n")
    return frames, time.perf_counter() - start


# ------------------------------------------------------------------------- one rank's process


def rank_main(source: str, cache: str, mode: str, ready: str, go: str) -> None:
    """Load the corpus (``mode``: pack or memory), fit the normaliser, say so in ``ready``
    (with the load time), and wait for ``go`` so that the parent measures while all live."""
    from kinemic.corpus import MotionCorpus

    t0 = time.perf_counter()
    corpus = MotionCorpus.load(
        [source], progress=False, cache=False if mode == "memory" else Path(cache)
    )
    loaded = time.perf_counter() - t0
    corpus.fit_normalizer()
    Path(ready).write_text(json.dumps({"load_s": loaded, "frames": len(corpus.features)}))
    while not Path(go).exists():
        time.sleep(0.05)


def proc_memory(pid: int) -> dict[str, float]:
    """RSS, PSS, anonymous and peak RSS of ``pid`` in MB."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    status = Path(f"/proc/{pid}/status").read_text().splitlines()

    def field(lines: list[str], name: str) -> float:
        line = next(x for x in lines if x.startswith(name + ":"))
        return int(line.split()[1]) / 1024

    return {
        "rss": field(rollup, "Rss"),
        "pss": field(rollup, "Pss"),
        "anon": field(rollup, "Anonymous"),
        "peak": field(status, "VmHWM"),
    }


def run_ranks(source: Path, cache: Path, mode: str, ranks: int, work: Path) -> list[dict]:
    """Start ``ranks`` processes at once; each row: load_s and the memory while all live."""
    run = work / f"{mode}-{ranks}-{time.monotonic_ns()}"
    run.mkdir()
    go = run / "go"
    procs = []
    for r in range(ranks):
        ready = run / f"ready-{r}"
        cmd = [
            sys.executable,
            __file__,
            "--_rank",
            str(source),
            str(cache),
            mode,
            str(ready),
            str(go),
        ]
        procs.append((subprocess.Popen(cmd), ready))
    try:
        for proc, ready in procs:
            while not ready.exists():
                if proc.poll() is not None:
                    raise RuntimeError(f"rank process failed ({proc.returncode})")
                time.sleep(0.1)
        rows = [{**json.loads(ready.read_text()), **proc_memory(proc.pid)} for proc, ready in procs]
    finally:
        go.touch()
        for proc, _ in procs:
            proc.wait(timeout=120)
    return rows


# ------------------------------------------------------------------------------------ loader


def loader_speed(source: Path, cache: Path, step_batch: int, seconds: float) -> list[tuple]:
    """(what, batches/s) of pretraining's batches, and of the mdm training step."""
    import torch

    from kinemic.corpus import MotionCorpus
    from kinemic.diffusion import Denoiser, DenoiserConfig, NoiseSchedule
    from kinemic.loader import StepLoader
    from kinemic.prior.batches import PretrainBatches

    corpus = MotionCorpus.load([source], progress=False, cache=cache)
    normalizer = corpus.fit_normalizer()
    rows = []

    def rate(fn) -> float:
        fn(0)  # start-up (workers) left out
        n, t0 = 1, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn(n)
            n += 1
        return (n - 1) / (time.perf_counter() - t0)

    def draw(rank: int, world: int) -> PretrainBatches:
        return PretrainBatches(corpus, normalizer, 50, 64, rank=rank, world_size=world)

    rows.append(("batch of 64, in the training process", rate(draw(0, 1))))
    rows.append(("rank 1's 32 of 2 ranks, in the training process", rate(draw(1, 2))))
    loader = StepLoader(draw(0, 1), workers=2, prefetch=4)
    rows.append(("batch of 64, StepLoader with 2 workers", rate(loader)))
    loader.close()

    torch.manual_seed(0)
    config = DenoiserConfig.preset("mdm")
    model = Denoiser(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    schedule = NoiseSchedule(50)
    batches = PretrainBatches(corpus, normalizer, 50, step_batch)
    text = torch.randn(step_batch, config.text_dim)

    def step(i: int) -> None:
        b = batches(i)
        xt = schedule.q_sample(b["x0"], b["t"], b["noise"])
        x0 = model(xt, b["t"], text=text, mask=b["mask"], uncond=b["caption"] < 0)
        loss = ((x0 - b["x0"]) ** 2 * b["mask"][..., None]).sum() / b["mask"].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(0)  # allocations left out
    t0 = time.perf_counter()
    step(1)
    step(2)
    rows.append(
        (
            f"mdm training step, batch {step_batch} (forward, backward, AdamW)",
            2 / (time.perf_counter() - t0),
        )
    )
    return rows


# -------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=HUMANML3D_CLIPS, help="clips (29000)")
    parser.add_argument("--step-batch", type=int, default=64, help="mdm step batch (64)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per loader rate (10)")
    parser.add_argument("--no-append", action="store_true", help="only print")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()

    clips, notes = args.clips, []
    if clips != HUMANML3D_CLIPS:
        notes.append(
            f"scaled down by --clips: {clips} clips instead of HumanML3D's {HUMANML3D_CLIPS}"
        )
    free_disk = shutil.disk_usage(tempfile.gettempdir()).free
    if 2.2 * corpus_bytes(clips) > free_disk:  # the .npy files and the pack
        fit = int(free_disk / 2.2 / corpus_bytes(1))
        notes.append(f"scaled down to {fit} clips: {free_disk / 1e9:.1f} GB free in the temp dir")
        clips = fit
    avail = (
        int(
            next(
                x
                for x in Path("/proc/meminfo").read_text().splitlines()
                if x.startswith("MemAvailable")
            ).split()[1]
        )
        * 1024
    )
    memory_ranks = [r for r in (1, 2) if r * 2.2 * corpus_bytes(clips) < 0.6 * avail]
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="kinemic-scale-"))
    try:
        source, cache = work / "source", work / "packs"
        frames, made_s = make_corpus(source, clips)
        gb = frames * FEATURES * 4 / 1e9
        mem_rows = []
        cold = run_ranks(source, cache, "pack", 1, work)[0]
        mem_rows.append(("pack, cold (builds it)", 1, cold))
        for ranks in (1, 2):
            for r, row in enumerate(run_ranks(source, cache, "pack", ranks, work)):
                mem_rows.append((f"pack, warm (opens it), rank {r}", ranks, row))
        for ranks in (1, 2):
            if ranks not in memory_ranks:
                notes.append(
                    f"in-memory with {ranks} ranks skipped: ~{ranks * 2.2 * gb:.1f} GB peak, "
                    f"{avail / 1e9:.1f} GB available"
                )
                continue
            for r, row in enumerate(run_ranks(source, cache, "memory", ranks, work)):
                mem_rows.append((f"in memory (cache=False), rank {r}", ranks, row))
        speeds = loader_speed(source, cache, args.step_batch, args.seconds)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    lines = [
        heading("Corpus at scale (bench/scale.py)"),
        "",
        f"Synthetic corpus: {clips} clips, {frames:,} frames of {FEATURES} float32 features "
        f"({gb:.2f} GB), {3 * clips} captions; written in {made_s:.0f} s. Load average (1, 5, "
        f"15 min) at the start: {' '.join(f'{x:.2f}' for x in load_start)}, at the end: "
        f"{' '.join(f'{x:.2f}' for x in load)} (this machine has {os.cpu_count()} cores).",
        *(f"Note: {n}." for n in notes),
        "",
        "| corpus | ranks | load s | RSS MB | PSS MB | own anon MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {what} | {ranks} | {r['load_s']:.1f} | {r['rss']:.0f} | {r['pss']:.0f} | "
            f"{r['anon']:.0f} | {r['peak']:.0f} |"
            for what, ranks, r in mem_rows
        ),
        "",
        "| batches (pretraining, max 196 frames) | per second | ms each |",
        "|---|---|---|",
        *(f"| {what} | {rate:.2f} | {1000 / rate:.0f} |" for what, rate in speeds),
    ]
    text = "\n".join(lines) + "\n"
    if args.no_append:
        print(text)
    else:
        append(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_rank":
        rank_main(*sys.argv[2:7])
    else:
        main()
