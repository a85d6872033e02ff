"""The target HAR domain: short NTU RGB+D-style clips seen through a different capture system.

Each clip shows one action class (named after a real one-person NTU RGB+D 120 class, see
``CLASSES``), performed by a numbered performer whose body (``sample_body(domain="target")``)
and personal style are fixed across their clips, so the cross-subject split is meaningful.
The domain is *shifted* from the source corpus the way a Kinect capture differs from mocap:

- other body proportions and another style distribution: amplitude drawn smaller and tempo
  faster than in the source, each performer with a personal bias, a dominant side, a
  habitual variant of some classes (``TargetClass.variants``: some stretch by twisting) and,
  for every class, a habitual *way* of doing it out of the class's repertoire of ``WAYS``
  (``class_way``: how the arms are held in a side kick, how far the trunk leans, …) plus a
  personal departure of their own (``personal_style``);
- the clip does not start and end with the action: it is padded with idle or unrelated
  motion and cropped at a random offset (sometimes cutting the action short);
- generated at 30 fps, then degraded: temporal jitter (irregular sampling times), a
  constant per-performer skeleton-fitting offset, smooth per-joint noise (larger on hands
  and feet), brief left/right leg swaps, occasional dropped frames (held or interpolated),
  and finally resampled 30 → 20 fps by linear interpolation, as NTU data is.

The ways and personal styles are what make ten shots too few: a classifier trained on ten
clips of a class sees a few of its ways, done by ten people, and must recognise the others;
one trained on every training clip sees all of them many times. ``WAY_DEVIATION`` is
calibrated with the HAR protocol (``kinemic evaluate --modes real,gt``; figures in docs/world.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter1d

from kinemic.io.ntu_names import NTU_CLASS_NAMES, XSUB_TRAIN_PERFORMERS, NTUName, is_two_person
from kinemic.resample import resample_frames
from kinemic.world import pose as P
from kinemic.world.body import Body, sample_body
from kinemic.world.compose import compose_sequence
from kinemic.world.primitives import PRIMITIVES, PrimitiveParams

FPS_CAPTURE = 30.0
FPS_OUT = 20.0
MIN_SECONDS = 1.5
MAX_JOINT_SPEED = 11.0  # m/s at 30 fps, with a margin under the world's 12 m/s limit
MAX_SECONDS = 4.0


@dataclass(frozen=True)
class TargetClass:
    """A target class: the NTU action number (1-based), the world primitive that performs it,
    the one caption written to ``ntu_metadata.json``, and other ways people perform it:
    ``variants`` ((primitive, probability), ...), e.g. some stretch by twisting the trunk."""

    action: int
    primitive: str
    caption: str
    variants: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if is_two_person(self.action):
            raise ValueError(f"A{self.action:03d} is a two-person class; the world has one actor")
        if sum(p for _, p in self.variants) >= 1.0:
            raise ValueError("the variants' probabilities must leave some to the main primitive")

    @property
    def primitives(self) -> tuple[str, ...]:
        return (self.primitive, *(v for v, _ in self.variants))

    @property
    def weights(self) -> np.ndarray:
        rest = [p for _, p in self.variants]
        return np.array([1.0 - sum(rest), *rest])

    @property
    def name(self) -> str:
        return NTU_CLASS_NAMES[self.action - 1]

    @property
    def label(self) -> int:
        return self.action - 1


#: The classes of the small and default scales, with kinematically confusable groups:
#: run on the spot / butt kicks, kicking something (a front kick) / side kick, jump up /
#: hopping, the arm thrusts point to something / throw (punch-like) against the kicks, hand
#: waving / arm circles, stretch oneself / cross toe touch. Variants make a class
#: multimodal: a few shots may miss how some performers do it.
CLASSES: tuple[TargetClass, ...] = (
    TargetClass(7, "throw", "A person throws something."),
    TargetClass(23, "wave", "A person waves a hand."),
    TargetClass(24, "front_kick", "A person kicks something.", (("side_kick", 0.15),)),
    TargetClass(26, "hop", "A person hops.", (("jump", 0.25),)),
    TargetClass(27, "jump", "A person jumps up."),
    TargetClass(31, "point", "A person points at something.", (("punch", 0.2),)),
    TargetClass(97, "arm_circles", "A person makes arm circles."),
    TargetClass(99, "run_on_spot", "A person runs on the spot."),
    TargetClass(100, "butt_kicks", "A person does butt kicks.", (("run_on_spot", 0.15),)),
    TargetClass(101, "cross_toe_touch", "A person does cross toe touches.", (("touch_toes", 0.2),)),
    TargetClass(102, "side_kick", "A person does a side kick.", (("back_kick", 0.2),)),
    TargetClass(104, "stretch", "A person stretches.", (("raise_arms", 0.2), ("twist", 0.2))),
)
#: The tiny scale: the paper's S0000 classes (A099, A102, A104) and three confusers.
TINY_ACTIONS = (24, 97, 99, 100, 102, 104)
#: The paper's few-shot split S0000: run on the spot, side kick, stretch oneself.
S0000_ACTIONS = (99, 102, 104)
#: Unrelated motion a clip may start or end with (besides standing still).
DISTRACTORS = ("turn", "side_step", "clap", "raise_arms")

# Noise standard deviation (metres) per joint: torso joints are tracked best, the extremities
# (wrists, ankles, feet) worst, as with a depth-camera skeleton.
_EXTREMITIES = (7, 8, 10, 11, 20, 21)
_LIMBS = (4, 5, 16, 17, 18, 19)
JOINT_NOISE = np.full(22, 0.0035)
JOINT_NOISE[list(_LIMBS)] = 0.0055
JOINT_NOISE[list(_EXTREMITIES)] = 0.008
# Constant per-performer offsets of the tracked joints from the true ones (metres): how the
# tracker fits this person's skeleton (clothing, build).
FIT_BIAS = np.full(22, 0.012)
FIT_BIAS[list(_LIMBS)] = 0.02
FIT_BIAS[list(_EXTREMITIES)] = 0.03
STYLE_SPREAD = 0.25  # std of a performer's log amplitude and log tempo bias
CLIP_SPREAD = 0.15  # std of a clip's log amplitude and log tempo around the performer's
# How each class is performed (``personal_style``): every class has a repertoire of ``WAYS``
# distinct ways (a joint-rotation pattern of std ``WAY_DEVIATION`` radians at the limbs, the
# same in every world), each performer habitually uses one of them, and adds a personal
# departure of std ``IDIOSYNCRASY``; ``_STYLE_JOINTS`` weighs the joints (the limbs that move
# most deviate most).
WAYS = 6
WAY_DEVIATION = 35.0 * P.D
HABITUAL_WAY = 0.85  # how often a performer does a class their habitual way
IDIOSYNCRASY = 12.0 * P.D
STYLE_MAX_SPEED = 6.0  # rad/s: the fastest the deviation from the textbook turns a joint
_STYLE_JOINTS = {
    P.SPINE1: 0.4,
    P.SPINE2: 0.4,
    P.SPINE3: 0.4,
    P.NECK: 0.5,
    P.HEAD: 0.6,
    P.L_COLLAR: 0.4,
    P.R_COLLAR: 0.4,
    P.L_SHOULDER: 1.0,
    P.R_SHOULDER: 1.0,
    P.L_ELBOW: 1.0,
    P.R_ELBOW: 1.0,
    P.L_HIP: 0.8,
    P.R_HIP: 0.8,
    P.L_KNEE: 0.8,
    P.R_KNEE: 0.8,
}


def class_of(action: int) -> TargetClass:
    for c in CLASSES:
        if c.action == action:
            return c
    raise KeyError(f"A{action:03d} is not one of the world's target classes")


@dataclass(frozen=True)
class Performer:
    """A target-domain performer: a body, a personal style (log-biases of amplitude and tempo,
    the dominant side) and how the tracker fits their skeleton (a constant offset per joint,
    metres, (22, 3)); all drawn from the performer's own generator."""

    id: int
    body: Body
    amplitude_bias: float
    speed_bias: float
    dominant: str
    fit_bias: np.ndarray
    habit_seed: int

    def primitive_for(self, target: TargetClass, rng: np.random.Generator) -> str:
        """How this performer does ``target``: their habitual variant 80 % of the time (the
        same in all their clips), otherwise a variant drawn by the class's weights."""
        if len(target.primitives) == 1:
            return target.primitive
        habit = np.random.default_rng([self.habit_seed, target.action])
        usual = target.primitives[int(habit.choice(len(target.primitives), p=target.weights))]
        if rng.random() < 0.8:
            return usual
        return target.primitives[int(rng.choice(len(target.primitives), p=target.weights))]


