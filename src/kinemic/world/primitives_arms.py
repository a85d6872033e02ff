"""Upper-body primitives: punches, arm gestures, and actions with objects.

Each function takes (body, params, rng, fps) and returns a ``Track``; one-sided actions are
written for the *right* arm (the caller mirrors them for the left).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kinemic.world.pose import (
    HEAD,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    NECK,
    PELVIS,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    SPINE,
    D,
    Track,
    abduct,
    bump,
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

if TYPE_CHECKING:
    from kinemic.world.body import Body
    from kinemic.world.primitives import PrimitiveParams


def guard(aa: np.ndarray, env: np.ndarray) -> None:
    """Fists up in front of the chin (boxing guard), weighted by env (T,)."""
    for sh, el in ((L_SHOULDER, L_ELBOW), (R_SHOULDER, R_ELBOW)):
        shoulder_flex(aa, sh, 40 * D * env)
        abduct(aa, sh, 10 * D * env)
        elbow_flex(aa, el, 110 * D * env)
    for knee, hip in ((L_KNEE, L_HIP), (R_KNEE, R_HIP)):
        knee_flex(aa, knee, 12 * D * env)
        hip_flex(aa, hip, 6 * D * env)


def punch(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Straight punches with the right fist: a fast extension to shoulder height and back."""
    a = p.amplitude
    t, env, s = timeline(p, fps, rng, rep_s=0.7, enter=0.35, leave=0.4)
    v = s % 1.0
    v = np.where(s >= max(p.repetitions, 1), 1.0, v)
    out = keys(v, [0, 0.25, 0.4, 0.8, 1], [0, 1, 1, 0, 0]) / D
    tr = rest(len(t))
    aa = tr.aa
    guard(aa, env)
    shoulder_flex(aa, R_SHOULDER, (45 * D * min(a, 1.3)) * out)
    abduct(aa, R_SHOULDER, -8 * D * out)
    elbow_flex(aa, R_ELBOW, -105 * D * out)
    spread(aa, SPINE, twist, 25 * D * a * out)
    twist(aa, PELVIS, 8 * D * a * out)
    twist(aa, HEAD, -20 * D * a * out)
    return tr


