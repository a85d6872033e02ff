"""``kinemic finetune`` and ``kinemic synthesize``: thin wrappers over ``kinemic.finetune.run`` and
``kinemic.finetune.synthesize`` (same shape as ``cli.py``: verb -> (add, run))."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kinemic.errors import KinemicError
from kinemic.files import write_text
from kinemic.finetune.config import METHODS, FinetuneConfig, LoraSettings
from kinemic.mining.config import DEFAULT_K, DEFAULT_WEIGHT, FILTERS, FilterConfig

# docs/benchmarks.md has the figures (bench/sampling.py); `kinemic sample` uses it too.
BF16_SAMPLING_HELP = (
    "bf16 autocast: faster on GPUs and on CPUs with bf16 instructions (AVX512-BF16, AMX), "
    "slower on other CPUs"
)

#: ``--device`` of every verb that runs a model (``kinemic.devices.resolve_device``).
DEVICE_HELP = (
    "where the model runs: cpu, cuda or cuda:N (default: cuda when PyTorch sees a GPU, else "
    "cpu; under accelerate launch or torchrun each process takes its own GPU)"
)


def add_device_argument(p: argparse.ArgumentParser) -> None:
    """``--device``, shared by every verb that runs a model."""
    p.add_argument("--device", help=DEVICE_HELP)


def add_shard_arguments(p: argparse.ArgumentParser) -> None:
    """``--shards N --shard K``, shared by ``sample`` and ``synthesize`` (``kinemic.shards``)."""
    p.add_argument(
        "--shards",
        type=int,
        help="split the batches over N commands, each making every N-th batch (default: the "
        "processes of accelerate launch or torchrun, else 1); the last to finish assembles OUT",
    )
    p.add_argument("--shard", type=int, help="which of the --shards this command makes: 0..N-1")


def shard_of(args: argparse.Namespace):
    """The ``kinemic.shards.Shard`` of the parsed ``--shards``/``--shard`` (or of the launcher)."""
    from kinemic.shards import Shard

    return Shard.from_args(args.shards, args.shard)


def add_filter_arguments(p: argparse.ArgumentParser, *, default: str | None, own: str) -> None:
    """The kinematic filter's options, shared by ``finetune`` and ``mine``. ``default`` is
    ``--filter``'s default; ``own`` is appended to every default the help text names (for
    ``mine``: "; a --model's own")."""
    p.add_argument(
        "--filter",
        choices=FILTERS,
        default=default,
        help="kinematic: re-rank the caption top --filter-pool by T-MOR motion "
        "similarity to the class's target clips and caption similarity, keep k "
        f"({default or 'none'}{own})",
    )
    p.add_argument(
        "--filter-pool",
        type=int,
        help=f"caption candidates the kinematic filter re-ranks (2k{own})",
    )
    p.add_argument(
        "--filter-encoder",
        help=f"T-MOR encoder folder or run of the kinematic filter (the shipped one{own})",
    )
    p.add_argument(
        "--filter-weight",
        type=float,
        help="the motion score's share of the "
        "kinematic filter's ranking key, the caption score's being the rest; 1 ranks "
        f"by motion alone ({DEFAULT_WEIGHT:g}{own})",
    )


def filter_config(args: argparse.Namespace) -> FilterConfig:
    """The ``FilterConfig`` of the options ``add_filter_arguments`` declared."""
    return FilterConfig(
        kind=args.filter,
        pool=args.filter_pool,
        encoder=args.filter_encoder,
        weight=args.filter_weight,
    )


def add_finetune(sub: argparse._SubParsersAction) -> None:
    d = FinetuneConfig()
    p = sub.add_parser(
        "finetune",
        help="fine-tune a prior to a few-shot split (KineMIC, or the mdm-ft baseline)",
        description=(
            "Adapt a text-to-motion prior to the classes of a few-shot split with LoRA adapters "
            "and an action table (one copy of the prior's weights). --method kinemic pairs each "
            "shot with a soft positive source clip (top-k by caption similarity; --filter "
            "kinematic re-ranks a larger caption pool by T-MOR motion similarity to the shots, "
            "weighed with the caption similarity), "
            "trains MIC (attention-pooled BiGRU, supervised InfoNCE with a memory bank) and "
            "reconstructs the source window MIC attends to under the target's condition; mdm-ft "
            "is the reconstruction loss alone. Inputs are checked before training. Writes "
            "OUT/checkpoints/step-N/ (each a generator folder: adapter/, actions.safetensors, "
            "mic.safetensors, config.json pointing to the prior) and OUT/latest; TensorBoard "
            "logs each loss term. Defaults suit the shipped tiny CPU prior; the paper's "
            "(MDM on a GPU) are --lr 2e-5 --batch-size 30 --train-steps 10000."
        ),
        epilog="""examples:
  kinemic finetune --target out/world/target --source out/world/source --split S0000 \\
      --method kinemic --train-steps 300 --out runs/kinemic
  kinemic finetune --target out/world/target --method mdm-ft --train-steps 300 --out runs/mdmft
  kinemic finetune --target out/world/target --source out/world/source --filter kinematic \\
      --out runs/kinemic-kin        # soft positives re-ranked by the T-MOR kinematic filter
  kinemic finetune --resume runs/kinemic --target out/world/target --source out/world/source \\
      --train-steps 600 --out runs/kinemic""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--prior", default="shipped", help="prior folder, pretraining run, or 'shipped'")
    p.add_argument("--target", type=Path, required=True, help="NTU-VIBE-layout target dataset")
    p.add_argument("--split", default="S0000", help="few-shot split (S0000)")
    p.add_argument("--source", type=Path, help="source corpus of the soft positives (kinemic)")
    p.add_argument("--method", choices=METHODS, default=d.method, help=f"({d.method})")
    p.add_argument(
        "--train-steps",
        "--steps",
        dest="train_steps",
        type=int,
        default=d.train_steps,
        help=f"optimiser steps ({d.train_steps}; --steps is the old name, kept for one release)",
    )
    p.add_argument(
        "--batch-size", type=int, default=d.batch_size, help=f"shots per step ({d.batch_size})"
    )
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW learning rate ({d.lr:g})")
    p.add_argument("--lora-rank", type=int, default=d.lora.rank, help=f"({d.lora.rank})")
    p.add_argument("--lora-alpha", type=float, default=d.lora.alpha, help=f"({d.lora.alpha:g})")
    p.add_argument("--lora-dropout", type=float, default=d.lora.dropout, help=f"({d.lora.dropout})")
    p.add_argument("--k", type=int, default=d.k, help=f"soft positives per class ({d.k})")
    add_filter_arguments(p, default=d.filter.kind, own="")
    p.add_argument(
        "--diffusion-steps",
        type=int,
        default=d.diffusion_steps,
        help=f"fine-tuning schedule S; the net gets ceil(t·P/S) ({d.diffusion_steps})",
    )
    p.add_argument(
        "--window-weight", type=float, default=d.window_weight, help=f"({d.window_weight:g})"
    )
    p.add_argument(
        "--distill-weight", type=float, default=d.distill_weight, help=f"({d.distill_weight:g})"
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed ({d.seed})")
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
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=d.checkpoint_every,
        help=f"steps ({d.checkpoint_every})",
    )
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--resume", type=Path, help="continue this run from its latest checkpoint")


