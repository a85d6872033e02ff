"""The ``kinemic`` command line: one verb, one typed function. Nothing else lives here.

Each ``_add_<verb>`` declares the verb's arguments and help; each ``_run_<verb>`` converts the
parsed arguments to the typed call. Errors that a user can fix (``KinemicError``) are printed
without a traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from kinemic import __version__
from kinemic.cli_kinemic import BF16_SAMPLING_HELP
from kinemic.errors import KinemicError

EXAMPLES = {
    "convert": """examples:
  kinemic convert bvh ../shared/data/cmu-bvh out/cmu --captions ../shared/data/cmu-bvh/index.tsv
  kinemic convert ntu-skeleton nturgb+d_skeletons/ out/ntu --captions ntu_metadata.json
  kinemic convert joints my_joints/ out/mine            # .npy files of (T, 22, 3) or (T, 66)""",
    "validate": """examples:
  kinemic validate out/cmu          # exit status 1 when any problem is found
  kinemic validate out/ntu --json problems.json""",
    "split": """examples:
  kinemic split out/ntu --shots 10 --seed 42 --classes 98 101 103
  kinemic split out/ntu --shots 5 --classes "run on the spot" "side kick" --name S0007""",
    "render": """examples:
  kinemic render out/cmu/new_joints/02_01_000.npy --out walk.gif
  kinemic render a.npy b.npy --titles real synthetic --out side_by_side.mp4
  kinemic render clip_features.npy --out sheet.png      # a contact sheet of frames""",
    "world": """examples:
  kinemic world out/world                     # default scale: 5,000 sequences, 12 classes
  kinemic world out/tiny --scale tiny --seed 3
  kinemic world out/gallery --gallery         # one GIF per primitive, to look at""",
    "info": """examples:
  kinemic info out/cmu
  kinemic info ../shared/fixtures/ntu-vibe""",
}


