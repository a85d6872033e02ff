"""Locomotion and jump primitives: gaits (walk, jog, run, in place), side steps, turns, jumps.

Every function takes (body, params, rng, fps) and returns a ``Track`` for the body's *right*
side where the action is one-sided (the caller mirrors it for the left), or for movement to
the *left* for side steps and turns. Gaits are cyclic functions of a phase φ (cycles); the
legs are half a cycle apart. The body moves by its own steps: ``pose.place_root`` keeps the
stance foot planted, so the speed follows from the stride.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kinemic.world.body import ANKLE_PITCH
from kinemic.world.pose import (
    GRAVITY,
    HEAD,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    PELVIS,
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    SPINE,
    SPINE3,
    D,
    Track,
    abduct,
    ankle_flex,
    bump,
    elbow_flex,
    hip_flex,
    knee_flex,
    n_frames,
    ramp,
    rest,
    shoulder_flex,
    smooth,
    spine_flex,
    spread,
    twist,
    warp,
)

if TYPE_CHECKING:
    from kinemic.world.body import Body
    from kinemic.world.primitives import PrimitiveParams

_LEGS = ((L_HIP, L_KNEE, L_ANKLE, 0.0), (R_HIP, R_KNEE, R_ANKLE, 0.5))


def _hermite(v: np.ndarray, p0, m0, p1, m1) -> np.ndarray:
    v2, v3 = v * v, v * v * v
    return (
        (2 * v3 - 3 * v2 + 1) * p0
        + (v3 - 2 * v2 + v) * m0
        + (3 * v2 - 2 * v3) * p1
        + (v3 - v2) * m1
    )


def _under_hip(body: Body, knee: np.ndarray, push: np.ndarray) -> np.ndarray:
    """Hip flexion that keeps a planted toe where it is under the hip while the knee bends by
    ``knee`` and the foot plantar-flexes by ``push`` from flat (thigh, shin and foot of
    ``body``): the ankle moves forward by what the push takes off the toe's lead on it."""
    thigh, shin, foot = body.bone_lengths[4], body.bone_lengths[7], body.bone_lengths[10]
    lead = foot * (np.cos(ANKLE_PITCH) - np.cos(ANKLE_PITCH + push))
    # thigh sin(h) - shin sin(knee - h) = lead, i.e. r sin(h - phi) = lead
    x, y = thigh + shin * np.cos(knee), shin * np.sin(knee)
    return np.arctan2(y, x) + np.arcsin(np.clip(lead / np.hypot(x, y), -1.0, 1.0))


