"""``kinemic demo``: the most complete pipeline the project has today, end to end.

Today this is the foundation pipeline on real motion capture: CMU BVH trials → SMPL-22 joints at
20 fps → HumanML3D features → a validated HumanML3D-layout corpus → a GIF. The full KineMIC demo
(procedural world → pretrained prior → mining → fine-tuning → synthesis → HAR evaluation →
report) replaces it as those parts land; the stages here stay its first steps.
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


def _stage(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run_demo(*, out: Path = Path("out/demo"), bvh: Path | None = None) -> dict:
    """Convert, validate, summarise, round-trip and render; return the measured figures."""
    from kinemic.features import (
        features_to_joints,
        heading_crossings,
        joints_to_features,
        process_joints,
    )
    from kinemic.info import dataset_info, format_info
    from kinemic.io.bvh import convert_bvh_folder
    from kinemic.io.humanml3d import HumanML3DDataset
    from kinemic.render import render_clips
    from kinemic.validate import validate_dataset

    bvh = Path(bvh) if bvh is not None else DEFAULT_BVH
    if not bvh.is_dir():
        raise KinemicError(
            f"no BVH folder at {bvh}: pass --bvh DIR (any folder of CMU-skeleton .bvh files), or "
            "check the project out beside the shared/ folder that holds data/cmu-bvh"
        )
    print(
        "kinemic demo — foundation preview: real CMU motion capture through the HumanML3D "
        "pipeline.\nThe full KineMIC demo (world → prior → mining → fine-tune → synthesis → "
        "evaluation → report) arrives with the later milestones (see README)."
    )
    out = Path(out)
    corpus = out / "cmu"
    figures: dict = {}

    t0 = _stage(f"1/4 convert {bvh} → {corpus} (HumanML3D layout, 20 fps, metres)")
    captions = bvh / "index.tsv"
    summary = convert_bvh_folder(bvh, corpus, captions=captions if captions.exists() else None)
    print(summary)
    figures["convert_seconds"] = round(time.perf_counter() - t0, 2)

    t0 = _stage("2/4 validate")
    report = validate_dataset(corpus, progress=False)
    print(report.format())
    if not report.ok:
        raise KinemicError(f"the converted corpus has problems (see above): {corpus}")
    print(format_info(dataset_info(corpus)))

    _stage("3/4 round trip joints → features → joints on every clip")
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
    figures["clips"] = len(data.ids())
    figures["round_trip_max_error_m"] = worst
    print(
        f"{len(data.ids())} clips: max |error| {worst:.1e} m with the sign-fixed yaw; "
        f"{worst_published:.1e} m with the published formula on the {len(data.ids()) - turned} "
        f"clips whose heading never crosses ±180° (see joints_to_features(fix_yaw_sign=...))"
    )

    _stage("4/4 render")
    ids = data.ids()
    picks = [i for i in ids if i.startswith(("02_01", "02_05", "09_01"))][:3] or ids[:3]
    gif = render_clips(
        [data.joints(i) for i in picks], out / "cmu_clips.gif", titles=picks, max_frames=120
    )
    figures["gif"] = str(gif)
    print(f"wrote {gif}")
    print(f"\ndone: corpus in {corpus}, picture in {gif}")
    return figures
