"""How hard is the world's target domain? 10-shot vs all-training-clips accuracy.

Generates a world (or reads one), trains the quick TCN classifier of ``kinemic.har.tcn`` on
the few-shot split's training clips and on every default-split training clip of the same
classes, and reports validation top-1 over several seeds (mean ± 95% CI, final epoch).
Prints a table and appends it to bench/results.md.

    python bench/world_difficulty.py --world out/world --seeds 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from kinemic.har.tcn import train_tcn
from kinemic.io.ntu_vibe import NTUVibeDataset
from results_log import append, heading


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, help="a world folder (default: generate one)")
    parser.add_argument("--scale", default="small", help="scale when generating (small)")
    parser.add_argument("--seed", type=int, default=0, help="world seed when generating (0)")
    parser.add_argument("--seeds", type=int, default=3, help="classifier seeds (3)")
    parser.add_argument("--split", default="S0001", help="few-shot split (S0001: every class)")
    parser.add_argument("--epochs", type=int, default=30, help="TCN epochs (30)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    world = args.world
    if world is None:
        from kinemic.world.generate import generate_world

        world = Path(tempfile.mkdtemp(prefix="kinemic-world-"))
        generate_world(world, seed=args.seed, scale=args.scale, progress=False)
    data = NTUVibeDataset(world / "target")
    split = data.fewshot_split(args.split)
    classes = list(split.class_list)
    remap = {c: i for i, c in enumerate(classes)}
    all_ids, all_labels = data.default_split("xsub", "train")
    full = [(i, y) for i, y in zip(all_ids, all_labels, strict=True) if y in remap]
    joints = {i: data.joints(i) for i in {*split.train_ids, *split.val_ids, *(i for i, _ in full)}}
    val_x = [joints[i] for i in split.val_ids]
    val_y = np.array([remap[y] for y in split.val_labels])

    results: dict[str, list[float]] = {"10-shot": [], "all training clips": []}
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        for name, pairs in (
            ("10-shot", list(zip(split.train_ids, split.train_labels, strict=True))),
            ("all training clips", full),
        ):
            clf = train_tcn(
                [joints[i] for i, _ in pairs],
                [remap[y] for _, y in pairs],
                num_classes=len(classes),
                seed=seed,
                epochs=args.epochs,
            )
            results[name].append(float((clf.predict(val_x) == val_y).mean() * 100))
    dt = time.perf_counter() - t0

    lines = [
        heading("world difficulty"),
        "",
        f"world {world}{'' if args.world else f' ({args.scale} scale, seed {args.seed})'}, "
        f"split {args.split}: "
        f"{len(classes)} classes, {len(split.train_ids)} few-shot clips, {len(full)} training "
        f"clips, {len(val_x)} validation clips; TCN classifier ({args.epochs} epochs), final "
        f"epoch, {args.seeds} seeds",
        "",
        "| training set | val top-1 (%) |",
        "|---|---:|",
    ]
    for name, accs in results.items():
        m, h = mean_ci(accs)
        lines.append(f"| {name} | {m:.1f} ± {h:.1f} |")
    lines += ["", f"({dt:.0f} s of training)"]
    text = "\n".join(lines) + "\n"
    append(text)


if __name__ == "__main__":
    main()