Pattern = Callable[[np.ndarray], np.ndarray]  # action progress (n, 1, 1) -> rotations (n, J, 3)


def _deviation_pattern(rng: np.random.Generator, scale: float) -> Pattern:
    """A slow joint-rotation pattern over an action, drawn from ``rng``: for each joint of
    ``_STYLE_JOINTS`` a constant offset and two harmonics (half to one, and one to two cycles
    over the action), of std ``scale`` × the joint's weight; a function of the action's
    progress u (n, 1, 1) in [0, 1] giving rotation vectors (n, joints, 3)."""
    weight = np.array(list(_STYLE_JOINTS.values()))[:, None] * scale
    offset = rng.normal(0.0, 0.5, size=(len(weight), 3)) * weight
    amp = rng.normal(0.0, 1.0, size=(2, *offset.shape)) * weight / np.sqrt(2)
    freq = np.array([rng.uniform(0.5, 1.0), rng.uniform(1.0, 2.0)])
    phase = rng.uniform(0.0, 2 * np.pi, size=(2, *offset.shape))

    def at(u: np.ndarray) -> np.ndarray:
        return offset + sum(amp[k] * np.sin(2 * np.pi * freq[k] * u + phase[k]) for k in range(2))

    return at


def class_way(target: TargetClass, way: int) -> Pattern:
    """The ``way``-th way (0 … ``WAYS`` - 1) of performing ``target``: a deviation pattern
    (``_deviation_pattern``) of std ``WAY_DEVIATION``, fixed by the class and the way alone."""
    return _deviation_pattern(np.random.default_rng([0x3A75, target.action, way]), WAY_DEVIATION)


