"""Verbs of the text-to-motion prior: pretrain, sample, import-mdm."""

from __future__ import annotations

import argparse
from pathlib import Path

from kinemic.cli.kinemic import (
    BF16_SAMPLING_HELP,
    add_device_argument,
    add_shard_arguments,
    shard_of,
)
from kinemic.constants import MAX_FRAMES

# ------------------------------------------------------------------------ pretrain, sample, import


def add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain a text-to-motion diffusion prior on HumanML3D-layout corpora",
        description=(
            "Train the MDM-architecture denoiser to predict x0 (masked MSE, cosine schedule) on "
            "one or more HumanML3D-layout corpora (the world's source, converted BVH, real "
            "HumanML3D): random crops to a multiple of 4, z-normalised with the corpus "
            "statistics, batches padded to their longest clip, AdamW with EMA. Writes "
            "OUT/checkpoints/step-N/ (config.json, model.safetensors, normalizer.npz and the "
            "training state) atomically, OUT/latest and TensorBoard logs in OUT/logs. "
            "Resume an interrupted run exactly with --resume OUT. For several processes or "
            "GPUs run it under `torchrun --nproc_per_node N -m kinemic pretrain ...` or "
            "`accelerate launch --multi_gpu --num_processes N` (CPUs too: gloo); "
            "--batch-size is the global batch."
        ),
        epilog="""examples:
  kinemic pretrain --source out/world/source --source out/cmu --train-steps 6000 --out runs/prior
  kinemic pretrain --source HumanML3D --preset mdm --text-encoder clip --train-steps 600000 \
      --out runs/mdm
  kinemic pretrain --resume runs/prior --source out/world/source --train-steps 6000 \
      --out runs/prior""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", type=Path, action="append", required=True, help="corpus (repeat)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--preset", choices=["tiny", "mdm"], default="tiny", help="model size (tiny)")
    p.add_argument(
        "--train-steps",
        "--steps",
        dest="train_steps",
        type=int,
        default=100_000,
        help="optimiser steps (100000; --steps is the old name, kept for one release)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="clips per step, all processes (64)")
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (1e-4)")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up steps (0)")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay; 0 turns EMA off (0.999)")
    p.add_argument("--text-encoder", default="minilm", help="minilm (offline) or clip (minilm)")
    p.add_argument(
        "--text-scale",
        type=float,
        help="multiply text embeddings by this before the projection (default: the preset's: "
        "√384 ≈ 19.6 for tiny, whose MiniLM embeddings are unit vectors; 1 for mdm, the "
        "official computation on raw CLIP features)",
    )
    p.add_argument("--diffusion-steps", type=int, default=50, help="noise schedule length (50)")
    p.add_argument(
        "--max-frames", type=int, default=MAX_FRAMES, help=f"longest training crop ({MAX_FRAMES})"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPUs; slow on CPU)")
    p.add_argument(
        "--cpu",
        action="store_true",
        help="train on the CPU even where a GPU is visible (several processes: gloo)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model: faster steps on CUDA once the first steps have compiled it "
        "(refused on the CPU)",
    )
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps (1000)")
    p.add_argument("--resume", type=Path, help="continue this run from its latest checkpoint")


def run_pretrain(args: argparse.Namespace) -> int:
    from kinemic.prior.pretrain import pretrain

    out = pretrain(
        args.source,
        args.out,
        preset=args.preset,
        model_overrides=None if args.text_scale is None else {"text_scale": args.text_scale},
        train_steps=args.train_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        ema=args.ema or None,
        text_encoder=args.text_encoder,
        diffusion_steps=args.diffusion_steps,
        max_frames=args.max_frames,
        seed=args.seed,
        mixed_precision="bf16" if args.bf16 else "no",
        cpu=args.cpu,
        torch_compile=args.compile,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
    )
    print(f"prior in {out}")
    return 0


def _length(value: str) -> str | int:
    return int(value) if value.isdigit() else value


def add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="sample motions from a prior or a fine-tuned generator",
        description=(
            "Sample N motions per condition (each --text, each --action, or each action+text "
            "pair: the composition mode) with classifier-free guidance. Writes "
            "OUT/features/*.npy (T, 263), OUT/joints/*.npy (T, 22, 3), GIFs and info.json."
        ),
        epilog="""examples:
  kinemic sample --model runs/prior --text "a person kicks with the left leg" --n 4 --out samples
  kinemic sample --model runs/prior --text "someone waves" --ddim 10 --length 2.5s --out s2
  kinemic sample --model runs/kinemic --action "side kick" --text "a person walks in a circle" \
      --out composition""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default="shipped",
        help="prior folder, training run, 'shipped' (the prior inside kinemic; default), or a "
        "fine-tuned generator (kinemic finetune run: --action, and --action with --text to blend)",
    )
    p.add_argument("--text", action="append", help="caption (repeat for several)")
    p.add_argument("--action", action="append", help="class name or id of a fine-tuned model")
    p.add_argument("--n", type=int, default=8, help="samples per condition (8)")
    p.add_argument("--length", type=_length, default="3s", help='"3s", "2.5s" or frames (3s)')
    p.add_argument(
        "--diffusion-steps",
        "--steps",
        dest="diffusion_steps",
        type=int,
        help="DDPM steps: the model's own, the only number accepted (--steps is the old name, "
        "kept for one release)",
    )
    p.add_argument("--ddim", type=int, help="deterministic DDIM with this many steps instead")
    p.add_argument("--guidance", type=float, default=2.5, help="CFG scale; 1 = none (2.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--bf16", action="store_true", help=BF16_SAMPLING_HELP)
    p.add_argument("--batch-size", type=int, help="samples per forward (default: all in one batch)")
    add_device_argument(p)
    add_shard_arguments(p)
    p.add_argument("--no-gif", action="store_true", help="skip the GIFs")
    p.add_argument("--out", type=Path, required=True, help="output folder")


