"""``kinemic finetune`` and ``kinemic synthesize``: thin wrappers over ``kinemic.finetune.run`` and
``kinemic.finetune.synthesize`` (same shape as ``cli.py``: verb -> (add, run))."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from kinemic.errors import KinemicError
from kinemic.files import write_text
from kinemic.finetune.config import (
    BATCHINGS,
    LORA_LAYOUTS,
    MDM_FT,
    METHODS,
    RECIPES,
    FinetuneConfig,
    default_recipe,
)
from kinemic.mining.config import DEFAULT_K, DEFAULT_WEIGHT, FILTERS, SUBCLIPS, FilterConfig

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


#: ``kinemic finetune``'s options of the soft-positive source (``FilterConfig`` fields)
SOURCE_OPTIONS = ("subclips", "min_frames", "max_frames", "text_tokens")


def filter_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The entries of the ``FilterConfig`` that the options of ``add_filter_arguments`` and the
    source options set (those not given are left to the recipe)."""
    given = {
        "kind": args.filter,
        "pool": args.filter_pool,
        "encoder": args.filter_encoder,
        "weight": args.filter_weight,
        **{name: getattr(args, f"filter_{name}") for name in SOURCE_OPTIONS},
    }
    return {k: v for k, v in given.items() if v is not None}


#: ``kinemic finetune``'s options that set a ``FinetuneConfig`` field ("lora.rank": a field of
#: its ``lora`` table); an option not given takes the recipe's value.
FINETUNE_FIELDS = {
    "method": "method",
    "train_steps": "train_steps",
    "batch_size": "batch_size",
    "batching": "batching",
    "crop_unit": "crop_unit",
    "lr": "lr",
    "lora_layout": "lora.layout",
    "lora_rank": "lora.rank",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "k": "k",
    "diffusion_steps": "diffusion_steps",
    "window_weight": "window_weight",
    "distill_weight": "distill_weight",
    "mic_arch": "mic_arch",
    "contrastive_loss": "contrastive_loss",
    "mdm_ft": "mdm_ft",
    "seed": "seed",
    "checkpoint_every": "checkpoint_every",
}


@functools.cache
def _recipe(name: str) -> FinetuneConfig:
    return FinetuneConfig.from_recipe(name)


def _recipe_values(field: str) -> str:
    """The value of a ``FinetuneConfig`` field in each shipped recipe: "cpu X, paper Y"."""
    values = []
    for name in RECIPES:
        value = _recipe(name)
        for part in field.split("."):
            value = getattr(value, part)
        values.append(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}")
    return ", ".join(values)


