"""Captions of the procedural world: free-text descriptions of primitive sequences.

Every primitive has two disjoint sets of phrases:

- **training templates** (``train_templates``): verb phrases with slots — ``{side}`` (left or
  right), ``{other}`` (the other side), ``{dir}`` (a direction phrase) — from which the source
  corpus captions are built, e.g. ``"kicks out to the side with the {side} leg"``;
- **evaluation captions** (``eval_captions``): whole-sentence paraphrases *reserved for
  evaluation* (text-to-motion retrieval, zero-shot prompts). They never appear in a generated
  training caption (``check_caption`` enforces it and the tests assert it).

Some primitives are **never named** in the source corpus (``NEVER_NAMED``): like "butt kicks"
in HumanML3D, the source describes them only by their kinematics ("jogs in place kicking the
heels up to the bottom"), so a target class of that name can only be found through motion.

A sequence's captions (``sequence_captions``) are 3–4 paraphrases of the whole sequence —
multi-primitive sequences as "then"-compositions, with body side, speed, direction and
repetitions where the parameters say so — plus, for multi-primitive sequences, sometimes a
sub-clip caption (``#start#end`` in seconds) that describes a single segment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kinemic.io.humanml3d import Caption
from kinemic.world.compose import Segment
from kinemic.world.primitives import PrimitiveParams


@dataclass(frozen=True)
class PrimitiveText:
    """Phrases of one primitive. ``train``: verb-phrase templates (third person, present);
    ``eval``: reserved whole captions; ``forbidden``: words that must never appear in any
    source caption (set for never-named primitives); ``counted``: repetitions are worth saying."""

    train: tuple[str, ...]
    eval: tuple[str, ...]
    forbidden: tuple[str, ...] = ()
    counted: bool = True


def _t(train: str, held_out: str, *, forbidden: str = "", counted: bool = True) -> PrimitiveText:
    return PrimitiveText(
        tuple(s.strip() for s in train.split("|")),
        tuple(s.strip() for s in held_out.split("|")),
        tuple(s.strip() for s in forbidden.split("|") if s.strip()),
        counted,
    )


# Training verb phrases | ... ; evaluation captions | ... (keep the two vocabularies apart).
TEXTS: dict[str, PrimitiveText] = {
    "stand": _t(
        "stands still|stands in place|waits standing|stands and does nothing",
        "a person remains motionless on the spot|someone idles without moving",
        counted=False,
    ),
    "walk": _t(
        "walks {dir}|takes a few steps {dir}|strolls {dir}|walks {dir} at a steady pace",
        "a person goes for a short stroll on foot|someone paces along calmly",
        counted=False,
    ),
    "walk_backwards": _t(
        "walks backwards|steps backwards|walks back a few steps|moves backward on foot",
        "a person retreats step by step facing ahead|someone reverses on foot",
        counted=False,
    ),
    "jog": _t(
        "jogs {dir}|runs slowly {dir}|jogs {dir} at an easy pace|does a light jog {dir}",
        "a person trots along lightly|someone goes at a gentle running pace",
        counted=False,
    ),
    "run": _t(
        "runs {dir}|sprints {dir}|runs {dir} quickly|dashes {dir}",
        "a person races ahead at full tilt|someone bolts off running",
        counted=False,
    ),
    "run_on_spot": _t(
        "runs in place|jogs on the spot|runs without moving from the spot|jogs in place",
        "a person runs while staying in one place|someone does stationary running",
        counted=False,
    ),
    "butt_kicks": _t(
        "jogs in place kicking the heels up to the bottom|runs on the spot bringing each heel "
        "up behind to the backside|jogs in place flicking the heels back toward the seat|"
        "jogs in place with the heels swinging high behind",
        "a person does butt kicks|someone performs butt kicks on the spot",
        forbidden="butt|butt kick|butt kicks",
        counted=False,
    ),
    "side_step": _t(
        "steps sideways {dir}|side steps {dir}|shuffles sideways {dir}|moves {dir} with "
        "sideways steps",
        "a person sidles over laterally|someone shifts across crabwise",
        counted=False,
    ),
    "turn": _t(
        "turns {dir}|turns around {dir}|rotates the body {dir}|turns {dir} on the spot",
        "a person pivots round|someone changes heading on the spot",
        counted=False,
    ),
    "jump": _t(
        "jumps up|jumps straight up|jumps in place|jumps up with both feet",
        "a person leaps vertically off both feet|someone springs upward from the floor",
    ),
    "hop": _t(
        "hops on the {side} leg|hops on one foot|hops on the {side} foot|jumps on the {side} "
        "leg only",
        "a person bounces on a single leg|someone does one-legged bounces",
    ),
    "jumping_jacks": _t(
        "does jumping jacks|jumps spreading the arms and legs|does star jumps|jumps with the "
        "arms going up and the legs apart",
        "a person performs a set of jacks|someone exercises with jack jumps",
    ),
    "front_kick": _t(
        "kicks forward with the {side} leg|kicks with the {side} foot|does a front kick with "
        "the {side} leg|kicks straight ahead with the {side} foot",
        "a person thrusts a foot out in front|someone delivers a forward kick",
    ),
    "side_kick": _t(
        "kicks out to the side with the {side} leg|does a side kick with the {side} leg|"
        "kicks sideways with the {side} foot|lifts the {side} leg and kicks to the side",
        "a person performs a lateral kick|someone strikes sideways with a foot",
    ),
    "back_kick": _t(
        "kicks backwards with the {side} leg|kicks behind with the {side} foot|does a back "
        "kick with the {side} leg|kicks the {side} leg back",
        "a person strikes rearward with a foot|someone delivers a kick to the rear",
    ),
    "punch": _t(
        "punches forward with the {side} hand|punches with the {side} fist|throws a punch "
        "with the {side} arm|jabs forward with the {side} fist",
        "a person strikes ahead with a fist|someone delivers a straight blow",
    ),
    "uppercut": _t(
        "does an uppercut with the {side} hand|punches upward with the {side} fist|swings "
        "the {side} fist up|throws an uppercut with the {side} arm",
        "a person strikes upward from below|someone lands a rising blow",
    ),
    "wave": _t(
        "waves with the {side} hand|waves the {side} hand|raises the {side} hand and waves|"
        "waves hello with the {side} arm",
        "a person greets with a hand waving|someone signals hello by hand",
        counted=False,
    ),
    "arm_circles": _t(
        "circles the arms {dir}|makes circles with both arms|rotates the arms {dir} in "
        "circles|swings the arms around in circles",
        "a person does arm circles|someone performs arm circles at shoulder height",
    ),
    "clap": _t(
        "claps the hands|claps|claps the hands together|applauds",
        "a person brings the palms together noisily|someone gives a round of applause",
    ),
    "raise_arms": _t(
        "raises both arms {dir}|lifts the arms up {dir}|puts both hands up|raises the arms {dir} "
        "above the head",
        "a person elevates the arms overhead|someone reaches both hands skyward",
    ),
    "stretch": _t(
        "stretches the arms up over the head|reaches up high with both arms|stretches "
        "upward|extends the arms overhead and leans back",
        "a person stretches oneself|someone does a full body stretch",
    ),
    "throw": _t(
        "throws something with the {side} hand|throws with the {side} arm|throws a ball "
        "overhand with the {side} hand|makes a throwing motion with the {side} arm",
        "a person hurls an object away|someone tosses a ball overarm",
    ),
    "point": _t(
        "points forward with the {side} hand|points with the {side} arm|extends the {side} "
        "arm and points|points at something with the {side} hand",
        "a person indicates a spot with a finger|someone gestures toward something",
    ),
    "squat": _t(
        "squats down|does a squat|bends the knees and squats|squats and stands back up",
        "a person crouches low and rises|someone sinks down into a squat",
    ),
    "lunge": _t(
        "lunges forward with the {side} leg|does a lunge with the {side} leg|steps forward "
        "into a lunge with the {side} foot|lunges with the {side} leg",
        "a person drops into a forward lunge|someone does a split squat",
    ),
    "bow": _t(
        "bows|bends forward at the waist|bows down|leans forward and bows",
        "a person takes a bow|someone inclines the upper body politely",
    ),
    "cross_toe_touch": _t(
        "bends down and touches each foot with the opposite hand|reaches across the body "
        "with one hand to the opposite foot, alternating sides|bends over twisting and taps "
        "the opposite foot with each hand|alternately reaches each hand down to the other foot",
        "a person does cross toe touches|someone performs cross toe touch exercises",
        forbidden="toe touch|toe touches|cross toe",
    ),
    "touch_toes": _t(
        "bends forward and touches the toes|reaches down to the feet with both hands|bends "
        "down touching the feet with both hands|folds forward and reaches for the toes",
        "a person does a forward fold to the feet|someone stretches down to the floor",
    ),
    "twist": _t(
        "twists the upper body|rotates the torso from side to side|twists at the waist|"
        "turns the shoulders left and right",
        "a person swivels the trunk|someone does waist rotations",
    ),
    "sit_down": _t(
        "sits down|sits down on a chair|lowers down into a seat|takes a seat",
        "a person seats themselves|someone settles onto a chair",
        counted=False,
    ),
    "stand_up": _t(
        "stands up|gets up from a chair|rises from sitting|stands up from a seat",
        "a person gets to their feet|someone goes from seated to upright",
        counted=False,
    ),
    "drink": _t(
        "drinks from a cup with the {side} hand|brings a cup to the mouth and drinks|takes a "
        "drink with the {side} hand|lifts a bottle to the mouth with the {side} hand",
        "a person sips a beverage|someone has a drink of water",
    ),
    "phone_call": _t(
        "holds a phone to the ear with the {side} hand|talks on the phone|raises the {side} "
        "hand to the ear as if on the phone|answers a phone call with the {side} hand",
        "a person makes a telephone call|someone chats on a mobile",
    ),
}

SUBJECTS = ("a person", "someone", "a man", "a woman", "the person", "a human")
_DIRECTIONS = {
    "forward": ("forward", "forwards", "ahead"),
    "backward": ("backward", "backwards"),
    "left": ("to the left", "left", "toward the left"),
    "right": ("to the right", "right", "toward the right"),
    "circle_left": ("in a circle to the left", "in a counterclockwise circle"),
    "circle_right": ("in a circle to the right", "in a clockwise circle"),
    "around": ("around",),
}
_FAST = ("quickly", "fast", "rapidly", "at a fast pace")
_SLOW = ("slowly", "at a slow pace", "gently")
_COUNTS = {
    2: ("twice", "two times"),
    3: ("three times", "thrice"),
    4: ("four times",),
    5: ("five times",),
    6: ("six times",),
}
_THEN = (", then ", " and then ", ", and then ", ", after that ")
FAST_SPEED = 1.3  # params.speed at or above this is said to be fast
SLOW_SPEED = 0.75  # ... at or below this, slow
NEVER_NAMED: dict[str, tuple[str, ...]] = {k: v.forbidden for k, v in TEXTS.items() if v.forbidden}


def text_of(primitive: str) -> PrimitiveText:
    """The phrases of a primitive; a primitive without an entry gets a plain fallback
    built from its name (e.g. ``"arm_raise"`` → "does an arm raise")."""
    if primitive in TEXTS:
        return TEXTS[primitive]
    words = primitive.replace("_", " ")
    return PrimitiveText(
        (f"does {words}", f"performs {words}", f"does some {words}"),
        (f"a person is seen doing {words}",),
    )


def train_templates(primitive: str) -> list[str]:
    """Verb-phrase templates used to caption ``primitive`` in the source corpus."""
    return list(text_of(primitive).train)


def eval_captions(primitive: str) -> list[str]:
    """Whole-sentence paraphrases reserved for evaluation: never in a training caption."""
    return list(text_of(primitive).eval)


def all_eval_captions() -> list[str]:
    """Every reserved evaluation caption, of every primitive."""
    return [c for p in TEXTS for c in TEXTS[p].eval]


def _phrases_regex(phrases: Sequence[str]) -> re.Pattern[str]:
    """Matches any of ``phrases`` as whole words, case-insensitively."""
    return re.compile(r"\b(?:" + "|".join(re.escape(p.lower()) for p in phrases) + r")\b")


_RESERVED = _phrases_regex(all_eval_captions())
_FORBIDDEN = _phrases_regex([w for words in NEVER_NAMED.values() for w in words])


def check_caption(text: str) -> None:
    """Raise ValueError when ``text`` holds a reserved evaluation caption or a forbidden name."""
    lowered = text.lower()
    if m := _RESERVED.search(lowered):
        raise ValueError(f"caption {text!r} contains the reserved evaluation caption {m[0]!r}")
    if m := _FORBIDDEN.search(lowered):
        raise ValueError(f"caption {text!r} names a never-named primitive ({m[0]!r})")


# ---------------------------------------------------------------------------------------------
# Building captions


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _direction(params: PrimitiveParams, primitive: str) -> str:
    direction = params.direction
    if primitive == "turn":
        return {"left": "to the left", "right": "to the right"}.get(direction or "", "around")
    return direction or "forward"


def describe(
    primitive: str, params: PrimitiveParams, rng: np.random.Generator, *, modifiers: bool = True
) -> str:
    """One verb phrase (no subject) for a primitive with its parameters, e.g.
    ``"kicks out to the side with the left leg twice quickly"``."""
    text = text_of(primitive)
    phrase = _pick(rng, text.train)
    side = params.side or _pick(rng, ("left", "right"))
    other = "right" if side == "left" else "left"
    dir_key = _direction(params, primitive)
    dir_phrase = _pick(rng, _DIRECTIONS.get(dir_key, (dir_key.replace("_", " "),)))
    phrase = phrase.format(side=side, other=other, dir=dir_phrase)
    if not modifiers:
        return phrase
    extras = []
    if text.counted and params.repetitions >= 2 and rng.random() < 0.7:
        n = params.repetitions
        extras.append(_pick(rng, _COUNTS.get(n, ("repeatedly", "several times"))))
    if params.speed >= FAST_SPEED and rng.random() < 0.7 and "quickly" not in phrase:
        extras.append(_pick(rng, _FAST))
    elif params.speed <= SLOW_SPEED and rng.random() < 0.7 and "slowly" not in phrase:
        extras.append(_pick(rng, _SLOW))
    rng.shuffle(extras)
    return " ".join([phrase, *extras])


def _spoken(segments: Sequence[Segment]) -> list[Segment]:
    """Segments worth a mention: idle stretches between actions are left out."""
    active = [s for s in segments if s.primitive != "stand"]
    return active or list(segments[:1])


def whole_caption(segments: Sequence[Segment], rng: np.random.Generator) -> str:
    """One caption of a whole sequence: subject + verb phrases joined with "then"."""
    phrases = [describe(s.primitive, s.params, rng) for s in _spoken(segments)]
    text = phrases[0]
    for k, phrase in enumerate(phrases[1:], start=1):
        last = k == len(phrases) - 1
        joiner = ", and finally " if last and len(phrases) > 2 and rng.random() < 0.5 else None
        joiner = joiner or _pick(rng, _THEN)
        text += joiner + phrase
    if len(phrases) > 1 and rng.random() < 0.2:
        text = "first " + text if rng.random() < 0.5 else text
    return f"{_pick(rng, SUBJECTS)} {text}"


def sequence_captions(
    segments: Sequence[Segment], rng: np.random.Generator, *, fps: float = 20.0
) -> list[Caption]:
    """3–4 distinct whole-sequence captions, plus (for multi-primitive sequences, half of the
    time) a sub-clip caption for one segment with its span in seconds."""
    want = int(rng.integers(3, 5))
    texts: list[str] = []
    for _ in range(6 * want):
        text = whole_caption(segments, rng)
        if text not in texts:
            texts.append(text)
        if len(texts) == want:
            break
    captions = [Caption.from_text(t) for t in texts]
    spoken = [s for s in segments if s.primitive != "stand"]
    if len(spoken) > 1 and rng.random() < 0.5:
        seg = spoken[int(rng.integers(len(spoken)))]
        text = f"{_pick(rng, SUBJECTS)} {describe(seg.primitive, seg.params, rng)}"
        start, end = round(seg.start / fps, 2), round(seg.end / fps, 2)
        captions.append(Caption.from_text(text, start=start, end=end))
    for cap in captions:
        check_caption(cap.text)
    return captions
