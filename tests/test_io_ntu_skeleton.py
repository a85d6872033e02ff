"""NTU RGB+D ``.skeleton`` reader, main-actor selection, Kinect -> SMPL-22 and folder conversion.

Files are synthesised here from a stick figure in Kinect camera space (Y up, Z into the scene,
X to the sensor's left), standing 3 m in front of the sensor and facing it: its left side is
at camera −X and its feet point toward the sensor (−Z).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kinemic.errors import DataError
from kinemic.io.ntu_skeleton import (
    KINECT_TO_HUMANML3D,
    NTUSkeleton,
    ntu_to_smpl,
    read_skeleton,
    select_main_actor,
)
from kinemic.resample import resample_frames
from kinemic.skeleton import SMPL22

# Kinect-25 rest pose relative to SpineBase, person facing the sensor (left side at −X).
REST = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0, 0.25, 0.0],
        [0.0, 0.55, 0.0],
        [0.0, 0.70, 0.0],
        [-0.18, 0.50, 0.0],
        [-0.20, 0.22, 0.0],
        [-0.20, -0.02, 0.0],
        [-0.20, -0.10, 0.0],
        [0.18, 0.50, 0.0],
        [0.20, 0.22, 0.0],
        [0.20, -0.02, 0.0],
        [0.20, -0.10, 0.0],
        [-0.10, -0.02, 0.0],
        [-0.10, -0.45, 0.0],
        [-0.10, -0.85, 0.0],
        [-0.10, -0.90, -0.10],
        [0.10, -0.02, 0.0],
        [0.10, -0.45, 0.0],
        [0.10, -0.85, 0.0],
        [0.10, -0.90, -0.10],
        [0.0, 0.50, 0.0],
        [-0.20, -0.18, 0.0],
        [-0.17, -0.10, 0.0],
        [0.20, -0.18, 0.0],
        [0.17, -0.10, 0.0],
    ]
)
ID_A, ID_B = "72057594037931101", "72057594037931117"
LINES_PER_BODY = 27  # body line, joint count, 25 joints


def pose(*, at=(0.0, 0.0, 3.0), raise_left: float = 0.0, wave: float = 0.0) -> np.ndarray:
    """(25, 3) stick figure; ``raise_left`` lifts the left arm overhead (0..1), ``wave`` swings
    the right forearm sideways (metres)."""
    p = REST.copy()
    p[[5, 6, 7, 21, 22], 1] += raise_left * np.array([0.55, 1.05, 1.20, 1.35, 1.20])
    p[[10, 11, 23, 24], 0] += wave
    return p + np.asarray(at)


def body_text(body_id: str, xyz: np.ndarray, *, num_joints: int = 25) -> list[str]:
    lines = [f"{body_id} 0 1 1 1 1 0 0.02764709 0.05745083 2", str(num_joints)]
    for j, (x, y, z) in enumerate(xyz[:num_joints]):
        state = 1 if j == 24 else 2
        lines.append(
            f"{x:.7g} {y:.7g} {z:.7g} 277.419 191.8218 1036.233 519.1677 "
            f"-0.2059419 0.05349901 0.9692109 -0.1239193 {state}"
        )
    return lines


def skeleton_lines(frames: list[dict[str, np.ndarray]], *, declared: int | None = None):
    """Lines of a .skeleton file; ``frames`` = per frame {body id: (25, 3)}."""
    lines = [str(len(frames) if declared is None else declared)]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, xyz in bodies.items():
            lines += body_text(body_id, xyz)
    return lines


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def still(n: int, **kw) -> list[dict[str, np.ndarray]]:
    return [{ID_A: pose(**kw)} for _ in range(n)]


# --------------------------------------------------------------------------------------------
# Reading


def test_valid_file_round_trips(tmp_path):
    frames = [{ID_A: pose(wave=0.01 * t)} for t in range(3)]
    frames.insert(1, {})  # a frame with no body is allowed
    sk = read_skeleton(write(tmp_path / "S001C001P001R001A001.skeleton", skeleton_lines(frames)))
    assert isinstance(sk, NTUSkeleton)
    assert sk.num_frames == 4
    assert sk.bodies_per_frame.tolist() == [1, 0, 1, 1]
    assert sk.empty_frames == 1
    assert list(sk.tracks) == [ID_A]  # the big body id is kept exactly, as text
    track = sk.tracks[ID_A]
    assert track.frames.tolist() == [0, 2, 3]
    expected = np.array([[[float(f"{v:.7g}") for v in j] for j in f[ID_A]] for f in frames if f])
    np.testing.assert_array_equal(track.xyz, expected)
    assert track.xyz.shape == (3, 25, 3)
    assert track.joint_tracking.shape == (3, 25)
    assert track.joint_tracking[:, 24].tolist() == [1, 1, 1]
    assert track.joint_tracking[:, :24].min() == 2
    assert track.body_tracking.tolist() == [2, 2, 2]


def test_trailing_blank_lines_are_fine(tmp_path):
    path = write(tmp_path / "a.skeleton", [*skeleton_lines(still(2)), "", "   "])
    assert read_skeleton(path).num_frames == 2


def _put(lines, line_no, text):  # replace 1-based line ``line_no``
    return [*lines[: line_no - 1], text, *lines[line_no:]], line_no


def _truncated(lines):  # cut in the middle of frame 2's joints: file ends at line 40
    return lines[:40], 40


def _wrong_joint_count(lines):  # frame 2's joint count line (2 + 28 + 2 = 32)
    return _put(lines, 32, "24")


def _non_numeric(lines):  # frame 1, joint 3 (line 7)
    return _put(lines, 7, lines[6].replace("277.419", "abc"))


def _wrong_value_count(lines):  # frame 1, joint 1 lost its tracking state (line 5)
    return _put(lines, 5, lines[4].rsplit(" ", 1)[0])


def _zero_bodies(lines):
    return ["3", "0", "0", "0"], 1


def _empty(lines):
    return [], 1


def _negative_frames(lines):
    return ["-2", *lines[1:]], 1


def _negative_bodies(lines):  # frame 2's body count (line 30)
    return _put(lines, 30, "-1")


def _trailing_garbage(lines):  # a 4th frame beyond the 3 declared, starting at line 86
    return [*lines, "1", *body_text(ID_A, pose())], 86


def _body_line_short(lines):  # frame 3's body line (2 + 56 + 1 = 59)
    return _put(lines, 59, f"{ID_A} 0 1")


BROKEN = {
    "truncated": (_truncated, "file ended at line 40"),
    "wrong joint count": (_wrong_joint_count, "expected 25, found 24"),
    "non-numeric": (_non_numeric, "non-numeric value 'abc'"),
    "wrong value count": (_wrong_value_count, "expected 12 values"),
    "zero bodies": (_zero_bodies, "no body in any frame"),
    "empty": (_empty, "empty"),
    "negative frames": (_negative_frames, "must not be negative, found -2"),
    "negative bodies": (_negative_bodies, "must not be negative, found -1"),
    "trailing garbage": (_trailing_garbage, "trailing content after the 3 declared frames"),
    "short body line": (_body_line_short, "expected 10 values"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_files_name_file_and_line(tmp_path, case):
    breaker, problem = BROKEN[case]
    lines, line_no = breaker(skeleton_lines(still(3)))
    path = write(tmp_path / "S001C001P001R001A007.skeleton", lines)
    with pytest.raises(DataError) as info:
        read_skeleton(path)
    message = str(info.value)
    assert "S001C001P001R001A007.skeleton" in message
    assert f"line {line_no}:" in message
    assert info.value.line == line_no
    assert problem in message


# --------------------------------------------------------------------------------------------
# Main actor


def test_multi_body_picks_the_moving_actor(tmp_path):
    frames = [
        {ID_A: pose(at=(-1.0, 0.0, 3.0)), ID_B: pose(at=(1.0, 0.0, 3.5), wave=0.3 * np.sin(t))}
        for t in range(12)
    ]
    frames[5]["99"] = pose(at=(0.0, 2.0, 1.0))  # a one-frame ghost
    actor = select_main_actor(read_skeleton(write(tmp_path / "m.skeleton", skeleton_lines(frames))))
    assert actor.body_id == ID_B
    assert actor.filled == 0
    assert actor.xyz.shape == (12, 25, 3)
    np.testing.assert_allclose(actor.xyz[:, 0], [[1.0, 0.0, 3.5]] * 12, atol=1e-6)


def test_still_bodies_tie_and_the_longer_track_wins(tmp_path):
    frames = [{ID_A: pose(at=(-1.0, 0, 3))} for _ in range(6)]
    for f in frames[:4]:
        f[ID_B] = pose(at=(1.0, 0, 3))
    actor = select_main_actor(read_skeleton(write(tmp_path / "t.skeleton", skeleton_lines(frames))))
    assert actor.body_id == ID_A


def test_missing_frames_are_interpolated_and_edges_held(tmp_path):
    xs = {1: 0.0, 2: 0.3, 5: 0.9, 6: 1.2}  # present frames -> SpineBase x
    frames = [{ID_A: pose(at=(xs[t], 0, 3))} if t in xs else {} for t in range(8)]
    actor = select_main_actor(read_skeleton(write(tmp_path / "g.skeleton", skeleton_lines(frames))))
    assert actor.filled == 4  # frames 0, 3, 4, 7
    np.testing.assert_allclose(
        actor.xyz[:, 0, 0], [0.0, 0.0, 0.3, 0.5, 0.7, 0.9, 1.2, 1.2], atol=1e-6
    )
    np.testing.assert_allclose(actor.xyz[3], (2 * pose(at=(0.3, 0, 3)) + pose(at=(0.9, 0, 3))) / 3)


def test_actor_in_one_frame_only_is_an_error(tmp_path):
    path = write(tmp_path / "one.skeleton", skeleton_lines([{}, {ID_A: pose()}, {}]))
    with pytest.raises(DataError, match=r"one\.skeleton.*present in 1 frame"):
        select_main_actor(read_skeleton(path))


# --------------------------------------------------------------------------------------------
# Kinect -> SMPL-22


@pytest.mark.parametrize("num_in", [1, 2, 3, 4, 30, 31, 100, 103, 300])
def test_resampling_30_to_20_fps_count_and_values(num_in):
    ramp = np.arange(num_in, dtype=np.float64)[:, None, None] * np.ones((1, 25, 3))
    out = ntu_to_smpl(ramp)
    assert out.shape == (int((num_in - 1) * 20 / 30) + 1, 22, 3)
    # Output frame k sits at input time 1.5 k; the map and the axis flip keep a ramp a ramp.
    np.testing.assert_allclose(out[:, 0, 1], 1.5 * np.arange(len(out)))
    np.testing.assert_allclose(resample_frames(ramp, fps_in=30, fps_out=30), ramp)


def test_axis_map_is_a_rotation_not_a_mirror():
    r = KINECT_TO_HUMANML3D
    np.testing.assert_allclose(r @ r.T, np.eye(3))
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_array_equal(r @ [0, 1, 0], [0, 1, 0])  # Y stays up


def facing(joints: np.ndarray) -> np.ndarray:
    """Unit forward of SMPL-22 joints (22, 3): up × ((r_hip−l_hip)+(r_sho−l_sho))."""
    r_hip, l_hip, r_sho, l_sho = (
        SMPL22.index(n) for n in ("r_hip", "l_hip", "r_shoulder", "l_shoulder")
    )
    across = joints[r_hip] - joints[l_hip] + joints[r_sho] - joints[l_sho]
    forward = np.cross([0.0, 1.0, 0.0], across)
    return forward / np.linalg.norm(forward)


def raised_left_clip() -> np.ndarray:
    return np.stack([pose(raise_left=min(1.0, t / 20)) for t in range(31)])  # (31, 25, 3)


def test_raised_left_hand_becomes_raised_smpl_l_wrist_and_faces_plus_z():
    smpl = ntu_to_smpl(raised_left_clip())
    assert smpl.shape == (21, 22, 3)
    last = smpl[-1]
    l_wrist, r_wrist, head = SMPL22.index("l_wrist"), SMPL22.index("r_wrist"), SMPL22.index("head")
    assert l_wrist == 20
    assert last[l_wrist, 1] > last[head, 1] + 0.2  # the left hand is overhead
    assert last[r_wrist, 1] < last[SMPL22.index("spine1"), 1]  # the right stays down
    np.testing.assert_allclose(facing(smpl[0]), [0.0, 0.0, 1.0], atol=1e-9)
    # Facing +Z with Y up, the body's left is +X, as in SMPL's rest pose.
    assert last[SMPL22.index("l_hip"), 0] > last[SMPL22.index("r_hip"), 0]
    assert last[SMPL22.index("l_foot"), 2] > last[SMPL22.index("l_ankle"), 2]  # toes forward


def test_canonicalised_joints_face_plus_z_with_the_left_hand_up():
    features = pytest.importorskip("kinemic.features")
    # Seen from a side camera: the person's facing is turned 60° in camera space.
    c, s = np.cos(np.pi / 3), np.sin(np.pi / 3)
    yaw = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    clip = raised_left_clip() @ yaw.T
    joints = features.process_joints(ntu_to_smpl(clip), convention="humanml3d")
    np.testing.assert_allclose(facing(joints[0]), [0.0, 0.0, 1.0], atol=1e-3)
    l_wrist, r_wrist = SMPL22.index("l_wrist"), SMPL22.index("r_wrist")
    assert joints[-1, l_wrist, 1] > joints[-1, SMPL22.index("head"), 1]
    assert joints[-1, r_wrist, 1] < joints[-1, SMPL22.index("spine1"), 1]
    assert joints[-1, l_wrist, 0] > joints[-1, r_wrist, 0]  # left hand on the +X (left) side
    # A mirror would also put the left hand at +X facing "+Z", but with the toes pointing back.
    assert joints[0, SMPL22.index("l_foot"), 2] > joints[0, SMPL22.index("l_ankle"), 2]


# --------------------------------------------------------------------------------------------
# Folder conversion (needs kinemic.features, kinemic.io.humanml3d and kinemic.io.ntu_names)


def make_folder(root: Path) -> Path:
    src = root / "skeletons"
    src.mkdir()
    walk = [{ID_A: pose(at=(0.01 * t, 0, 3), raise_left=min(1, t / 30))} for t in range(45)]
    walk[10] = {}  # one frame where the actor is lost
    write(src / "S001C001P001R001A099.skeleton", skeleton_lines(walk))
    write(src / "S001C001P001R001A050.skeleton", skeleton_lines(walk))  # two-person class
    write(src / "S001C001P001R001A102.skeleton", skeleton_lines(walk)[:100])  # truncated
    write(src / "S001C001P002R001A099.skeleton", skeleton_lines(walk[:6]))  # 4 frames at 20 fps
    return src


def test_convert_folder_lenient_counts_skips(tmp_path):
    pytest.importorskip("kinemic.features")
    humanml3d = pytest.importorskip("kinemic.io.humanml3d")
    pytest.importorskip("kinemic.io.ntu_names")
    from kinemic.io.ntu_convert import convert_ntu_folder

    src = make_folder(tmp_path)
    meta = tmp_path / "ntu_metadata.json"
    actions = [
        {"tag": f"A{a:03d}", "captions": [f"A person does action {a}."]} for a in range(1, 121)
    ]
    meta.write_text(json.dumps({"actions": actions}))
    out = tmp_path / "out"
    summary = convert_ntu_folder(src, out, captions=meta, lenient=True)

    assert summary.converted == ["S001C001P001R001A099"]
    assert summary.filled == {"S001C001P001R001A099": 1}
    assert (summary.count("two-person"), summary.count("broken"), summary.count("too-short")) == (
        1,
        1,
        1,
    )
    report = str(summary)
    assert "S001C001P001R001A102.skeleton (broken): line 100: truncated" in report
    assert "S001C001P001R001A050.skeleton (two-person)" in report

    t_out = int(44 * 20 / 30) + 1
    features = np.load(out / "new_joint_vecs" / "S001C001P001R001A099.npy")
    joints = np.load(out / "new_joints" / "S001C001P001R001A099.npy")
    assert features.shape == (t_out - 1, 263) and features.dtype == np.float32
    # new_joints are recovered from the features, one row each, as HumanML3D stores them
    assert joints.reshape(len(joints), 22, 3).shape == (t_out - 1, 22, 3)
    # the folder is a complete NTU-VIBE dataset: default splits, statistics, class names
    from kinemic.io.ntu_vibe import NTUVibeDataset
    from kinemic.validate import validate_dataset

    data = NTUVibeDataset(out)
    ids, labels = data.default_split("xsub", "train")
    assert ids == ["S001C001P001R001A099"] and labels == [98]
    assert data.mean_std()[0].shape == (263,)
    assert len(data.class_names()) == 120
    assert validate_dataset(out, progress=False).ok
    assert not (out / "new_joint_vecs" / "S001C001P001R001A050.npy").exists()
    captions = humanml3d.HumanML3DDataset(out).captions("S001C001P001R001A099")
    assert [c.text for c in captions] == ["A person does action 99."]

    with pytest.raises(DataError, match=r"S001C001P001R001A102\.skeleton, line 100"):
        convert_ntu_folder(src, tmp_path / "strict")
