"""Benchmark: T-MOR pretraining, embedding and detection throughput on this machine.

Prints a table and appends it to bench/results.md. Run: ``python bench/tmor.py --world
out/world`` (a world folder; default: a small world generated into a temp folder), ``--cuda``
to use a GPU when one is visible, ``--threads N``, ``--no-append`` to only print.

Rows:
- pretraining: the real training loop (``kinemic.training.train`` with ``TMORTask``: seeded
  crops of ≤ 160 frames, masked InfoNCE, AdamW, EMA) of the ``small`` preset, with and without
  the visual tower, on the world's source corpus with random caption embeddings (the frozen
  text encoder is not part of a step); first step untimed; samples/s = steps/s × batch;
- embedding: clips/s of the shipped encoder over the world's held-out source sequences;
- detection: frames/s of sliding-window scoring (32-frame windows every 4 frames, embedding
  and a linear head) over those sequences.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from kinemic.tmor.data import TMORCorpus
from kinemic.tmor.encoder import load_tmor
from kinemic.tmor.model import TMOR, TMORConfig
from kinemic.tmor.pretrain import TMORTask
from kinemic.training import TrainConfig, train
from results_log import append, heading


def pretrain_rate(
    corpus: TMORCorpus, visual: bool, steps: int, batch: int, cpu: bool, workdir: Path
) -> tuple[float, int]:
    over = {"visual": "frames", "visual_dim": corpus.visual_dim} if visual else {}
    cfg = TMORConfig.preset("small", **over)
    torch.manual_seed(0)
    model = TMOR(cfg)
    if not visual:
        corpus = TMORCorpus(
            **{
                **corpus.__dict__,
                "visual": [None] * len(corpus),
                "visual_kind": "none",
                "visual_dim": 0,
            }
        )
    text = torch.randn(len(corpus.texts), cfg.text_dim)
    spec = {"name": "random", "dim": cfg.text_dim}
    task = TMORTask(corpus=corpus, text_embeddings=text, batch_size=batch, text_spec=spec)
    out = workdir / f"run-{visual}"
    tc = TrainConfig(
        steps=steps + 1,
        cpu=cpu,
        checkpoint_every=steps + 1,
        log_every=steps + 1,
        progress=False,
        ema=0.99,
    )
    return train(model, task, out, tc, fingerprint={}).steps_per_second, model.num_parameters()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, help="world folder (default: a new small world)")
    parser.add_argument("--encoder", help="encoder to time (default: shipped)")
    parser.add_argument("--steps", type=int, default=10, help="timed pretraining steps")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sequences", type=int, default=100, help="held-out sequences timed")
    parser.add_argument("--cuda", action="store_true")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = not (args.cuda and torch.cuda.is_available())
    device = "cpu" if cpu else "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        world = args.world
        if world is None:
            from kinemic.world.generate import generate_world

            world = Path(tmp) / "world"
            generate_world(world, seed=0, scale="small", progress=False)
        source = world / "source"
        corpus = TMORCorpus.load([source], visual=True, progress=False)
        rows = []
        for visual in (True, False):
            rate, params = pretrain_rate(corpus, visual, args.steps, args.batch, cpu, Path(tmp))
            name = "pretrain, skeleton+text+visual" if visual else "pretrain, skeleton+text"
            rows.append(
                (
                    name,
                    f"{params / 1e6:.2f} M",
                    f"{rate * args.batch:.1f} samples/s",
                    f"{rate:.3f} steps/s, batch {args.batch}",
                )
            )
            print(rows[-1], file=sys.stderr)
        from kinemic.tmor.detect import _score_sequences, world_sequences

        enc = load_tmor(args.encoder).to(device)
        seqs, _ = world_sequences(source, "test", limit=args.sequences)
        enc.embed_motions(seqs[:8])  # warm-up
        t0 = time.perf_counter()
        enc.embed_motions(seqs, batch_size=64)
        rate = len(seqs) / (time.perf_counter() - t0)
        mean_len = sum(len(s) for s in seqs) / len(seqs)
        note = f"{len(seqs)} sequences of {mean_len:.0f} frames on average, batch 64"
        rows.append(("embed clips", "", f"{rate:.1f} clips/s", note))
        head = torch.nn.Linear(enc.embed_dim, 34)
        _, fps = _score_sequences(enc, seqs, lambda z: head(z.to(head.weight.device)), 32, 4, False)
        rows.append(
            (
                "detect (score frames)",
                "",
                f"{fps:.0f} frames/s",
                "windows of 32 frames every 4, linear head",
            )
        )
    dev = "cpu" if cpu else torch.cuda.get_device_name()
    lines = [
        heading("tmor"),
        "",
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {dev}, load "
        f"average {os.getloadavg()[0]:.1f} at the end; world {world}",
        "",
        "| what | parameters | throughput | notes |",
        "|---|---:|---:|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
    ]
    text = "\n".join(lines)
    if args.no_append:
        print(text)
    else:
        append(text)


if __name__ == "__main__":
    main()
