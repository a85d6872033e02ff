"""Pose tracks: how primitives describe motion, and how a track becomes joints.

A primitive writes a ``Track``: per frame, an *anatomical* rotation vector for each joint
(axis-angle, radians, in the frame of the parent bone of a body standing at rest: X to the
body's left, Y up, Z forward), the heading change of the whole body (yaw about +Y) and the
flight height (> 0 while both feet are off the floor). The helpers below name the anatomical
axes (``hip_flex``, ``abduct``, ...) so primitives read like a description of the movement.

``local_rotations`` turns a track into the local joint quaternions of ``body.forward_kinematics``
(adding the fixed rest rotations: arms hang down, the foot points toe-down, the head sits on
the neck), and ``place_root`` computes the root trajectory from the feet: the lowest foot
touches the floor (except in flight, where the pelvis follows a ballistic arc) and the stance
foot stays where it is, so the body moves by its own steps and never skates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kinemic.geometry import axis_angle_to_quat, qmul, quat_about_y, quat_to_matrix
from kinemic.skeleton import SMPL22_MIRROR
from kinemic.world.body import ANKLE_PITCH, Body, fk_matrices

D = np.pi / 180.0  # degrees -> radians

PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = range(10)
L_FOOT, R_FOOT, NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER = range(10, 18)
L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = range(18, 22)
SPINE = (SPINE1, SPINE2, SPINE3)
_LEFT = (L_HIP, L_KNEE, L_ANKLE, L_FOOT, L_COLLAR, L_SHOULDER, L_ELBOW, L_WRIST)
_SIDE = np.array([1.0 if j in _LEFT else -1.0 for j in range(22)])  # +1 left, -1 right/centre
_FEET = np.array([7, 10, 8, 11])  # l_ankle, l_foot, r_ankle, r_foot
GRAVITY = 9.81


@dataclass
class Track:
    """A primitive's motion before it meets a body.

    - ``aa`` (T, 22, 3): anatomical rotation vectors (radians); ``aa[:, 0]`` tilts the pelvis.
    - ``yaw`` (T,): heading of the body (radians about +Y), starting at 0.
    - ``lift`` (T,): height of a flight phase above the take-off/landing arc; 0 on the floor.
    - ``stance`` (T,) int or None: which foot stays planted (0 left, 1 right, -1 the lower).
    """

    aa: np.ndarray
    yaw: np.ndarray
    lift: np.ndarray
    stance: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.aa.shape[0]


# ----------------------------------------------------------------------------- time helpers


def smooth(x: np.ndarray | float) -> np.ndarray:
    """Smoothstep: 0 below 0, 1 above 1, C1 in between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def ramp(u: np.ndarray, a: float, b: float) -> np.ndarray:
    """Smooth 0 -> 1 as u goes from a to b."""
    return smooth((u - a) / max(b - a, 1e-9))


