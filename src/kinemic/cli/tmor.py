"""``kinemic tmor ...``: the T-MOR verbs. Each converts its arguments to one typed call of
``kinemic.tmor``; every evaluation verb prints a table and writes its figures with ``--json``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from kinemic.cli.kinemic import add_device_argument
from kinemic.errors import KinemicError
from kinemic.files import write_text

ENCODER_HELP = "T-MOR encoder folder or run (default: the shipped encoder)"

EXAMPLES = """examples:
  kinemic tmor pretrain --source out/world/source --source out/cmu --visual --out runs/tmor
  kinemic tmor retrieve --source out/world/source --split test --json retrieval.json
  kinemic tmor classify --target out/world/target --split S0001 --json classify.json
  kinemic tmor detect --world out/world --json detect.json
  kinemic tmor filter --world out/world --json filter.json
  kinemic tmor t2m --source out/world/source --json t2m.json     # the shipped prior, judged"""


def _json_out(path: Path | None, data: dict) -> None:
    if path is not None:
        write_text(path, json.dumps(data, indent=2) + "\n")
        print(f"wrote {path}")


def _encoder(args: argparse.Namespace):
    from kinemic.devices import resolve_device
    from kinemic.tmor.encoder import load_tmor

    return load_tmor(
        args.encoder,
        text_encoder=getattr(args, "text_encoder", None),
        device=resolve_device(args.device),
    )


# ------------------------------------------------------------------------------------ pretrain


def _add_pretrain(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        help="train a T-MOR encoder contrastively against captions (and video)",
        description=(
            "Symmetric InfoNCE between the skeleton tower and the frozen text encoder's caption "
            "embeddings (near-duplicate captions masked out of the negatives), and with "
            "--visual between the skeleton and visual towers (each source's visual/<id>.npy: "
            "2-D keypoints (T, 22, 2), per-frame (T, F) or per-clip (F,) features). Writes a "
            "run folder whose checkpoints are encoder folders; --resume continues exactly."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  kinemic tmor pretrain --source out/world/source --source out/cmu "
        "--visual --train-steps 1500 --out runs/tmor",
    )
    p.add_argument(
        "--source",
        type=Path,
        action="append",
        required=True,
        help="captioned HumanML3D-layout folder (repeatable)",
    )
    p.add_argument("--out", type=Path, required=True, help="run folder to write")
    p.add_argument("--visual", action="store_true", help="add the skeleton-visual pair")
    p.add_argument(
        "--visual-dir",
        type=Path,
        action="append",
        help="visual features folder, one per --source (default: SOURCE/visual)",
    )
    p.add_argument("--preset", choices=["tiny", "small", "base"], default="small")
    p.add_argument("--frame-stride", type=int, choices=[1, 2, 4], help="frames per token")
    p.add_argument(
        "--train-steps",
        "--steps",
        dest="train_steps",
        type=int,
        default=20000,
        help="optimiser steps (20000; --steps is the old name, kept for one release)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.995, help="EMA decay (0: none)")
    p.add_argument("--max-frames", type=int, default=160)
    p.add_argument("--crop", type=float, default=0.8, help="shortest crop, share of the span")
    p.add_argument("--mirror", type=float, default=0.5, help="mirroring probability")
    p.add_argument(
        "--dup-threshold",
        type=float,
        default=0.9,
        help="captions with text cosine above this are not negatives (0.9)",
    )
    p.add_argument("--visual-weight", type=float, default=1.0)
    p.add_argument("--text-encoder", default="minilm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--resume", type=Path, help="continue this run folder or checkpoint")
    p.add_argument("--cpu", action="store_true", help="force the CPU")
    p.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPUs)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model: faster steps on CUDA once the first steps have compiled it "
        "(refused on the CPU)",
    )


def _run_pretrain(args: argparse.Namespace) -> int:
    from kinemic.tmor.pretrain import pretrain_tmor

    if args.visual_dir and not args.visual:
        raise KinemicError("--visual-dir needs --visual")
    overrides = {} if args.frame_stride is None else {"frame_stride": args.frame_stride}
    out = pretrain_tmor(
        args.source,
        args.out,
        preset=args.preset,
        model_overrides=overrides,
        visual=args.visual,
        visual_dirs=args.visual_dir,
        train_steps=args.train_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        ema=args.ema or None,
        text_encoder=args.text_encoder,
        seed=args.seed,
        mixed_precision="bf16" if args.bf16 else "no",
        cpu=args.cpu,
        torch_compile=args.compile,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        max_frames=args.max_frames,
        crop=args.crop,
        mirror=args.mirror,
        dup_threshold=args.dup_threshold,
        visual_weight=args.visual_weight,
    )
    print(f"T-MOR run in {out}")
    return 0


