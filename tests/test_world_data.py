"""The world's datasets: captions, the target HAR domain, visual proxies and the writer."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from kinemic.errors import KinemicError
from kinemic.features import Normalizer
from kinemic.io.humanml3d import HumanML3DDataset
from kinemic.io.ntu_names import XSUB_TRAIN_PERFORMERS, NTUName
from kinemic.io.ntu_vibe import NTUVibeDataset
from kinemic.skeleton import SMPL22_PARENTS
from kinemic.validate import validate_dataset
from kinemic.world import captions as cap
from kinemic.world import generate as gen
from kinemic.world import target as tgt
from kinemic.world.compose import Segment
from kinemic.world.pose import D, rest
from kinemic.world.primitives import PRIMITIVES, PrimitiveParams
from kinemic.world.visual import Camera, project, visual_proxy


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world") / "w"
    gen.generate_world(out, seed=0, scale="tiny", progress=False, workers=1)
    return out


@pytest.fixture(scope="module")
def world_again(tmp_path_factory) -> Path:
    """The same seed again, over two processes."""
    out = tmp_path_factory.mktemp("world") / "w"
    gen.generate_world(out, seed=0, scale="tiny", progress=False, workers=2)
    return out


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------------------------
# Determinism and validity


def test_same_seed_gives_byte_identical_files(world, world_again):
    a, b = _hashes(world), _hashes(world_again)
    assert len(a) > 500
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_different_seeds_differ():
    one, two = gen.make_source_sequence(0, 3), gen.make_source_sequence(1, 3)
    assert one.joints.shape != two.joints.shape or not np.allclose(one.joints, two.joints)
    plan = tgt.plan_clips(
        np.random.default_rng(0), tgt.CLASSES[:1], train_per_class=1, val_per_class=0
    )[0]
    a, b = gen.make_target_clip(0, plan), gen.make_target_clip(1, plan)
    assert a.joints.shape != b.joints.shape or not np.allclose(a.joints, b.joints)


@pytest.mark.parametrize("part", ["source", "target"])
def test_world_validates(world, part):
    report = validate_dataset(world / part, progress=False)
    assert report.ok, report.format()
    assert report.warnings == [], report.format()


# ---------------------------------------------------------------------------------------------
# Source corpus


def test_source_layout_and_statistics(world):
    ds = HumanML3DDataset(world / "source")
    ids = ds.ids()
    assert ids[:2] == ["000000", "000001"] and len(ids) == gen.SCALES["tiny"].sequences
    train, val, test = ds.split("train"), ds.split("val"), ds.split("test")
    assert sorted(train + val + test) == ids and len(train) == len(ids) * 8 // 10
    features = [ds.features(i) for i in train]
    expected = Normalizer.fit(features)
    mean, std = ds.mean_std()
    np.testing.assert_allclose(mean, expected.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, expected.std, rtol=1e-4, atol=1e-6)
    for i in ids[:10]:
        # stored joints are recovered from the features (one row each), as in HumanML3D;
        # the generated sequence had one more frame
        assert 40 <= len(ds.features(i)) + 1 < 200
        assert len(ds.features(i)) == len(ds.joints(i))


def test_segment_sidecars_tile_each_sequence(world):
    ds = HumanML3DDataset(world / "source")
    multi = 0
    for i in ds.ids():
        side = json.loads((world / "source" / "segments" / f"{i}.json").read_text())
        segments = side["segments"]
        assert side["frames"] == len(ds.features(i)) + 1
        assert segments[0]["start"] == 0 and segments[-1]["end"] == side["frames"]
        for a, b in itertools.pairwise(segments):
            assert a["end"] == b["start"] and a["start"] < a["end"]
        assert all(s["primitive"] in PRIMITIVES for s in segments)
        PrimitiveParams(**segments[0]["params"])  # the params round-trip
        multi += len({s["primitive"] for s in segments} - {"stand"}) > 1
    assert multi > 5


def test_source_captions_follow_the_rules(world):
    ds = HumanML3DDataset(world / "source")
    reserved = [c.lower() for c in cap.all_eval_captions()]
    forbidden = [w for words in cap.NEVER_NAMED.values() for w in words]
    assert {"butt_kicks", "cross_toe_touch"} <= set(cap.NEVER_NAMED)
    subclips = thens = 0
    for i in ds.ids():
        caps = ds.captions(i)
        whole = [c for c in caps if c.whole_clip]
        assert 3 <= len(whole) <= 4 and len({c.text for c in whole}) == len(whole)
        for c in caps:
            text = c.text.lower()
            assert not any(r in text for r in reserved), c.text
            assert not any(re.search(rf"\b{w}\b", text) for w in forbidden), c.text
            assert c.tokens and all("/" in t for t in c.tokens)
            assert c.end <= (len(ds.features(i)) + 1) / gen.SOURCE_FPS + 1e-6
        subclips += len(caps) - len(whole)
        thens += any("then" in c.text or "after that" in c.text for c in whole)
    assert subclips > 0 and thens > 0


def test_captions_name_side_speed_and_repetitions():
    rng = np.random.default_rng(0)
    fast = PrimitiveParams(speed=1.5, side="left", repetitions=3)
    texts = [cap.describe("side_kick", fast, rng) for _ in range(40)]
    assert all("left" in t for t in texts)
    assert any(w in t for t in texts for w in ("quickly", "fast", "rapidly"))
    assert any("three times" in t or "thrice" in t for t in texts)
    segments = [
        Segment("walk", 0, 40, PrimitiveParams(direction="forward")),
        Segment("side_kick", 40, 80, PrimitiveParams(side="left")),
    ]
    texts = [cap.whole_caption(segments, rng) for _ in range(20)]
    assert any("kick" in t.split("then", 1)[-1] for t in texts if "then" in t)
    assert all("kick" not in t.split("then", 1)[0] for t in texts if "then" in t)


def test_every_primitive_has_disjoint_train_and_eval_phrases():
    rng = np.random.default_rng(1)
    for name, prim in PRIMITIVES.items():
        assert cap.train_templates(name) and cap.eval_captions(name), name
        for _ in range(30):  # every expansion of the templates passes the check
            text = f"{cap.SUBJECTS[0]} {cap.describe(name, prim.sample_params(rng), rng)}"
            cap.check_caption(text)
    with pytest.raises(ValueError, match="reserved"):
        cap.check_caption(f"then {cap.eval_captions('side_kick')[0]} again")
    with pytest.raises(ValueError, match="never-named"):
        cap.check_caption("a person does some butt kicks")


# ---------------------------------------------------------------------------------------------
# Target domain


def test_class_names_are_the_real_ntu120_names(ntu_vibe_fixture):
    assert len(tgt.NTU_CLASS_NAMES) == 120
    assert list(tgt.NTU_CLASS_NAMES) == NTUVibeDataset(ntu_vibe_fixture).class_names()


def test_target_classes_are_one_person_and_map_to_primitives():
    assert len(tgt.CLASSES) >= 10
    assert {99, 100, 101, 102, 104, 24} <= {c.action for c in tgt.CLASSES}
    for c in tgt.CLASSES:
        assert c.primitive in PRIMITIVES and c.label == c.action - 1
    assert set(tgt.TINY_ACTIONS) >= set(tgt.S0000_ACTIONS)


def test_target_clips_splits_and_fewshot(world):
    ds = NTUVibeDataset(world / "target")
    assert ds.class_names() == list(tgt.NTU_CLASS_NAMES)
    assert ds.class_captions()[98] == tgt.class_of(99).caption
    config = gen.SCALES["tiny"]
    train_ids, train_y = ds.default_split("xsub", "train")
    val_ids, val_y = ds.default_split("xsub", "val")
    assert len(train_ids) == config.train_per_class * len(config.actions)
    assert len(val_ids) == config.val_per_class * len(config.actions)
    for ids, labels, is_train in ((train_ids, train_y, True), (val_ids, val_y, False)):
        for clip_id, label in zip(ids, labels, strict=True):
            name = NTUName.parse(clip_id)
            assert label == name.action - 1
            assert (name.performer in XSUB_TRAIN_PERFORMERS) == is_train
    for clip_id in ds.ids():
        frames = len(ds.features(clip_id)) + 1
        assert 1.5 <= frames / 20.0 <= 4.0, (clip_id, frames)
        keypoints = np.load(world / "target" / "visual" / f"{clip_id}.npy")
        assert keypoints.shape == (frames, 22, 2) and keypoints.dtype == np.float32
    paper = ds.fewshot_split("S0000")
    assert paper.class_list == [98, 101, 103] and paper.shots == 10
    assert len(paper.train_ids) == 30 and len(paper.val_ids) == 3 * config.val_per_class
    every = ds.fewshot_split("S0001")
    assert every.class_list == sorted(a - 1 for a in config.actions)


def _bone_variation(joints: np.ndarray) -> float:
    """Median over bones of the temporal coefficient of variation of the bone length."""
    bones = np.linalg.norm(joints[:, 1:] - joints[:, list(SMPL22_PARENTS[1:])], axis=-1)
    return float(np.median(bones.std(axis=0) / bones.mean(axis=0)))


def test_target_noise_is_visible_but_bounded():
    plans = tgt.plan_clips(
        np.random.default_rng(0), tgt.CLASSES, train_per_class=1, val_per_class=0
    )
    clips = [gen.make_target_clip(0, p) for p in plans]
    target = np.median([_bone_variation(c.joints) for c in clips])
    clean = np.median([_bone_variation(c.clean) for c in clips])
    source = np.median([_bone_variation(gen.make_source_sequence(0, i).joints) for i in range(8)])
    # a depth-camera skeleton's bones stretch by a few per cent (the median over the default
    # world's clips is 5.0%: the noise plus irregular sampling of fast limbs); mocap's do not
    assert max(source, clean) < 0.005 < target < 0.07, (source, clean, target)
    for clip in clips:
        assert 0 <= clip.action_span[0] < clip.action_span[1] <= len(clip.joints)
        assert np.median(np.linalg.norm(clip.joints - clip.clean, axis=-1)) < 0.06


def test_target_clips_are_finite_and_humanly_fast():
    """Target style (faster tempo, personal deviations) must keep the physical limits."""
    plans = tgt.plan_clips(
        np.random.default_rng(3), tgt.CLASSES, train_per_class=12, val_per_class=0
    )
    for plan in plans:
        clip = gen.make_target_clip(3, plan)
        assert np.isfinite(clip.joints).all()
        speed = np.linalg.norm(np.diff(clip.clean, axis=0), axis=-1) * tgt.FPS_OUT
        assert speed.max() < 12.0, (plan.target.name, clip.primitive, speed.max())


def _style_deviation(performer, target, clip_seed, n=40):
    style = tgt.personal_style(performer, target, np.random.default_rng(clip_seed), fps=30.0)
    track = rest(n)
    style(track)
    return track.aa


def _performers_by_way(target, count=40):
    """Performers grouped by their habitual way of doing ``target``."""
    groups: dict[int, list] = {}
    for i in range(count):
        performer = tgt.make_performer(i, np.random.default_rng(i))
        groups.setdefault(tgt.habitual_way(performer, target), []).append(performer)
    return groups


def _habitual_clip_seeds(performers, target, count=2):
    """Clip seeds with which every one of ``performers`` does ``target`` their habitual way."""
    seeds = [
        s
        for s in range(100)
        if all(
            tgt.clip_way(p, target, np.random.default_rng(s)) == tgt.habitual_way(p, target)
            for p in performers
        )
    ]
    return seeds[:count]


def test_personal_style_is_a_class_way_plus_the_performers_own():
    """Performers who share a habitual way deviate alike, those with different ways less so;
    every performer's deviation is their own and changes little between their clips."""
    target = tgt.class_of(102)
    groups = _performers_by_way(target)
    assert len(groups) >= 3  # the repertoire is used
    sharing = next(g for g in groups.values() if len(g) >= 2)
    a, b = sharing[:2]
    other = next(g[0] for w, g in groups.items() if a not in g)
    first, second = _habitual_clip_seeds((a, b, other), target)
    dev = {p.id: _style_deviation(p, target, first) for p in (a, b, other)}

    def cos(x, y):
        return float((x * y).sum() / np.linalg.norm(x) / np.linalg.norm(y))

    assert np.abs(dev[a.id]).max() > 10 * D  # visible
    assert cos(dev[a.id], dev[b.id]) > 0.6  # the same way, each with their own departure
    assert cos(dev[a.id], dev[b.id]) < 0.999
    assert cos(dev[a.id], dev[b.id]) > cos(dev[a.id], dev[other.id]) + 0.3
    again = _style_deviation(a, target, second)  # another clip: the same way, ±20 %
    assert cos(again, dev[a.id]) > 0.999
    for p in (a, b, other):
        assert np.abs(np.diff(dev[p.id], axis=0)).max() * 30.0 <= tgt.STYLE_MAX_SPEED + 1e-9


