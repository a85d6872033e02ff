"""The quality gate of a prior on the procedural world (see kinemic.prior.quality).

For every world primitive, samples from a caption paraphrase reserved for evaluation are
classified by a TCN trained on real world segments; random features give the floor; the share
of physically implausible samples is reported too, and two diagnostics: the same gate from seen
(training) captions, and the text probe (x0 from the noisiest step with and without the
caption: equal figures mean the prior ignores its text). Prints a table, appends it to
bench/results.md and, with --json, writes the figures.

    python bench/prior_quality.py --prior shipped --world out/world
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kinemic.files import write_text
from kinemic.prior.quality import evaluate_prior
from results_log import append, heading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="shipped", help="prior folder or run (shipped)")
    parser.add_argument("--world", type=Path, required=True, help="world folder (its source/)")
    parser.add_argument("--samples", type=int, default=10, help="samples per primitive (10)")
    parser.add_argument("--seconds", type=float, default=3.0, help="sample length (3.0)")
    parser.add_argument("--ddim", type=int, default=0, help="DDIM steps; 0 = DDPM (0)")
    parser.add_argument("--seed", type=int, default=0, help="seed (0)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    t0 = time.perf_counter()
    report = evaluate_prior(
        args.prior,
        args.world,
        samples=args.samples,
        seconds=args.seconds,
        ddim=args.ddim or None,
        seed=args.seed,
    )
    dt = time.perf_counter() - t0
    sampler = f"DDIM {args.ddim}" if args.ddim else "DDPM"
    lines = [
        heading("prior quality"),
        "",
        f"prior {args.prior}, world {args.world}: {args.samples} samples of {args.seconds:g} s per "
        f"primitive, {sampler}, guidance 2.5, seed {args.seed} ({dt:.0f} s)",
        "",
        report.table(),
        "",
        "per primitive: "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(report.per_primitive.items())),
    ]
    text = "\n".join(lines) + "\n"
    append(text)
    if args.json:
        write_text(args.json, report.to_json())


if __name__ == "__main__":
    main()