def add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune a prior to a few-shot split (KineMIC, or the mdm-ft baseline)",
        description=(
            "Adapt a text-to-motion prior to the classes of a few-shot split with LoRA adapters "
            "and an action table (one copy of the prior's weights). --method kinemic pairs each "
            "shot with a soft positive source clip (top-k by caption similarity; --filter "
            "kinematic re-ranks a larger caption pool by T-MOR motion similarity to the shots, "
            "weighed with the caption similarity), "
            "trains MIC (attention-pooled BiGRU, a contrastive loss with a memory bank) and "
            "reconstructs the source window MIC attends to under the target's condition; mdm-ft "
            "is the reconstruction loss alone. Inputs are checked before training. Writes "
            "OUT/checkpoints/step-N/ (each a generator folder: adapter/, actions.safetensors, "
            "mic.safetensors, config.json pointing to the prior and recording every setting) "
            "and OUT/latest; TensorBoard logs each loss term. The settings come from a recipe "
            "(--recipe): paper reproduces the reference implementation on the official MDM "
            "prior and is the default for a prior from kinemic import-mdm; cpu suits the "
            "shipped tiny CPU prior and is the default for any other. The options below "
            "override the recipe's values, given in brackets."
        ),
        epilog="""examples:
  kinemic finetune --target out/world/target --source out/world/source --split S0000 \\
      --method kinemic --train-steps 300 --out runs/kinemic
  kinemic finetune --target out/world/target --method mdm-ft --train-steps 300 --out runs/mdmft
  kinemic finetune --target out/world/target --source out/world/source --filter kinematic \\
      --out runs/kinemic-kin        # soft positives re-ranked by the T-MOR kinematic filter
  kinemic finetune --prior out/mdm-prior --target data/NTU-VIBE --source data/HumanML3D \\
      --recipe paper --out runs/paper          # the paper recipe (its default for this prior)
  kinemic finetune --recipe paper --count-params --preset mdm   # what it trains, no data
  kinemic finetune --resume runs/kinemic --target out/world/target --source out/world/source \\
      --train-steps 600 --out runs/kinemic""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--prior", default="shipped", help="prior folder, pretraining run, or 'shipped'")
    p.add_argument("--target", type=Path, help="NTU-VIBE-layout target dataset (required)")
    p.add_argument("--split", default="S0000", help="few-shot split (S0000)")
    p.add_argument("--source", type=Path, help="source corpus of the soft positives (kinemic)")
    p.add_argument(
        "--recipe",
        choices=RECIPES,
        help="the settings the options below start from (paper for a prior from kinemic "
        "import-mdm, else cpu; each is a TOML file in kinemic/finetune/recipes/)",
    )
    p.add_argument("--method", choices=METHODS, help=f"({_recipe_values('method')})")
    p.add_argument(
        "--train-steps",
        "--steps",
        dest="train_steps",
        type=int,
        help=f"optimiser steps ({_recipe_values('train_steps')}; --steps is the old name, kept "
        "for one release)",
    )
    p.add_argument(
        "--batch-size", type=int, help=f"shots per step ({_recipe_values('batch_size')})"
    )
    p.add_argument(
        "--batching",
        choices=BATCHINGS,
        help="sampled: shots drawn with replacement; all-shots: a shuffled order, each shot "
        f"once per epoch ({_recipe_values('batching')})",
    )
    p.add_argument(
        "--crop-unit",
        type=int,
        help="0: clips whole; n: a random window of a multiple of n frames "
        f"({_recipe_values('crop_unit')})",
    )
    p.add_argument("--lr", type=float, help=f"AdamW learning rate ({_recipe_values('lr')})")
    p.add_argument(
        "--lora-layout",
        choices=LORA_LAYOUTS,
        help="packed: one LoRA pair on each layer's q|k|v projection; separate: q, k, v each "
        f"({_recipe_values('lora.layout')})",
    )
    p.add_argument("--lora-rank", type=int, help=f"({_recipe_values('lora.rank')})")
    p.add_argument("--lora-alpha", type=float, help=f"({_recipe_values('lora.alpha')})")
    p.add_argument("--lora-dropout", type=float, help=f"({_recipe_values('lora.dropout')})")
    p.add_argument("--k", type=int, help=f"soft positives per class ({_recipe_values('k')})")
    add_filter_arguments(p, default=None, own="")
    p.add_argument(
        "--filter-subclips",
        choices=SUBCLIPS,
        help="HumanML3D sub-clip captions: include (they count towards their motion), exclude, "
        f"or cut (each a clip of its own) ({_recipe_values('filter.subclips')})",
    )
    p.add_argument(
        "--filter-min-frames",
        type=int,
        help=f"shortest source clip ranked, rows ({_recipe_values('filter.min_frames')})",
    )
    p.add_argument(
        "--filter-max-frames",
        type=int,
        help=f"longest source clip ranked, rows ({_recipe_values('filter.max_frames')})",
    )
    p.add_argument(
        "--filter-text-tokens",
        type=int,
        help="word pieces of each caption the CLIP encoder reads for the ranking; None: its own "
        f"({_recipe_values('filter.text_tokens')})",
    )
    p.add_argument(
        "--diffusion-steps",
        type=int,
        help="fine-tuning schedule S; the net gets ceil(t·P/S) "
        f"({_recipe_values('diffusion_steps')})",
    )
    p.add_argument("--window-weight", type=float, help=f"({_recipe_values('window_weight')})")
    p.add_argument("--distill-weight", type=float, help=f"({_recipe_values('distill_weight')})")
    p.add_argument(
        "--mic-arch", choices=("small", "reference"), help=f"({_recipe_values('mic_arch')})"
    )
    p.add_argument(
        "--contrastive-loss",
        choices=("supcon", "soft-nn"),
        help=f"MIC's loss ({_recipe_values('contrastive_loss')})",
    )
    p.add_argument(
        "--mdm-ft",
        choices=MDM_FT,
        help="how method mdm-ft adapts the target stream: lora, or full (all but LayerNorms "
        f"and the text projection) ({_recipe_values('mdm_ft')})",
    )
    p.add_argument("--seed", type=int, help=f"random seed ({_recipe_values('seed')})")
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
        "--checkpoint-every", type=int, help=f"steps ({_recipe_values('checkpoint_every')})"
    )
    p.add_argument("--out", type=Path, help="run folder (required)")
    p.add_argument("--resume", type=Path, help="continue this run from its latest checkpoint")
    p.add_argument(
        "--count-params",
        action="store_true",
        help="print the parameters the settings train (LoRA, MIC, the mdm-ft baselines) at "
        "the --prior's denoiser or at --preset, and exit; needs no data",
    )
    p.add_argument(
        "--preset",
        choices=("mdm", "tiny"),
        help="with --count-params: count at this denoiser preset instead of the --prior's",
    )


def finetune_config(args: argparse.Namespace, recipe: str) -> FinetuneConfig:
    """The recipe's ``FinetuneConfig`` with the options given on the command line."""
    overrides: dict[str, object] = {}
    for dest, field in FINETUNE_FIELDS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        table, _, entry = field.rpartition(".")
        if table:
            overrides.setdefault(table, {})[entry] = value  # type: ignore[index]
        else:
            overrides[field] = value
    if filter_overrides(args):
        overrides["filter"] = filter_overrides(args)
    if args.bf16:
        overrides["mixed_precision"] = "bf16"
    if args.cpu:
        overrides["cpu"] = True
    return FinetuneConfig.from_recipe(recipe, **overrides)