def test_class_ways_differ_between_classes_and_ways():
    u = np.linspace(0.0, 1.0, 30)[:, None, None]
    side_kick, stretch = tgt.class_of(102), tgt.class_of(104)
    ways = [tgt.class_way(side_kick, w)(u) for w in range(tgt.WAYS)]
    for w, x in enumerate(ways[1:], start=1):
        assert np.linalg.norm(x - ways[0]) > 0.5 * np.linalg.norm(ways[0]), w
    assert np.linalg.norm(tgt.class_way(stretch, 0)(u) - ways[0]) > 0.5 * np.linalg.norm(ways[0])
    np.testing.assert_array_equal(tgt.class_way(side_kick, 0)(u), ways[0])  # fixed repertoire


# ---------------------------------------------------------------------------------------------
# Visual proxy


def test_visual_proxy_projects_into_the_image():
    rng = np.random.default_rng(0)
    joints = gen.make_source_sequence(0, 0).joints
    keypoints, camera = visual_proxy(joints, rng)
    assert keypoints.shape == (len(joints), 22, 2) and keypoints.dtype == np.float32
    inside = (keypoints >= 0).all(-1) & (keypoints < [camera.width, camera.height]).all(-1)
    assert inside.mean() > 0.95
    head_above_feet = keypoints[:, 15, 1] < keypoints[:, 10, 1]  # image y points down
    assert head_above_feet.mean() > 0.9
    straight = Camera(0.0, 0.0, 4.0, 1000.0, (0.0, 1.0, 0.0))
    assert np.allclose(project(np.array([0.0, 1.0, 0.0]), straight), [960, 540])


def test_existing_world_is_not_overwritten_silently(world, tmp_path):
    with pytest.raises(KinemicError, match="exists already"):
        gen.generate_world(world, seed=0, scale="tiny", progress=False)


def test_fit_length_keeps_segments_tiling():
    seq = gen.make_source_sequence(0, 5)
    for lo, hi in ((5, 30), (len(seq.joints) + 10, 400)):
        fitted = gen._fit_length(seq, lo, hi)
        assert lo <= len(fitted.joints) <= hi
        assert fitted.segments[0].start == 0 and fitted.segments[-1].end == len(fitted.joints)


def test_render_gallery_writes_one_gif_per_primitive(tmp_path):
    paths = gen.render_gallery(tmp_path, primitives=["side_kick"])
    assert paths == [tmp_path / "side_kick.gif"] and paths[0].stat().st_size > 1000
