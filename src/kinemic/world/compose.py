"""Sequences of primitives: blended transitions, feet on the floor, ground-truth segments.

``compose_sequence`` plays primitives one after the other on one body. Consecutive primitives
overlap by a transition window in which their local rotations are blended (slerp with a
smoothstep weight); each primitive's heading continues from where the previous one was at the
start of the window. The root trajectory of the whole sequence is then computed from the feet
(``pose.place_root``): the floor is at y = 0, the stance foot stays planted, flight phases
follow a ballistic arc. The ground-truth segments split each transition window at its middle.

``sample_sequence`` draws 1-4 primitives with random parameters and adjusts repetitions and
tempo until the sequence lasts between ``min_seconds`` and ``max_seconds``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, replace

import numpy as np

from kinemic.world.body import Body
from kinemic.world.pose import Track, local_rotations, place_root, smooth
from kinemic.world.primitives import PRIMITIVES, PrimitiveParams


@dataclass(frozen=True)
class Segment:
    """Ground truth: primitive ``primitive`` fills frames [start, end) with ``params``."""

    primitive: str
    start: int
    end: int
    params: PrimitiveParams


@dataclass
class Sequence:
    """Joints (T, 22, 3) float64 (metres, Y up, floor at y = 0, 20 fps), segments tiling [0, T)."""

    joints: np.ndarray
    segments: list[Segment]
    body: Body


def slerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions a, b (..., 4) with weights w (...,)."""
    dot = (a * b).sum(-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    w = np.asarray(w)[..., None]
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(theta)
    small = sin < 1e-6
    safe = np.where(small, 1.0, sin)
    wa = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    wb = np.where(small, w, np.sin(w * theta) / safe)
    q = wa * a + wb * b
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _window(fps: float, transition_s: float, n_a: int, n_b: int) -> int:
    return int(max(0, min(round(transition_s * fps), n_a // 2, n_b // 2)))


def _compose(
    body: Body,
    specs: list[tuple[str, PrimitiveParams]],
    tracks: list[Track],
    *,
    fps: float,
    transition_s: float,
) -> Sequence:
    if not specs:
        raise ValueError("compose_sequence needs at least one primitive")
    rots, lifts, stances, starts = [], [], [], []
    heading = specs[0][1].facing
    pos = 0
    for i, tr in enumerate(tracks):
        w = _window(fps, transition_s, tracks[i - 1].n, tr.n) if i else 0
        if i:
            prev = tracks[i - 1]
            heading += prev.yaw[prev.n - w - 1] if w else prev.yaw[-1]
        q = local_rotations(tr, heading)
        lift = tr.lift
        stance = tr.stance if tr.stance is not None else np.full(tr.n, -1)
        if w:
            s = smooth(np.arange(1, w + 1) / (w + 1))
            q[:w] = slerp(rots[-1][-w:], q[:w], s[:, None])
            first = s < 0.5
            lift = lift.copy()
            stance = stance.copy()
            lift[:w] = np.where(first, lifts[-1][-w:], lift[:w])
            stance[:w] = np.where(first, stances[-1][-w:], stance[:w])
            rots[-1], lifts[-1], stances[-1] = rots[-1][:-w], lifts[-1][:-w], stances[-1][:-w]
        pos -= w
        starts.append(pos + w // 2 if i else 0)
        pos += tr.n
        rots.append(q)
        lifts.append(lift)
        stances.append(stance)
    local = np.concatenate(rots)
    joints, _ = place_root(body, local, np.concatenate(lifts), np.concatenate(stances))
    ends = [*starts[1:], len(local)]
    segments = [
        Segment(name, s, e, params)
        for (name, params), s, e in zip(specs, starts, ends, strict=True)
    ]
    return Sequence(joints=joints, segments=segments, body=body)


def _track(name: str, body: Body, params: PrimitiveParams, rng, fps: float) -> Track:
    if name not in PRIMITIVES:
        raise KeyError(f"unknown primitive {name!r}; known: {', '.join(sorted(PRIMITIVES))}")
    return PRIMITIVES[name].track(body, params, fps=fps, rng=rng)


def compose_sequence(
    rng: np.random.Generator,
    body: Body,
    specs: list[tuple[str, PrimitiveParams]],
    *,
    fps: float = 20.0,
    transition_s: float = 0.4,
    styles: Seq[Callable[[Track], None] | None] = (),
) -> Sequence:
    """Play ``specs`` (primitive name, params) in order on ``body``; see the module docstring.

    The first primitive's ``facing`` sets the initial heading; later ones continue the heading.
    ``rng`` draws the natural variation (pose drift, tempo); the same seed gives the same joints.
    ``styles[i]``, where given and not None, changes the i-th primitive's track in place before
    the sequence is assembled (a performer's personal way of doing it, see ``world.target``).
    """
    tracks = [_track(name, body, params, rng, fps) for name, params in specs]
    for track, style in zip(tracks, styles, strict=False):
        if style is not None:
            style(track)
    return _compose(body, list(specs), tracks, fps=fps, transition_s=transition_s)


def _total(tracks: list[Track], fps: float, transition_s: float) -> int:
    n = sum(t.n for t in tracks)
    return n - sum(_window(fps, transition_s, a.n, b.n) for a, b in itertools.pairwise(tracks))


def _pick(rng: np.random.Generator, names: list[str], weights: np.ndarray, prev: str | None) -> str:
    if prev == "sit_down" and "stand_up" in names:
        return "stand_up"
    for _ in range(8):
        name = names[int(rng.choice(len(names), p=weights))]
        if name == "stand_up" and prev is not None and "sit_down" in names:
            continue  # one stands up after sitting down
        if name == "sit_down" and prev == "stand_up":
            continue
        return name
    return name


def sample_sequence(
    rng: np.random.Generator,
    body: Body,
    *,
    n_primitives: tuple[int, int] = (1, 4),
    min_seconds: float = 2.0,
    max_seconds: float = 10.0,
    allowed: Seq[str] | None = None,
    fps: float = 20.0,
    transition_s: float = 0.4,
) -> Sequence:
    """A random sequence of 1-4 primitives (``n_primitives``, inclusive) drawn from ``allowed``
    (default: all), lasting between ``min_seconds`` and ``max_seconds`` where reachable
    (repetitions and tempo are adjusted, primitives added or dropped)."""
    names = list(allowed) if allowed is not None else list(PRIMITIVES)
    unknown = [n for n in names if n not in PRIMITIVES]
    if not names or unknown:
        raise ValueError(f"allowed: unknown or empty primitive list {unknown or names}")
    weights = np.array([0.4 if n == "stand" else 1.0 for n in names])
    weights /= weights.sum()
    lo, hi = min_seconds * fps, max_seconds * fps
    k = int(rng.integers(n_primitives[0], n_primitives[1] + 1))
    specs: list[tuple[str, PrimitiveParams]] = []
    for _ in range(k):
        name = _pick(rng, names, weights, specs[-1][0] if specs else None)
        specs.append((name, PRIMITIVES[name].sample_params(rng)))
    tracks = [_track(n, body, p, rng, fps) for n, p in specs]

    def redo(i: int, params: PrimitiveParams) -> None:
        specs[i] = (specs[i][0], params)
        tracks[i] = _track(specs[i][0], body, params, rng, fps)

    for _ in range(24):
        total = _total(tracks, fps, transition_s)
        if total > hi:
            i = int(np.argmax([t.n for t in tracks]))
            name, p = specs[i]
            if p.repetitions > PRIMITIVES[name].reps[0]:
                redo(i, replace(p, repetitions=p.repetitions - 1))
            elif p.speed < 1.5:
                redo(i, replace(p, speed=min(p.speed * 1.2, 1.6)))
            elif len(specs) > 1:
                del specs[-1], tracks[-1]
            else:
                break
        elif total < lo:
            i = int(rng.integers(len(specs)))
            name, p = specs[i]
            if p.repetitions < PRIMITIVES[name].reps[1] + 2 and PRIMITIVES[name].reps[1] > 1:
                redo(i, replace(p, repetitions=p.repetitions + 1))
            elif len(specs) < n_primitives[1] and specs[-1][0] != "sit_down":
                name = _pick(rng, names, weights, specs[-1][0])
                specs.append((name, PRIMITIVES[name].sample_params(rng)))
                tracks.append(_track(name, body, specs[-1][1], rng, fps))
            elif p.speed > 0.65:
                redo(i, replace(p, speed=max(p.speed / 1.2, 0.6)))
            else:
                break
        else:
            break
    return _compose(body, specs, tracks, fps=fps, transition_s=transition_s)
