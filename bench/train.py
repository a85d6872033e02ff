"""Benchmark: pretraining throughput of the two denoiser presets on this machine.

Prints a table and appends it to bench/results.md. Run: ``python bench/train.py``
(``--no-append`` to only print; ``--cuda`` to use a GPU when one is visible; ``--threads N``).
On a machine shared with other jobs, one thread per process measures more stably than two.

Each row runs the real training loop (``kinemic.training.train`` with the pretraining task:
seeded batches, x0 masked-MSE loss, AdamW, gradient clipping, EMA) on a synthetic corpus of
random 263-d clips of 40..199 frames (about HumanML3D's length range), cropped to at most 196
rows, with random text embeddings of the preset's width. The first step of each run is left
out of the timing, and so is checkpoint writing. ``samples/s`` = training clips per second
(steps/s × batch).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from kinemic.corpus import MotionCorpus
from kinemic.diffusion import Denoiser, DenoiserConfig, NoiseSchedule
from kinemic.io.humanml3d import write_clip
from kinemic.prior.pretrain import PretrainTask
from kinemic.training import TrainConfig, train

RESULTS = Path(__file__).with_name("results.md")


def make_corpus(root: Path, clips: int = 64, seed: int = 0) -> MotionCorpus:
    rng = np.random.default_rng(seed)
    for i in range(clips):
        frames = int(rng.integers(40, 200))
        write_clip(
            root, f"{i:06d}", features=rng.normal(size=(frames, 263)), captions=[f"clip {i}"]
        )
    return MotionCorpus.load([root], progress=False)


def run(
    corpus: MotionCorpus,
    preset: str,
    batch: int,
    precision: str,
    steps: int,
    cpu: bool,
    workdir: Path,
) -> tuple[float, int]:
    """(steps/s, parameters) of ``steps`` training steps (+1 untimed)."""
    config = DenoiserConfig.preset(preset)
    torch.manual_seed(0)
    model = Denoiser(config)
    task = PretrainTask(
        corpus=corpus,
        normalizer=corpus.fit_normalizer(),
        text_embeddings=torch.randn(len(corpus.captions), config.text_dim),
        schedule=NoiseSchedule(50),
        batch_size=batch,
        prior_info=dict(num_steps=50, text_encoder={"name": "random", "dim": config.text_dim}),
    )
    out = workdir / f"{preset}-{batch}-{precision}"
    cfg = TrainConfig(
        steps=steps + 1,
        mixed_precision=precision,
        cpu=cpu,
        checkpoint_every=steps + 1,
        log_every=steps + 1,
        progress=False,
    )
    result = train(model, task, out, cfg, fingerprint={})
    return result.steps_per_second, model.num_parameters()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-steps", type=int, default=20, help="timed steps per tiny row")
    parser.add_argument("--mdm-steps", type=int, default=3, help="timed steps per mdm row")
    parser.add_argument("--cuda", action="store_true", help="use the GPU when one is visible")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = not (args.cuda and torch.cuda.is_available())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(Path(tmp) / "corpus")
        plan = [("tiny", 32), ("tiny", 64), ("mdm", 32)]
        for (preset, batch), precision in [(p, q) for p in plan for q in ("no", "bf16")]:
            steps = args.tiny_steps if preset == "tiny" else args.mdm_steps
            rate, params = run(corpus, preset, batch, precision, steps, cpu, Path(tmp))
            label = "fp32" if precision == "no" else "bf16"
            rows.append((preset, params, batch, label, rate, rate * batch))
            print(f"{preset:5s} batch {batch:3d} {label}: {rate:.3f} steps/s", file=sys.stderr)
    device = "cpu" if cpu else torch.cuda.get_device_name()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### train — {stamp} — {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {device}, "
        f"load average {os.getloadavg()[0]:.1f} at the end",
        "",
        "pretraining steps (x0 masked MSE, AdamW, EMA; random clips of 40..199 frames, "
        "crops ≤ 196 rows); first step untimed",
        "",
        "| preset | parameters | batch | precision | steps/s | samples/s |",
        "|---|---:|---:|---|---:|---:|",
        *[
            f"| {p} | {n / 1e6:.2f} M | {b} | {q} | {r:.3f} | {s:.1f} |"
            for p, n, b, q, r, s in rows
        ],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
