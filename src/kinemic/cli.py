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


# --------------------------------------------------------------------------------------- demo


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the most complete pipeline available end to end (see README)",
        description=(
            "Today: the foundation pipeline on real motion capture. Converts the CMU BVH trials "
            "shipped beside the project (../shared/data/cmu-bvh, or --bvh) to a HumanML3D-layout "
            "corpus, validates it, prints its summary, checks the feature round trip and renders "
            "a GIF. The full KineMIC demo (world → prior → mining → fine-tune → synthesis → "
            "evaluation → report) replaces this as its parts land."
        ),
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (out/demo)")
    p.add_argument("--bvh", type=Path, help="BVH folder (default: ../shared/data/cmu-bvh)")


def _run_demo(args: argparse.Namespace) -> int:
    from kinemic.demo import run_demo

    run_demo(out=args.out, bvh=args.bvh)
    return 0


# ---------------------------------------------------------------------------------------- main

VERBS: dict[str, tuple[Callable, Callable]] = {
    "demo": (_add_demo, _run_demo),
    "convert": (_add_convert, _run_convert),
    "validate": (_add_validate, _run_validate),
    "info": (_add_info, _run_info),
    "split": (_add_split, _run_split),
    "world": (_add_world, _run_world),
    "render": (_add_render, _run_render),
}


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