def habitual_way(performer: Performer, target: TargetClass) -> int:
    """The way of ``target`` that ``performer`` habitually uses (the same in all their clips)."""
    return int(np.random.default_rng([performer.habit_seed, target.action, 2]).integers(WAYS))


def clip_way(performer: Performer, target: TargetClass, rng: np.random.Generator) -> int:
    """The way ``performer`` does ``target`` in one clip: their habitual one ``HABITUAL_WAY`` of
    the time, otherwise one drawn by ``rng`` (the style's first draws from the clip's
    generator)."""
    if rng.random() < HABITUAL_WAY:
        return habitual_way(performer, target)
    return int(rng.integers(WAYS))


def personal_style(
    performer: Performer, target: TargetClass, rng: np.random.Generator, *, fps: float
) -> Callable[[P.Track], None]:
    """How ``performer`` departs from the textbook ``target`` motion in one clip, as a change
    to its track: one of the class's ``WAYS`` ways (``class_way``, chosen by ``clip_way``),
    plus their own departure (a pattern of std ``IDIOSYNCRASY`` fixed per performer and
    class), varied ±20 % per clip,
    faded in and out over the first and last 15 % so transitions stay smooth, and slowed
    where needed so that no joint turns faster than ``STYLE_MAX_SPEED`` (a short, fast
    performance cannot carry a large slow pattern).

    This is what makes ten shots too few: ten clips of a class show a few of its ways, done
    by ten people; every training clip shows all of them, many times."""
    joints = np.array(list(_STYLE_JOINTS))
    shared = class_way(target, clip_way(performer, target, rng))
    own = _deviation_pattern(
        np.random.default_rng([performer.habit_seed, target.action, 1]), IDIOSYNCRASY
    )
    gain = float(np.clip(rng.normal(1.0, 0.2), 0.5, 1.5))

    def apply(track: P.Track) -> None:
        u = np.linspace(0.0, 1.0, track.n)[:, None, None]
        fade = np.clip(np.minimum(u, 1.0 - u) / 0.15, 0.0, 1.0)
        fade = fade * fade * (3 - 2 * fade)
        change = gain * fade * (shared(u) + own(u))
        speed = np.abs(np.diff(change, axis=0)).max(initial=0.0) * fps
        if speed > STYLE_MAX_SPEED:
            change *= STYLE_MAX_SPEED / speed
        track.aa[:, joints] += change

    return apply


def make_performer(performer_id: int, rng: np.random.Generator) -> Performer:
    body = sample_body(rng, domain="target")
    amp, speed = rng.normal(0.0, STYLE_SPREAD, size=2)
    dominant = "right" if rng.random() < 0.75 else "left"
    fit_bias = rng.normal(0.0, 1.0, size=(22, 3)) * FIT_BIAS[:, None]
    habit_seed = int(rng.integers(2**31))
    return Performer(performer_id, body, float(amp), float(speed), dominant, fit_bias, habit_seed)


