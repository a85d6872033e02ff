"""Whole-body primitives: kicks, squats, bends, stretches, lunges, sitting, standing still.

Each function takes (body, params, rng, fps) and returns a ``Track``; one-sided actions are
written for the *right* leg or arm (the caller mirrors them for the left). Leg helpers keep
the foot flat: the ankle undoes the pitch of the shin (``_flat``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kinemic.world.body import ANKLE_PITCH
from kinemic.world.pose import (
    HEAD,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    NECK,
    PELVIS,
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    SPINE,
    D,
    Track,
    abduct,
    ankle_flex,
    elbow_flex,
    hip_flex,
    keys,
    knee_flex,
    rest,
    shoulder_flex,
    side_bend,
    spine_flex,
    spread,
    timeline,
    twist,
)
from kinemic.world.primitives_arms import guard

if TYPE_CHECKING:
    from kinemic.world.body import Body
    from kinemic.world.primitives import PrimitiveParams

_LEGS = ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE))


def _leg(aa: np.ndarray, leg: int, hip, knee, tilt=0.0, extra_ankle=0.0) -> None:
    """Hip and knee flexion of one leg (0 left, 1 right) with the foot kept flat on a pelvis
    tilted forward by ``tilt``."""
    h, k, an = _LEGS[leg]
    hip_flex(aa, h, hip)
    knee_flex(aa, k, knee)
    ankle_flex(aa, an, hip - knee - tilt + extra_ankle)


def _hinge(aa: np.ndarray, tilt, spine, arms_hang: bool = True) -> None:
    """Bend forward at the hips by ``tilt`` (pelvis) plus ``spine``; legs stay vertical."""
    spine_flex(aa, PELVIS, tilt)
    spread(aa, SPINE, spine_flex, spine)
    for h in (L_HIP, R_HIP):
        hip_flex(aa, h, tilt)
    if arms_hang:
        for sh in (L_SHOULDER, R_SHOULDER):
            shoulder_flex(aa, sh, tilt + spine)


def _rep(s: np.ndarray, reps: int) -> np.ndarray:
    return np.where(s >= max(reps, 1), 1.0, s % 1.0)


def front_kick(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Front kick with the right leg: knee up, snap the shin forward, retract, put it down."""
    a = float(np.clip(p.amplitude, 0.6, 1.4))
    t, env, s = timeline(p, fps, rng, rep_s=1.0, enter=0.3, leave=0.3, tempo_exp=0.5)
    v = _rep(s, p.repetitions)
    k = [0, 0.3, 0.47, 0.62, 0.8, 1]
    tr = rest(len(t))
    aa = tr.aa
    guard(aa, env * 0.8)
    hip = keys(v, k, [0, 70 * a, 80 * a, 70 * a, 15, 0])
    knee = keys(v, k, [0, 95, 5, 90, 15, 0])
    _leg(aa, 1, hip, knee, extra_ankle=keys(v, k, [0, 10, 35, 15, 0, 0]) - (hip - knee))
    spread(aa, SPINE, spine_flex, keys(v, k, [0, -5, -15 * a, -8, 0, 0]))
    _leg(aa, 0, keys(v, k, [0, 5, 8, 5, 0, 0]), keys(v, k, [0, 10, 15, 10, 0, 0]))
    tr.stance = np.zeros(len(t), dtype=int)
    return tr