def hold(u: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    """Smooth 0 -> 1 over [a, b], 1 until c, 1 -> 0 over [c, d]."""
    return ramp(u, a, b) * (1.0 - ramp(u, c, d))


def bump(u: np.ndarray) -> np.ndarray:
    """sin²(πu) on [0, 1], 0 outside."""
    return np.where((u > 0) & (u < 1), np.sin(np.pi * np.clip(u, 0, 1)) ** 2, 0.0)


def keys(u: np.ndarray, times: list[float], values: list[float]) -> np.ndarray:
    """Keyframe curve: ``values`` (degrees) at ``times`` (same units as u), smoothstep between
    consecutive keys, held constant outside. Returns radians, shaped like u."""
    times_a = np.asarray(times, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64) * D
    i = np.clip(np.searchsorted(times_a, u, side="right") - 1, 0, len(times_a) - 2)
    x = (u - times_a[i]) / np.maximum(times_a[i + 1] - times_a[i], 1e-9)
    return vals[i] + (vals[i + 1] - vals[i]) * smooth(x)


def n_frames(seconds: float, fps: float) -> int:
    return max(round(seconds * fps), 4)


def warp(u: np.ndarray, rng: np.random.Generator, strength: float = 0.12) -> np.ndarray:
    """A random monotone time warp of u in [0, 1] that keeps both ends (uneven tempo)."""
    a, b = rng.uniform(-strength, strength, size=2)
    return u + a * np.sin(2 * np.pi * u) / (2 * np.pi) + b * np.sin(4 * np.pi * u) / (4 * np.pi)


def per_rep(values: np.ndarray, rep: np.ndarray) -> np.ndarray:
    """values[rep] clipped to the valid range (rep index per frame)."""
    return values[np.clip(rep, 0, len(values) - 1)]


def timeline(
    p,
    fps: float,
    rng: np.random.Generator,
    *,
    rep_s: float,
    enter: float = 0.4,
    leave: float = 0.4,
    tempo_exp: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames of an action: enter a pose, ``p.repetitions`` repetitions, leave the pose.

    Returns t (T,) seconds, env (T,) 0 -> 1 while entering, 1 -> 0 while leaving, and s (T,)
    repetition progress from 0 to ``repetitions`` (unevenly paced). Durations scale with
    1 / speed ** tempo_exp (fast actions use tempo_exp < 1 to stay humanly fast).
    """
    reps = max(int(p.repetitions), 1)
    tempo = p.speed**tempo_exp
    enter, leave, rep_s = enter / tempo, leave / tempo, rep_s / tempo
    total = enter + reps * rep_s + leave
    n = n_frames(total, fps)
    t = np.arange(n) / fps * total / ((n - 1) / fps)
    env = ramp(t, 0.0, enter) * (1.0 - ramp(t, total - leave, total))
    s = reps * warp(np.clip((t - enter) / (reps * rep_s), 0.0, 1.0), rng, 0.1)
    return t, env, s


def rest(n: int) -> Track:
    """A body standing at ease for n frames: arms by the sides, elbows and knees soft."""
    aa = np.zeros((n, 22, 3))
    abduct(aa, L_SHOULDER, 6 * D)
    abduct(aa, R_SHOULDER, 6 * D)
    elbow_flex(aa, L_ELBOW, 12 * D)
    elbow_flex(aa, R_ELBOW, 12 * D)
    for hip, knee in ((L_HIP, L_KNEE), (R_HIP, R_KNEE)):
        hip_flex(aa, hip, 3 * D)
        knee_flex(aa, knee, 5 * D)
    return Track(aa=aa, yaw=np.zeros(n), lift=np.zeros(n))


# ------------------------------------------------------------------ anatomical rotation helpers
# Each adds an angle (scalar or (T,) radians) to joint j of aa (T, 22, 3) in place. Rotations
# about different axes add up as rotation vectors (a blend, not a sequence; fine for poses).


def hip_flex(aa: np.ndarray, j: int, angle) -> None:
    """Thigh (or upper arm, see shoulder_flex) forward and up."""
    aa[:, j, 0] -= angle


def knee_flex(aa: np.ndarray, j: int, angle) -> None:
    """Shin backward (heel toward the buttock)."""
    aa[:, j, 0] += angle


def ankle_flex(aa: np.ndarray, j: int, angle) -> None:
    """Plantar flexion: toe down (negative: toe up)."""
    aa[:, j, 0] += angle


shoulder_flex = hip_flex  # arm forward and up (180°: overhead)
elbow_flex = hip_flex  # forearm forward and up


def spine_flex(aa: np.ndarray, j: int, angle) -> None:
    """Bend forward (the bones above j tip toward +Z); also the pelvis and the neck."""
    aa[:, j, 0] += angle


def abduct(aa: np.ndarray, j: int, angle) -> None:
    """Limb away from the midline, sideways up (hip, shoulder; 180°: arm overhead)."""
    aa[:, j, 2] += _SIDE[j] * angle


def twist(aa: np.ndarray, j: int, angle) -> None:
    """Turn about the vertical, toward the body's left for positive angles."""
    aa[:, j, 1] += angle


def side_bend(aa: np.ndarray, j: int, angle) -> None:
    """Lean the bones above j toward the body's right for positive angles."""
    aa[:, j, 2] += angle


def spread(aa: np.ndarray, joints: tuple[int, ...], fn, angle) -> None:
    """Apply ``fn`` with the angle split evenly over several joints (e.g. the spine)."""
    for j in joints:
        fn(aa, j, angle / len(joints))


def mirror(track: Track) -> Track:
    """The left/right mirror image of a track."""
    aa = track.aa[:, list(SMPL22_MIRROR)] * np.array([1.0, -1.0, -1.0])
    stance = None
    if track.stance is not None:
        stance = np.where(track.stance >= 0, 1 - track.stance, track.stance)
    return Track(aa=aa, yaw=-track.yaw, lift=track.lift.copy(), stance=stance)


def vary(track: Track, rng: np.random.Generator, fps: float, *, scale: float = 1.0) -> Track:
    """Add natural variation in place: slow random drift of every joint (a sinusoid of random
    amplitude ~2°, frequency 0.15-0.7 Hz and phase per joint and axis), and breathing."""
    t = np.arange(track.n)[:, None, None] / fps  # (T, 1, 1)
    amp = rng.normal(0.0, 2.2 * D * scale, size=(22, 3))
    amp[0] *= 0.5
    freq = rng.uniform(0.15, 0.7, size=(22, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(22, 3))
    track.aa += amp * np.sin(2 * np.pi * freq * t + phase)
    breath = np.sin(2 * np.pi * rng.uniform(0.2, 0.33) * t[:, 0, 0] + rng.uniform(0, 6.3))
    spine_flex(track.aa, SPINE3, -0.8 * D * breath)
    return track


# ---------------------------------------------------------------------- track -> joints

# Fixed rest rotations: local = PRE · exp(aa) · POST (identity where not listed).
_POST = {
    L_COLLAR: (0.0, 0.0, 96 * D),  # collar bone raw offset -Y -> outward (+X), a bit up
    R_COLLAR: (0.0, 0.0, -96 * D),
    L_ANKLE: (ANKLE_PITCH, 0.0, 0.0),  # foot bone raw +Z -> toe down
    R_ANKLE: (ANKLE_PITCH, 0.0, 0.0),
    NECK: (-78 * D, 0.0, 0.0),  # head bone raw +Z -> up and a bit forward
}
_PRE = {L_SHOULDER: (0.0, 0.0, -96 * D), R_SHOULDER: (0.0, 0.0, 96 * D)}  # arms back down
_POST_J = np.array(list(_POST))
_POST_Q = axis_angle_to_quat(np.array(list(_POST.values())))
_PRE_J = np.array(list(_PRE))
_PRE_Q = axis_angle_to_quat(np.array(list(_PRE.values())))


def local_rotations(track: Track, facing: float = 0.0) -> np.ndarray:
    """Local joint quaternions (T, 22, 4) of a track, heading ``facing`` + yaw."""
    q = axis_angle_to_quat(track.aa)
    q[:, _POST_J] = qmul(q[:, _POST_J], _POST_Q)
    q[:, _PRE_J] = qmul(_PRE_Q, q[:, _PRE_J])
    q[:, 0] = qmul(quat_about_y(track.yaw + facing), q[:, 0])
    return q


def _fill_flight(values: np.ndarray, flight: np.ndarray) -> np.ndarray:
    """Linear interpolation of values (T, ...) over flight frames from the contact frames."""
    if not flight.any() or flight.all():
        return values
    idx = np.arange(len(values))
    ok = ~flight
    out = values.copy()
    for c in range(values.shape[1]):
        out[flight, c] = np.interp(idx[flight], idx[ok], values[ok, c])
    return out


def place_root(
    body: Body, local_rot: np.ndarray, lift: np.ndarray, stance: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Root trajectory from the feet: returns (joints (T, 22, 3), root_pos (T, 3)).

    On the floor the lowest foot joint touches y = 0 and the planted point of the stance foot
    (the lower foot unless ``stance`` names one) does not move horizontally; in flight
    (lift > 0) the pelvis follows the line between take-off and landing plus ``lift``, and
    its horizontal velocity is interpolated from the contact frames around it.
    """
    n = local_rot.shape[0]
    rel = fk_matrices(body.offsets(), quat_to_matrix(local_rot), np.zeros((n, 3)))
    feet = rel[:, _FEET]  # (T, 4, 3)
    fy = feet[..., 1]
    low_joint = fy.argmin(1)  # lowest of the four foot joints
    left_low = np.minimum(fy[:, 0], fy[:, 1])
    right_low = np.minimum(fy[:, 2], fy[:, 3])
    foot = (right_low < left_low).astype(int)
    if stance is not None:
        foot = np.where(stance >= 0, stance, foot)
    # the planted joint: the lower of the stance foot's ankle and toe
    planted = 2 * foot + (fy[np.arange(n), 2 * foot + 1] < fy[np.arange(n), 2 * foot]).astype(int)
    root = np.zeros((n, 3))
    floor_y = -fy[np.arange(n), low_joint]
    flight = lift > 0
    if flight.any():
        arc = _fill_flight(floor_y[:, None], flight)[:, 0] + lift
        flight &= arc > floor_y  # really off the floor
        floor_y = np.where(flight, arc, floor_y)
    root[:, 1] = floor_y
    idx = np.arange(n - 1)
    step = feet[idx + 1, planted[:-1]] - feet[idx, planted[:-1]]  # (T-1, 3)
    vel = -step[:, [0, 2]]
    fl = flight[:-1] | flight[1:]
    if fl.any():  # in the air: keep the mean horizontal velocity of the last ~0.3 s of contact
        filled = _fill_flight(vel, fl)
        k = np.ones(7) / 7.0
        mean = np.stack(
            [np.convolve(np.pad(filled[:, c], 3, mode="edge"), k, "valid") for c in (0, 1)], 1
        )
        vel = np.where(fl[:, None], mean, vel)
    root[1:, [0, 2]] = np.cumsum(vel, axis=0)
    return rel + root[:, None, :], root
