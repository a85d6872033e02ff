"""BVH reading, forward kinematics, the CMU → SMPL-22 retarget and the folder converter."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kinemic.errors import DataError
from kinemic.io.bvh import (
    BVH,
    bvh_positions,
    euler_to_matrix,
    local_rotations,
    parse_bvh,
    read_bvh,
)
from kinemic.io.bvh_retarget import (
    BVH_TO_SMPL,
    bvh_to_smpl,
    clip_spans,
    convert_bvh_folder,
    read_trial_captions,
    resample_motion,
    source_fps,
    subject_splits,
)
from kinemic.resample import resample_frames
from kinemic.skeleton import SMPL22

# Root rotates X, Y, Z (not CMU's Z, Y, X); the child keys its own Y translation; 25 fps.
TINY = """HIERARCHY
ROOT Base
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation
  JOINT Arm
  {
    OFFSET 1 0 0
    CHANNELS 3 Xrotation Yrotation Zrotation
    JOINT Hand
    {
      OFFSET 2 0 0
      CHANNELS 2 Yposition Zrotation
      End Site
      {
        OFFSET 0.5 0 0
      }
    }
  }
}
MOTION
Frames: 4
Frame Time: 0.04
0 0 0 0 0 0 0 0 0 0 0
1 2 3 0 0 90 0 0 0 0 0
0 0 0 0 0 0 0 0 90 0 0
0 0 0 90 0 90 0 0 0 5 0
"""


def test_tiny_bvh_structure():
    bvh = parse_bvh(TINY)
    assert bvh.names == ("Base", "Arm", "Hand")
    assert bvh.parents == (-1, 0, 1)
    assert bvh.channels[0][3:] == ("Xrotation", "Yrotation", "Zrotation")
    assert bvh.channel_start == (0, 6, 9)
    assert bvh.end_site_parents == (2,) and bvh.end_site_names() == ("Hand_end",)
    assert bvh.motion.shape == (4, 11) and bvh.motion.dtype == np.float64
    assert bvh.fps == pytest.approx(25.0) and bvh.seconds == pytest.approx(0.16)
    np.testing.assert_array_equal(bvh.offsets[1], [1, 0, 0])
    rot = local_rotations(bvh)  # (T, J, 3, 3)
    expected = Rotation.from_euler("XYZ", [90, 0, 90], degrees=True).as_matrix()
    np.testing.assert_allclose(rot[3, 0], expected, atol=1e-12)
    np.testing.assert_allclose(rot[3, 2], np.eye(3), atol=1e-12)  # Zrotation 0


def test_tiny_bvh_forward_kinematics_by_hand():
    pos = bvh_positions(parse_bvh(TINY), end_sites=True)  # (4, 3 joints + 1 end, 3)
    assert pos.shape == (4, 4, 3)
    expected = [
        # rest: a straight line along +X; Hand's Yposition channel (0) replaces its offset y (0)
        [[0, 0, 0], [1, 0, 0], [3, 0, 0], [3.5, 0, 0]],
        # root moved to (1,2,3) and turned 90° about Z: +X becomes +Y
        [[1, 2, 3], [1, 3, 3], [1, 5, 3], [1, 5.5, 3]],
        # only Arm turns 90° about Z: Hand goes up from the Arm
        [[0, 0, 0], [1, 0, 0], [1, 2, 0], [1, 2.5, 0]],
        # root X=90 then Z=90, intrinsic X·Y·Z: Rx(90)·Rz(90) takes +X to +Z (the reverse order
        # would keep it on +Y). Hand's Yposition = 5 replaces its offset's y: local (2, 5, 0),
        # and Rx(90)·Rz(90) takes (2, 5, 0) to (-5, 0, 2).
        [[0, 0, 0], [0, 0, 1], [-5, 0, 3], [-5, 0, 3.5]],
    ]
    np.testing.assert_allclose(pos, expected, atol=1e-12)


def test_positions_frame_and_joint_selection_agree_with_full_fk():
    bvh = parse_bvh(TINY)
    full = bvh_positions(bvh, end_sites=True)
    np.testing.assert_allclose(bvh_positions(bvh, frames=slice(1, 3)), full[1:3, :3])
    np.testing.assert_allclose(bvh_positions(bvh, joints=["Hand", 0]), full[:, [2, 0]])
    sub = bvh_positions(bvh, joints=["Base"], end_sites=True)
    np.testing.assert_allclose(sub, full[:, [0, 3]])


@pytest.mark.parametrize("order", ["ZYX", "XYZ", "YZX", "ZXY", "XZ", "Y", "ZXZ"])
def test_euler_to_matrix_matches_scipy_intrinsic(order):
    angles = np.random.default_rng(0).uniform(-970, 970, (50, len(order)))
    expected = Rotation.from_euler(order, angles, degrees=True).as_matrix()
    np.testing.assert_allclose(euler_to_matrix(order, angles), expected, atol=1e-12)


def test_crlf_and_lowercase_channel_names_parse():
    text = TINY.replace("Zrotation\n", "zrotation\n").replace("\n", "\r\n")
    bvh = parse_bvh(text)
    np.testing.assert_allclose(bvh_positions(bvh), bvh_positions(parse_bvh(TINY)))


def _break(old: str, new: str) -> str:
    assert old in TINY
    return TINY.replace(old, new, 1)


BROKEN = {
    "truncated motion": (TINY[: TINY.rindex("0 0 0 90")], "declares Frames: 4 but 3", 27),
    "value count": (_break("1 2 3 0 0 90 0 0 0 0 0", "1 2 3 0 0 90 0 0 0 0"), "has 10 values", 25),
    "unknown channel": (_break("Zrotation\n    JOINT", "Wrotation\n    JOINT"), "'Wrotation'", 9),
    "channel count": (_break("CHANNELS 2 Yposition", "CHANNELS 3 Yposition"), "End", 14),
    "non-numeric": (_break("0 0 0 0 0 0 0 0 90 0 0", "0 0 0 0 0 0 0 0 9O 0 0"), "'9O'", 26),
    "bad offset": (_break("OFFSET 1 0 0", "OFFSET 1 0"), "needs 3 numbers", 9),
    "no motion": (TINY[: TINY.index("MOTION")], "no MOTION section", None),
    "missing brace": (_break("  }\n}\nMOTION", "  }\nMOTION"), "unbalanced braces", None),
    "extra brace": (_break("}\nMOTION", "}\n}\nMOTION"), "closes nothing", 21),
    "extra frames": (_break("Frames: 4", "Frames: 2"), "declares Frames: 2 but 4", 26),
    "bad frame time": (_break("Frame Time: 0.04", "Frame Time: fast"), "Frame Time", 23),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_bvh_raises_data_error_naming_file_and_line(case, tmp_path):
    text, fragment, line = BROKEN[case]
    path = tmp_path / "broken.bvh"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_bvh(path)
    err = info.value
    assert fragment in err.problem
    assert err.path == path and str(path) in str(err)
    if line is not None:
        assert err.line == line and f"line {line}" in str(err)


# ------------------------------------------------------------------------------------- CMU


@pytest.fixture(scope="module")
def cmu_index(cmu_bvh_dir: Path) -> dict[str, dict[str, str]]:
    with (cmu_bvh_dir / "index.tsv").open(encoding="utf-8") as f:
        return {r["trial"]: r for r in csv.DictReader(f, delimiter="\t")}


@pytest.fixture(scope="module")
def cmu_trials(cmu_bvh_dir: Path) -> dict[str, BVH]:
    return {p.stem: read_bvh(p) for p in sorted(cmu_bvh_dir.rglob("*.bvh"))}


@pytest.fixture(scope="module")
def cmu_smpl(cmu_trials) -> dict[str, np.ndarray]:
    """Every trial as SMPL-22 joints at its native 30 fps (no resampling)."""
    return {k: bvh_to_smpl(b, fps=None) for k, b in cmu_trials.items()}


def test_every_cmu_trial_parses(cmu_trials, cmu_index):
    assert sorted(cmu_trials) == sorted(cmu_index)
    for trial, bvh in cmu_trials.items():
        assert bvh.num_joints == 31 and bvh.motion.shape[1] == 96, trial
        assert bvh.num_frames == int(cmu_index[trial]["frames_30fps"]), trial
        assert source_fps(bvh) == 30.0
        assert bvh.channels[0] == (
            "Xposition",
            "Yposition",
            "Zposition",
            "Zrotation",
            "Yrotation",
            "Xrotation",
        )


def test_cmu_fk_keeps_every_bone_length(cmu_trials):
    for trial, bvh in list(cmu_trials.items())[::7]:
        pos = bvh_positions(bvh, end_sites=True)
        parents = list(bvh.parents[1:]) + list(bvh.end_site_parents)
        bones = np.linalg.norm(pos[:, 1:] - pos[:, parents], axis=-1)  # (T, J - 1 + E)
        np.testing.assert_allclose(bones, np.broadcast_to(bones[0], bones.shape), atol=1e-9)
        rest = np.linalg.norm(np.r_[bvh.offsets[1:], bvh.end_site_offsets], axis=-1)
        np.testing.assert_allclose(bones[0], rest, atol=1e-9, err_msg=trial)


def test_cmu_smpl_bones_are_rigid_at_the_native_rate(cmu_smpl):
    # spine1→spine2 joins blends of Hips/Spine and Spine/Spine1, which bend at Spine: the
    # only SMPL bone allowed to change length.
    bones = [(p, c) for p, c in SMPL22.bones() if c != SMPL22.index("spine2")]
    parents, children = np.array(bones).T
    for trial, j in cmu_smpl.items():
        length = np.linalg.norm(j[:, children] - j[:, parents], axis=-1)
        assert (length.std(0) / length.mean(0)).max() < 1e-6, trial


def test_cmu_left_hip_is_on_the_bodys_left(cmu_smpl):
    i = SMPL22.index
    for trial, j in cmu_smpl.items():
        first = j[0]
        forward = first[[i("l_foot"), i("r_foot")]] - first[[i("l_ankle"), i("r_ankle")]]
        forward = forward.sum(0) * [1, 0, 1]
        left = np.cross([0.0, 1.0, 0.0], forward / np.linalg.norm(forward))
        assert (first[i("l_hip")] - first[i("r_hip")]) @ left > 0.1, trial
        assert (first[i("l_shoulder")] - first[i("r_shoulder")]) @ left > 0.2, trial
        assert np.median(j[:, i("head"), 1] - j[:, i("pelvis"), 1]) > 0.3, trial  # Y is up


def test_cmu_body_height_is_plausible(cmu_smpl):
    """Two measures, because the CMU skeleton's torso is short (README: toe tip to head End
    Site 1.38-1.48 m in the zero pose):
    - stature from the legs: 90th percentile over frames of hip height above the lower foot
      joint, divided by 0.5 (hip joint centre ≈ half the stature) — in [1.4, 2.0] m;
    - skeleton height: 90th percentile of head joint above the lower foot joint, plus 0.1 m
      for the CMU Head End Site (top of head) — in [1.3, 1.7] m."""
    for trial, j in cmu_smpl.items():
        lowest_foot = j[:, [7, 8, 10, 11], 1].min(1)
        hips = j[:, [1, 2], 1].mean(1) - lowest_foot
        head = j[:, SMPL22.index("head"), 1] - lowest_foot
        assert 1.4 < np.percentile(hips, 90) / 0.5 < 2.0, trial
        assert 1.3 < np.percentile(head, 90) + 0.1 < 1.7, trial


def test_cmu_feet_on_the_floor(cmu_smpl, cmu_index):
    for trial, j in cmu_smpl.items():
        assert j[:, [7, 8, 10, 11], 1].min() == pytest.approx(0.0, abs=1e-12), trial
    walks = [
        t
        for t, r in cmu_index.items()
        if "walk" in r["description"] and "uneven" not in r["description"] and t != "09_12"
    ]
    assert len(walks) >= 20
    for trial in walks:
        j = cmu_smpl[trial]
        lowest = j[:, [7, 8, 10, 11], 1].min(1)
        assert np.median(lowest) < 0.10, trial
        # The capture floor tilts ~1-1.7 cm per metre along Z; without that tilt the lower
        # foot stays within a few cm of the floor.
        a = np.c_[j[:, 0, 0], j[:, 0, 2], np.ones(len(j))]
        residual = lowest - a @ np.linalg.lstsq(a, lowest, rcond=None)[0]
        assert np.percentile(residual - residual.min(), 90) < 0.06, trial


def test_bvh_to_smpl_resamples_to_20_fps(cmu_trials, cmu_smpl):
    bvh = cmu_trials["02_01"]
    j20 = bvh_to_smpl(bvh)
    assert j20.shape == ((bvh.num_frames - 1) * 2 // 3 + 1, 22, 3)
    native = cmu_smpl["02_01"]
    # every third 30 fps frame is a 20 fps frame (the floor is the same up to interpolation)
    np.testing.assert_allclose(j20[::2], native[::3], atol=2e-3)
    scaled = bvh_to_smpl(bvh, fps=None, unit_scale=1.0)
    np.testing.assert_allclose(scaled[..., [0, 2]] * (0.0254 / 0.45), native[..., [0, 2]])


def test_resample_frames_is_linear():
    ramp = np.arange(31, dtype=float)[:, None] * [1.0, 2.0]
    out = resample_frames(ramp, fps_in=30.0, fps_out=20.0)
    assert out.shape == (21, 2)
    np.testing.assert_allclose(out[:, 0], np.arange(21) * 1.5)
    np.testing.assert_array_equal(resample_frames(ramp, fps_in=30.0, fps_out=30.0), ramp)


def test_resampled_cmu_bones_stay_rigid_at_20_fps(cmu_trials, cmu_smpl):
    """Interpolating the BVH channels (not positions) keeps bones rigid after 30→20 fps, even
    on the fastest foot whips (position interpolation shortened ankle→toe by up to 14%)."""
    bones = [(p, c) for p, c in SMPL22.bones() if c != SMPL22.index("spine2")]
    parents, children = np.array(bones).T
    for trial in ("05_16", "02_01", "09_01"):
        bvh = cmu_trials[trial]
        j20 = bvh_to_smpl(bvh)
        lengths = np.linalg.norm(j20[:, children] - j20[:, parents], axis=-1)
        assert (lengths.std(0) / lengths.mean(0)).max() < 1e-6, trial
        assert resample_motion(bvh, 20.0).fps == pytest.approx(20.0)


def test_bvh_to_smpl_names_the_joints_a_file_lacks():
    with pytest.raises(DataError, match="needs joints"):
        bvh_to_smpl(parse_bvh(TINY, path="tiny.bvh"))


def test_bvh_module_exposes_the_retarget():
    import kinemic.io.bvh as bvh_module

    assert bvh_module.convert_bvh_folder is convert_bvh_folder
    assert bvh_module.BVH_TO_SMPL["cmu"].unit_scale == pytest.approx(0.056444, abs=1e-6)


def test_cmu_map_weights_are_convex_and_distinct():
    w = BVH_TO_SMPL["cmu"].weights()
    np.testing.assert_allclose(w.sum(1), 1.0)
    assert len({tuple(r) for r in w}) == 22  # no two SMPL joints coincide by construction


# ------------------------------------------------------------------------- folder converter


def test_clip_spans_and_subject_splits():
    assert clip_spans(30) == [(0, 30)]
    assert clip_spans(197) == [(0, 197)]
    assert clip_spans(236) == [(0, 197)]  # a 39-row leftover is dropped
    assert clip_spans(237) == [(0, 197), (196, 237)]
    assert subject_splits(["05", "01", "02", "03", "06", "07", "08", "09", "02"]) == {
        "train": ["01", "03", "06", "07", "08", "09"],
        "val": ["02"],
        "test": ["05"],
    }
    # by id, not by position: a subset or a larger corpus keeps each subject's split
    assert subject_splits(["02", "07"]) == {"train": ["07"], "val": ["02"], "test": []}
    assert subject_splits(["10", "13", "16"])["val"] == ["10"]
    assert subject_splits(["10", "13", "16"])["test"] == ["13"]
    named = subject_splits([f"s{i}" for i in range(64)])
    assert 3 <= len(named["val"]) <= 13 and 3 <= len(named["test"]) <= 13


def test_trial_captions_table_must_name_its_columns(tmp_path):
    path = tmp_path / "captions.tsv"
    path.write_text("id\ttext\n01_01\twalk\n")
    with pytest.raises(DataError, match="trial and description"):
        read_trial_captions(path)
    path.write_text("trial\tdescription\n01_01\t walk  fast \n01_02\t\n")
    assert read_trial_captions(path) == {"01_01": "walk fast"}


def _subset(cmu_bvh_dir: Path, dst: Path, trials: list[str]) -> Path:
    for t in trials:
        (dst / t[:2]).mkdir(parents=True, exist_ok=True)
        (dst / t[:2] / f"{t}.bvh").symlink_to(cmu_bvh_dir / t[:2] / f"{t}.bvh")
    return dst


def test_convert_bvh_folder(cmu_bvh_dir, tmp_path):
    pytest.importorskip("kinemic.features")
    from kinemic.features import features_to_joints, joints_to_features, process_joints
    from kinemic.io.humanml3d import HumanML3DDataset

    src = _subset(cmu_bvh_dir, tmp_path / "src", ["01_14", "02_01", "02_03", "05_02", "07_01"])
    out = tmp_path / "out"
    summary = convert_bvh_folder(src, out, captions=cmu_bvh_dir / "index.tsv")
    # 01_14: 19.5 s = 390 frames at 20 fps = rows 0..196 and 196..389; 02_03 is a 1.47 s run
    assert summary.clips == ["01_14_000", "01_14_001", "02_01_000", "05_02_000", "07_01_000"]
    assert [(s.name, s.kind) for s in summary.skipped] == [("02_03", "too-short")]
    assert "running trials" in str(summary)
    data = HumanML3DDataset(out)
    assert data.split("train") == ["01_14_000", "01_14_001", "07_01_000"]
    assert data.split("val") == ["02_01_000"] and data.split("test") == ["05_02_000"]
    assert data.captions("02_01_000")[0].text == "walk"
    mean, std = data.mean_std()
    assert mean.shape == std.shape == (263,) and (std > 0).all()
    for clip in summary.clips:
        f, j = data.features(clip), data.joints(clip)
        assert 40 <= len(f) <= 196 and f.shape[1] == 263 and j.shape == (len(f), 22, 3)
        np.testing.assert_allclose(features_to_joints(f), j, atol=1e-5)

    # Round trip on the converted joints: features → joints equals the canonical joints.
    for trial in ["02_01", "05_02"]:
        joints = bvh_to_smpl(src / trial[:2] / f"{trial}.bvh")
        back = features_to_joints(joints_to_features(joints))
        np.testing.assert_allclose(back, process_joints(joints)[:-1], atol=1e-4)


def test_convert_bvh_folder_broken_file(cmu_bvh_dir, tmp_path):
    pytest.importorskip("kinemic.features")
    src = _subset(cmu_bvh_dir, tmp_path / "src", ["07_01"])
    (src / "07" / "07_99.bvh").write_text(BROKEN["non-numeric"][0])
    with pytest.raises(DataError, match=r"07_99\.bvh, line 26"):
        convert_bvh_folder(src, tmp_path / "strict")
    summary = convert_bvh_folder(src, tmp_path / "lenient", lenient=True, min_seconds=0)
    assert summary.clips == ["07_01_000"]
    assert [(s.name, s.kind) for s in summary.skipped] == [("07_99", "broken")]
    assert summary.uncaptioned == ["07_01_000"]  # no index.tsv in src, no captions given