# ----------------------------------------------------------------------------------- convert


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert raw motion data (BVH, NTU .skeleton, joint arrays) to the HumanML3D layout",
        description=(
            "Convert a folder of raw motion files into a HumanML3D-layout dataset: 20 fps SMPL-22 "
            "joints in metres (new_joints/), the 263-d HumanML3D features (new_joint_vecs/), "
            "captions (texts/), split lists and Mean/Std."
        ),
        epilog=EXAMPLES["convert"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = p.add_subparsers(dest="kind", required=True, metavar="{bvh,ntu-skeleton,joints}")

    bvh = kinds.add_parser("bvh", help="BVH motion capture (CMU skeleton built in)")
    bvh.add_argument("src", type=Path, help="folder searched recursively for *.bvh")
    bvh.add_argument("out", type=Path, help="output dataset folder")
    bvh.add_argument("--captions", type=Path, help="TSV with columns 'trial' and 'description'")
    bvh.add_argument("--skeleton", default="cmu", help="named BVH skeleton (default: cmu)")
    bvh.add_argument("--min-seconds", type=float, default=2.0, help="skip shorter trials (2.0)")
    bvh.add_argument("--lenient", action="store_true", help="skip and count broken files")

    ntu = kinds.add_parser("ntu-skeleton", help="NTU RGB+D raw Kinect .skeleton files")
    ntu.add_argument("src", type=Path, help="folder of *.skeleton files")
    ntu.add_argument("out", type=Path, help="output dataset folder (NTU-VIBE layout)")
    ntu.add_argument("--captions", type=Path, help="ntu_metadata.json with one caption per class")
    ntu.add_argument("--lenient", action="store_true", help="skip and count broken files")

    joints = kinds.add_parser("joints", help="NumPy joint arrays (T, 22, 3) or (T, 66), 20 fps")
    joints.add_argument("src", type=Path, help="folder of *.npy joint arrays")
    joints.add_argument("out", type=Path, help="output dataset folder")
    joints.add_argument(
        "--convention",
        choices=["humanml3d", "ntu-vibe"],
        default="humanml3d",
        help="humanml3d: retarget to the uniform skeleton (default); ntu-vibe: keep own bones",
    )


def _run_convert(args: argparse.Namespace) -> int:
    if args.kind == "bvh":
        from kinemic.io.bvh import convert_bvh_folder

        summary = convert_bvh_folder(
            args.src,
            args.out,
            captions=args.captions,
            skeleton=args.skeleton,
            min_seconds=args.min_seconds,
            lenient=args.lenient,
        )
    elif args.kind == "ntu-skeleton":
        from kinemic.io.ntu_convert import convert_ntu_folder

        summary = convert_ntu_folder(
            args.src, args.out, captions=args.captions, lenient=args.lenient
        )
    else:
        from kinemic.convert import convert_joints_folder

        summary = convert_joints_folder(args.src, args.out, convention=args.convention)
    print(summary)
    return 0


# ----------------------------------------------------------------------------- validate, info


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check a dataset folder and report every problem found",
        description=(
            "Check a HumanML3D- or NTU-VIBE-layout folder: array shapes, NaN/inf frames, empty "
            "clips, missing or malformed captions, split and label files that disagree, "
            "normaliser statistics. Every problem names its file. Exit status 1 if any error."
        ),
        epilog=EXAMPLES["validate"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", type=Path, help="dataset folder")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")


def _run_validate(args: argparse.Namespace) -> int:
    from kinemic.io.atomic import write_text
    from kinemic.validate import validate_dataset

    report = validate_dataset(args.root)
    print(report.format())
    if args.json:
        write_text(args.json, report.to_json())
    return 0 if report.ok else 1


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="summarise a dataset folder: clips, lengths, captions, splits, classes",
        epilog=EXAMPLES["info"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", type=Path, help="dataset folder")


def _run_info(args: argparse.Namespace) -> int:
    from kinemic.info import dataset_info, format_info

    print(format_info(dataset_info(args.root)))
    return 0


# -------------------------------------------------------------------------------------- split


def _add_split(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split",
        help="sample a few-shot split (S%%04d layout) from an NTU-VIBE-layout dataset",
        description=(
            "Draw SHOTS training clips per class (seeded; outliers excluded) from the default "
            "training split of the chosen protocol, keep every validation clip of those "
            "classes, and write splits/fewshot/S####/ (meta.json and PROTOCOL/*.txt)."
        ),
        epilog=EXAMPLES["split"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", type=Path, help="NTU-VIBE-layout dataset folder")
    p.add_argument("--shots", type=int, default=10, help="training clips per class (10)")
    p.add_argument("--seed", type=int, default=42, help="random seed (42)")
    p.add_argument(
        "--classes",
        nargs="+",
        help="0-based class indices or class names (default: every class with clips)",
    )
    p.add_argument("--protocol", choices=["xsub", "xset"], default="xsub", help="(xsub)")
    p.add_argument("--name", help="split name, e.g. S0003 (default: the next free S####)")


def _run_split(args: argparse.Namespace) -> int:
    from kinemic.splits import sample_fewshot_split

    classes = None
    if args.classes:
        classes = [int(c) if c.isdigit() else c for c in args.classes]
    path = sample_fewshot_split(
        args.root,
        shots=args.shots,
        seed=args.seed,
        classes=classes,
        protocol=args.protocol,
        name=args.name,
    )
    print(f"wrote {path}")
    return 0


# ------------------------------------------------------------------------------------- render


def _add_render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="draw clips as stick figures (GIF, MP4 or a PNG contact sheet)",
        description=(
            "Render one or more clips side by side: a stick figure with the floor and the root "
            "trajectory. Each FILE is a .npy of joints (T, 22, 3) / (T, 66) or HumanML3D "
            "features (T, 263). The output format follows --out's suffix: .gif, .mp4 (needs "
            "ffmpeg) or .png."
        ),
        epilog=EXAMPLES["render"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", type=Path, help="clips to draw, side by side")
    p.add_argument("--out", type=Path, required=True, help="output .gif, .mp4 or .png")
    p.add_argument("--titles", nargs="+", help="one title per clip (default: file names)")
    p.add_argument("--fps", type=float, default=20.0, help="frames per second of the clips (20)")


def _run_render(args: argparse.Namespace) -> int:
    from kinemic.render import render_clips

    titles = args.titles or [f.stem for f in args.files]
    if len(titles) != len(args.files):
        raise KinemicError(f"--titles gives {len(titles)} titles for {len(args.files)} files")
    out = render_clips(list(args.files), args.out, titles=titles, fps=args.fps)
    print(f"wrote {out}")
    return 0


# -------------------------------------------------------------------------------------- world


def _add_world(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "world",
        help="generate the procedural motion world: a source corpus and a few-shot HAR target",
        description=(
            "Write OUT/source (HumanML3D layout: long sequences of 1-4 primitive actions with "
            "captions, ground-truth segments in segments/<id>.json and 2-D keypoints in "
            "visual/) and OUT/target (NTU-VIBE layout: short clips of 12 NTU RGB+D classes "
            "under a simulated capture-system shift, default xsub split and few-shot splits "
            "S0000 and S0001), deterministically from --seed. With --gallery, render one GIF "
            "per primitive into OUT instead."
        ),
        epilog=EXAMPLES["world"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="world seed (0)")
    p.add_argument(
        "--scale",
        choices=["tiny", "small", "default"],
        default="default",
        help="tiny: seconds, for tests; small: ~500 sequences; default: 5,000 sequences",
    )
    p.add_argument("--gallery", action="store_true", help="render every primitive to OUT/*.gif")
    p.add_argument("--overwrite", action="store_true", help="replace an existing world in OUT")
    p.add_argument("--workers", type=int, help="processes (default: up to 2; same output)")


def _run_world(args: argparse.Namespace) -> int:
    from kinemic.world.generate import generate_world, render_gallery

    if args.gallery:
        paths = render_gallery(args.out, seed=args.seed)
        print(f"wrote {len(paths)} GIFs to {args.out}")
        return 0
    summary = generate_world(
        args.out, seed=args.seed, scale=args.scale, overwrite=args.overwrite, workers=args.workers
    )
    print(summary.table())
    return 0


# ------------------------------------------------------------------------ pretrain, sample, import


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
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
            "GPUs run it under `accelerate launch` (several CPU processes: --multi_gpu "
            "--num_processes N)."
        ),
        epilog="""examples:
  kinemic pretrain --source out/world/source --source out/cmu --steps 6000 --out runs/prior
  kinemic pretrain --source HumanML3D --preset mdm --text-encoder clip --steps 600000 --out runs/mdm
  kinemic pretrain --resume runs/prior --source out/world/source --steps 6000 --out runs/prior""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", type=Path, action="append", required=True, help="corpus (repeat)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--preset", choices=["tiny", "mdm"], default="tiny", help="model size (tiny)")
    p.add_argument("--steps", type=int, default=100_000, help="optimiser steps (100000)")
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
    p.add_argument("--max-frames", type=int, default=196, help="longest training crop (196)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPUs; slow on CPU)")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps (1000)")
    p.add_argument("--resume", type=Path, help="continue this run from its latest checkpoint")


def _run_pretrain(args: argparse.Namespace) -> int:
    from kinemic.pretrain import pretrain

    out = pretrain(
        args.source,
        args.out,
        preset=args.preset,
        model_overrides=None if args.text_scale is None else {"text_scale": args.text_scale},
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        ema=args.ema or None,
        text_encoder=args.text_encoder,
        num_diffusion_steps=args.diffusion_steps,
        max_frames=args.max_frames,
        seed=args.seed,
        mixed_precision="bf16" if args.bf16 else "no",
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
    )
    print(f"prior in {out}")
    return 0


def _length(value: str) -> str | int:
    return int(value) if value.isdigit() else value


def _add_sample(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--steps", type=int, help="DDPM steps (the model's own)")
    p.add_argument("--ddim", type=int, help="deterministic DDIM with this many steps instead")
    p.add_argument("--guidance", type=float, default=2.5, help="CFG scale; 1 = none (2.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--bf16", action="store_true", help=BF16_SAMPLING_HELP)
    p.add_argument("--no-gif", action="store_true", help="skip the GIFs")
    p.add_argument("--out", type=Path, required=True, help="output folder")


def _run_sample(args: argparse.Namespace) -> int:
    from kinemic.sample import sample_motions

    out = sample_motions(
        args.model,
        texts=args.text,
        actions=args.action,
        n=args.n,
        length=args.length,
        steps=args.steps,
        ddim=args.ddim,
        guidance=args.guidance,
        seed=args.seed,
        out=args.out,
        bf16=args.bf16,
        gif=not args.no_gif,
    )
    print(f"wrote {out}")
    return 0


def _add_import_mdm(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-mdm",
        help="turn an official MDM checkpoint (model*.pt) into a kinemic prior folder",
        description=(
            "Map the official MDM state dict onto kinemic's Denoiser (the CLIP tower keys are "
            "dropped; kinemic encodes text with its own CLIP encoder) and save it with the "
            "HumanML3D Mean/Std it was trained with."
        ),
        epilog="""example:
  kinemic import-mdm save/humanml_trans_enc_512/model000475000.pt \\
      --mean-std HumanML3D --out runs/mdm""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", type=Path, help="official MDM .pt (or .safetensors)")
    p.add_argument("--out", type=Path, required=True, help="prior folder to write")
    p.add_argument("--mean-std", type=Path, required=True, help="folder with Mean.npy/Std.npy")
    p.add_argument("--num-heads", type=int, default=4, help="attention heads (4)")
    p.add_argument("--diffusion-steps", type=int, default=50, help="steps it was trained with")
    p.add_argument("--trust-pickle", action="store_true", help="allow full unpickling")


def _run_import_mdm(args: argparse.Namespace) -> int:
    from kinemic.prior import import_mdm

    out = import_mdm(
        args.checkpoint,
        args.out,
        mean_std=args.mean_std,
        num_heads=args.num_heads,
        num_steps=args.diffusion_steps,
        trust_pickle=args.trust_pickle,
    )
    print(f"prior in {out}")
    return 0


# --------------------------------------------------------------------------------------- demo


def _add_demo(sub: argparse._SubParsersAction) -> None:
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
  kinemic demo                          # default world, 5 seeds (11–14 minutes on 2 cores)
  kinemic demo --quick                  # tiny world, 2 seeds, few steps (about 3 minutes)
  kinemic demo --fitted-har             # then: the same runs, HAR fitted (~46 min more)
  kinemic demo --out runs/demo --json runs/demo.json --seeds 10""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="report folder (out/demo)")
    p.add_argument("--json", type=Path, help="also write the figures (accuracies, mining) here")
    p.add_argument("--quick", action="store_true", help="tiny world, fewer seeds and steps")
    p.add_argument("--scale", choices=("tiny", "small", "default"), help="world scale")
    p.add_argument("--seeds", type=int, help="HAR seeds per mode (default 5; --quick 2)")
    p.add_argument("--steps", type=int, help="fine-tuning steps per method (200; --quick 30)")
    p.add_argument("--per-class", type=int, help="synthetic clips per class")
    p.add_argument("--jobs", type=int, help="HAR runs in parallel processes (default 2)")
    p.add_argument(
        "--fitted-har",
        action="store_true",
        help="train every HAR classifier until fitted, as the world's calibration does (480 "
        "steps, at least 60 epochs; the default 160 steps leave the 330-clip modes at 8 "
        "epochs). Reuses the fine-tunes and synthetic sets of an earlier run in OUT",
    )
    p.add_argument("--no-gifs", action="store_true", help="leave the clip GIFs out of the report")
    p.add_argument("--fresh", action="store_true", help="delete OUT first instead of reusing it")


def _run_demo(args: argparse.Namespace) -> int:
    from kinemic.demo import DemoConfig, run_demo

    overrides = {
        key: value
        for key, value in {
            "scale": args.scale,
            "seeds": args.seeds,
            "finetune_steps": args.steps,
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


# ---------------------------------------------------------------------------------------- main

VERBS: dict[str, tuple[Callable, Callable]] = {
    "demo": (_add_demo, _run_demo),
    "convert": (_add_convert, _run_convert),
    "validate": (_add_validate, _run_validate),
    "info": (_add_info, _run_info),
    "split": (_add_split, _run_split),
    "world": (_add_world, _run_world),
    "pretrain": (_add_pretrain, _run_pretrain),
    "sample": (_add_sample, _run_sample),
    "import-mdm": (_add_import_mdm, _run_import_mdm),
    "render": (_add_render, _run_render),
}


def _area_verbs() -> dict[str, tuple[Callable, Callable]]:
    """Verbs of the larger areas, each declared in its own ``cli_<area>.py`` beside this file
    (same shape: a ``VERBS`` dict of verb -> (add, run))."""
    import importlib

    verbs: dict[str, tuple[Callable, Callable]] = {}
    for area in AREAS:
        verbs.update(importlib.import_module(f"kinemic.cli_{area}").VERBS)
    return verbs


#: Areas whose verbs live in ``kinemic/cli_<area>.py``.
AREAS: tuple[str, ...] = ("mine", "kinemic", "tmor", "har")
VERBS.update(_area_verbs())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinemic",
        description=(
            "Few-shot skeleton action synthesis (KineMIC) and transferable motion "
            "representations (T-MOR). Run 'kinemic VERB --help' for a verb's options and examples."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kinemic {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add, _ in VERBS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return VERBS[args.verb][1](args)
    except KinemicError as err:
        print(f"kinemic {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kinemic {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