def _gait(
    body: Body,
    p: PrimitiveParams,
    rng: np.random.Generator,
    fps: float,
    *,
    period: float,
    duty: float,
    sweep: float,
    knee_swing: float,
    knee_stance: float,
    hip_swing: float = 0.0,
    push: float = 15 * D,
    arm: float = 20 * D,
    elbow: float = 15 * D,
    lean: float = 0.0,
    pelvis_rot: float = 5 * D,
    reverse: bool = False,
    yaw_rate: float = 0.0,
) -> Track:
    """A cyclic gait of ``p.repetitions`` cycles.

    ``sweep``: hip angle at foot strike (the stance leg sweeps from +sweep to -sweep, which
    moves the body); ``hip_swing``/``knee_swing``: extra hip and knee flexion of the swing leg
    (knee raise, heel kick); ``duty``: stance fraction of a cycle (< 0.5 gives flight phases).
    """
    a = p.amplitude
    period = period / p.speed**0.6  # gaits vary their tempo less than their size
    cycles = max(p.repetitions, 1)
    n = n_frames(cycles * period, fps)
    t = np.arange(n) / fps
    u_all = t / max(t[-1], 1e-9)
    env = ramp(t, 0.0, min(0.35, 0.25 * t[-1])) * (
        1 - ramp(t, t[-1] - min(0.35, 0.25 * t[-1]), t[-1])
    )
    phi = cycles * warp(u_all, rng, 0.08)
    tr = rest(n)
    aa = tr.aa
    sweep_a, ks, kst = sweep * a * env, knee_swing * a * env, knee_stance * a * env
    for hip, knee, ankle, offset in _LEGS:
        u = (phi + offset) % 1.0
        st = u < duty
        us = u / duty
        v = np.clip((u - duty) / (1 - duty), 0, 1)
        m = -2 * sweep_a / duty * (1 - duty)
        hip_a = np.where(
            st, sweep_a * (1 - 2 * us), _hermite(v, -sweep_a, 0.3 * m, sweep_a, 0.3 * m)
        )
        if reverse:  # walking backwards: the stance leg sweeps from behind to the front
            hip_a = -hip_a
        hip_a = hip_a + np.where(st, 0.0, hip_swing * a * env * bump(v))
        # knee: loading bend early in stance; bends before toe-off (so the other foot lands
        # while this one is still down), most in swing
        pre = 0.35 * ks * ramp(u, duty - 0.15, duty)
        swing = ks * (0.65 * np.sin(np.pi * v**0.7) ** 2 + 0.35 * (1 - v) ** 2)
        knee_a = np.where(st, kst * bump(us / 0.8) + pre, swing)
        push_a = push * env * bump((u - duty + 0.22) / 0.4)
        if sweep == 0.0:  # in place: the stance hip follows knee and push, the toe stays put
            hip_a = hip_a + np.where(st, _under_hip(body, knee_a, push_a), 0.0)
        hip_flex(aa, hip, hip_a)
        knee_flex(aa, knee, knee_a)
        # foot flat in stance, toe raised in swing (so the swing foot never dips below the
        # planted one), pushing off around toe-off
        toe_up = -10 * D * env * bump(np.clip((u - duty - 0.1) / (0.9 - duty), 0, 1))
        ankle_flex(aa, ankle, hip_a - knee_a + toe_up + push_a)
    c = np.cos(2 * np.pi * phi)
    shoulder_flex(aa, L_SHOULDER, -arm * a * env * c)
    shoulder_flex(aa, R_SHOULDER, arm * a * env * c)
    for elb in (L_ELBOW, R_ELBOW):
        elbow_flex(aa, elb, elbow * env + 0.3 * arm * a * env * np.abs(c))
    twist(aa, PELVIS, -pelvis_rot * env * c)
    twist(aa, SPINE3, 1.3 * pelvis_rot * env * c)
    spine_flex(aa, PELVIS, lean * env * 0.5)
    spread(aa, SPINE, spine_flex, lean * env * 0.5)
    spine_flex(aa, HEAD, -lean * env * 0.5)
    if duty < 0.5:  # flight between toe-off and the other foot's strike
        w = ((phi % 0.5) - duty) / (0.5 - duty)
        tau = (0.5 - duty) * period
        h = GRAVITY * tau**2 / 8.0
        tr.lift = np.where((w > 0) & (w < 1) & (env > 0.5), h * 4 * w * (1 - w), 0.0)
    tr.yaw = yaw_rate * t
    return tr


def _circle(p: PrimitiveParams) -> float:
    return {"circle_left": 30 * D, "circle_right": -30 * D}.get(p.direction or "", 0.0)


