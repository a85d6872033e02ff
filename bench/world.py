"""Benchmark: generating the procedural world (``kinemic world``) at a given scale.

Generates the world into a temporary folder, prints a table (wall time per stage, sequences/s,
clips/s) and appends it to bench/results.md. Run: ``python bench/world.py [--scale default]``.
The target is the default scale in under 2 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kinemic.world.generate import SCALES, generate_world
from results_log import append, heading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=list(SCALES), default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: ≤ 2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kinemic-world-") as tmp:
        t0 = time.perf_counter()
        summary = generate_world(
            Path(tmp) / "world", seed=args.seed, scale=args.scale, workers=args.workers
        )
        total = time.perf_counter() - t0
        files = sum(1 for p in Path(tmp).rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())

    frames_s = summary.source_frames / 20.0
    lines = [
        heading("world"),
        "",
        f"`generate_world(scale={args.scale!r}, seed={args.seed})`: {summary.sequences:,} source "
        f"sequences ({frames_s / 3600:.1f} h of motion), {summary.clips:,} target clips of "
        f"{len(summary.classes)} classes; {files:,} files, {size / 2**20:,.0f} MiB",
        "",
        summary.table(),
        "",
        f"end to end: **{total:.1f} s** ({summary.sequences / summary.seconds['source']:.1f} "
        f"sequences/s, {summary.clips / summary.seconds['target']:.1f} clips/s)",
    ]
    text = "\n".join(lines) + "\n"
    append(text)


if __name__ == "__main__":
    main()
