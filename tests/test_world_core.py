"""The procedural world's core: bodies, primitives, composition.

Properties checked over every primitive with random parameters and bodies: rigid bones,
bounded speeds, feet on the floor, no skating, plausible root height, facing the walking
direction, segments that tile the clip, determinism, and left/right conventions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kinemic.features import foot_contacts, process_joints
from kinemic.skeleton import SMPL22_PARENTS
from kinemic.world.body import Body, forward_kinematics, make_body, sample_body
from kinemic.world.compose import Sequence, compose_sequence, sample_sequence
from kinemic.world.primitives import PRIMITIVES, PrimitiveParams

FPS = 20.0
REQUIRED = {
    "walk",
    "walk_backwards",
    "jog",
    "run",
    "turn",
    "side_step",
    "jump",
    "front_kick",
    "side_kick",
    "back_kick",
    "punch",
    "wave",
    "arm_circles",
    "raise_arms",
    "clap",
    "point",
    "squat",
    "bow",
    "touch_toes",
    "stretch",
    "twist",
    "lunge",
    "sit_down",
    "stand_up",
    "throw",
    "drink",
    "phone_call",
    "jumping_jacks",
    "run_on_spot",
    "butt_kicks",
    "cross_toe_touch",
    "stand",
}
FEET = [7, 10, 8, 11]


def _bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(T, 21) bone lengths of joints (T, 22, 3)."""
    par = np.array(SMPL22_PARENTS[1:])
    return np.linalg.norm(joints[:, 1:] - joints[:, par], axis=-1)


@pytest.fixture(scope="module")
def clips() -> list[tuple[str, PrimitiveParams, Sequence]]:
    """Every primitive, 3 random parameter sets on random source/target bodies."""
    rng = np.random.default_rng(123)
    out = []
    for name, prim in PRIMITIVES.items():
        for k in range(3):
            body = sample_body(rng, domain="target" if k == 2 else "source")
            params = prim.sample_params(rng)
            out.append((name, params, compose_sequence(rng, body, [(name, params)])))
    return out


@pytest.fixture(scope="module")
def mixes() -> list[Sequence]:
    rng = np.random.default_rng(7)
    return [sample_sequence(rng, sample_body(rng)) for _ in range(40)]


def _all(clips, mixes):
    return [s for _, _, s in clips] + list(mixes)


def test_registry_covers_the_issue():
    assert set(PRIMITIVES) >= REQUIRED
    assert len(PRIMITIVES) - 1 >= 30
    cats = {"locomotion", "jump", "kick", "punch", "arm", "body", "transition", "object", "idle"}
    for name, prim in PRIMITIVES.items():
        assert prim.name == name and prim.category in cats


def test_body_sampling():
    rng = np.random.default_rng(0)
    src = [sample_body(rng) for _ in range(300)]
    tgt = [sample_body(rng, domain="target") for _ in range(300)]
    hs = np.array([b.height for b in src])
    assert hs.min() >= 1.5 and hs.max() <= 1.95 and hs.std() > 0.05
    for b in src[:20]:
        lengths = b.bone_lengths
        assert np.allclose(
            lengths[[1, 4, 7, 10, 13, 16, 18, 20]], lengths[[2, 5, 8, 11, 14, 17, 19, 21]]
        )
    # the target domain has other proportions: arms relative to legs
    ratio = lambda bs: np.mean([b.bone_lengths[18] / b.bone_lengths[4] for b in bs])  # noqa: E731
    assert ratio(tgt) > ratio(src) * 1.04
    with pytest.raises(ValueError):
        sample_body(rng, domain="other")  # type: ignore[arg-type]


def test_rest_pose_conventions():
    """Standing still: arms hang by the sides, left side at +X, facing +Z, height as asked."""
    body = make_body(1.8)
    j = compose_sequence(np.random.default_rng(0), body, [("stand", PrimitiveParams())]).joints
    f = j[0]
    assert f[1, 0] > 0 and f[16, 0] > 0 and f[20, 0] > 0  # left side at +X
    assert f[20, 1] < f[18, 1] < f[16, 1] and f[21, 1] < f[19, 1] < f[17, 1]  # arms down
    assert f[10, 2] > f[7, 2]  # toes point forward (+Z)
    assert 1.55 < f[15, 1] < 1.8
    assert abs(f[[10, 11], 1].min()) < 1e-9


def test_bone_lengths_are_constant(clips, mixes):
    for seq in _all(clips, mixes):
        lengths = _bone_lengths(seq.joints)
        rel = np.abs(lengths / lengths[:1] - 1.0)
        assert rel.max() < 1e-6
        expected = seq.body.bone_lengths[1:]
        assert np.allclose(lengths[0], expected, rtol=1e-9)


