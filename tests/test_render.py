"""Stick-figure rendering: GIF frame counts, contact sheets, side-by-side layout, handedness,
shape errors, and the ffmpeg pipe (with a stand-in ffmpeg that records the raw frames)."""

from __future__ import annotations

import os
import stat
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kinemic.errors import DataError, KinemicError
from kinemic.render import (
    LEFT_COLOR,
    RIGHT_COLOR,
    SPINE_COLOR,
    _to_plot,
    load_motion,
    render_clips,
)
from kinemic.skeleton import SMPL22, humanml3d_offsets

SMALL = {"dpi": 40, "panel_size": 3.0}  # ~120 px panels keep every render well under a second


def rest_pose() -> np.ndarray:
    """The HumanML3D rest pose (22, 3), facing +Z, feet on the floor y=0."""
    offsets = humanml3d_offsets()
    pose = np.zeros((22, 3))
    for j, p in enumerate(SMPL22.parents):
        if p >= 0:
            pose[j] = pose[p] + offsets[j]
    pose[:, 1] -= pose[:, 1].min()
    return pose


def walk(num_frames: int, *, step: float = 0.05) -> np.ndarray:
    """The rest pose slid forward along +Z: joints (T, 22, 3)."""
    clip = np.repeat(rest_pose()[None], num_frames, axis=0)
    clip[:, :, 2] += step * np.arange(num_frames)[:, None]
    return clip


def gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def colour_mask(image: np.ndarray, hex_colour: str, tol: int = 40) -> np.ndarray:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return (np.abs(image.astype(int) - rgb) <= tol).all(axis=-1)


def test_rest_pose_is_a_standing_person():
    pose = rest_pose()
    assert pose[15, 1] > 1.3 and pose[15, 1] >= pose[:, 1].max() - 0.01  # head up
    assert pose[[10, 11], 1].max() < 0.1  # feet down
    assert pose[1, 0] > 0 > pose[2, 0]  # left hip at +x when facing +Z


def test_gif_has_one_frame_per_pose(tmp_path):
    out = render_clips([walk(12)], tmp_path / "walk.gif", **SMALL)
    assert out == tmp_path / "walk.gif"
    with Image.open(out) as im:
        assert im.n_frames == 12
        assert im.info["loop"] == 0
        assert im.info["duration"] == 50  # 20 fps
    frames = gif_frames(out)
    assert len(np.unique(frames[0].reshape(-1, 3), axis=0)) > 10  # not one flat colour
    assert colour_mask(frames[0], LEFT_COLOR).sum() > 20
    assert colour_mask(frames[0], RIGHT_COLOR).sum() > 20
    assert not np.array_equal(frames[0], frames[-1])  # the figure moves
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.gif"]  # no temp files left


def test_max_frames_and_fps(tmp_path):
    out = render_clips([walk(12)], tmp_path / "a.gif", max_frames=4, fps=10, **SMALL)
    with Image.open(out) as im:
        assert im.n_frames == 4
        assert im.info["duration"] == 100


def test_two_clips_side_by_side_shorter_one_holds_its_last_frame(tmp_path):
    one = render_clips([walk(10)], tmp_path / "one.gif", **SMALL)
    two = render_clips([walk(10), walk(4)], tmp_path / "two.gif", titles=["a", "b"], **SMALL)
    with Image.open(one) as a, Image.open(two) as b:
        assert b.size[0] == 2 * a.size[0]
        assert b.size[1] == a.size[1]
        assert b.n_frames == 10
    frames = gif_frames(two)
    half = frames[0].shape[1] // 2
    # The right panel (4 frames) is frozen from frame 4 on; the left one keeps walking.
    # (The colour key sits in the right panel's corner but never changes.)
    assert np.array_equal(frames[3][:, half:], frames[9][:, half:])
    assert not np.array_equal(frames[3][:, :half], frames[9][:, :half])


def test_png_contact_sheet(tmp_path):
    out = render_clips([walk(30)], tmp_path / "sheet.png", sheet_frames=3, **SMALL)
    two = render_clips([walk(30), walk(30)], tmp_path / "sheet2.png", sheet_frames=3, **SMALL)
    with Image.open(out) as im, Image.open(two) as im2:
        assert im.format == "PNG"
        assert im.size[0] > 2 * im.size[1]  # three panels in a row
        assert im2.size[0] == im.size[0]
        assert im2.size[1] > 1.8 * im.size[1]  # one row per clip
        image = np.asarray(im.convert("RGB"))
    assert colour_mask(image, LEFT_COLOR).sum() > 20


