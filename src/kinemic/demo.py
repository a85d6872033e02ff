"""``kinemic demo``: the most complete pipeline the project has today, end to end.

Today: (1) real CMU motion capture → SMPL-22 joints at 20 fps → HumanML3D features → a
validated corpus, with the feature round trip checked on every clip; (2) a tiny procedural
world (source corpus + few-shot HAR target), validated; (3) the prior that ships with kinemic
sampled from world captions it never saw in training, drawn beside real world motion. The full
KineMIC demo (mining → fine-tune → synthesis → HAR evaluation → report) extends this as those
parts land.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from kinemic.errors import KinemicError

#: Where the CMU trials live: ``$KINEMIC_SHARED/data/cmu-bvh``, by default the ``shared/``
#: folder beside the checkout.
SHARED = Path(os.environ.get("KINEMIC_SHARED", Path(__file__).resolve().parents[3] / "shared"))
DEFAULT_BVH = SHARED / "data" / "cmu-bvh"
#: Captions the demo samples: reserved evaluation paraphrases of these world primitives.
DEMO_PRIMITIVES = ("wave", "side_kick", "squat")


def _stage(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run_demo(*, out: Path = Path("out/demo"), bvh: Path | None = None, seed: int = 0) -> dict:
    """Run every stage; return the measured figures (also printed)."""
    out = Path(out)
    print(
        "kinemic demo — today's pipeline: real mocap through the HumanML3D representation, the "
        "procedural world, and the shipped diffusion prior.\nMining, fine-tuning, synthesis and "
        "HAR evaluation join it as they land (see README)."
    )
    figures: dict = {}
    bvh = Path(bvh) if bvh is not None else DEFAULT_BVH
    if bvh.is_dir():
        figures["cmu"] = _cmu_stage(bvh, out / "cmu")
    elif bvh != DEFAULT_BVH:
        raise KinemicError(f"no BVH folder at {bvh}: pass --bvh DIR, a folder of .bvh files")
    else:
        print(f"\n(skipping the motion-capture stage: no CMU trials at {bvh})")
    figures["world"] = _world_stage(out / "world", seed)
    figures["prior"] = _prior_stage(out, out / "world", seed)
    print(f"\ndone: everything is in {out}")
    return figures


def _cmu_stage(bvh: Path, corpus: Path) -> dict:
    from kinemic.features import (
        features_to_joints,
        heading_crossings,
        joints_to_features,
        process_joints,
    )
    from kinemic.info import dataset_info, format_info
    from kinemic.io.bvh import convert_bvh_folder
    from kinemic.io.humanml3d import HumanML3DDataset
    from kinemic.validate import validate_dataset

    t0 = _stage(f"1/3 motion capture: {bvh} → {corpus} (HumanML3D layout, 20 fps, metres)")
    captions = bvh / "index.tsv"
    print(convert_bvh_folder(bvh, corpus, captions=captions if captions.exists() else None))
    report = validate_dataset(corpus, progress=False)
    print(report.format())
    if not report.ok:
        raise KinemicError(f"the converted corpus has problems (see above): {corpus}")
    print(format_info(dataset_info(corpus, progress=False)))

    data = HumanML3DDataset(corpus)
    worst, worst_published, turned = 0.0, 0.0, 0
    for clip_id in data.ids():
        joints = data.joints(clip_id)
        target = process_joints(joints)[:-1]
        back = features_to_joints(joints_to_features(joints, fix_yaw_sign=True))
        worst = max(worst, float(np.abs(back - target).max()))
        if heading_crossings(joints) == 0:  # the published yaw formula is exact on these
            back = features_to_joints(joints_to_features(joints))
            worst_published = max(worst_published, float(np.abs(back - target).max()))
        else:
            turned += 1
    n = len(data.ids())
    print(
        f"round trip joints → features → joints on {n} clips: max |error| {worst:.1e} m with "
        f"the sign-fixed yaw; {worst_published:.1e} m with the published formula on the "
        f"{n - turned} clips whose heading never crosses ±180° (see README)"
    )
    return {
        "clips": n,
        "round_trip_max_error_m": worst,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _world_stage(world: Path, seed: int) -> dict:
    from kinemic.validate import validate_dataset
    from kinemic.world.generate import generate_world

    t0 = _stage(f"2/3 procedural world (tiny scale, seed {seed}) → {world}")
    summary = generate_world(world, seed=seed, scale="tiny", overwrite=True, progress=False)
    print(summary.table())
    for part in ("source", "target"):
        report = validate_dataset(world / part, progress=False)
        print(report.format().splitlines()[0])
        if not report.ok:
            raise KinemicError(f"the generated {part} has problems: {report.format()}")
    return {"seconds": round(time.perf_counter() - t0, 1)}


def _prior_stage(out: Path, world: Path, seed: int) -> dict:
    from kinemic.io.humanml3d import HumanML3DDataset
    from kinemic.render import render_clips
    from kinemic.sample import sample_motions
    from kinemic.world.captions import eval_captions

    t0 = _stage("3/3 the shipped prior: samples from captions it never saw, beside real motion")
    texts = [eval_captions(p)[0] for p in DEMO_PRIMITIVES]
    for t in texts:
        print(f"  · {t}")
    samples = sample_motions(
        "shipped", texts=texts, n=1, length="3s", ddim=10, seed=seed, out=out / "samples",
        gif=False, progress=False,
    )  # fmt: skip
    generated = sorted((samples / "joints").glob("*.npy"))
    real = _real_examples(HumanML3DDataset(world / "source"), world, DEMO_PRIMITIVES)
    clips = [np.load(p) for p in generated] + list(real.values())
    titles = [f"prior: {p}" for p in DEMO_PRIMITIVES] + [f"world: {p}" for p in real]
    gif = render_clips(clips, out / "prior_vs_world.gif", titles=titles, max_frames=60)
    print(f"wrote {gif}")
    return {"gif": str(gif), "seconds": round(time.perf_counter() - t0, 1)}


def _real_examples(data, world: Path, primitives) -> dict[str, np.ndarray]:
    """One real world segment of each primitive (the first found), as joints."""
    import json

    found: dict[str, np.ndarray] = {}
    for clip_id in data.ids():
        sidecar = json.loads((world / "source" / "segments" / f"{clip_id}.json").read_text())
        for seg in sidecar["segments"]:
            if seg["primitive"] in primitives and seg["primitive"] not in found:
                found[seg["primitive"]] = data.joints(clip_id)[seg["start"] : seg["end"]]
    return {p: found[p] for p in primitives if p in found}