# ------------------------------------------------------------------------ evaluation verbs


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoder", help=ENCODER_HELP)
    p.add_argument("--text-encoder", help="refuse to run unless the encoder was trained with it")
    p.add_argument("--json", type=Path, help="write the figures to this JSON file")
    p.add_argument("--seed", type=int, default=0)
    add_device_argument(p)


def _add_retrieve(sub) -> None:
    p = sub.add_parser(
        "retrieve",
        help="text-to-motion and motion-to-text retrieval figures",
        description="R@1/5/10 and median rank over a split's (clip, first "
        "caption) pairs: the whole split and batches of 32 (HumanML3D protocol), "
        "plain and with near-duplicate captions counted as correct.",
    )
    p.add_argument("--source", type=Path, required=True, help="captioned HumanML3D-layout folder")
    p.add_argument("--split", default="test", help="split list to use (test)")
    _common(p)


def _run_retrieve(args: argparse.Namespace) -> int:
    from kinemic.tmor.retrieve import evaluate_retrieval

    rep = evaluate_retrieval(args.source, encoder=_encoder(args), split=args.split, seed=args.seed)
    print(f"{rep.pairs} pairs of {args.source} ({args.split})\n{rep.table()}")
    _json_out(args.json, rep.to_dict())
    return 0


def _add_classify(sub) -> None:
    p = sub.add_parser(
        "classify",
        help="zero-shot, few-shot and supervised action recognition",
        description="Zero-shot (class-name prompts), k-shot (prototypes and a "
        "linear probe) and supervised (linear probe) top-1 on an NTU-VIBE "
        "few-shot split's validation clips.",
    )
    p.add_argument("--target", type=Path, required=True, help="NTU-VIBE-layout folder")
    p.add_argument("--split", default="S0001", help="few-shot split (S0001)")
    p.add_argument(
        "--regimes",
        nargs="+",
        default=["zero-shot", "few-shot", "supervised"],
        choices=["zero-shot", "few-shot", "supervised"],
    )
    p.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    p.add_argument("--seeds", type=int, default=5, help="draws of k shots for k < the split's")
    _common(p)


def _run_classify(args: argparse.Namespace) -> int:
    from kinemic.tmor.classify import evaluate_classification

    rep = evaluate_classification(
        args.target,
        encoder=_encoder(args),
        split=args.split,
        regimes=args.regimes,
        shots=args.shots,
        seeds=args.seeds,
    )
    print(f"{len(rep.classes)} classes, {rep.val_clips} validation clips\n{rep.table()}")
    _json_out(args.json, rep.to_dict())
    return 0


def _add_detect(sub) -> None:
    p = sub.add_parser(
        "detect",
        help="frame-wise temporal action detection (per-frame mAP)",
        description="Sliding-window per-frame class scores on untrimmed "
        "sequences: held-out world source sequences against their ground-truth "
        "segments, and/or target validation clips concatenated into long "
        "sequences; the trivial most-frequent-class baseline beside.",
    )
    p.add_argument("--world", type=Path, help="a world folder (uses source/ and target/)")
    p.add_argument("--source", type=Path, help="a world source folder (segments/ sidecars)")
    p.add_argument("--target", type=Path, help="an NTU-VIBE folder to concatenate clips of")
    p.add_argument("--method", choices=["probe", "zero-shot"], default="probe")
    p.add_argument("--window", type=int, default=32, help="window frames (32)")
    p.add_argument("--stride", type=int, default=4, help="window step (4)")
    p.add_argument("--clips-per-sequence", type=int, default=8)
    p.add_argument("--max-train-sequences", type=int, default=1000)
    _common(p)


def _run_detect(args: argparse.Namespace) -> int:
    from kinemic.tmor.detect import detect_concat, detect_world

    source = args.source or (args.world / "source" if args.world else None)
    target = args.target or (args.world / "target" if args.world else None)
    if source is None and target is None:
        raise KinemicError("give --world, or --source and/or --target")
    enc = _encoder(args)
    out = {}
    if source is not None:
        rep = detect_world(
            source,
            encoder=enc,
            method=args.method,
            window=args.window,
            stride=args.stride,
            max_train_sequences=args.max_train_sequences,
            seed=args.seed,
        )
        print(f"{rep.name}: {rep.sequences} sequences, {rep.frames} frames\n{rep.table()}")
        out["world"] = rep.to_dict()
    if target is not None:
        rep = detect_concat(
            target,
            encoder=enc,
            method=args.method,
            window=args.window,
            stride=args.stride,
            clips_per_sequence=args.clips_per_sequence,
            seed=args.seed,
        )
        print(f"{rep.name}: {rep.sequences} sequences, {rep.frames} frames\n{rep.table()}")
        out["concat"] = rep.to_dict()
    _json_out(args.json, out)
    return 0