def run_sample(args: argparse.Namespace) -> int:
    from kinemic.devices import resolve_device
    from kinemic.prior.sample import PARTS, sample_motions

    shard = shard_of(args)
    out = sample_motions(
        args.model,
        texts=args.text,
        actions=args.action,
        n=args.n,
        length=args.length,
        diffusion_steps=args.diffusion_steps,
        ddim=args.ddim,
        guidance=args.guidance,
        seed=args.seed,
        out=args.out,
        bf16=args.bf16,
        gif=not args.no_gif,
        device=resolve_device(args.device),
        batch_size=args.batch_size,
        shard=shard,
    )
    if (out / PARTS).exists():
        print(f"wrote {shard.name} of {out}; the last shard to finish writes {out / 'info.json'}")
    else:
        print(f"wrote {out}")
    return 0


def add_import_mdm(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-mdm",
        help="turn an official MDM checkpoint (model*.pt) into a kinemic prior folder",
        description=(
            "Map the official MDM state dict onto kinemic's Denoiser (the CLIP tower keys are "
            "dropped; kinemic encodes text with its own CLIP encoder) and save it with the "
            "HumanML3D Mean/Std it was trained with. Every layout MDM saves is read (a bare "
            "state dict, {'model'}, {'model', 'model_avg'}); the args.json beside the "
            "checkpoint gives heads, condition dropout, diffusion steps and text encoder, and "
            "is checked against the weights. What was read and what was assumed goes to stderr."
        ),
        epilog="""example:
  kinemic import-mdm save/humanml_enc_512_50steps/model000750000.pt \\
      --mean-std HumanML3D --out runs/mdm""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", type=Path, help="official MDM .pt (or .safetensors)")
    p.add_argument("--out", type=Path, required=True, help="prior folder to write")
    p.add_argument("--mean-std", type=Path, required=True, help="folder with Mean.npy/Std.npy")
    p.add_argument(
        "--weights",
        choices=["ema", "raw"],
        default=None,
        help="ema: MDM's EMA copy 'model_avg' (the default when the checkpoint holds one); "
        "raw: 'model'",
    )
    p.add_argument(
        "--num-heads", type=int, default=None, help="attention heads (args.json's, else 4)"
    )
    p.add_argument(
        "--diffusion-steps",
        type=int,
        default=None,
        help="steps it was trained with (args.json's, else 50)",
    )
    p.add_argument("--trust-pickle", action="store_true", help="allow full unpickling")


def run_import_mdm(args: argparse.Namespace) -> int:
    import sys

    from kinemic.prior.folder import import_mdm

    out = import_mdm(
        args.checkpoint,
        args.out,
        mean_std=args.mean_std,
        weights=args.weights,
        num_heads=args.num_heads,
        diffusion_steps=args.diffusion_steps,
        trust_pickle=args.trust_pickle,
        log=lambda line: print(f"import-mdm: {line}", file=sys.stderr),
    )
    print(f"prior in {out}")
    return 0