def target_params(
    rng: np.random.Generator, primitive: str, performer: Performer
) -> PrimitiveParams:
    """Parameters in the target style: the source distribution shifted to smaller amplitude
    and faster tempo, biased by the performer, the dominant side 70 % of the time."""
    prim = PRIMITIVES[primitive]
    base = prim.sample_params(rng)
    noise = rng.normal(0.0, CLIP_SPREAD, size=2)
    amplitude = base.amplitude * 0.85 * np.exp(performer.amplitude_bias + noise[0])
    speed = base.speed * 1.12 * np.exp(performer.speed_bias + noise[1])
    side = base.side
    if prim.sided:
        other = "left" if performer.dominant == "right" else "right"
        side = performer.dominant if rng.random() < 0.7 else other
    return replace(
        base,
        amplitude=float(np.clip(amplitude, 0.35, 1.35)),
        speed=float(np.clip(speed, 0.5, min(2.2, 1.2 * prim.max_tempo))),  # humanly fast
        side=side,
        facing=0.0,
    )


@dataclass
class TargetClip:
    """A generated clip at 20 fps: ``joints`` (T, 22, 3) as captured (noisy), ``clean``
    (T, 22, 3) the true motion on the same frames, and the action's frame span within it."""

    joints: np.ndarray
    clean: np.ndarray
    action_span: tuple[int, int]
    primitive: str
    params: PrimitiveParams


def _pad_spec(rng: np.random.Generator) -> tuple[str, PrimitiveParams]:
    name = "stand" if rng.random() < 0.7 else DISTRACTORS[int(rng.integers(len(DISTRACTORS)))]
    params = replace(PRIMITIVES[name].sample_params(rng), repetitions=1, facing=0.0)
    return name, params


def make_target_clip(
    rng: np.random.Generator, target: TargetClass, performer: Performer
) -> TargetClip:
    """One clip of ``target`` performed by ``performer`` (see the module docstring); a
    performance whose joints would move faster than ``MAX_JOINT_SPEED`` is played slower."""
    primitive = performer.primitive_for(target, rng)
    params = target_params(rng, primitive, performer)
    specs = [_pad_spec(rng), (primitive, params), _pad_spec(rng)]
    style = personal_style(performer, target, rng, fps=FPS_CAPTURE)
    state = rng.bit_generator.state
    for _ in range(8):  # a fast performer on a big body can outrun a human: slow it down
        seq = compose_sequence(rng, performer.body, specs, fps=FPS_CAPTURE, styles=[None, style])
        speed = np.linalg.norm(np.diff(seq.joints, axis=0), axis=-1).max() * FPS_CAPTURE
        if speed <= MAX_JOINT_SPEED:
            break
        params = replace(params, speed=params.speed * 0.9)
        specs[1] = (primitive, params)
        rng.bit_generator.state = state  # the same variation, only slower
    joints = seq.joints
    a, b = seq.segments[1].start, seq.segments[1].end

    seconds = float(
        np.clip((b - a) / FPS_CAPTURE + rng.uniform(-0.6, 1.2), MIN_SECONDS, MAX_SECONDS)
    )
    n = round(seconds * FPS_CAPTURE)
    if len(joints) < n:  # too short to crop: hold the last pose
        joints = np.concatenate([joints, np.repeat(joints[-1:], n - len(joints), axis=0)])
    centre = (a + b) / 2 + rng.normal(0.0, 0.2 * n)
    start = int(np.clip(round(centre - n / 2), 0, len(joints) - n))
    clean = joints[start : start + n]
    captured = capture(rng, clean, bias=performer.fit_bias)
    span = (max(a - start, 0), min(b - start, n))
    to_out = FPS_OUT / FPS_CAPTURE
    span20 = (round(span[0] * to_out), round(span[1] * to_out))
    rate = {"fps_in": FPS_CAPTURE, "fps_out": FPS_OUT}
    return TargetClip(
        resample_frames(captured, **rate), resample_frames(clean, **rate), span20, primitive, params
    )