def run_finetune(args: argparse.Namespace) -> int:
    from kinemic.finetune.run import finetune

    config = FinetuneConfig(
        method=args.method,
        train_steps=args.train_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        lora=LoraSettings(rank=args.lora_rank, alpha=args.lora_alpha, dropout=args.lora_dropout),
        k=args.k,
        filter=filter_config(args),
        diffusion_steps=args.diffusion_steps,
        window_weight=args.window_weight,
        distill_weight=args.distill_weight,
        seed=args.seed,
        mixed_precision="bf16" if args.bf16 else "no",
        cpu=args.cpu,
        checkpoint_every=args.checkpoint_every,
    )
    out = finetune(
        args.target,
        args.out,
        prior=args.prior,
        split=args.split,
        source=args.source,
        config=config,
        resume=args.resume,
        torch_compile=args.compile,
    )
    print(f"generator in {out}")
    return 0


def add_synthesize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synthesize",
        help="write a synthetic split of every class of a fine-tuned generator",
        description=(
            "For every class of the generator's split, sample clips conditioned on the action "
            "and the class caption, with lengths drawn from that class's few-shot clips, "
            "classifier-free guidance, DDPM (or --ddim N), de-normalised. Writes an "
            "NTU-VIBE-layout folder (new_joint_vecs/, new_joints/, texts/, synth.txt, "
            "synth_y.txt, info.json) valid under kinemic validate; the few-shot clips are "
            "never part of it."
        ),
        epilog="""examples:
  kinemic synthesize --model runs/kinemic --per-class 100 --out out/synth
  kinemic synthesize --model runs/kinemic --oversample 10 --ddim 20 --out out/synth10
  accelerate launch --multi_gpu --num_processes 4 "$(command -v kinemic)" synthesize \\
      --model runs/kinemic --per-class 1000 --out out/synth1000     # a shard per GPU""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", type=Path, required=True, help="kinemic finetune run or checkpoint")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--per-class", type=int, help="clips per class")
    how.add_argument("--oversample", type=float, help="clips per class = X × its shots")
    p.add_argument("--guidance", type=float, default=2.5, help="CFG scale (2.5)")
    p.add_argument("--ddim", type=int, help="deterministic DDIM with N steps (default: DDPM)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--batch-size", type=int, default=64, help="clips per forward (64)")
    p.add_argument("--bf16", action="store_true", help=BF16_SAMPLING_HELP)
    add_device_argument(p)
    add_shard_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")


def run_synthesize(args: argparse.Namespace) -> int:
    from kinemic.devices import resolve_device
    from kinemic.finetune.synthesize import synthesize

    shard = shard_of(args)
    out = synthesize(
        args.model,
        args.out,
        per_class=args.per_class,
        oversample=args.oversample,
        guidance=args.guidance,
        ddim=args.ddim,
        seed=args.seed,
        batch_size=args.batch_size,
        bf16=args.bf16,
        device=resolve_device(args.device),
        shard=shard,
    )
    if out.is_dir():
        print(f"wrote {out}")
    else:
        print(f"wrote {shard.name} of {out}; the last shard to finish assembles {out}")
    return 0


# ---------------------------------------------------------------------------------------- verb


def add_mine(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mine",
        help="show the soft positives (best-matching source motions) of each target class",
        description=(
            "Embed every caption of the source corpus (default: its train split), average them "
            "per motion, and rank the motions by cosine with each target class's caption: the "
            "top k are the class's soft positives, which KineMIC fine-tuning pairs the few-shot "
            "clips with. Prints, per class, the best matches with their closest caption, so you "
            "can check that the class captions retrieve the right motion. On a procedural world "
            "(source with segments/ sidecars) it also reports how many soft positives contain "
            "the class's motion, and the precision of a random window and of the whole clip; "
            "with --model, the precision of the fine-tuned model's attention windows (hit: "
            "temporal IoU ≥ 0.5 with a true segment). --filter kinematic re-ranks a larger "
            "caption pool by T-MOR motion similarity to the class's target clips, weighed "
            "with the caption similarity (--filter-weight), first. "
            "Embeddings are cached on disk."
        ),
        epilog="""examples:
  kinemic mine --source out/world/source --target out/world/target --split S0000
  kinemic mine --source out/world/source --target out/world/target --show 10 --json mine.json
  kinemic mine --source out/world/source --target out/world/target --split S0000 \\
      --filter kinematic                # soft positives re-ranked by the T-MOR kinematic filter
  kinemic mine --source out/world/source --target out/world/target --split S0000 \\
      --model runs/kinemic-S0000        # also mine attention windows and score them""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", type=Path, required=True, help="source corpus (HumanML3D layout)")
    p.add_argument("--target", type=Path, required=True, help="target dataset (NTU-VIBE layout)")
    p.add_argument(
        "--split",
        help="few-shot split of the target, e.g. S0000 (default: every class; a --model's own)",
    )
    p.add_argument("--k", type=int, help=f"soft positives per class ({DEFAULT_K}; a --model's own)")
    p.add_argument("--show", type=int, default=5, help="matches printed per class (5)")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    p.add_argument("--model", type=Path, help="fine-tuned generator run: mine attention windows")
    p.add_argument("--encoder", help="text encoder (minilm; a --model's own)")
    p.add_argument(
        "--source-split", default="train", help="source split searched (train; 'all': every clip)"
    )
    p.add_argument("--variants", action="store_true", help="count class variants as hits too")
    p.add_argument("--seed", type=int, default=0, help="seed of the mining noise (0)")
    p.add_argument("--random-draws", type=int, help="random windows drawn (default: exact mean)")
    p.add_argument(
        "--t",
        type=int,
        dest="mine_t",
        help="diffusion step to mine at (default: "
        "drawn uniformly per batch of windows, as in training)",
    )
    add_filter_arguments(p, default=None, own="; a --model's own")
    add_device_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_mine(args: argparse.Namespace) -> int:
    from kinemic.devices import resolve_device
    from kinemic.mining.report import mine

    report = mine(
        args.source,
        args.target,
        split=args.split,
        k=args.k,
        show=args.show,
        model=args.model,
        encoder=args.encoder,
        variants=args.variants,
        source_split=None if args.source_split == "all" else args.source_split,
        seed=args.seed,
        random_draws=args.random_draws,
        mine_t=args.mine_t,
        filter_config=_mine_filter(args),
        progress=not args.no_progress,
        device=resolve_device(args.device),
    )
    print(report.text())
    if args.json is not None:
        write_text(args.json, json.dumps(report.to_json(), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def _mine_filter(args: argparse.Namespace) -> FilterConfig | None:
    """None (a --model's own selection) when no filter option is given; the options alone,
    which only the kinematic filter has, select it."""
    options = (args.filter_pool, args.filter_encoder, args.filter_weight)
    if args.filter is None and all(v is None for v in options):
        return None
    return FilterConfig(
        kind=args.filter or "kinematic",
        pool=args.filter_pool,
        encoder=args.filter_encoder,
        weight=args.filter_weight,
    )


# --------------------------------------------------------------------------------------- demo


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole KineMIC pipeline on the embedded world, with a report (README's main job)",
        description=(
            "On kinemic's procedural world and the shipped prior: soft-positive mining, "
            "fine-tuning with the mdm-ft baseline and with KineMIC, mining precision against the "
            "world's ground truth, synthesis, and the HAR protocol (ST-GCN; real, mixed (mdm-ft), "
            "mixed (kinemic), synth (kinemic), gt over several seeds). Prints the table and "
            "writes OUT/report.md, a self-contained OUT/report.html and OUT/demo.json. A rerun "
            "reuses finished stages and resumes an interrupted fine-tune."
        ),
        epilog="""examples:
  kinemic demo                          # default world, 5 seeds (11-14 minutes on 2 cores)
  kinemic demo --quick                  # smoke test: tiny world, 2 seeds (about 3 minutes)
  kinemic demo --fitted-har             # then: the same runs, every classifier fitted
  kinemic demo --out runs/demo --json runs/demo.json --seeds 10""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="report folder (out/demo)")
    p.add_argument("--json", type=Path, help="also write the figures (accuracies, mining) here")
    p.add_argument("--quick", action="store_true", help="tiny world, fewer seeds and steps")
    p.add_argument("--scale", choices=("tiny", "small", "default"), help="world scale")
    p.add_argument("--seeds", type=int, help="HAR seeds per mode (default 5; --quick 2)")
    p.add_argument(
        "--finetune-steps",
        "--steps",
        dest="finetune_steps",
        type=int,
        help="fine-tuning steps per method (200; --quick 30; --steps is the old name, kept for "
        "one release)",
    )
    p.add_argument("--per-class", type=int, help="synthetic clips per class")
    p.add_argument("--jobs", type=int, help="HAR runs in parallel processes (default 2)")
    p.add_argument(
        "--fitted-har",
        action="store_true",
        help="train every HAR classifier until fitted (training loss 0.05, then as long again "
        "with the learning rate annealed; at most 480 steps or 60 epochs; clips at 50 frames). "
        "The default's 160 steps leave the 330-clip modes unfitted. Reuses the fine-tunes and "
        "synthetic sets of an earlier run in OUT; its HAR stage takes about 3 minutes per "
        "330-clip classifier on 2 cores",
    )
    p.add_argument("--no-gifs", action="store_true", help="leave the clip GIFs out of the report")
    p.add_argument("--fresh", action="store_true", help="delete OUT first instead of reusing it")


def run_demo(args: argparse.Namespace) -> int:
    from kinemic.demo import DemoConfig, run_demo

    overrides = {
        key: value
        for key, value in {
            "scale": args.scale,
            "seeds": args.seeds,
            "finetune_steps": args.finetune_steps,
            "per_class": args.per_class,
            "jobs": args.jobs,
        }.items()
        if value is not None
    }
    if args.no_gifs:
        overrides["gifs"] = False
    if args.quick and args.fitted_har:
        raise KinemicError("kinemic demo: choose --quick or --fitted-har, not both")
    make = DemoConfig.quick if args.quick else DemoConfig.fitted if args.fitted_har else DemoConfig
    config = make(**overrides)
    run_demo(config, out=args.out, json_path=args.json, fresh=args.fresh)
    return 0