def side_kick(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Side kick with the right leg: chamber, drive the leg out to the right side, lean away."""
    a = float(np.clip(p.amplitude, 0.6, 1.4))
    t, env, s = timeline(p, fps, rng, rep_s=1.1, enter=0.3, leave=0.3, tempo_exp=0.5)
    v = _rep(s, p.repetitions)
    k = [0, 0.3, 0.5, 0.65, 0.85, 1]
    tr = rest(len(t))
    aa = tr.aa
    guard(aa, env * 0.8)
    tilt = keys(v, k, [0, 10, 28 * a, 25, 5, 0])
    side_bend(aa, PELVIS, -tilt)  # pelvis tips toward the stance (left) side
    abduct(aa, L_HIP, tilt)
    spread(aa, SPINE, side_bend, 0.4 * tilt)
    abduct(aa, R_HIP, keys(v, k, [0, 25, 45 * a, 40, 10, 0]))
    hip_flex(aa, R_HIP, keys(v, k, [0, 60, 10, 45, 10, 0]))
    twist(aa, R_HIP, keys(v, k, [0, -20, -35, -25, 0, 0]))
    knee_flex(aa, R_KNEE, keys(v, k, [0, 100, 5, 90, 10, 0]))
    ankle_flex(aa, R_ANKLE, keys(v, k, [0, 10, -10, 10, 0, 0]))
    twist(aa, PELVIS, keys(v, k, [0, 20, 35, 25, 5, 0]))
    twist(aa, HEAD, keys(v, k, [0, -25, -40, -30, -5, 0]))
    knee_flex(aa, L_KNEE, keys(v, k, [0, 12, 15, 12, 0, 0]))
    tr.stance = np.zeros(len(t), dtype=int)
    return tr


def back_kick(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Back kick with the right leg: lean forward, chamber, thrust the foot backward."""
    a = float(np.clip(p.amplitude, 0.6, 1.4))
    t, env, s = timeline(p, fps, rng, rep_s=1.1, enter=0.3, leave=0.3, tempo_exp=0.5)
    v = _rep(s, p.repetitions)
    k = [0, 0.3, 0.45, 0.6, 0.82, 1]
    tr = rest(len(t))
    aa = tr.aa
    guard(aa, env * 0.8)
    lean = keys(v, k, [0, 20, 35 * a, 30, 5, 0])
    spine_flex(aa, PELVIS, lean)
    spine_flex(aa, HEAD, -0.6 * lean)
    _leg(aa, 0, lean + keys(v, k, [0, 10, 10, 10, 0, 0]), keys(v, k, [0, 20, 20, 20, 0, 0]), lean)
    hip_flex(aa, R_HIP, keys(v, k, [0, 40, -25 * a, 20, 5, 0]))
    knee_flex(aa, R_KNEE, keys(v, k, [0, 110, 10, 100, 10, 0]))
    ankle_flex(aa, R_ANKLE, keys(v, k, [0, 0, -15, 0, 0, 0]))
    for sh in (L_SHOULDER, R_SHOULDER):
        shoulder_flex(aa, sh, 0.5 * lean)
    tr.stance = np.zeros(len(t), dtype=int)
    return tr


def squat(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Squats: hips back and down, knees forward, arms forward for balance."""
    a = float(np.clip(p.amplitude, 0.5, 1.3))
    t, env, s = timeline(p, fps, rng, rep_s=1.8, enter=0.2, leave=0.2)
    v = _rep(s, p.repetitions)
    down = keys(v, [0, 0.4, 0.55, 1], [0, 1, 1, 0]) / D
    tr = rest(len(t))
    aa = tr.aa
    tilt = 25 * D * a * down
    spine_flex(aa, PELVIS, tilt)
    for leg in (0, 1):
        _leg(aa, leg, tilt + 80 * D * a * down, 115 * D * a * down, tilt)
    spread(aa, SPINE, spine_flex, 5 * D * down)
    spine_flex(aa, HEAD, -15 * D * down)
    arms_forward = rng.random() < 0.7
    for sh, el in ((L_SHOULDER, L_ELBOW), (R_SHOULDER, R_ELBOW)):
        if arms_forward:
            shoulder_flex(aa, sh, 85 * D * down - tilt)
        else:  # hands on the hips
            abduct(aa, sh, 35 * D * env)
            elbow_flex(aa, el, 80 * D * env)
            twist(aa, el, (-1 if el == L_ELBOW else 1) * 60 * D * env)
    return tr


def bow(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Bow: bend forward at the hips with a straight back, pause, straighten up."""
    a = float(np.clip(p.amplitude, 0.5, 1.5))
    t, _env, s = timeline(p, fps, rng, rep_s=2.0, enter=0.1, leave=0.1)
    v = _rep(s, p.repetitions)
    down = keys(v, [0, 0.3, 0.6, 1], [0, 1, 1, 0]) / D
    tr = rest(len(t))
    _hinge(tr.aa, 35 * D * a * down, 12 * D * a * down)
    spine_flex(tr.aa, NECK, 10 * D * down)
    return tr


def touch_toes(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Bend all the way down, hands toward the toes, straighten up."""
    a = float(np.clip(p.amplitude, 0.7, 1.3))
    t, _env, s = timeline(p, fps, rng, rep_s=2.4, enter=0.1, leave=0.1)
    v = _rep(s, p.repetitions)
    down = keys(v, [0, 0.4, 0.6, 1], [0, 1, 1, 0]) / D
    tr = rest(len(t))
    aa = tr.aa
    _hinge(aa, 80 * D * a * down, 50 * D * down)
    for knee in (L_KNEE, R_KNEE):
        knee_flex(aa, knee, 8 * D * down)
    for sh in (L_SHOULDER, R_SHOULDER):
        shoulder_flex(aa, sh, 10 * D * down)
    return tr


def stretch(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Reach both arms overhead, rise onto the toes, lean to each side."""
    a = float(np.clip(p.amplitude, 0.5, 1.5))
    t, env, s = timeline(p, fps, rng, rep_s=1.6, enter=0.8, leave=0.7)
    tr = rest(len(t))
    aa = tr.aa
    for sh, el in ((L_SHOULDER, L_ELBOW), (R_SHOULDER, R_ELBOW)):
        shoulder_flex(aa, sh, 172 * D * env)
        elbow_flex(aa, el, -10 * D * env)
    spread(aa, SPINE, spine_flex, -12 * D * env)
    spine_flex(aa, NECK, -10 * D * env)
    for an in (L_ANKLE, R_ANKLE):
        ankle_flex(aa, an, 20 * D * env * (1 - np.abs(np.sin(np.pi * s))))
    spread(aa, SPINE, side_bend, 25 * D * a * np.sin(2 * np.pi * s) * env)
    return tr


def twist_torso(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Turn the upper body left and right, forearms held in front of the chest."""
    a = float(np.clip(p.amplitude, 0.5, 1.5))
    t, env, s = timeline(p, fps, rng, rep_s=1.4, enter=0.4, leave=0.4)
    tr = rest(len(t))
    aa = tr.aa
    for sh, el in ((L_SHOULDER, L_ELBOW), (R_SHOULDER, R_ELBOW)):
        abduct(aa, sh, 75 * D * env)
        abduct(aa, el, -85 * D * env)
    turn = 45 * D * a * np.sin(2 * np.pi * s) * env
    spread(aa, SPINE, twist, turn)
    twist(aa, PELVIS, 0.25 * turn)
    twist(aa, HEAD, 0.3 * turn)
    for h in (L_HIP, R_HIP):
        twist(aa, h, -0.25 * turn)
    return tr


def _reach_floor(body: Body, f_hip, f_knee, b_hip, on_toes) -> np.ndarray:
    """Knee angle (T,) of the back leg whose toe reaches as low as the front (flat) foot's, in
    the sagittal plane; the back foot's pitch is 40° on its toes (``on_toes`` = 1)."""
    b = body.bone_lengths
    thigh, shin, foot = b[4], b[7], b[10]
    front = thigh * np.cos(f_hip) + shin * np.cos(f_hip - f_knee) + foot * np.sin(ANKLE_PITCH)
    grid = np.linspace(0.0, 130 * D, 66)[None, :]  # (1, G) candidate knee angles
    hb, toes = b_hip[:, None], on_toes[:, None]
    pitch = ANKLE_PITCH + toes * (40 * D - hb + grid)
    back = thigh * np.cos(hb) + shin * np.cos(hb - grid) + foot * np.sin(pitch)
    return grid[0, np.abs(back - front[:, None]).argmin(1)]


def lunge(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Forward lunge with the right leg: step, sink the back knee toward the floor, step back."""
    a = float(np.clip(0.95 + 0.25 * (p.amplitude - 1.0), 0.85, 1.05))  # feet stay on the floor
    t, env, s = timeline(p, fps, rng, rep_s=2.6, enter=0.1, leave=0.1)
    v = _rep(s, p.repetitions)
    k = [0, 0.2, 0.45, 0.6, 0.82, 1]
    tr = rest(len(t))
    aa = tr.aa
    # at 0.2 and 0.82 both feet are flat on the floor, one step apart (equal leg heights)
    r_hip = keys(v, k, [0, 20, 85 * a, 85 * a, 20, 0])
    r_knee = keys(v, k, [0, 5, 90 * a, 90 * a, 5, 0])
    r_knee = r_knee + keys(v, [0, 0.1, 0.2, 0.72, 0.91, 1], [0, 30, 0, 0, 30, 0])
    _leg(aa, 1, r_hip, r_knee)
    l_hip = keys(v, k, [0, -15, -5 * a, -5 * a, -15, 0])
    on_toes = keys(v, k, [0, 0, 1, 1, 0, 0]) / D
    l_knee = _reach_floor(body, r_hip, r_knee, l_hip, on_toes)
    l_knee = np.where((v > 0.2) & (v < 0.82), l_knee, keys(v, k, [0, 0, 80 * a, 80 * a, 0, 0]))
    _leg(aa, 0, l_hip, l_knee, extra_ankle=on_toes * (40 * D - (l_hip - l_knee)))
    for sh in (L_SHOULDER, R_SHOULDER):
        abduct(aa, sh, 25 * D * env)
    return tr


def _sit(p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    a = float(np.clip(p.amplitude, 0.7, 1.3))
    total = 2.0 / p.speed
    n = max(round(total * fps), 8)
    t = np.arange(n) / fps
    u = t / t[-1]
    down = keys(u, [0, 0.75, 1], [0, 1, 1]) / D
    lean = keys(u, [0, 0.45, 0.8, 1], [0, 1, 0.3, 0.25]) / D
    tr = rest(n)
    aa = tr.aa
    tilt = 20 * D * lean
    spine_flex(aa, PELVIS, tilt)
    for leg in (0, 1):
        _leg(aa, leg, tilt + 90 * D * down, 90 * D * down, tilt)
    spread(aa, SPINE, spine_flex, 20 * D * a * lean)
    for sh, el in ((L_SHOULDER, L_ELBOW), (R_SHOULDER, R_ELBOW)):
        shoulder_flex(aa, sh, 35 * D * lean * a)
        elbow_flex(aa, el, 30 * D * down)
    return tr


def sit_down(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Sit down on a seat of knee height: lean forward, lower the hips back, settle."""
    return _sit(p, rng, fps)


def stand_up(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Stand up from sitting: lean forward, push up, straighten (sit_down played backwards)."""
    tr = _sit(p, rng, fps)
    return Track(aa=tr.aa[::-1].copy(), yaw=tr.yaw, lift=tr.lift)


def cross_toe_touch(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Feet apart, bend and twist: one hand to the opposite foot, other arm up, alternate."""
    a = float(np.clip(p.amplitude, 0.7, 1.3))
    t, env, s = timeline(p, fps, rng, rep_s=1.3, enter=0.6, leave=0.6)
    tr = rest(len(t))
    aa = tr.aa
    for h in (L_HIP, R_HIP):
        abduct(aa, h, 14 * D * env)
    side = np.sin(np.pi * s)  # > 0: right hand to the left foot
    depth = np.abs(side) ** 0.7 * env
    tilt = 60 * D * a * depth
    _hinge(aa, tilt, 25 * D * depth, arms_hang=False)
    spread(aa, SPINE, twist, 40 * D * side * env)
    reach_r = np.clip(side, 0, 1)
    reach_l = np.clip(-side, 0, 1)
    shoulder_flex(aa, R_SHOULDER, (tilt + 25 * D * depth) * reach_r)
    shoulder_flex(aa, L_SHOULDER, (tilt + 25 * D * depth) * reach_l)
    abduct(aa, L_SHOULDER, 110 * D * reach_r)
    abduct(aa, R_SHOULDER, 110 * D * reach_l)
    abduct(aa, L_SHOULDER, 15 * D * env)
    abduct(aa, R_SHOULDER, 15 * D * env)
    return tr


def stand(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Stand still: weight shifts, a look around, breathing."""
    n = max(round(float(np.clip(2.0 * p.amplitude / p.speed, 0.8, 5.0)) * fps), 8)
    t = np.arange(n) / fps
    tr = rest(n)
    aa = tr.aa
    shift = 3 * D * np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * t + rng.uniform(0, 6.3))
    side_bend(aa, PELVIS, shift)
    abduct(aa, L_HIP, -shift)
    abduct(aa, R_HIP, shift)
    twist(aa, HEAD, 20 * D * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 6.3)))
    return tr