def _record(args: argparse.Namespace, recipe: str, config: FinetuneConfig) -> None:
    """Set the options to the values the run uses, so that OUT/run-config.json (written from
    ``args`` after the run) records them, not the recipe's defaults as blanks."""
    args.recipe = recipe
    for dest, field in FINETUNE_FIELDS.items():
        value = config
        for part in field.split("."):
            value = getattr(value, part)
        setattr(args, dest, value)
    args.filter = config.filter.kind
    for name in ("pool", "encoder", "weight", *SOURCE_OPTIONS):
        setattr(args, f"filter_{name}", getattr(config.filter, name))


def run_finetune(args: argparse.Namespace) -> int:
    from kinemic.prior.folder import open_prior

    prior = None if args.preset is not None and args.count_params else open_prior(args.prior)
    recipe = args.recipe or default_recipe(prior.config if prior is not None else {})
    config = finetune_config(args, recipe)
    if args.count_params:
        from kinemic.diffusion import DenoiserConfig
        from kinemic.finetune.counts import parameter_counts

        if prior is None:
            denoiser, where = DenoiserConfig.preset(args.preset), f"the {args.preset} preset"
        else:
            denoiser, where = DenoiserConfig.from_dict(prior.config["denoiser"]), str(prior.path)
        where += f" (latent {denoiser.latent_dim}, {denoiser.num_layers} layers)"
        print(parameter_counts(config, denoiser).table(config, where))
        return 0
    missing = [flag for flag in ("target", "out") if getattr(args, flag) is None]
    if missing:
        raise KinemicError(
            f"the following arguments are required: {', '.join('--' + m for m in missing)} "
            "(all but --count-params)"
        )
    from kinemic.finetune.run import finetune

    how = "named" if args.recipe else "the default for this prior"
    print(f"fine-tuning with recipe {recipe} ({how}); the run's config.json records every setting")
    _record(args, recipe, config)
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
            "mixed (kinemic), gt; 3 seeds, each classifier trained to the fitting rule: the first "
            "epoch with a mean training loss <= 0.05, then as many again annealed). Prints the "
            "verdict and the table and "
            "writes OUT/report.md, a self-contained OUT/report.html and OUT/demo.json. A rerun "
            "reuses finished stages and resumes an interrupted fine-tune."
        ),
        epilog="""examples:
  kinemic demo                          # default world, 3 seeds (about 15 minutes on 2 cores)
  kinemic demo --quick                  # smoke test: tiny world, 2 seeds (about 3 minutes)
  kinemic demo --modes "real,mixed (kinemic),synth (kinemic),gt"
  kinemic demo --out runs/demo --json runs/demo.json --seeds 10""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="report folder (out/demo)")
    p.add_argument("--json", type=Path, help="also write the figures (accuracies, mining) here")
    p.add_argument("--quick", action="store_true", help="tiny world, fewer seeds and steps")
    p.add_argument("--scale", choices=("tiny", "small", "default"), help="world scale")
    p.add_argument(
        "--seeds",
        type=int,
        help="HAR seeds per mode (default 3: the protocol's 5 take about 20 minutes on 2 cores; "
        "--quick 2)",
    )
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
        "--modes",
        help="comma-separated HAR modes (default: real, mixed (mdm-ft), mixed (kinemic), gt; "
        "'synth (kinemic)' adds a fifth, about a fifth more HAR time)",
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
    if args.modes is not None:
        overrides["modes"] = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    make = DemoConfig.quick if args.quick else DemoConfig
    config = make(**overrides)
    run_demo(config, out=args.out, json_path=args.json, fresh=args.fresh)
    return 0
