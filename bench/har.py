"""Benchmark: ST-GCN training and evaluation throughput (samples/s) on this machine, and the
demo's wall time per stage.

Prints a table and appends it to bench/results.md. Run: ``python bench/har.py`` (``--widths
1 0.25 0.125``, ``--threads N`` (default 1: on a machine shared with other jobs one thread per
process measures more stably, and the protocol's ``--jobs`` runs one process per core),
``--frames 100 50`` (one row per frame count: the protocol's 100 and the demo's 50, before and
after issue 23, in the same run), ``--rounds R`` (interleaved rounds, the best kept), ``--cuda``
to use a GPU when one is visible, ``--no-append`` to only print). Every row is measured both
ways a block can compute its graph convolution (``STGCNBlock.forward``, graph product first:
after issue 23; ``forward_convolution_first``: before), in the same run.
``--demo-json out/demo/demo.json`` (what ``kinemic demo`` wrote) adds the demo's stage times,
with what its second process did meanwhile; ``--widths`` with no value skips the throughput.

Each row builds the protocol's classifier (``kinemic.har.stgcn.STGCN`` on SMPL-22, spatial
partitioning, 3 classes) and times, after one untimed warm-up step each,
``--steps`` SGD steps (Nesterov, batch 16, forward + cross-entropy + backward + update: what
``kinemic.har.train`` does per batch) and ``--steps`` inference batches of 64 (what validation
and the evaluator's features do). ``samples/s`` = clips per second.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch import nn

from kinemic.har.stgcn import STGCN, STGCNConfig
from results_log import append, heading

IMPLEMENTATIONS = ("convolution first", "graph first")  # before and after issue 23


def measure(width: float, *, steps: int, frames: int, device: str, bf16: bool, block: str):
    """(parameters, train samples/s, eval samples/s) of one ST-GCN width, its blocks computed
    the ``block`` way (``STGCNBlock.forward``: graph first; ``forward_convolution_first``: the
    textbook order the classifier used before)."""
    torch.manual_seed(0)
    model = STGCN(STGCNConfig(num_classes=3, width=width)).to(device)
    if block == "convolution first":
        for b in model.blocks:
            b.forward = b.forward_convolution_first
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    x = torch.randn(16, frames, 22, 3, device=device)
    y = torch.randint(0, 3, (16,), device=device)
    xe = torch.randn(64, frames, 22, 3, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)

    def train_step():
        with autocast:
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    train_step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step()
    sync()
    train = steps * len(x) / (time.perf_counter() - t0)
    model.eval()
    with torch.inference_mode(), autocast:
        model(xe)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            model(xe)
        sync()
    evaluation = steps * len(xe) / (time.perf_counter() - t0)
    return model.num_parameters(), train, evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=float, nargs="*", default=[1.0, 0.25, 0.125])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (3)")
    parser.add_argument(
        "--frames",
        type=int,
        nargs="+",
        default=[100, 50],
        help="frames per clip, one row each (100: the protocol's; 50: the demo's since issue 23)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds over the rows, interleaved; each row keeps its best round (3): on a shared "
        "machine the best round is the one least disturbed",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--cuda", action="store_true", help="use the GPU when one is visible")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--demo-json", type=Path, help="a demo.json: tabulate its stage times")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    text = throughput(args) if args.widths else ""
    if args.demo_json is not None:
        text += demo_stages(args.demo_json)
    if args.no_append:
        print(text)
    else:
        append(text)


def demo_stages(path: Path) -> str:
    """The stage wall times of a ``kinemic demo`` run (its demo.json), as a table."""
    figures = json.loads(path.read_text(encoding="utf-8"))
    timing = dict(figures["timing_s"])
    side = timing.pop("second process", None)
    s = figures["settings"]
    rows = [f"| {stage} | {seconds:.1f} |" for stage, seconds in timing.items()]
    total = sum(timing.values())
    lines = [
        heading("kinemic demo, wall time per stage"),
        "",
        f"{path}: {s['scale']} world, split {s['split']}, {s['finetune_steps']} fine-tuning "
        f"steps, {s['seeds']} seeds × {len(figures['accuracy'])} modes, ST-GCN width "
        f"{s['har_width']}, {s.get('har_frames', 100)} frames, at most {s['har_steps']} steps "
        f"/ {s.get('har_min_epochs')} epochs, fit loss {s.get('har_fit_loss')}, {s['jobs']} jobs",
        "",
        "| stage | wall time (s) |",
        "|---|---:|",
        *rows,
        f"| **total of the stages** (the command's wall clock adds its start-up) | **{total:.1f}** "
        f"({total / 60:.1f} min) |",
    ]
    if side:
        lines += [
            "",
            "The second process (its own clock, stages 2–6):",
            "",
            "| work | seconds |",
            "|---|---:|",
            *(f"| {k} | {v:.1f} |" for k, v in side.items()),
        ]
        if "har_runs_ahead" in figures:
            lines.append(
                f"\nHAR runs trained there: {figures['har_runs_ahead']} ahead of stage 6, "
                f"{figures.get('har_runs_shared', 0)} in it"
            )
    return "\n".join(lines) + "\n"


def throughput(args: argparse.Namespace) -> str:
    """The ST-GCN throughput table (one row per width)."""
    torch.set_num_threads(args.threads)
    device = "cuda" if args.cuda and torch.cuda.is_available() else "cpu"
    load = os.getloadavg()[0]
    cases = [(w, f, b) for w in args.widths for f in args.frames for b in IMPLEMENTATIONS]
    best: dict[tuple, tuple[int, float, float]] = {}
    for _ in range(args.rounds):
        for case in cases:
            width, frames, block = case
            params, train, evaluation = measure(
                width, steps=args.steps, frames=frames, device=device, bf16=args.bf16, block=block
            )
            old = best.get(case, (params, 0.0, 0.0))
            best[case] = (params, max(old[1], train), max(old[2], evaluation))
    rows = []
    for (width, frames, block), (params, train, evaluation) in best.items():
        rows.append(
            f"| {width:g} | {frames} | {block} | {params / 1e6:.2f} M | {train:.1f} "
            f"| {evaluation:.1f} |"
        )
        print(rows[-1], flush=True)
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {args.threads} thread(s)"
    lines = [
        heading("ST-GCN throughput"),
        "",
        f"{where}, {'bf16' if args.bf16 else 'fp32'}; SMPL-22, 3 classes; "
        f"training = SGD steps of batch 16, evaluation = inference batches of 64; "
        f"{args.steps} timed steps per row after one warm-up, best of {args.rounds} interleaved "
        f"rounds; load average at the start "
        f"{load:.1f} (other jobs share this machine)",
        "",
        "| width | frames | graph product | parameters | train samples/s | eval samples/s |",
        "|---:|---:|---|---:|---:|---:|",
        *rows,
    ]
    return "\n".join(lines) + "\n\n"


if __name__ == "__main__":
    main()
