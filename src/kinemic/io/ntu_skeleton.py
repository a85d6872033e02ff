"""NTU RGB+D raw ``.skeleton`` files (Kinect v2, 25 joints, 30 fps): a strict reader, main-actor
selection and the map to SMPL-22 joints at 20 fps in the HumanML3D axes.

File layout (``../shared/SPEC.md`` §3), one item per line::

    <frames>
    per frame:  <bodies>
      per body: <body id> <clipped edges> <hand L conf> <hand L state> <hand R conf>
                <hand R state> <restricted> <lean x> <lean y> <tracking state>
                <joints = 25>
                25 x: <x y z> <depth x y> <colour x y> <orientation w x y z> <tracking state>

Every malformed file raises :class:`~kinemic.errors.DataError` with the file and 1-based line.
Content after the declared frames (other than blank lines) is an error, not a warning: a frame
count that disagrees with the body is a broken file, and guessing which one is right would
silently drop or invent motion.

Axes: Kinect camera space is right-handed, Y up, Z out of the sensor into the scene, X to the
sensor's left (Kinect SDK, "CameraSpacePoint"). A person facing the sensor faces −Z and has
their left side at −X. :data:`KINECT_TO_HUMANML3D` turns them 180° about Y, so they face +Z with
their left at +X, as an SMPL body in HumanML3D does — a proper rotation, never a mirror.

Multi-file conversion to the HumanML3D layout lives in :mod:`kinemic.io.ntu_convert`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from kinemic.errors import DataError
from kinemic.resample import resample_frames
from kinemic.skeleton import KINECT25, kinect_to_smpl

NUM_JOINTS = KINECT25.num_joints  # 25
_BODY_VALUES = 10
_JOINT_VALUES = 12
_TRACKING_STATES = (0.0, 1.0, 2.0)  # Kinect: not tracked, inferred, tracked

#: Rotation (3, 3) from Kinect camera axes to HumanML3D axes: 180° about Y (det = +1).
KINECT_TO_HUMANML3D = np.diag([-1.0, 1.0, -1.0])


@dataclass
class BodyTrack:
    """One tracked body (one Kinect body id) over the frames where it appears.

    ``frames`` (n,) int: 0-based frame indices; ``xyz`` (n, 25, 3) camera space, metres;
    ``joint_tracking`` (n, 25) int8: 0 not tracked, 1 inferred, 2 tracked;
    ``body_tracking`` (n,) int8: the body line's tracking state.
    """

    body_id: str
    frames: np.ndarray
    xyz: np.ndarray
    joint_tracking: np.ndarray
    body_tracking: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def motion_energy(self) -> float:
        """Sum over joints and axes of the variance over time of the position (NTU heuristic)."""
        if self.num_frames < 2:
            return 0.0
        return float(self.xyz.var(axis=0).sum())


@dataclass
class NTUSkeleton:
    """A parsed ``.skeleton`` file: ``bodies_per_frame`` (num_frames,) int, tracks by body id."""

    path: Path
    num_frames: int
    bodies_per_frame: np.ndarray
    tracks: dict[str, BodyTrack] = field(default_factory=dict)

    @property
    def empty_frames(self) -> int:
        """How many frames have no body at all."""
        return int((self.bodies_per_frame == 0).sum())


@dataclass
class MainActor:
    """The chosen body over every frame of the file: ``xyz`` (num_frames, 25, 3).

    ``filled`` counts the frames where the body was missing and was interpolated (or held at
    the clip's ends)."""

    body_id: str
    xyz: np.ndarray
    filled: int


# --------------------------------------------------------------------------------------------
# Reading


class _Lines:
    """The file's lines with a cursor; every read names what it expected, for the errors."""

    def __init__(self, path: Path, lines: list[str], num_frames: int):
        self.path, self.lines, self.pos, self.num_frames = path, lines, 0, num_frames

    def next(self, what: str, frame: int) -> list[str]:
        if self.pos >= len(self.lines):
            where = f"frame {frame + 1} of {self.num_frames}" if frame >= 0 else "the header"
            raise DataError(
                self.path,
                f"truncated file: expected {what} in {where} (the header declares "
                f"{self.num_frames} frames), but the file ended at line {len(self.lines)}",
                line=len(self.lines),
            )
        self.pos += 1
        return self.lines[self.pos - 1].split()

    def count(self, what: str, frame: int) -> int:
        tokens = self.next(what, frame)
        if len(tokens) != 1:
            self.fail(f"expected {what} (one integer), found {len(tokens)} values")
        try:
            n = int(tokens[0])
        except ValueError:
            self.fail(f"expected {what} (one integer), found {tokens[0]!r}")
        if n < 0:
            self.fail(f"{what} must not be negative, found {n}")
        return n

    def fail(self, problem: str, line: int | None = None) -> NoReturn:
        raise DataError(self.path, problem, line=self.pos if line is None else line)


def _floats(rows: list[list[str]], first_line: int, cursor: _Lines) -> np.ndarray:
    """Rows of numeric tokens as a float64 array; on failure name the first bad line."""
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        for i, row in enumerate(rows):
            for tok in row:
                try:
                    float(tok)
                except ValueError:
                    cursor.fail(f"non-numeric value {tok!r}", line=first_line + i)
        raise  # unreachable: some token failed above
    if not np.isfinite(values).all():
        bad = int(np.nonzero(~np.isfinite(values).all(axis=1))[0][0])
        cursor.fail("non-finite value (nan or inf)", line=first_line + bad)
    return values


def read_skeleton(path: str | Path) -> NTUSkeleton:
    """Parse an NTU RGB+D ``.skeleton`` file strictly.

    Frames with no body are allowed (counted in ``bodies_per_frame``); a file with no body in
    any frame, an empty file, a truncated file, a joint count other than 25, a line with the
    wrong number of values, a non-numeric or negative count and content after the declared
    frames each raise :class:`DataError` naming the file and the 1-based line.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError as e:
        raise DataError(
            path, f"not a text skeleton file (non-ASCII byte at offset {e.start})"
        ) from None
    except OSError as e:
        raise DataError(path, f"cannot read the file ({e.strerror or e})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(path, "file is empty: expected the frame count on line 1", line=1)

    cur = _Lines(path, lines, 0)
    num_frames = cur.count("the frame count", -1)
    cur.num_frames = num_frames
    if num_frames > len(lines) - 1:  # each frame has a body-count line; checked before allocating
        cur.fail(
            f"the header declares {num_frames} frames but only {len(lines) - 1} lines follow: "
            "the frame count is wrong or the file is truncated"
        )
    bodies_per_frame = np.zeros(num_frames, dtype=np.int64)
    raw: dict[str, list] = {}  # body id -> [frames, xyz blocks, joint states, body states]

    for f in range(num_frames):
        n_bodies = cur.count("the body count", f)
        bodies_per_frame[f] = n_bodies
        for b in range(n_bodies):
            tokens = cur.next(f"the line of body {b + 1}", f)
            if len(tokens) != _BODY_VALUES:
                cur.fail(
                    f"body line: expected {_BODY_VALUES} values (body id, clipped edges, hand "
                    f"states, restricted, lean x/y, tracking state), found {len(tokens)}"
                )
            body_id = tokens[0]
            if not body_id.isdigit():
                cur.fail(f"body id must be a non-negative integer, found {body_id!r}")
            body_info = _floats([tokens[1:]], cur.pos, cur)
            if body_info[0, 8] not in _TRACKING_STATES:
                cur.fail(f"body tracking state must be 0, 1 or 2, found {tokens[9]!r}")
            n_joints = cur.count("the joint count", f)
            if n_joints != NUM_JOINTS:
                cur.fail(f"wrong joint count: expected {NUM_JOINTS}, found {n_joints}")
            first = cur.pos + 1
            rows = [cur.next(f"joint {j + 1} of body {b + 1}", f) for j in range(NUM_JOINTS)]
            for j, row in enumerate(rows):
                if len(row) != _JOINT_VALUES:
                    cur.fail(
                        f"joint line: expected {_JOINT_VALUES} values (x y z, depth x/y, colour "
                        f"x/y, orientation w x y z, tracking state), found {len(row)}",
                        line=first + j,
                    )
            joints = _floats(rows, first, cur)  # (25, 12)
            bad = np.flatnonzero(~np.isin(joints[:, 11], _TRACKING_STATES))
            if len(bad):
                state = rows[bad[0]][11]
                cur.fail(f"joint tracking state must be 0, 1 or 2, found {state!r}", first + bad[0])
            entry = raw.setdefault(body_id, [[], [], [], []])
            if entry[0] and entry[0][-1] == f:
                cur.fail(f"body id {body_id} appears twice in frame {f + 1}", line=first - 2)
            entry[0].append(f)
            entry[1].append(joints[:, :3])
            entry[2].append(joints[:, 11])
            entry[3].append(body_info[0, 8])

    for i in range(cur.pos, len(lines)):
        if lines[i].strip():
            cur.fail(
                f"trailing content after the {num_frames} declared frames: {lines[i][:40]!r} "
                "(is the frame count on line 1 wrong?)",
                line=i + 1,
            )
    if not raw:
        raise DataError(path, f"no body in any frame ({num_frames} frames)", line=1)

    tracks = {
        bid: BodyTrack(
            body_id=bid,
            frames=np.asarray(fr, dtype=np.int64),
            xyz=np.stack(xyz),
            joint_tracking=np.asarray(js, dtype=np.int8),
            body_tracking=np.asarray(bs, dtype=np.int8),
        )
        for bid, (fr, xyz, js, bs) in raw.items()
    }
    return NTUSkeleton(path, num_frames, bodies_per_frame, tracks)


# --------------------------------------------------------------------------------------------
# Main actor


def select_main_actor(skeleton: NTUSkeleton, *, tie_tolerance: float = 1e-3) -> MainActor:
    """Pick the body with the largest motion energy and fill the frames where it is missing.

    Energies within ``tie_tolerance`` (relative, or 1e-8 absolute for still bodies) of the best
    count as tied; ties go to the body present in more frames. Missing frames are linearly
    interpolated between the neighbouring present frames and held at the clip's ends.
    Raises :class:`DataError` when the chosen body is present in fewer than 2 frames.
    """
    tracks = list(skeleton.tracks.values())
    energies = np.array([t.motion_energy() for t in tracks])
    best = energies.max()
    tied = [
        t
        for t, e in zip(tracks, energies, strict=True)
        if e >= best - max(1e-8, tie_tolerance * best)
    ]
    chosen = max(tied, key=lambda t: (t.num_frames, t.motion_energy()))
    if chosen.num_frames < 2:
        raise DataError(
            skeleton.path,
            f"the main body ({chosen.body_id}) is present in {chosen.num_frames} frame(s); "
            "at least 2 are needed to make a motion",
        )
    all_frames = np.arange(skeleton.num_frames)
    flat = chosen.xyz.reshape(chosen.num_frames, -1)  # (n, 75)
    filled = np.stack(
        [np.interp(all_frames, chosen.frames, flat[:, c]) for c in range(flat.shape[1])], axis=1
    ).reshape(skeleton.num_frames, NUM_JOINTS, 3)
    return MainActor(chosen.body_id, filled, skeleton.num_frames - chosen.num_frames)


# --------------------------------------------------------------------------------------------
# Kinect -> SMPL-22


def ntu_to_smpl(kinect: np.ndarray, *, fps_in: float = 30, fps_out: float = 20) -> np.ndarray:
    """Kinect-25 camera-space joints (T, 25, 3) -> SMPL-22 joints (T', 22, 3), HumanML3D axes.

    T' = int((T−1)·fps_out/fps_in)+1. The axes are rotated (not mirrored) so Y is up and a
    person facing the sensor faces +Z with their left side at +X. The floor, root position and
    heading are left as they were: ``kinemic.features.process_joints`` canonicalises them.
    """
    kinect = np.asarray(kinect, dtype=np.float64)
    if kinect.ndim != 3 or kinect.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"expected Kinect joints of shape (T, 25, 3), got {kinect.shape}")
    smpl = kinect_to_smpl(kinect) @ KINECT_TO_HUMANML3D.T  # (T, 22, 3)
    return resample_frames(smpl, fps_in=fps_in, fps_out=fps_out)


def skeleton_file_to_smpl(path: str | Path, *, fps_out: float = 20) -> tuple[np.ndarray, MainActor]:
    """Read a ``.skeleton`` file, pick its main actor and map it: ((T', 22, 3), MainActor)."""
    actor = select_main_actor(read_skeleton(path))
    return ntu_to_smpl(actor.xyz, fps_in=30, fps_out=fps_out), actor
