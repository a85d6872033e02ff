"""BVH motion capture files: a general reader and forward kinematics, vectorised over frames.

A BVH file has a HIERARCHY (joints with an OFFSET from their parent, a list of CHANNELS and
optional ``End Site`` leaves) and a MOTION block (``Frames:``, ``Frame Time:``, then one line of
channel values per frame). Any subset and order of the six channel names is accepted per joint.

Conventions used by :func:`bvh_positions`:

- Rotation channels are Euler angles in degrees, applied in the order they are listed, as
  *intrinsic* rotations: ``Zrotation Yrotation Xrotation`` means R = Rz·Ry·Rx, and a child's
  position is ``parent_pos + parent_global_R @ child_offset``.
- Position channels *replace* the matching component of the joint's OFFSET (the usual reading
  for a root whose OFFSET is its rest position, and for exporters that key every joint's
  translation). Components without a channel keep the OFFSET value.

The retarget to SMPL-22 joints and the folder converter live in :mod:`kinemic.io.bvh_retarget`;
``bvh_to_smpl``, ``convert_bvh_folder`` and ``BVH_TO_SMPL`` are also reachable from here.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinemic.errors import DataError

CHANNEL_NAMES: tuple[str, ...] = (
    "Xposition",
    "Yposition",
    "Zposition",
    "Xrotation",
    "Yrotation",
    "Zrotation",
)
_CANONICAL = {name.lower(): name for name in CHANNEL_NAMES}
_TOKEN = re.compile(r"[{}]|[^\s{}]+")
#: The ``Frame Time:`` values (seconds) a capture can have: 100 kHz to 1 frame per second.
FRAME_TIME_RANGE = (1e-5, 1.0)


@dataclass(frozen=True, eq=False)
class BVH:
    """A parsed BVH file.

    Joints are in file order (a parent always precedes its children). ``motion`` holds the raw
    channel values, one row per frame; joint ``j`` owns columns
    ``channel_start[j] : channel_start[j] + len(channels[j])``.
    """

    path: Path | None
    names: tuple[str, ...]  # (J,)
    parents: tuple[int, ...]  # (J,), -1 for a root
    offsets: np.ndarray  # (J, 3) float64, in file units
    channels: tuple[tuple[str, ...], ...]  # per joint, canonical names in file order
    channel_start: tuple[int, ...]  # (J,) first motion column of each joint
    end_site_parents: tuple[int, ...]  # (E,) joint that owns each End Site
    end_site_offsets: np.ndarray  # (E, 3) float64
    frame_time: float  # seconds per frame
    motion: np.ndarray  # (T, C) float64

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def seconds(self) -> float:
        """Duration as ``frames × frame time`` (the convention of CMU's index)."""
        return self.num_frames * self.frame_time

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise DataError(
                self.path, f"no joint {name!r}; joints: {', '.join(self.names)}"
            ) from None

    def end_site_names(self) -> tuple[str, ...]:
        """One name per End Site: ``<parent joint>_end``."""
        return tuple(f"{self.names[p]}_end" for p in self.end_site_parents)


# --------------------------------------------------------------------------------------------
# Reading


def read_bvh(path: str | Path) -> BVH:
    """Read a BVH file. Raises :class:`DataError` with the line number when it is malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataError(path, f"cannot read the file ({e.strerror})") from e
    return parse_bvh(text, path=path)


def parse_bvh(text: str, *, path: str | Path | None = None) -> BVH:
    """Parse BVH ``text`` (the file's content); ``path`` is only used in error messages."""
    path = None if path is None else Path(path)
    match = re.search(r"^[ \t]*MOTION\b", text, flags=re.MULTILINE)
    if match is None:
        raise DataError(path, "no MOTION section: a BVH file needs HIERARCHY, then MOTION")
    head = text[: match.start()]
    hier = _parse_hierarchy(head, path)
    motion_line = head.count("\n") + 1
    frames, frame_time, data_line, data = _parse_motion_header(
        text[match.end() :], motion_line, path
    )
    n_channels = sum(len(c) for c in hier["channels"])
    motion = _parse_motion_values(data, data_line, frames, n_channels, path)
    return BVH(
        path=path,
        names=tuple(hier["names"]),
        parents=tuple(hier["parents"]),
        offsets=np.asarray(hier["offsets"], dtype=np.float64).reshape(-1, 3),
        channels=tuple(hier["channels"]),
        channel_start=tuple(
            int(s) for s in np.cumsum([0] + [len(c) for c in hier["channels"]])[:-1]
        ),
        end_site_parents=tuple(hier["end_parents"]),
        end_site_offsets=np.asarray(hier["end_offsets"], dtype=np.float64).reshape(-1, 3),
        frame_time=frame_time,
        motion=motion,
    )


def _parse_hierarchy(head: str, path: Path | None) -> dict[str, list[Any]]:
    """Recursive-descent parse of everything before MOTION, over (line, token) pairs."""
    tokens = [
        (n, tok)
        for n, line in enumerate(head.splitlines(), start=1)
        for tok in _TOKEN.findall(line)
    ]
    out: dict[str, list[Any]] = {
        "names": [],
        "parents": [],
        "offsets": [],
        "channels": [],
        "end_parents": [],
        "end_offsets": [],
    }
    last_line = max(1, head.count("\n") + 1)
    pos = 0

    def fail(problem: str, line: int | None = None) -> DataError:
        if line is None:
            line = tokens[pos][0] if pos < len(tokens) else last_line
        return DataError(path, problem, line=line)

    def take(expected: str | None = None) -> tuple[int, str]:
        nonlocal pos
        if pos >= len(tokens):
            want = f"{expected!r}" if expected else "more hierarchy"
            raise fail(f"hierarchy ends early: expected {want} before MOTION")
        line, tok = tokens[pos]
        if expected is not None and tok.upper() != expected.upper():
            raise fail(f"expected {expected!r}, found {tok!r}")
        pos += 1
        return line, tok

    def numbers(k: int, what: str) -> list[float]:
        vals = []
        for _ in range(k):
            line, tok = take()
            try:
                vals.append(float(tok))
            except ValueError:
                raise fail(f"{what} needs {k} numbers, found {tok!r}", line) from None
            if not math.isfinite(vals[-1]):
                raise fail(f"{what} must be finite, found {tok!r}", line)
        return vals

    def joint(parent: int, name: str) -> None:
        open_line, _ = take("{")
        j = len(out["names"])
        out["names"].append(name)
        out["parents"].append(parent)
        take("OFFSET")
        out["offsets"].append(numbers(3, f"OFFSET of joint {name!r}"))
        line, _ = take("CHANNELS")
        line, tok = take()
        if not tok.isdigit():
            raise fail(f"CHANNELS of joint {name!r} needs a count, found {tok!r}", line)
        count, chans = int(tok), []
        for _ in range(count):
            line, tok = take()
            canon = _CANONICAL.get(tok.lower())
            if canon is None:
                raise fail(
                    f"joint {name!r}: CHANNELS {count} is followed by {tok!r}, which is not one "
                    f"of {', '.join(CHANNEL_NAMES)}",
                    line,
                )
            chans.append(canon)
        if len(set(chans)) != len(chans):
            raise fail(f"joint {name!r} lists a channel twice: {' '.join(chans)}", line)
        out["channels"].append(tuple(chans))
        while True:
            if pos >= len(tokens):
                raise fail(
                    f"unbalanced braces: '{{' of joint {name!r} (line {open_line}) is not closed "
                    "before MOTION"
                )
            line, tok = take()
            key = tok.upper()
            if key == "}":
                return
            if key == "JOINT":
                joint(j, take()[1])
            elif key == "END":
                take("Site")
                end_open, _ = take("{")
                take("OFFSET")
                out["end_parents"].append(j)
                out["end_offsets"].append(numbers(3, f"End Site OFFSET of joint {name!r}"))
                if pos >= len(tokens) or tokens[pos][1] != "}":
                    raise fail(
                        f"unbalanced braces: End Site of joint {name!r} (line {end_open}) "
                        "is not closed after its OFFSET"
                    )
                take("}")
            else:
                raise fail(
                    f"inside joint {name!r}: expected JOINT, End Site or '}}', found {tok!r}", line
                )

    take("HIERARCHY")
    while pos < len(tokens):
        line, tok = take()
        if tok.upper() == "ROOT":
            joint(-1, take()[1])
        elif tok == "}":
            raise fail("unbalanced braces: '}' closes nothing", line)
        else:
            raise fail(f"expected ROOT, found {tok!r}", line)
    if not out["names"]:
        raise fail("the HIERARCHY has no ROOT joint")
    return out


def _parse_motion_header(
    rest: str, motion_line: int, path: Path | None
) -> tuple[int, float, int, str]:
    """Read ``Frames:`` and ``Frame Time:``; return (frames, frame_time, first data line, data)."""
    lines = rest.split("\n", 3)  # lines[0]: the rest of the MOTION line (normally empty)
    values: list[float] = []
    for k, (label, kind) in enumerate((("Frames:", int), ("Frame Time:", float)), start=1):
        line = motion_line + k
        if len(lines) <= k:
            raise DataError(path, f"MOTION ends early: expected {label!r}", line=line)
        m = re.fullmatch(rf"\s*{label}\s*(\S+)\s*", lines[k], flags=re.IGNORECASE)
        if m is None:
            found = lines[k].strip()
            raise DataError(path, f"expected {label!r} and a number, found {found!r}", line=line)
        try:
            value = kind(m.group(1))
        except ValueError:
            raise DataError(
                path, f"{label} needs {kind.__name__} value, found {m.group(1)!r}", line=line
            ) from None
        if kind is int and value < 1:
            raise DataError(
                path, f"{label} {value}: a BVH file needs at least one frame of motion", line=line
            )
        low, high = FRAME_TIME_RANGE
        if kind is float and not low <= value <= high:
            raise DataError(
                path,
                f"{label} {m.group(1)} is not a capture rate: expected seconds per frame in "
                f"[{low:g}, {high:g}] (0.0333333 for 30 fps)",
                line=line,
            )
        values.append(value)
    data = lines[3] if len(lines) > 3 else ""
    frames = int(values[0])
    available = data.count("\n") + 1
    if frames > available:  # checked before anything is allocated for the frames
        raise DataError(
            path,
            f"MOTION declares Frames: {frames} but only {available} lines follow "
            "(the file is truncated?)",
            line=motion_line + 1,
        )
    return frames, float(values[1]), motion_line + 3, data


def _parse_motion_values(
    data: str, first_line: int, frames: int, n_channels: int, path: Path | None
) -> np.ndarray:
    """(frames, n_channels) float64 from the frame lines. Fast path: one C-level loadtxt call;
    only when that fails does a line-by-line pass run to name the offending line."""
    motion = None
    if n_channels > 0 and data.strip():
        try:
            motion = np.loadtxt(io.StringIO(data), dtype=np.float64, ndmin=2, comments=None)
        except ValueError:
            motion = None  # diagnose below
        if motion is not None and motion.shape[1] != n_channels:
            motion = None
    elif n_channels == 0:
        motion = np.zeros((frames, 0))
    if motion is None:
        _diagnose_motion(data, first_line, n_channels, path)
        motion = np.zeros((0, n_channels))
    if motion.shape[0] != frames:
        found = motion.shape[0]
        raise DataError(
            path,
            f"MOTION declares Frames: {frames} but {found} frame lines follow"
            + (" (the file is truncated?)" if found < frames else ""),
            line=first_line + min(found, frames),
        )
    if not np.isfinite(motion).all():
        row = int(np.nonzero(~np.isfinite(motion).all(axis=1))[0][0])
        raise DataError(path, "a frame holds a NaN or infinite value", line=first_line + row)
    return motion


def _diagnose_motion(data: str, first_line: int, n_channels: int, path: Path | None) -> None:
    """Find the first bad frame line and raise; returns only when there are no frame lines."""
    for k, line in enumerate(data.split("\n")):
        values = line.split()
        if not values:
            continue
        if len(values) != n_channels:
            raise DataError(
                path,
                f"frame line has {len(values)} values, the HIERARCHY declares "
                f"{n_channels} channels",
                line=first_line + k,
            )
        for v in values:
            try:
                float(v)
            except ValueError:
                raise DataError(
                    path, f"non-numeric value {v!r} in a frame line", line=first_line + k
                ) from None
    # No frame lines (or only blank ones): the frame-count check reports it.


# --------------------------------------------------------------------------------------------
# Forward kinematics


def euler_to_matrix(order: str, degrees: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices from intrinsic Euler angles ``degrees`` (..., len(order)).

    ``order`` is a string of axes such as ``"ZYX"``: R = R_Z(a0) · R_Y(a1) · R_X(a2), the same
    as ``Rotation.from_euler("ZYX", a, degrees=True)``. Written out (through a quaternion
    product) because SciPy's version costs ~10x more here and FK throughput matters; the
    tests check the two agree.
    """
    half = np.deg2rad(degrees) * 0.5
    c, s = np.cos(half), np.sin(half)
    w = np.ones(degrees.shape[:-1])
    x, y, z = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for k, axis in enumerate(order.upper()):
        ck, sk = c[..., k], s[..., k]
        if axis == "X":  # q <- q · (cos, sin·e_x)
            w, x, y, z = w * ck - x * sk, x * ck + w * sk, y * ck + z * sk, z * ck - y * sk
        elif axis == "Y":
            w, x, y, z = w * ck - y * sk, x * ck - z * sk, y * ck + w * sk, z * ck + x * sk
        elif axis == "Z":
            w, x, y, z = w * ck - z * sk, x * ck + y * sk, y * ck - x * sk, z * ck + w * sk
        else:
            raise ValueError(f"Euler order {order!r}: axes must be X, Y or Z")
    xx, yy, zz, xy, xz, yz = x * x, y * y, z * z, x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    rows = (
        (1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy)),
        (2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx)),
        (2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy)),
    )
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def _joint_rotations(bvh: BVH, motion: np.ndarray, joints: Sequence[int]) -> dict[int, np.ndarray]:
    """{joint: (T, 3, 3)} local rotations of those ``joints`` that have rotation channels.

    Joints sharing an Euler order are converted in one call.
    """
    by_order: dict[str, tuple[list[int], list[list[int]]]] = {}
    for j in joints:
        chans, start = bvh.channels[j], bvh.channel_start[j]
        cols = [start + k for k, c in enumerate(chans) if c.endswith("rotation")]
        if cols:
            order = "".join(chans[k - start][0] for k in cols)
            group, columns = by_order.setdefault(order, ([], []))
            group.append(j)
            columns.append(cols)
    out = {}
    for order, (group, columns) in by_order.items():
        angles = motion[:, np.asarray(columns)].transpose(1, 0, 2)  # (Jg, T, len(order))
        mats = euler_to_matrix(order, angles)  # (Jg, T, 3, 3), each joint contiguous
        out.update(zip(group, mats, strict=True))
    return out


def local_rotations(bvh: BVH, motion: np.ndarray | None = None) -> np.ndarray:
    """(T, J, 3, 3) local rotation matrices from each joint's rotation channels, in its order;
    the identity for joints without rotation channels."""
    motion = bvh.motion if motion is None else motion
    rot = np.zeros((motion.shape[0], bvh.num_joints, 3, 3))
    rot[..., [0, 1, 2], [0, 1, 2]] = 1.0
    for j, r in _joint_rotations(bvh, motion, range(bvh.num_joints)).items():
        rot[:, j] = r
    return rot


def local_translations(bvh: BVH, motion: np.ndarray | None = None) -> np.ndarray:
    """(T, J, 3) per-joint translation from the parent: OFFSET, with position channels replacing
    the components they key."""
    motion = bvh.motion if motion is None else motion
    trans = np.broadcast_to(bvh.offsets, (motion.shape[0], bvh.num_joints, 3)).copy()
    for j in range(bvh.num_joints):
        for axis, col in _position_columns(bvh, j):
            trans[:, j, axis] = motion[:, col]
    return trans


def _position_columns(bvh: BVH, j: int) -> list[tuple[int, int]]:
    """(axis, motion column) of each position channel of joint ``j``."""
    start = bvh.channel_start[j]
    return [
        ("XYZ".index(c[0]), start + k)
        for k, c in enumerate(bvh.channels[j])
        if c.endswith("position")
    ]


def bvh_positions(
    bvh: BVH,
    *,
    frames: slice | Sequence[int] | np.ndarray | None = None,
    end_sites: bool = False,
    joints: Sequence[str | int] | None = None,
) -> np.ndarray:
    """World positions of the joints, (T, J, 3) in file units; with ``end_sites=True``
    (T, J + E, 3), the End Sites appended in :attr:`BVH.end_site_parents` order.

    ``frames`` selects frames (a slice or indices) before the kinematics run. ``joints``
    (names or indices) returns only those joints, (T, len(joints), 3), and skips the rotations
    that cannot move them (e.g. fingers, or a leaf joint's own rotation).
    """
    motion = bvh.motion if frames is None else bvh.motion[frames]
    n, t = bvh.num_joints, motion.shape[0]
    wanted = list(range(n))
    if joints is not None:
        wanted = [bvh.index(j) if isinstance(j, str) else int(j) for j in joints]
    # A joint's global rotation is needed only when something asked for hangs below it.
    needs_rot = [False] * n
    for p in [bvh.parents[j] for j in wanted] + (list(bvh.end_site_parents) if end_sites else []):
        while p >= 0 and not needs_rot[p]:
            needs_rot[p] = True
            p = bvh.parents[p]
    local = _joint_rotations(bvh, motion, [j for j in range(n) if needs_rot[j]])
    eye = np.broadcast_to(np.eye(3), (t, 3, 3))
    glob: list[np.ndarray | None] = [None] * n  # (T, 3, 3) per joint, where needed
    pos = np.empty((n, t, 3))
    needs_pos = set(wanted).union(j for j in range(n) if needs_rot[j])
    for j, p in enumerate(bvh.parents):
        if j not in needs_pos:
            continue
        cols = _position_columns(bvh, j)
        if cols:
            offset = np.broadcast_to(bvh.offsets[j], (t, 3)).copy()
            for axis, col in cols:
                offset[:, axis] = motion[:, col]
        else:
            offset = bvh.offsets[j]
        if p < 0:
            pos[j] = offset
            parent_rot = eye
        else:
            parent_rot = glob[p]
            if offset.ndim == 1:
                pos[j] = pos[p] + parent_rot @ offset
            else:
                pos[j] = pos[p] + (parent_rot @ offset[..., None])[..., 0]
        if needs_rot[j]:
            glob[j] = parent_rot @ local[j] if j in local else parent_rot
    out = pos[wanted].transpose(1, 0, 2)
    if not end_sites or not bvh.end_site_parents:
        return np.ascontiguousarray(out)
    ends = [
        pos[p] + glob[p] @ off
        for p, off in zip(bvh.end_site_parents, bvh.end_site_offsets, strict=True)
    ]
    return np.concatenate([out, np.stack(ends, axis=1)], axis=1)


def __getattr__(name: str) -> Any:
    # The retarget and folder converter sit in their own file (it imports this one); expose
    # them here too without an import cycle at load time.
    if name in ("BVH_TO_SMPL", "bvh_to_smpl", "convert_bvh_folder"):
        from kinemic.io import bvh_retarget

        return getattr(bvh_retarget, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
