"""Experiment: soft-positive precision of text, motion and their sum, on a world.

For each class of a few-shot split, the text top-``pool`` source motions are ranked by
``w · z(motion) + (1 - w) · z(text)``, where z standardises a score within the class's pool,
the motion score is the kinematic filter's (best T-MOR window cosine to the class's shots) and
the text score the caption cosine (``kinemic.mining.kinematic_filter.fused_scores``, the key of
``--filter kinematic --filter-weight w``); precision@k is the share of the first k whose
ground-truth segments contain the class's primitive. w = 0 is KineMIC's text ranking, w = 1 the
motion ranking alone, w = 0.5 the filter's default. Prints a table and appends it to
bench/results.md.

Run: ``python bench/filter_fusion.py --world out/world [--pools 500 1000] [--weights 0 0.5 1]``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from kinemic.mining.filter_eval import score_candidates
from kinemic.mining.kinematic_filter import fused_scores
from results_log import append, heading


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", required=True, help="world folder (source/ + target/)")
    ap.add_argument("--split", default="S0001")
    ap.add_argument("--k", type=int, default=250)
    ap.add_argument(
        "--pools",
        type=int,
        nargs="+",
        default=[500, 1000],
        help="text pools (each the head of the largest one)",
    )
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--no-append", action="store_true", help="only print")
    args = ap.parse_args(argv)
    fc = score_candidates(args.world, split=args.split, pool=max(args.pools))
    head = " | ".join(f"{n[:18]}" for n in fc.names)
    rows = [
        f"| pool | motion weight w | mean P@{args.k} | {head} |",
        "|---:|---:|---:|" + "---:|" * len(fc.names),
    ]
    for pool in args.pools:
        for w in args.weights:
            key = fused_scores(fc.text_scores[:, :pool], fc.kinematic.score[:, :pool], w)
            order = np.argsort(-key, axis=1, kind="stable")[:, : args.k]
            prec = 100 * np.take_along_axis(fc.hits[:, :pool], order, 1).mean(1)
            cells = " | ".join(f"{p:.1f}" for p in prec)
            rows.append(f"| {pool} | {w:g} | {np.mean(prec):.1f} | {cells} |")
    text = "\n".join(
        [
            heading("soft-positive precision: text, motion and their sum"),
            f"world {args.world}, split {args.split}, k {args.k}, shipped T-MOR encoder, "
            "MiniLM captions",
            "",
            *rows,
        ]
    )
    if args.no_append:
        print(text)
    else:
        append(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