def walk(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    return _gait(
        body,
        p,
        rng,
        fps,
        period=1.1,
        duty=0.6,
        sweep=20 * D,
        knee_swing=60 * D,
        knee_stance=12 * D,
        arm=18 * D,
        yaw_rate=_circle(p) * p.speed,
    )


def walk_backwards(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    return _gait(
        body,
        p,
        rng,
        fps,
        period=1.25,
        duty=0.62,
        sweep=15 * D,
        knee_swing=45 * D,
        knee_stance=10 * D,
        push=0.0,
        arm=10 * D,
        lean=4 * D,
        reverse=True,
    )


def jog(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    return _gait(
        body,
        p,
        rng,
        fps,
        period=0.78,
        duty=0.44,
        sweep=20 * D,
        knee_swing=78 * D,
        knee_stance=25 * D,
        arm=28 * D,
        elbow=80 * D,
        lean=6 * D,
        yaw_rate=_circle(p) * p.speed,
    )


def run(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    return _gait(
        body,
        p,
        rng,
        fps,
        period=0.7,
        duty=0.36,
        sweep=20 * D,
        knee_swing=95 * D,
        knee_stance=30 * D,
        hip_swing=20 * D,
        push=25 * D,
        arm=40 * D,
        elbow=90 * D,
        lean=12 * D,
        pelvis_rot=7 * D,
        yaw_rate=_circle(p) * p.speed,
    )


def run_on_spot(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    return _gait(
        body,
        p,
        rng,
        fps,
        period=0.7,
        duty=0.42,
        sweep=0.0,
        knee_swing=80 * D,
        knee_stance=15 * D,
        hip_swing=45 * D,
        push=20 * D,
        arm=30 * D,
        elbow=85 * D,
        lean=3 * D,
        pelvis_rot=3 * D,
    )


def butt_kicks(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    return _gait(
        body,
        p,
        rng,
        fps,
        period=0.72,
        duty=0.42,
        sweep=0.0,
        knee_swing=105 * D,
        knee_stance=12 * D,
        hip_swing=-8 * D,
        push=20 * D,
        arm=22 * D,
        elbow=85 * D,
        lean=6 * D,
        pelvis_rot=3 * D,
    )


def side_step(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Side steps to the body's left (+X): lead leg out, then the trail leg in under the body."""
    a = p.amplitude
    period = 1.0 / p.speed
    cycles = max(p.repetitions, 1)
    n = n_frames(cycles * period, fps)
    t = np.arange(n) / fps
    phi = cycles * warp(t / t[-1], rng, 0.08)
    u = phi % 1.0
    amp = 24 * D * a
    # the left leg reaches out (right foot planted), then the pelvis moves over the left foot
    # while the right foot is lifted and brought in under it
    lead = amp * (ramp(u, 0.0, 0.24) - ramp(u, 0.5, 0.74))  # done before the foot lands
    trail = np.zeros(n)
    tr = rest(n)
    aa = tr.aa
    abduct(aa, L_HIP, lead)
    abduct(aa, R_HIP, trail)
    for hip, knee, ankle, a_self, a_other, (s0, s1) in (
        (L_HIP, L_KNEE, L_ANKLE, lead, trail, (0.0, 0.3)),
        (R_HIP, R_KNEE, R_ANKLE, trail, lead, (0.5, 0.8)),
    ):
        # bend the less abducted leg so that both feet stay level (a leg of length L bent by
        # k at the knee and k/2 at the hip reaches L cos(k/2) down)
        reach = np.cos(4 * D) * np.cos(np.maximum(a_self, a_other)) / np.cos(a_self)
        k = 2 * np.arccos(np.clip(reach, -1.0, 1.0)) + 35 * D * a * bump((u - s0) / (s1 - s0))
        knee_flex(aa, knee, k)
        hip_flex(aa, hip, 0.5 * k)
        ankle_flex(aa, ankle, -0.5 * k)
    for sh in (L_SHOULDER, R_SHOULDER):
        abduct(aa, sh, 8 * D * a * np.sin(2 * np.pi * phi) ** 2)
    tr.stance = np.select([u < 0.3, u < 0.5, u < 0.8], [1, 0, 0], -1)
    return tr


def turn(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Turn to the left on the spot in small steps (angle 60°-180° with the amplitude)."""
    angle = float(np.clip(135 * D * p.amplitude, 60 * D, 180 * D))
    steps = int(np.ceil(angle / (50 * D)))
    step_s = 0.5 / p.speed
    n = n_frames(steps * step_s + 0.2, fps)
    t = np.arange(n) / fps
    s = np.clip((t - 0.1) / step_s, 0, steps - 1e-9)
    k = s.astype(int)
    v = s - k
    tr = rest(n)
    aa = tr.aa
    lifted = bump(v)
    for j, (hip, knee, ankle) in enumerate(((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE))):
        on = (k % 2) == j  # left foot steps first when turning left
        hip_flex(aa, hip, np.where(on, 25 * D * lifted, 0.0))
        knee_flex(aa, knee, np.where(on, 45 * D * lifted, 0.0))
        ankle_flex(aa, ankle, np.where(on, -10 * D * lifted, 0.0))
    done = (k + smooth((v - 0.15) / 0.65)) / steps  # turn while the stepping foot is up
    done = np.where(t < 0.1, 0.0, done)
    tr.yaw = angle * done
    twist(aa, HEAD, 15 * D * bump(done))
    tr.stance = np.where((k % 2) == 0, 1, 0)
    return tr


def jump(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Vertical jumps on both feet: crouch, arms swing back; take off, arms up; land, absorb."""
    height = float(np.clip(0.22 * p.amplitude, 0.08, 0.4))
    tau = np.sqrt(8 * height / GRAVITY)
    crouch, land = 0.6 / p.speed**0.5, 0.55 / p.speed**0.5
    rep = crouch + tau + land
    reps = max(p.repetitions, 1)
    n = n_frames(reps * rep, fps)
    t = np.arange(n) / fps
    k = np.minimum((t // rep).astype(int), reps - 1)
    tt = t - k * rep
    down = ramp(tt, 0.0, 0.7 * crouch) * (1 - ramp(tt, 0.7 * crouch, crouch))  # the dip
    down = down + ramp(tt, crouch + tau, crouch + tau + 0.3 * land) * (
        1 - ramp(tt, crouch + tau + 0.3 * land, rep)
    )
    depth = float(np.clip(p.amplitude, 0.6, 1.4))
    air = (tt > crouch) & (tt < crouch + tau)
    tr = rest(n)
    aa = tr.aa
    for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        hip_flex(aa, hip, 55 * D * depth * down + 10 * D * air)
        knee_flex(aa, knee, 75 * D * depth * down + 15 * D * air)
        ankle_flex(
            aa,
            ankle,
            -30 * D * depth * down
            + 30
            * D
            * ramp(tt, 0.8 * crouch, crouch)
            * (1 - ramp(tt, crouch + 0.5 * tau, crouch + tau)),
        )
    spine_flex(aa, SPINE3, 25 * D * depth * down)
    swing = -40 * D * ramp(tt, 0.1 * crouch, 0.6 * crouch) + 160 * D * ramp(
        tt, 0.6 * crouch, crouch + 0.5 * tau
    )
    swing = swing * (1 - ramp(tt, crouch + tau, rep))
    for sh in (L_SHOULDER, R_SHOULDER):
        shoulder_flex(aa, sh, swing * 0.8)
    w = (tt - crouch) / tau
    tr.lift = np.where(air, height * 4 * w * (1 - w), 0.0)
    return tr


def hop(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Hops on the right leg, the left knee bent and the foot held up."""
    a = p.amplitude
    period = 0.6 / p.speed
    reps = max(p.repetitions, 1)
    lead = 0.4 / p.speed
    n = n_frames(reps * period + 2 * lead, fps)
    t = np.arange(n) / fps
    up = ramp(t, 0, lead) * (1 - ramp(t, t[-1] - lead, t[-1]))
    s = np.clip((t - lead) / period, 0, reps)
    v = s % 1.0
    hopping = (t > lead) & (s < reps)
    tr = rest(n)
    aa = tr.aa
    hip_flex(aa, L_HIP, 30 * D * up)
    knee_flex(aa, L_KNEE, 80 * D * up)
    ankle_flex(aa, L_ANKLE, -10 * D * up)  # toe up: the raised foot leaves the floor at once
    ankle_flex(
        aa, R_ANKLE, 10 * D * ramp(t, 0, 0.5 * lead) * (1 - ramp(t, t[-1] - 0.5 * lead, t[-1]))
    )  # push up
    dip = np.where(hopping, bump(v / 0.45) + bump((v - 0.75) / 0.5), 0.0)
    knee_flex(aa, R_KNEE, 30 * D * a * dip)
    hip_flex(aa, R_HIP, 20 * D * a * dip)
    ankle_flex(
        aa, R_ANKLE, -15 * D * a * dip + np.where(hopping, 25 * D * bump((v - 0.3) / 0.5), 0)
    )
    for sh in (L_SHOULDER, R_SHOULDER):
        abduct(aa, sh, 25 * D * up)
    air = hopping & (v > 0.45) & (v < 0.75)
    tau = 0.3 * period
    w = (v - 0.45) / 0.3
    tr.lift = np.where(air, GRAVITY * tau**2 / 8 * a * 4 * w * (1 - w), 0.0)
    tr.stance = np.ones(n, dtype=int)
    return tr


def jumping_jacks(body: Body, p: PrimitiveParams, rng: np.random.Generator, fps: float) -> Track:
    """Jump feet apart with the arms up overhead, jump back together with the arms down."""
    a = p.amplitude
    half = 0.45 / p.speed
    reps = max(p.repetitions, 1)
    n = n_frames(2 * reps * half + 0.2, fps)
    t = np.arange(n) / fps
    s = np.clip((t - 0.1) / half, 0, 2 * reps - 1e-9)
    k = s.astype(int)
    v = s - k
    out = np.where(k % 2 == 0, smooth((v - 0.1) / 0.35), 1 - smooth((v - 0.1) / 0.35))  # legs
    arms = np.where(k % 2 == 0, smooth(v / 0.8), 1 - smooth(v / 0.8))
    out = np.where(t < 0.1, 0.0, out)
    arms = np.where(t < 0.1, 0.0, arms)
    tr = rest(n)
    aa = tr.aa
    for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        abduct(aa, hip, 14 * D * a * out)
        dip = bump(v / 0.15) * 0.5 + bump((v - 0.45) / 0.5)
        knee_flex(aa, knee, 25 * D * dip)
        hip_flex(aa, hip, 12 * D * dip)
        ankle_flex(aa, ankle, -12 * D * dip + 20 * D * bump((v - 0.02) / 0.45))
    for sh in (L_SHOULDER, R_SHOULDER):
        abduct(aa, sh, (150 + 20 * (a - 1)) * D * arms)
    air = (v > 0.1) & (v < 0.45) & (t > 0.1)
    tau = 0.35 * half
    w = (v - 0.1) / 0.35
    tr.lift = np.where(air, GRAVITY * tau**2 / 8 * 4 * w * (1 - w), 0.0)
    return tr