def capture(
    rng: np.random.Generator, joints: np.ndarray, *, bias: np.ndarray | None = None
) -> np.ndarray:
    """Degrade clean joints (T, 22, 3) at 30 fps as a depth-camera tracker would: irregular
    sampling times; a constant per-joint fitting ``bias`` (22, 3) in the body's heading frame
    plus a smaller per-clip one; temporally smooth per-joint noise (``JOINT_NOISE`` × a
    per-clip level); in 10 % of clips the legs swapped for a few frames; in 30 % of clips 1–3
    dropouts of 1–4 frames (held or interpolated)."""
    n = len(joints)
    jitter = gaussian_filter1d(rng.normal(0.0, 1.0, n), 2.0) * 0.3 / 0.37
    times = np.maximum.accumulate(np.clip(np.arange(n) + jitter, 0, n - 1))
    out = _interpolate(joints, times)

    sigma = 1.5
    kernel_norm = np.sqrt(1.0 / (2.0 * np.sqrt(np.pi) * sigma))  # std of smoothed unit noise
    white = rng.normal(0.0, 1.0, size=out.shape)
    smooth = gaussian_filter1d(white, sigma, axis=0, mode="nearest") / kernel_norm
    level = rng.uniform(0.6, 1.4)
    out = out + smooth * (JOINT_NOISE * level)[None, :, None]

    offset = rng.normal(0.0, 0.4, size=(22, 3)) * FIT_BIAS[:, None]
    if bias is not None:
        offset = offset + bias
    across = out[:, 1] - out[:, 2]  # right hip -> left hip: the body's +X
    yaw = np.arctan2(-across[:, 2], across[:, 0])[:, None]  # heading about +Y
    cos, sin = np.cos(yaw), np.sin(yaw)
    x, y, z = offset[:, 0], offset[:, 1], offset[:, 2]
    out = out + np.stack([cos * x + sin * z, np.broadcast_to(y, (n, 22)), cos * z - sin * x], -1)

    if rng.random() < 0.1:  # the tracker confuses the legs for a moment
        length = int(rng.integers(3, 11))
        s = int(rng.integers(0, max(1, n - length)))
        left, right = [4, 7, 10], [5, 8, 11]
        out[s : s + length, left + right] = out[s : s + length, right + left]

    if rng.random() < 0.3:
        for _ in range(int(rng.integers(1, 4))):
            length = int(rng.integers(1, 5))
            s = int(rng.integers(1, max(2, n - length - 1)))
            e = min(s + length, n - 1)
            if rng.random() < 0.5:
                out[s:e] = out[s - 1]
            else:
                w = ((np.arange(s, e) - (s - 1)) / (e - (s - 1)))[:, None, None]
                out[s:e] = (1 - w) * out[s - 1] + w * out[e]
    return out


def _interpolate(joints: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Joints (T, ...) linearly interpolated at fractional frame ``times`` (T',)."""
    lo = np.clip(np.floor(times).astype(int), 0, len(joints) - 1)
    hi = np.minimum(lo + 1, len(joints) - 1)
    w = (times - lo).reshape(-1, *([1] * (joints.ndim - 1)))
    return (1 - w) * joints[lo] + w * joints[hi]


# ---------------------------------------------------------------------------------------------
# Clip names and splits


@dataclass(frozen=True)
class ClipPlan:
    """What to generate for one clip: its index (seeds its generator), NTU name and class."""

    index: int
    name: NTUName
    target: TargetClass

    @property
    def xsub_train(self) -> bool:
        return self.name.performer in XSUB_TRAIN_PERFORMERS


def plan_clips(
    rng: np.random.Generator,
    classes: tuple[TargetClass, ...],
    *,
    train_per_class: int,
    val_per_class: int,
) -> list[ClipPlan]:
    """Unique NTU names for every clip: training clips get performers of the NTU-120
    cross-subject training set, validation clips the others; setups 1–32, cameras 1–3,
    replications 1–2 at random."""
    train_pool = sorted(XSUB_TRAIN_PERFORMERS)
    val_pool = [p for p in range(1, 107) if p not in XSUB_TRAIN_PERFORMERS]
    taken: set[NTUName] = set()
    plans: list[ClipPlan] = []
    for target in classes:
        for count, pool in ((train_per_class, train_pool), (val_per_class, val_pool)):
            for _ in range(count):
                while True:
                    name = NTUName(
                        setup=int(rng.integers(1, 33)),
                        camera=int(rng.integers(1, 4)),
                        performer=int(pool[int(rng.integers(len(pool)))]),
                        replication=int(rng.integers(1, 3)),
                        action=target.action,
                    )
                    if name not in taken:
                        break
                taken.add(name)
                plans.append(ClipPlan(len(plans), name, target))
    return plans