def test_axis_mapping_is_a_rotation_with_y_up():
    """Data Y-up to plot Z-up must rotate, not reflect, or every figure would be mirrored."""
    mapping = _to_plot(np.eye(3))  # row i = where data axis i goes
    assert np.linalg.det(mapping) == pytest.approx(1.0)
    np.testing.assert_array_equal(mapping[1], [0, 0, 1])  # data up is plot up


@pytest.mark.parametrize(("azim", "left_on_right"), [(-90.0, True), (90.0, False)])
def test_left_stays_left(tmp_path, azim, left_on_right):
    """Seen from the front (camera on +Z, azim -90) the body's left limbs are on the image's
    right, as for a person facing you; from behind they are on the left. A mirrored axis
    mapping fails one of the two."""
    out = render_clips(
        [walk(1)], tmp_path / "pose.png", elev=0.0, azim=azim, sheet_frames=1, dpi=60
    )
    image = np.asarray(Image.open(out).convert("RGB"))
    left_cols = np.nonzero(colour_mask(image, LEFT_COLOR))[1]
    right_cols = np.nonzero(colour_mask(image, RIGHT_COLOR))[1]
    assert len(left_cols) > 20 and len(right_cols) > 20
    assert (left_cols.mean() > right_cols.mean()) == left_on_right


def test_head_is_up_and_feet_down(tmp_path):
    out = render_clips([walk(1)], tmp_path / "pose.png", elev=0.0, sheet_frames=1, dpi=60)
    image = np.asarray(Image.open(out).convert("RGB"))
    spine_rows = np.nonzero(colour_mask(image, SPINE_COLOR, tol=8))[0]
    limb_rows = np.nonzero(colour_mask(image, LEFT_COLOR) | colour_mask(image, RIGHT_COLOR))[0]
    assert spine_rows.min() < limb_rows.min()  # head above the shoulders
    assert limb_rows.max() > spine_rows.max()  # feet below the pelvis


def test_flat_joints_render_like_joints(tmp_path):
    clip = walk(6)
    a = render_clips([clip], tmp_path / "a.png", sheet_frames=2, **SMALL)
    np.save(tmp_path / "flat.npy", clip.reshape(6, 66))
    np.save(tmp_path / "full.npy", clip)
    b = render_clips(
        [tmp_path / "flat.npy"], tmp_path / "b.png", titles=["clip 1"], sheet_frames=2, **SMALL
    )
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    np.testing.assert_array_equal(load_motion(tmp_path / "flat.npy"), clip)
    np.testing.assert_array_equal(
        load_motion(tmp_path / "flat.npy"), load_motion(tmp_path / "full.npy")
    )


@pytest.mark.parametrize("shape", [(10, 21, 3), (10, 65), (22, 3), (2, 10, 22, 3), (10, 262)])
def test_bad_shapes_name_the_file_and_the_accepted_shapes(tmp_path, shape):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros(shape, dtype=np.float32))
    with pytest.raises(DataError) as err:
        render_clips([path], tmp_path / "out.gif", **SMALL)
    message = str(err.value)
    assert str(path) in message
    assert str(shape) in message
    assert "(T, 22, 3)" in message and "(T, 66)" in message and "(T, 263)" in message
    assert not (tmp_path / "out.gif").exists()


def test_nan_frames_and_empty_clips_are_refused(tmp_path):
    clip = walk(8)
    clip[[2, 5], 3, 1] = np.nan
    np.save(tmp_path / "nan.npy", clip)
    with pytest.raises(DataError, match=r"2 of 8 joints frames hold NaN or inf \(frames 2, 5\)"):
        load_motion(tmp_path / "nan.npy")
    with pytest.raises(DataError, match="empty"):
        load_motion(np.zeros((0, 22, 3)))
    with pytest.raises(DataError, match=r"clip 2: .*found shape \(5, 3\)"):
        render_clips([walk(3), np.zeros((5, 3))], tmp_path / "x.gif", **SMALL)
    with pytest.raises(DataError, match=r"expected a \.npy file"):
        load_motion(tmp_path / "clip.bvh")
    with pytest.raises(DataError, match="not found"):
        load_motion(tmp_path / "missing.npy")


def test_bad_options(tmp_path):
    with pytest.raises(KinemicError, match="unknown output format"):
        render_clips([walk(3)], tmp_path / "x.avi")
    with pytest.raises(KinemicError, match="2 titles for 1 clips"):
        render_clips([walk(3)], tmp_path / "x.gif", titles=["a", "b"])