def _add_filter(sub) -> None:
    p = sub.add_parser(
        "filter",
        help="the kinematic filter's effect on KineMIC soft positives",
        description="Text soft positives of each target class (top-k source "
        "motions by caption similarity), re-ranked by T-MOR window similarity to "
        "the class' few-shot clips; on a world, the precision of the soft "
        "positives (ground-truth segments holding the class' primitive) before "
        "and after.",
    )
    p.add_argument("--world", type=Path, required=True, help="a world folder")
    p.add_argument("--split", default="S0001", help="few-shot split of the target (S0001)")
    p.add_argument("--k", type=int, default=250, help="soft positives kept per class (250)")
    p.add_argument("--pool", type=int, help="text candidates re-ranked (2k, as finetune)")
    p.add_argument(
        "--weight",
        type=float,
        help="the motion score's share of the ranking key, "
        "the caption score's being the rest; 1 ranks by motion alone (0.5, as "
        "finetune)",
    )
    _common(p)


def _run_filter(args: argparse.Namespace) -> int:
    from kinemic.mining.filter_eval import evaluate_filter

    rep = evaluate_filter(
        args.world,
        encoder=_encoder(args),
        split=args.split,
        k=args.k,
        pool=args.pool,
        weight=args.weight,
    )
    print(rep.table())
    _json_out(args.json, rep.to_dict())
    return 0


def _add_t2m(sub) -> None:
    p = sub.add_parser(
        "t2m",
        help="text-to-motion quality in T-MOR space (R-precision, FID)",
        description="R-precision top-1/2/3 in batches of 32, matching distance, "
        "FID and diversity of generated motions (the shipped prior's samples "
        "from a split's captions, or --generated DIR), real figures "
        "beside.",
    )
    p.add_argument("--source", type=Path, required=True, help="captioned HumanML3D-layout folder")
    p.add_argument("--split", default="test")
    p.add_argument("--prior", default="shipped", help="prior to sample (default: shipped)")
    p.add_argument("--generated", type=Path, help="HumanML3D-layout folder of generated motions")
    p.add_argument("--n", type=int, default=256, help="pairs (256)")
    p.add_argument("--ddim", type=int, default=10, help="DDIM steps (10; 0 = full DDPM)")
    _common(p)


def _run_t2m(args: argparse.Namespace) -> int:
    from kinemic.prior.t2m import evaluate_t2m

    enc = _encoder(args)
    rep = evaluate_t2m(
        args.source,
        encoder=enc,
        prior=args.prior,
        generated=args.generated,
        split=args.split,
        n=args.n,
        seed=args.seed,
        ddim=args.ddim or None,
        device=enc.device,
    )
    print(f"{rep.pairs} pairs\n{rep.table()}")
    _json_out(args.json, rep.to_dict())
    return 0


SUBVERBS: dict[str, tuple[Callable, Callable]] = {
    "pretrain": (_add_pretrain, _run_pretrain),
    "retrieve": (_add_retrieve, _run_retrieve),
    "classify": (_add_classify, _run_classify),
    "detect": (_add_detect, _run_detect),
    "filter": (_add_filter, _run_filter),
    "t2m": (_add_t2m, _run_t2m),
}


def add_tmor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tmor",
        help="T-MOR: pretrain a skeleton-text(-video) encoder and evaluate it",
        description="T-MOR, a transferable skeleton motion representation: contrastive "
        "pretraining against captions (and video), then retrieval, zero/few-shot and "
        "supervised classification, temporal detection, KineMIC's kinematic filter and "
        "text-to-motion metrics. The shipped encoder is the default of every verb.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(
        dest="tmor_verb", required=True, metavar="{" + ",".join(SUBVERBS) + "}"
    )
    for add, _ in SUBVERBS.values():
        add(verbs)


def run_tmor(args: argparse.Namespace) -> int:
    return SUBVERBS[args.tmor_verb][1](args)