def test_fk_matches_bone_lengths_for_random_rotations():
    rng = np.random.default_rng(1)
    body = sample_body(rng)
    q = rng.normal(size=(5, 22, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    j = forward_kinematics(body, q, rng.normal(size=(5, 3)))
    assert np.allclose(_bone_lengths(j), body.bone_lengths[1:], rtol=1e-9)
    with pytest.raises(ValueError):
        forward_kinematics(body, q[:, :21], np.zeros((5, 3)))


def test_finite_and_speeds_below_12_m_s(clips, mixes):
    for seq in _all(clips, mixes):
        assert np.isfinite(seq.joints).all()
        speed = np.linalg.norm(np.diff(seq.joints, axis=0), axis=-1) * FPS
        assert speed.max() < 12.0, (speed.max(), [s.primitive for s in seq.segments])


def _stationary(joints: np.ndarray) -> np.ndarray:
    """(T-1, 4) foot contacts of ``features.foot_contacts``, kept where the foot joint is still
    (< 1 cm per frame) on at least 3 consecutive frames.

    The HumanML3D threshold alone (squared displacement < 0.002 m², i.e. slower than 0.9 m/s
    at 20 fps) also flags feet at the top of a kick or held up while hopping, in real data too.
    """
    contact = foot_contacts(joints) > 0
    slow = (np.diff(joints[:, FEET], axis=0) ** 2).sum(-1) < 1e-4
    run = np.zeros_like(slow)
    for k in range(len(slow) - 2):
        run[k : k + 3] |= slow[k : k + 3].all(0)
    return contact & run


def test_feet_on_the_floor_when_in_contact(clips, mixes):
    for seq in _all(clips, mixes):
        feet = seq.joints[:, FEET]
        assert abs(feet[..., 1].min()) < 1e-6  # floor at y = 0
        assert seq.joints[..., 1].min() > -1e-6  # nothing below it
        contact = _stationary(seq.joints)  # (T-1, 4)
        # a still foot joint is at most a foot length (+3 cm) up: the ankle of a foot standing
        # on its toes; and the lower joint of that foot is near the floor (within 8 cm)
        tol = seq.body.bone_lengths[10] + 0.03
        heights = feet[1:, :, 1]
        bad = heights[contact] >= tol
        assert not bad.any(), ([s.primitive for s in seq.segments], heights[contact][bad], tol)
        sole = np.repeat(np.minimum(heights[:, 0::2], heights[:, 1::2]), 2, axis=1)
        assert (sole[contact] < 0.08).all(), (
            [s.primitive for s in seq.segments],
            sole[contact].max(),
        )


def test_locomotion_does_not_skate(clips):
    """The lowest foot joint, when on the floor on two consecutive frames, stays put."""
    for name, _, seq in clips:
        if PRIMITIVES[name].category not in ("locomotion", "jump"):
            continue
        feet = seq.joints[:, FEET]
        low = feet[..., 1].argmin(1)
        y = feet[..., 1].min(1)
        same = (low[1:] == low[:-1]) & (y[1:] < 1e-6) & (y[:-1] < 1e-6)
        idx = np.nonzero(same)[0]
        slide = np.linalg.norm(
            feet[idx + 1, low[idx]][:, [0, 2]] - feet[idx, low[idx]][:, [0, 2]], axis=-1
        )
        assert np.quantile(slide, 0.95) < 0.015, (name, np.quantile(slide, 0.95))
        assert np.median(slide) < 0.002, name


def test_root_height_is_plausible(clips, mixes):
    for seq in _all(clips, mixes):
        scale = seq.body.height / 1.72
        y = seq.joints[:, 0, 1]
        assert y.min() > 0.25
        assert 0.6 * scale < np.median(y) < 1.2 * scale or any(
            s.primitive in ("sit_down", "stand_up", "squat", "lunge") for s in seq.segments
        )
    squat = [s for n, _, s in clips if n == "squat"]
    assert all(s.joints[:, 0, 1].min() < 0.8 * s.joints[0, 0, 1] for s in squat)


def _facing(joints: np.ndarray) -> np.ndarray:
    across = (joints[:, 2] - joints[:, 1]) + (joints[:, 17] - joints[:, 16])
    fwd = np.cross(np.array([0.0, 1.0, 0.0]), across)[:, [0, 2]]
    return fwd / np.linalg.norm(fwd, axis=-1, keepdims=True)


@pytest.mark.parametrize(
    "name,direction,expected",
    [
        ("walk", "forward", 0),
        ("jog", "forward", 0),
        ("run", "forward", 0),
        ("walk_backwards", "backward", 180),
        ("side_step", "left", 90),
        ("side_step", "right", -90),
    ],
)
def test_body_faces_its_walking_direction(name, direction, expected):
    """Velocity direction relative to facing: 0° ahead, 180° behind, ±90° sideways (+ = left)."""
    rng = np.random.default_rng(5)
    for _ in range(4):
        body = sample_body(rng)
        p = PrimitiveParams(
            amplitude=rng.uniform(0.8, 1.2),
            speed=rng.uniform(0.8, 1.2),
            repetitions=4,
            facing=rng.uniform(-3, 3),
            direction=direction,
        )
        j = compose_sequence(rng, body, [(name, p)]).joints
        n = len(j)
        a, b = n // 4, 3 * n // 4
        vel = (j[b, 0] - j[a, 0])[[0, 2]]
        assert np.linalg.norm(vel) / ((b - a) / FPS) > 0.15  # it does move
        face = _facing(j[a:b]).mean(0)
        # angle from facing to velocity about +Y (+Y turns +Z toward +X, the body's left)
        ang = np.degrees(np.arctan2(face[1] * vel[0] - face[0] * vel[1], face @ vel))
        diff = (ang - expected + 180) % 360 - 180
        assert abs(diff) < 30, (name, direction, ang)


@pytest.mark.parametrize(
    "name,low,high", [("run_on_spot", 0.0, 0.15), ("butt_kicks", 0.0, 0.3), ("jog", 1.0, np.inf)]
)
def test_in_place_gaits_stay_in_place(name, low, high):
    """A run on the spot and butt kicks lift the knees or heels without going anywhere: the
    pelvis moves on average less than ``high`` m/s from start to end (before world version 4:
    0.8 and 0.6 m/s). Butt kicks still drift some where a kicked heel dips below the landing
    foot. A jog, for contrast, moves at over ``low`` = 1 m/s."""
    rng = np.random.default_rng(11)
    speeds = []
    for _ in range(8):
        body = sample_body(rng)
        j = compose_sequence(rng, body, [(name, PRIMITIVES[name].sample_params(rng))]).joints
        speeds.append(np.linalg.norm((j[-1, 0] - j[0, 0])[[0, 2]]) / (len(j) / FPS))
    assert low < np.mean(speeds) < high, (name, np.round(speeds, 2))


def test_segments_tile_and_match(mixes):
    rng = np.random.default_rng(3)
    body = sample_body(rng)
    specs = [(n, PRIMITIVES[n].sample_params(rng)) for n in ("wave", "walk", "squat", "punch")]
    seq = compose_sequence(rng, body, specs)
    assert [s.primitive for s in seq.segments] == [n for n, _ in specs]
    assert [s.params for s in seq.segments] == [p for _, p in specs]
    for s in [seq, *mixes]:
        segs = s.segments
        assert segs[0].start == 0 and segs[-1].end == len(s.joints)
        assert all(a.end == b.start and a.start < a.end for a, b in itertools.pairwise(segs))
    for s in mixes:
        assert 2.0 * FPS <= len(s.joints) <= 10.0 * FPS
        assert 1 <= len(s.segments) <= 4
    # the squat segment is where the pelvis goes down
    sq = seq.segments[2]
    y = seq.joints[:, 0, 1]
    assert y[sq.start : sq.end].min() < y[: seq.segments[1].end].min() - 0.15


def test_same_seed_same_sequence():
    def make(seed):
        rng = np.random.default_rng(seed)
        return sample_sequence(rng, sample_body(rng))

    a, b, c = make(11), make(11), make(12)
    assert np.array_equal(a.joints, b.joints) and a.segments == b.segments
    assert a.joints.shape != c.joints.shape or not np.allclose(a.joints, c.joints)


def test_allowed_restricts_primitives():
    rng = np.random.default_rng(4)
    for _ in range(10):
        seq = sample_sequence(rng, sample_body(rng), allowed=["wave", "clap"])
        assert {s.primitive for s in seq.segments} <= {"wave", "clap"}
    with pytest.raises(ValueError):
        sample_sequence(rng, sample_body(rng), allowed=["moonwalk"])


@pytest.mark.parametrize("side,wrist,other", [("left", 20, 21), ("right", 21, 20)])
def test_wave_raises_the_named_hand(side, wrist, other):
    rng = np.random.default_rng(9)
    for _ in range(5):
        body: Body = sample_body(rng)
        p = PrimitiveParams(amplitude=rng.uniform(0.7, 1.3), side=side, repetitions=3)
        j = compose_sequence(rng, body, [("wave", p)]).joints
        mid = slice(len(j) // 3, 2 * len(j) // 3)
        assert (j[mid, wrist, 1] > j[mid, 15, 1]).all()
        assert (j[:, other, 1] < j[:, 16, 1]).all()
        # canonicalised (HumanML3D convention): still the same joint, still on its side (+X left)
        pj = process_joints(j)
        assert (pj[mid, wrist, 1] > pj[mid, 15, 1]).all()
        assert np.sign(pj[mid, wrist, 0].mean()) == (1 if side == "left" else -1)


def test_kick_directions_differ():
    """Front kick: the foot goes ahead; side kick: out to the side; back kick: behind."""
    body = make_body(1.75)
    reach = {}
    for name in ("front_kick", "side_kick", "back_kick"):
        p = PrimitiveParams(side="right")
        j = compose_sequence(np.random.default_rng(0), body, [(name, p)]).joints
        t = j[:, 8, 1].argmax()  # right ankle highest
        d = j[t, 8] - j[t, 0]
        reach[name] = d
    assert reach["front_kick"][2] > 0.4
    assert reach["side_kick"][0] < -0.4 and abs(reach["side_kick"][0]) > abs(reach["side_kick"][2])
    assert reach["back_kick"][2] < -0.3
