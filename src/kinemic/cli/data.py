"""Verbs on datasets: convert, validate, info, split, render, world, export."""

from __future__ import annotations

import argparse
from pathlib import Path

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


LENIENT = "skip every file with a problem and count it, with its reason, in the summary"
OVERWRITE = "replace a non-empty OUT, once the new dataset is complete"


def add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert raw motion data (BVH, NTU .skeleton, joint arrays) to the HumanML3D layout",
        description=(
            "Convert a folder of raw motion files into a HumanML3D-layout dataset: 20 fps SMPL-22 "
            "joints in metres (new_joints/), the 263-d HumanML3D features (new_joint_vecs/), "
            "captions (texts/), split lists and Mean/Std. OUT appears only when complete: the "
            "files are written into OUT.partial-<pid> beside it, renamed to OUT at the end."
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
    bvh.add_argument("--lenient", action="store_true", help=LENIENT)
    bvh.add_argument("--overwrite", action="store_true", help=OVERWRITE)

    ntu = kinds.add_parser("ntu-skeleton", help="NTU RGB+D raw Kinect .skeleton files")
    ntu.add_argument("src", type=Path, help="folder of *.skeleton files")
    ntu.add_argument("out", type=Path, help="output dataset folder (NTU-VIBE layout)")
    ntu.add_argument("--captions", type=Path, help="ntu_metadata.json with one caption per class")
    ntu.add_argument("--lenient", action="store_true", help=LENIENT)
    ntu.add_argument("--overwrite", action="store_true", help=OVERWRITE)

    joints = kinds.add_parser("joints", help="NumPy joint arrays (T, 22, 3) or (T, 66), 20 fps")
    joints.add_argument("src", type=Path, help="folder of *.npy joint arrays")
    joints.add_argument("out", type=Path, help="output dataset folder")
    joints.add_argument(
        "--convention",
        choices=["humanml3d", "ntu-vibe"],
        default="humanml3d",
        help="humanml3d: retarget to the uniform skeleton (default); ntu-vibe: keep own bones",
    )
    joints.add_argument("--lenient", action="store_true", help=LENIENT)
    joints.add_argument("--overwrite", action="store_true", help=OVERWRITE)


def run_convert(args: argparse.Namespace) -> int:
    options = {"lenient": args.lenient, "overwrite": args.overwrite}
    if args.kind == "bvh":
        from kinemic.io.bvh import convert_bvh_folder

        summary = convert_bvh_folder(
            args.src,
            args.out,
            captions=args.captions,
            skeleton=args.skeleton,
            min_seconds=args.min_seconds,
            **options,
        )
    elif args.kind == "ntu-skeleton":
        from kinemic.io.ntu_convert import convert_ntu_folder

        summary = convert_ntu_folder(args.src, args.out, captions=args.captions, **options)
    else:
        from kinemic.io.joints import convert_joints_folder

        summary = convert_joints_folder(args.src, args.out, convention=args.convention, **options)
    print(summary)
    return 0


# ----------------------------------------------------------------------------- validate, info


def add_validate(sub: argparse._SubParsersAction) -> None:
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


def run_validate(args: argparse.Namespace) -> int:
    from kinemic.files import make_folder, write_text
    from kinemic.validate import validate_dataset

    if args.json is not None:  # a bad --json fails now, not after a long validation
        if args.json.is_dir():
            raise KinemicError(f"--json {args.json} is a folder; give the .json file to write")
        make_folder(args.json.parent)
    report = validate_dataset(args.root)
    print(report.format())
    if args.json:
        write_text(args.json, report.to_json())
    return 0 if report.ok else 1


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="summarise a dataset folder: clips, lengths, captions, splits, classes",
        epilog=EXAMPLES["info"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", type=Path, help="dataset folder")


def run_info(args: argparse.Namespace) -> int:
    from kinemic.info import dataset_info, format_info

    print(format_info(dataset_info(args.root)))
    return 0


# -------------------------------------------------------------------------------------- split


def add_split(sub: argparse._SubParsersAction) -> None:
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


def run_split(args: argparse.Namespace) -> int:
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


def add_render(sub: argparse._SubParsersAction) -> None:
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


def run_render(args: argparse.Namespace) -> int:
    from kinemic.render import render_clips

    titles = args.titles or [f.stem for f in args.files]
    if len(titles) != len(args.files):
        raise KinemicError(f"--titles gives {len(titles)} titles for {len(args.files)} files")
    out = render_clips(list(args.files), args.out, titles=titles, fps=args.fps)
    print(f"wrote {out}")
    return 0


# -------------------------------------------------------------------------------------- world


def add_world(sub: argparse._SubParsersAction) -> None:
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


def run_world(args: argparse.Namespace) -> int:
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


# ------------------------------------------------------------------------------------- export


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export clips for other toolkits (pyskl / mmaction2 skeleton pickle)",
        description="Write a dataset, a few-shot split or synthetic clips in another format.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = p.add_subparsers(dest="kind", required=True, metavar="{pyskl}")
    k = kinds.add_parser(
        "pyskl",
        help="the pickle pyskl and mmaction2 train skeleton classifiers from",
        description=(
            "dict(split={name: [frame_dir, ...]}, annotations=[dict(frame_dir, label, "
            "total_frames, keypoint (1, T, 22, 3) float32)]) plus a 'kinemic' key with the "
            "class names and the SMPL-22 parents (pyskl needs a graph layout built from them). "
            "Without options: every clip with the default splits (xsub_train, xsub_val, ...) "
            "and 0-based NTU labels. --split: train = the few-shot clips, val = its validation "
            "clips, labels 0..K-1. --synthetic: train = the synthetic clips; with --mixed "
            "train = few-shot + synthetic."
        ),
        epilog="""examples:
  kinemic export pyskl out/world/target --out world.pkl
  kinemic export pyskl out/world/target --split S0000 --out s0000.pkl
  kinemic export pyskl out/world/target --synthetic runs/syn-kinemic --mixed --out mixed.pkl""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    k.add_argument("root", type=Path, help="NTU-VIBE-layout target dataset")
    k.add_argument("--out", type=Path, required=True, help="the .pkl to write")
    k.add_argument("--split", help="few-shot split (default: the synthetic folders' split)")
    k.add_argument("--synthetic", type=Path, action="append", default=[], help="(repeatable)")
    k.add_argument("--mixed", action="store_true", help="few-shot clips + synthetic clips")


def run_export(args: argparse.Namespace) -> int:
    from kinemic.io.pyskl import export_pyskl

    data = export_pyskl(
        args.root, args.out, split=args.split, synthetic=args.synthetic, mixed=args.mixed
    )
    counts = ", ".join(f"{k}: {len(v)}" for k, v in data.split.items())
    print(f"wrote {args.out}: {len(data.annotations)} clips ({counts})")
    return 0


# --------------------------------------------------------------------------------- text-cache


def add_text_cache(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "text-cache",
        help="fill the text-embedding cache with a corpus's captions before training",
        description=(
            "Encode every caption of the SOURCE folders' split that the text-embedding cache "
            "lacks, in batches, on --device, under a progress bar; `kinemic pretrain` and "
            "`kinemic tmor pretrain` then read them from the cache instead of encoding them. "
            "Run it before a multi-process or multi-GPU training job: there the main process "
            "would otherwise encode a cold cache while the others wait (minutes for "
            "HumanML3D's ~90,000 captions, long enough for a GPU job's timeout)."
        ),
        epilog="""examples:
  kinemic text-cache --source HumanML3D --text-encoder clip --device cuda
  kinemic text-cache --source out/world/source --mirrored     # for kinemic tmor pretrain""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", type=Path, action="append", required=True, help="corpus (repeat)")
    p.add_argument(
        "--text-encoder", default="minilm", help="the encoder training will use (minilm)"
    )
    p.add_argument(
        "--cache",
        type=Path,
        help="cache folder (default: the one training uses, $KINEMIC_CACHE/text or "
        "~/.cache/kinemic/text)",
    )
    p.add_argument(
        "--split", default="train", help="split list of each source (train; all clips without it)"
    )
    p.add_argument(
        "--mirrored",
        action="store_true",
        help="also the captions' left/right mirrored texts (T-MOR pretraining trains on them)",
    )
    p.add_argument("--batch-size", type=int, default=512, help="captions per encoder call (512)")
    p.add_argument(
        "--device", help="cpu, cuda or cuda:N (default: cuda when PyTorch sees a GPU, else cpu)"
    )


def run_text_cache(args: argparse.Namespace) -> int:
    from kinemic.caption_cache import fill_text_cache

    done = fill_text_cache(
        args.source,
        text_encoder=args.text_encoder,
        cache_dir=args.cache,
        split=args.split,
        mirrored=args.mirrored,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(done.summary())
    return 0
