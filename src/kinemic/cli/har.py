"""``kinemic evaluate``, ``evaluator`` and ``metrics``: thin wrappers over
``kinemic.har.protocol`` and ``kinemic.har.metrics``; the defaults shown are those of
``kinemic.har.config`` (which imports no torch)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kinemic.cli.kinemic import DEVICE_HELP
from kinemic.har.config import HARTrainConfig, ProtocolConfig


def add_training(p: argparse.ArgumentParser) -> None:
    train, protocol = HARTrainConfig(), ProtocolConfig()
    g = p.add_argument_group("ST-GCN and its training")
    g.add_argument(
        "--width",
        type=float,
        default=protocol.width,
        help=f"channel multiplier: 1 = 64→128→256, 0.25 = 16→32→64 ({protocol.width:g})",
    )
    g.add_argument(
        "--train-steps",
        "--steps",
        dest="train_steps",
        type=int,
        default=train.steps,
        help=f"optimiser steps aimed at; epochs = ceil(steps / batches per epoch) "
        f"within [{train.min_epochs}, {train.max_epochs}] ({train.steps}; --steps is the old "
        "name, kept for one release)",
    )
    g.add_argument(
        "--min-epochs",
        type=int,
        default=train.min_epochs,
        help=f"fewest epochs any training set gets, so that a large one is fitted too "
        f"({train.min_epochs})",
    )
    g.add_argument(
        "--max-epochs", type=int, default=train.max_epochs, help=f"most epochs ({train.max_epochs})"
    )
    g.add_argument("--epochs", type=int, help="a fixed number of epochs instead of --train-steps")
    g.add_argument(
        "--fit-loss",
        type=float,
        default=train.fit_loss,
        help="the fitting rule: stop a run at the first epoch whose mean training loss is at "
        "most this (0.05: the true class gets ~95%% probability); the epochs above are then "
        "the most it trains. Reads no validation clip (default: off, every planned epoch)",
    )
    g.add_argument("--batch-size", type=int, default=train.batch_size, help=f"({train.batch_size})")
    g.add_argument("--lr", type=float, default=train.lr, help=f"SGD learning rate ({train.lr:g})")
    g.add_argument(
        "--frames", type=int, default=protocol.frames, help=f"frames per clip ({protocol.frames})"
    )
    g.add_argument(
        "--centre",
        choices=["first-frame", "per-frame"],
        default=protocol.centre,
        help=f"subtract the pelvis of the first frame or of every frame ({protocol.centre})",
    )
    g.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast: faster on GPUs and on CPUs with bf16 instructions (AVX512-BF16: "
        "1.5-2x fp32 in bench/har.py), slower on other CPUs",
    )
    g.add_argument("--device", help=DEVICE_HELP)
    g.add_argument("--cpu", action="store_true", help="the same as --device cpu")


def _device(args: argparse.Namespace):
    """The ``torch.device`` of ``--device`` (``--cpu``: the CPU)."""
    from kinemic.devices import resolve_device

    return resolve_device("cpu" if args.cpu else args.device)


def _train_config(args: argparse.Namespace, **extra) -> HARTrainConfig:
    return HARTrainConfig(
        epochs=args.epochs,
        steps=args.train_steps,
        min_epochs=args.min_epochs,
        max_epochs=args.max_epochs,
        fit_loss=args.fit_loss,
        batch_size=args.batch_size,
        lr=args.lr,
        mixed_precision="bf16" if args.bf16 else "no",
        cpu=args.cpu,
        **extra,
    )


# ----------------------------------------------------------------------------------- evaluate


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    protocol, train = ProtocolConfig(), HARTrainConfig()
    p = sub.add_parser(
        "evaluate",
        help="the HAR protocol: train ST-GCN per mode and seed, report validation top-1",
        description=(
            "Train one ST-GCN per mode and seed and score it on the split's validation clips. "
            "Modes: real (the few-shot clips), gt (every training clip of the split's classes, "
            "the ceiling), synth (a synthetic folder's clips), mixed (few-shot + synthetic); "
            "with several --synthetic folders, synth and mixed give one mode per folder, "
            "labelled by its info.json method ('mixed (kinemic)'), and such a label may be "
            "named in --modes. Reports top-1 mean ± 95% CI over seeds (Student t) at the "
            "final epoch (the protocol's figure) and at the best validation epoch (optimistic, "
            "labelled), per-class accuracy and confusion matrices; writes OUT/results.json and "
            "OUT/results.md. Inputs are checked first: synthetic classes outside the split, "
            "missing clips, empty sets and wrong joint shapes are refused, naming the file. "
            "Each finished run is recorded in OUT/runs/ with a key of its data, settings, seed "
            "and thread count; rerunning into the same OUT reuses the runs whose key matches "
            "(an interrupted evaluation resumes; an added mode trains only that mode), and "
            "several evaluations into one OUT share the runs (each is claimed before it "
            "trains; --reclaim takes a claimed run over). Delete OUT/runs/ to train everything "
            "again."
        ),
        epilog="""examples:
  kinemic evaluate --target out/world/target --split S0000 --modes real,gt --seeds 5 --out runs/eval
  kinemic evaluate --target out/world/target --synthetic runs/syn-kinemic \\
      --synthetic runs/syn-mdmft --modes real,mixed,gt --jobs 2 --width 0.25 --json figures.json""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--target", type=Path, required=True, help="NTU-VIBE-layout target dataset")
    p.add_argument("--split", default="S0000", help="few-shot split (S0000)")
    p.add_argument(
        "--synthetic",
        type=Path,
        action="append",
        default=[],
        help="synthetic folder (kinemic synthesize); repeat for several",
    )
    p.add_argument(
        "--modes", help="comma-separated (real,gt; real,synth,mixed,gt with --synthetic)"
    )
    p.add_argument(
        "--seeds", type=int, default=protocol.seeds, help=f"seeds 0..N-1 ({protocol.seeds})"
    )
    p.add_argument(
        "--jobs",
        type=int,
        help="runs in parallel worker processes (default: one per visible GPU when runs train "
        "on CUDA, else 1; under accelerate launch or torchrun each process is one worker on "
        "its own GPU, sharing the runs through OUT/runs/)",
    )
    p.add_argument("--threads", type=int, help="torch threads per run (default: cores / jobs)")
    p.add_argument(
        "--evaluations",
        type=int,
        default=train.evaluations,
        help=f"validation passes per run, evenly spaced, last epoch included ({train.evaluations})",
    )
    p.add_argument(
        "--out", type=Path, help="folder for results.json, results.md and runs/ (reused)"
    )
    p.add_argument("--json", type=Path, help="also write the results JSON here")
    p.add_argument(
        "--reclaim",
        action="store_true",
        help="train runs that another process has claimed in OUT/runs/ too, instead of waiting "
        "for them (a claim whose process is gone, or silent for 5 minutes, expires by itself)",
    )
    add_training(p)


