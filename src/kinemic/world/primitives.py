"""Primitive actions of the procedural world and their parameters.

A ``Primitive`` is a named, parametric action: ``motion(body, params)`` returns the local
joint rotations and the root trajectory of one performance of it. The actions themselves are
written in ``primitives_locomotion``, ``primitives_arms`` and ``primitives_body`` as functions
of time returning a ``pose.Track``; ``PRIMITIVES`` below lists them all, explicitly.

Parameters: ``amplitude`` (size of the movement), ``speed`` (tempo), ``side`` (which arm or
leg; one-sided actions are written for the right side and mirrored), ``repetitions``,
``facing`` (initial heading) and ``direction`` (locomotion, turns).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from kinemic.world import primitives_arms as arms
from kinemic.world import primitives_body as bodym
from kinemic.world import primitives_locomotion as loco
from kinemic.world.body import Body
from kinemic.world.pose import Track, local_rotations, mirror, place_root, vary

Category = Literal[
    "locomotion", "jump", "kick", "punch", "arm", "body", "transition", "object", "idle"
]


@dataclass(frozen=True)
class PrimitiveParams:
    """How a primitive is performed (see the module docstring)."""

    amplitude: float = 1.0  # 0.6..1.4 typical
    speed: float = 1.0  # tempo multiplier 0.6..1.6
    side: Literal["left", "right"] | None = None  # for one-sided actions
    repetitions: int = 1
    facing: float = 0.0  # initial heading, radians about +Y (0 = facing +Z)
    direction: str | None = (
        None  # locomotion: forward/backward/left/right/circle_*; turn: left/right
    )

    def __post_init__(self) -> None:
        if not (self.amplitude > 0 and self.speed > 0):
            raise ValueError(f"amplitude and speed must be > 0, got {self.amplitude}, {self.speed}")
        if self.side not in (None, "left", "right"):
            raise ValueError(f"side must be 'left', 'right' or None, not {self.side!r}")
        if self.repetitions < 1:
            raise ValueError(f"repetitions must be >= 1, got {self.repetitions}")


@dataclass
class Motion:
    """One primitive on one body: local rotations (T, 22, 4) (see ``body.forward_kinematics``),
    root positions (T, 3) with the lowest foot on y = 0, and the flight height ``lift`` (T,)
    (> 0 where both feet are off the floor)."""

    local_rot: np.ndarray
    root_pos: np.ndarray
    lift: np.ndarray | None = None


_MIRROR_DIRECTION = ("side_step", "turn")  # written for "left"; "right" is the mirror

Generator = Callable[[Body, PrimitiveParams, np.random.Generator, float], Track]


@dataclass(frozen=True)
class Primitive:
    """A named parametric action.

    ``reps``: range of repetitions (inclusive) ``sample_params`` draws from; ``directions``:
    the directions it draws from (mirrored ones: "right" for side steps and turns); ``mirrored``:
    the side/direction value that is the mirror image of what ``generate`` writes.
    """

    name: str
    category: str
    sided: bool
    generate: Generator
    reps: tuple[int, int] = (1, 1)
    directions: tuple[str, ...] = ()
    max_tempo: float = 1.3  # fast actions draw a lower top tempo to stay humanly fast

    def sample_params(self, rng: np.random.Generator) -> PrimitiveParams:
        """Random parameters: amplitude 0.7-1.3, speed 0.75-max_tempo, side, repetitions, facing."""
        side = ("left", "right")[int(rng.integers(2))] if self.sided else None
        direction = (
            self.directions[int(rng.integers(len(self.directions)))] if self.directions else None
        )
        return PrimitiveParams(
            amplitude=float(rng.uniform(0.7, 1.3)),
            speed=float(rng.uniform(0.75, self.max_tempo)),
            side=side,
            repetitions=int(rng.integers(self.reps[0], self.reps[1] + 1)),
            facing=float(rng.uniform(-np.pi, np.pi)),
            direction=direction,
        )

    def track(
        self,
        body: Body,
        params: PrimitiveParams,
        *,
        fps: float = 20.0,
        rng: np.random.Generator | None = None,
    ) -> Track:
        """The anatomical track of one performance; ``rng`` adds natural variation."""
        vrng = rng if rng is not None else np.random.default_rng(0)
        tr = self.generate(body, params, vrng, fps)
        if params.side == "left" or (
            self.name in _MIRROR_DIRECTION and params.direction == "right"
        ):
            tr = mirror(tr)
        if rng is not None:
            vary(tr, rng, fps)
        return tr

    def motion(
        self,
        body: Body,
        params: PrimitiveParams,
        *,
        fps: float = 20.0,
        rng: np.random.Generator | None = None,
    ) -> Motion:
        """Local rotations and root trajectory of one performance on ``body``, facing
        ``params.facing``, starting at the XZ origin. Deterministic without ``rng``."""
        tr = self.track(body, params, fps=fps, rng=rng)
        local = local_rotations(tr, params.facing)
        _, root = place_root(body, local, tr.lift, tr.stance)
        return Motion(local_rot=local, root_pos=root, lift=tr.lift)


def _p(
    name: str,
    category: str,
    fn: Generator,
    *,
    sided: bool = False,
    reps: tuple[int, int] = (1, 1),
    directions: tuple[str, ...] = (),
    max_tempo: float = 1.3,
) -> Primitive:
    return Primitive(name, category, sided, fn, reps, directions, max_tempo)


_GAIT_DIRECTIONS = ("forward",) * 3 + ("circle_left", "circle_right")

_ALL = (
    # locomotion
    _p("walk", "locomotion", loco.walk, reps=(2, 5), directions=_GAIT_DIRECTIONS),
    _p("walk_backwards", "locomotion", loco.walk_backwards, reps=(2, 4), directions=("backward",)),
    _p("jog", "locomotion", loco.jog, reps=(3, 6), directions=_GAIT_DIRECTIONS, max_tempo=1.1),
    _p("run", "locomotion", loco.run, reps=(3, 7), directions=("forward",), max_tempo=1.1),
    _p("side_step", "locomotion", loco.side_step, reps=(2, 4), directions=("left", "right")),
    _p("turn", "locomotion", loco.turn, directions=("left", "right")),
    _p("run_on_spot", "locomotion", loco.run_on_spot, reps=(3, 7)),
    _p("butt_kicks", "locomotion", loco.butt_kicks, reps=(3, 7), max_tempo=1.1),
    # jumps
    _p("jump", "jump", loco.jump, reps=(1, 3), max_tempo=1.1),
    _p("jumping_jacks", "jump", loco.jumping_jacks, reps=(2, 5)),
    _p("hop", "jump", loco.hop, sided=True, reps=(2, 5)),
    # kicks and punches
    _p("front_kick", "kick", bodym.front_kick, sided=True, reps=(1, 2), max_tempo=1.1),
    _p("side_kick", "kick", bodym.side_kick, sided=True, reps=(1, 2), max_tempo=1.1),
    _p("back_kick", "kick", bodym.back_kick, sided=True, reps=(1, 2), max_tempo=1.1),
    _p("punch", "punch", arms.punch, sided=True, reps=(1, 4)),
    _p("uppercut", "punch", arms.uppercut, sided=True, reps=(1, 3)),
    # arm gestures
    _p("wave", "arm", arms.wave, sided=True, reps=(2, 5)),
    _p("point", "arm", arms.point, sided=True, reps=(1, 2)),
    _p("arm_circles", "arm", arms.arm_circles, reps=(3, 6), directions=("forward", "backward")),
    _p("raise_arms", "arm", arms.raise_arms, reps=(1, 3), directions=("forward", "sideways")),
    _p("clap", "arm", arms.clap, reps=(3, 8)),
    # body
    _p("squat", "body", bodym.squat, reps=(1, 3)),
    _p("bow", "body", bodym.bow),
    _p("touch_toes", "body", bodym.touch_toes, reps=(1, 2)),
    _p("stretch", "body", bodym.stretch, reps=(1, 2)),
    _p("twist", "body", bodym.twist_torso, reps=(2, 4)),
    _p("lunge", "body", bodym.lunge, sided=True),
    _p("cross_toe_touch", "body", bodym.cross_toe_touch, reps=(2, 4)),
    # transitions
    _p("sit_down", "transition", bodym.sit_down),
    _p("stand_up", "transition", bodym.stand_up),
    # objects
    _p("throw", "object", arms.throw, sided=True, max_tempo=1.1),
    _p("drink", "object", arms.drink, sided=True),
    _p("phone_call", "object", arms.phone_call, sided=True, reps=(1, 3)),
    # idle
    _p("stand", "idle", bodym.stand),
)

#: Every primitive by name (>= 30 actions plus the idle "stand").
PRIMITIVES: dict[str, Primitive] = {p.name: p for p in _ALL}