def uppercut(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Right uppercuts: drop the fist, drive it up in front of the chin with the legs."""
    a = p.amplitude
    t, env, s = timeline(p, fps, rng, rep_s=0.9, enter=0.35, leave=0.4)
    v = np.where(s >= max(p.repetitions, 1), 1.0, s % 1.0)
    tr = rest(len(t))
    aa = tr.aa
    guard(aa, env)
    shoulder_flex(aa, R_SHOULDER, keys(v, [0, 0.3, 0.5, 0.7, 1], [0, -30, 55 * a, 55 * a, 0]))
    elbow_flex(aa, R_ELBOW, keys(v, [0, 0.3, 0.5, 0.7, 1], [0, -25, -30, -30, 0]))
    dip = keys(v, [0, 0.3, 0.5, 1], [0, 1, 0, 0]) / D
    for knee, hip in ((L_KNEE, L_HIP), (R_KNEE, R_HIP)):
        knee_flex(aa, knee, 25 * D * dip)
        hip_flex(aa, hip, 15 * D * dip)
    spread(aa, SPINE, twist, keys(v, [0, 0.3, 0.5, 1], [0, -15, 20 * a, 0]))
    return tr


def wave(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Wave the right hand above the head: upper arm up and out, forearm swaying."""
    a = p.amplitude
    t, env, s = timeline(p, fps, rng, rep_s=0.55, enter=0.45, leave=0.45)
    up = float(np.clip(130 + 30 * (a - 1), 110, 155)) * D
    tr = rest(len(t))
    aa = tr.aa
    abduct(aa, R_SHOULDER, up * env)
    shoulder_flex(aa, R_SHOULDER, 12 * D * env)
    sway = 25 * D * np.clip(a, 0.6, 1.4) * np.sin(2 * np.pi * s)
    abduct(aa, R_ELBOW, (np.pi - up - 12 * D) * env + sway * env)
    side_bend(aa, NECK, -6 * D * env)
    return tr


def point(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Point ahead with the right arm straight, hold, lower."""
    t, env, _s = timeline(p, fps, rng, rep_s=1.0, enter=0.45, leave=0.45)
    tr = rest(len(t))
    aa = tr.aa
    height = float(np.clip(80 + 25 * (p.amplitude - 1), 55, 110))
    shoulder_flex(aa, R_SHOULDER, height * D * env)
    abduct(aa, R_SHOULDER, 12 * D * env)
    elbow_flex(aa, R_ELBOW, -10 * D * env)
    twist(aa, HEAD, -12 * D * env)
    return tr


def arm_circles(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Both arms out to the sides, drawing circles."""
    t, env, s = timeline(p, fps, rng, rep_s=0.8, enter=0.5, leave=0.5)
    r = 30 * D * np.clip(p.amplitude, 0.5, 1.5)
    sign = 1.0 if p.direction != "backward" else -1.0
    tr = rest(len(t))
    aa = tr.aa
    for sh, el in ((L_SHOULDER, L_ELBOW), (R_SHOULDER, R_ELBOW)):
        abduct(aa, sh, (84 * D + r * np.cos(2 * np.pi * s)) * env)
        shoulder_flex(aa, sh, sign * r * np.sin(2 * np.pi * s) * env)
        elbow_flex(aa, el, -10 * D * env)
    return tr


def raise_arms(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Raise both arms overhead (forward or sideways), hold, lower."""
    t, env, s = timeline(p, fps, rng, rep_s=1.6, enter=0.1, leave=0.1)
    v = np.where(s >= max(p.repetitions, 1), 1.0, s % 1.0)
    up = keys(v, [0, 0.35, 0.65, 1], [0, 1, 1, 0]) / D * env
    top = float(np.clip(165 + 15 * (p.amplitude - 1), 140, 180)) * D
    side = p.direction == "sideways"
    tr = rest(len(t))
    aa = tr.aa
    for sh in (L_SHOULDER, R_SHOULDER):
        (abduct if side else shoulder_flex)(aa, sh, top * up)
    spine_flex(aa, HEAD, -10 * D * up)
    return tr


def clap(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Clap the hands in front of the chest."""
    t, env, s = timeline(p, fps, rng, rep_s=0.45, enter=0.4, leave=0.4)
    open_ = (0.5 - 0.5 * np.cos(2 * np.pi * s)) * np.clip(p.amplitude, 0.5, 1.5)
    tr = rest(len(t))
    aa = tr.aa
    for sh, el, sign in ((L_SHOULDER, L_ELBOW, -1.0), (R_SHOULDER, R_ELBOW, 1.0)):
        shoulder_flex(aa, sh, 45 * D * env)
        elbow_flex(aa, el, 70 * D * env)
        twist(aa, sh, sign * (35 * D - 30 * D * open_) * env)
        abduct(aa, sh, -12 * D * env + 12 * D * open_ * env)
    return tr


def throw(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Overhand throw with the right arm: cock the arm behind the head, whip it forward."""
    a = p.amplitude
    t, _env, s = timeline(p, fps, rng, rep_s=1.6, enter=0.1, leave=0.2)
    v = np.where(s >= max(p.repetitions, 1), 1.0, s % 1.0)
    k = [0, 0.35, 0.52, 0.68, 0.84, 1]
    tr = rest(len(t))
    aa = tr.aa
    abduct(aa, R_SHOULDER, keys(v, k, [0, 95, 100, 40, 10, 0]))
    shoulder_flex(aa, R_SHOULDER, keys(v, k, [0, -25, 40, 70 * a, 30, 0]))
    abduct(aa, R_ELBOW, keys(v, k, [0, 90, 60, 0, 0, 0]))
    elbow_flex(aa, R_ELBOW, keys(v, k, [0, 0, 20, 0, 20, 0]))
    shoulder_flex(aa, L_SHOULDER, keys(v, k, [0, 60, 40, -10, 0, 0]))
    spread(aa, SPINE, twist, keys(v, k, [0, -35, 0, 30 * a, 10, 0]))
    spread(aa, SPINE, spine_flex, keys(v, k, [0, -10, 5, 25 * a, 10, 0]))
    twist(aa, PELVIS, keys(v, k, [0, -15, 0, 15, 5, 0]))
    return tr


def drink(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Bring a cup to the mouth with the right hand, tip the head back, lower the hand."""
    t, _env, s = timeline(p, fps, rng, rep_s=2.0, enter=0.1, leave=0.1)
    v = np.where(s >= max(p.repetitions, 1), 1.0, s % 1.0)
    up = keys(v, [0, 0.3, 0.75, 1], [0, 1, 1, 0]) / D
    sip = bump((v - 0.35) / 0.35)
    tr = rest(len(t))
    aa = tr.aa
    shoulder_flex(aa, R_SHOULDER, (80 + 10 * sip) * D * up)  # elbow forward, cup at the mouth
    twist(aa, R_SHOULDER, 50 * D * up)
    elbow_flex(aa, R_ELBOW, (90 + 10 * sip) * D * up)
    spine_flex(aa, NECK, -15 * D * sip * np.clip(p.amplitude, 0.5, 1.5))
    return tr


def phone_call(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Hold a phone to the right ear for a while, head tilted toward it."""
    t, env, _s = timeline(p, fps, rng, rep_s=1.5, enter=0.6, leave=0.6)
    tr = rest(len(t))
    aa = tr.aa
    abduct(aa, R_SHOULDER, -20 * D * env)  # hand at the ear
    shoulder_flex(aa, R_SHOULDER, 90 * D * env)
    twist(aa, R_SHOULDER, 50 * D * env)
    elbow_flex(aa, R_ELBOW, 102 * D * env)
    side_bend(aa, NECK, 10 * D * env * np.clip(p.amplitude, 0.5, 1.5))
    twist(aa, HEAD, 10 * D * env * np.sin(2 * np.pi * 0.3 * t))
    return tr