def test_features_go_through_features_to_joints(tmp_path, monkeypatch):
    calls = []

    def features_to_joints(features):
        calls.append(features.shape)
        return walk(len(features))

    fake = types.ModuleType("kinemic.features")
    fake.features_to_joints = features_to_joints
    monkeypatch.setitem(sys.modules, "kinemic.features", fake)
    joints = load_motion(np.zeros((7, 263), dtype=np.float32))
    assert calls == [(7, 263)]
    assert joints.shape == (7, 22, 3)


def test_mp4_without_ffmpeg_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no ffmpeg anywhere
    with pytest.raises(KinemicError, match=r"install ffmpeg .* or write a \.gif"):
        render_clips([walk(3)], tmp_path / "x.mp4")


def test_mp4_pipes_raw_frames_to_ffmpeg(tmp_path, monkeypatch):
    """A stand-in ffmpeg that stores its stdin: the bytes must be every RGB frame in turn."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "ffmpeg"
    fake.write_text(
        '#!/bin/sh\nfor a; do last="$a"; done\necho "$@" > "$last.args"\ncat > "$last"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    gif = render_clips([walk(5)], tmp_path / "ref.gif", **SMALL)
    out = render_clips([walk(5)], tmp_path / "clip.mp4", **SMALL)
    width, height = Image.open(gif).size
    raw = np.frombuffer(out.read_bytes(), dtype=np.uint8).reshape(5, height, width, 3)
    quantized = gif_frames(gif)[0]  # the same frame through the GIF palette
    assert (np.abs(raw[0].astype(int) - quantized).max(axis=-1) <= 24).mean() > 0.98
    assert colour_mask(raw[0], LEFT_COLOR).sum() > 20
    assert not np.array_equal(raw[0], raw[4])
    args = next(tmp_path.glob(".clip.*.mp4.args")).read_text()
    assert f"-s {width}x{height}" in args and "-r 20.0" in args and "yuv420p" in args


def test_real_clip(tmp_path, humanml3d_fixture):
    path = humanml3d_fixture / "new_joints" / "012314.npy"
    joints = load_motion(path)
    assert joints.shape == (170, 22, 3)
    out = render_clips([path], tmp_path / "012314.gif", max_frames=8, **SMALL)
    with Image.open(out) as im:
        assert im.n_frames == 8
    sheet = render_clips([path], tmp_path / "012314.png", sheet_frames=4, **SMALL)
    assert np.asarray(Image.open(sheet)).std() > 5


def test_real_features_match_real_joints(humanml3d_fixture):
    pytest.importorskip("kinemic.features", reason="kinemic.features is not written yet")
    from_features = load_motion(humanml3d_fixture / "new_joint_vecs" / "012314.npy")
    joints = load_motion(humanml3d_fixture / "new_joints" / "012314.npy")
    assert from_features.shape == joints.shape
    np.testing.assert_allclose(from_features, joints, atol=1e-4)


def test_a_following_camera_keeps_a_far_traveller_large(tmp_path):
    """A clip that travels 40 m: a fixed camera frames the whole path and the body shrinks to a
    few pixels; one that follows the root draws it as large as a body standing still, in the
    middle of the panel in every frame."""
    far = walk(20, step=2.0)  # 40 m along +Z
    kwargs = {"elev": 10.0, "azim": 0.0, **SMALL}  # seen from the side: it crosses the panel
    fixed = gif_frames(render_clips([far], tmp_path / "fixed.gif", **kwargs))
    follow = gif_frames(render_clips([far], tmp_path / "follow.gif", follow=True, **kwargs))
    still = gif_frames(render_clips([walk(20, step=0.0)], tmp_path / "still.gif", **kwargs))

    def body(frame):
        return colour_mask(frame, LEFT_COLOR) | colour_mask(frame, RIGHT_COLOR)

    assert body(fixed[-1]).sum() * 5 < body(follow[-1]).sum()
    assert (
        abs(int(body(follow[-1]).sum()) - int(body(still[-1]).sum())) < 0.2 * body(still[-1]).sum()
    )
    cols = [np.nonzero(body(f))[1].mean() for f in follow]
    assert np.ptp(cols) < 3  # the body stays put on screen while it travels
    assert np.ptp([np.nonzero(body(f))[1].mean() for f in fixed]) > 30  # (a fixed camera: not)