def run_evaluate(args: argparse.Namespace) -> int:
    from kinemic.har.protocol import default_jobs, evaluate
    from kinemic.har.results import results_table

    modes = args.modes or ("real,synth,mixed,gt" if args.synthetic else "real,gt")
    device = "cpu" if args.cpu else args.device
    config = ProtocolConfig(
        modes=tuple(m for m in modes.split(",") if m.strip()),
        seeds=args.seeds,
        jobs=default_jobs(device) if args.jobs is None else args.jobs,
        threads=args.threads,
        device=device,
        frames=args.frames,
        centre=args.centre,
        width=args.width,
        train=_train_config(args, evaluations=args.evaluations),
    )
    doc = evaluate(
        args.target,
        args.split,
        synthetic=args.synthetic,
        config=config,
        out=args.out,
        json_path=args.json,
        reclaim=args.reclaim,
    )
    if os.environ.get("RANK", "0") != "0":  # under `accelerate launch`: the main process reports
        return 0
    print(results_table(doc))
    if args.out:
        print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 0


# ---------------------------------------------------------------------- evaluator, metrics


def add_evaluator(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluator",
        help="train the ST-GCN evaluator of the generative metrics and save it",
        description=(
            "Train an ST-GCN on every real default-split training clip of the split's classes "
            "and save it (config.json + model.safetensors) for kinemic metrics to reuse."
        ),
        epilog="example:\n  kinemic evaluator --target out/world/target --split S0000 "
        "--out runs/evaluator-S0000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--target", type=Path, required=True, help="NTU-VIBE-layout target dataset")
    p.add_argument("--split", default="S0000", help="few-shot split whose classes to learn")
    p.add_argument("--out", type=Path, required=True, help="evaluator folder to write")
    add_training(p)


def run_evaluator(args: argparse.Namespace) -> int:
    from kinemic.har.metrics import train_evaluator

    out = train_evaluator(
        args.target,
        args.split,
        args.out,
        width=args.width,
        frames=args.frames,
        centre=args.centre,
        train=_train_config(args),
        device=_device(args),
    )
    print(f"evaluator in {out}")
    return 0


def add_metrics(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "metrics",
        help="FID, KID, diversity, multimodality and evaluator accuracy of synthetic sets",
        description=(
            "Generative metrics in the feature space of the evaluator (penultimate ST-GCN "
            "layer), for each --synthetic folder and for the real validation clips as the "
            "reference row, against the evaluator's real training clips; each repeated "
            "--repeats times on equal-size draws, mean ± 1.96σ/√R. The evaluator folder is "
            "trained first when it does not exist (as kinemic evaluator would, with the "
            "training options below), then reused."
        ),
        epilog="""example:
  kinemic metrics --evaluator runs/evaluator-S0000 --target out/world/target --split S0000 \\
      --synthetic runs/syn-kinemic --synthetic runs/syn-mdmft --out runs/metrics""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--evaluator", type=Path, required=True, help="evaluator folder")
    p.add_argument("--target", type=Path, required=True, help="NTU-VIBE-layout target dataset")
    p.add_argument("--split", default="S0000", help="few-shot split (S0000)")
    p.add_argument("--synthetic", type=Path, action="append", default=[], help="(repeatable)")
    p.add_argument("--repeats", type=int, default=10, help="repetitions (10)")
    p.add_argument("--sample-size", type=int, help="clips per row (default: the smallest set)")
    p.add_argument("--seed", type=int, default=0, help="(0)")
    p.add_argument("--out", type=Path, help="folder for metrics.json and metrics.md")
    p.add_argument("--json", type=Path, help="also write the metrics JSON here")
    add_training(p)


def run_metrics(args: argparse.Namespace) -> int:
    from kinemic.har.metrics import generative_metrics, metrics_markdown, train_evaluator

    if not (args.evaluator / "config.json").exists():
        print(f"no evaluator in {args.evaluator}: training one")
        train_evaluator(
            args.target,
            args.split,
            args.evaluator,
            width=args.width,
            frames=args.frames,
            centre=args.centre,
            train=_train_config(args),
            device=_device(args),
        )
    doc = generative_metrics(
        args.evaluator,
        args.target,
        args.split,
        synthetic=args.synthetic,
        repeats=args.repeats,
        sample_size=args.sample_size,
        seed=args.seed,
        out=args.out,
        json_path=args.json,
        device=_device(args),
    )
    print(metrics_markdown(doc))
    return 0
