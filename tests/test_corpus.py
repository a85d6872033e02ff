"""kinemic.corpus.read_clips: the one reader of training clips, for features and for joints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinemic.corpus import MotionCorpus, read_clips, source_split
from kinemic.errors import DataError
from kinemic.features import encode_clip
from kinemic.io.humanml3d import Caption, write_clip, write_split
from kinemic.tmor.data import TMORCorpus
from tests.synthetic import walking_clip


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """Four walking clips: 000000 of 30 rows, the others longer; each with a whole-clip caption,
    a 2 s span and a 0.5 s span, but 000003 without captions, and out of train.txt."""
    root = tmp_path_factory.mktemp("source")
    for i, frames in enumerate([31, 61, 81, 61]):
        features, joints = encode_clip(walking_clip(frames, seed=i))
        caps = [
            "a person walks forward",
            Caption.from_text("a person starts walking", start=0.0, end=2.0),
            Caption.from_text("a short step", start=1.0, end=1.5),
        ]
        write_clip(
            root, f"{i:06d}", features=features, joints=joints, captions=caps if i < 3 else None
        )
    write_split(root, "train", ["000000", "000001", "000002"])
    return root


def test_features_and_joints_are_read_with_the_same_spans(source: Path) -> None:
    ds, ids = source_split(source, "train")
    assert ids == ["000000", "000001", "000002"]
    assert source_split(source, None)[1] == [*ids, "000003"]
    assert source_split(source, "missing")[1] == [*ids, "000003"]  # no missing.txt: every clip
    features = list(read_clips(ds, ids, arrays="features", min_frames=20, progress=False))
    joints = list(read_clips(ds, ids, arrays="joints", min_frames=20, progress=False))
    for clips, width in ((features, (263,)), (joints, (22, 3))):
        assert [c.clip_id for c in clips] == ids and not any(c.short for c in clips)
        assert all(c.array.shape[1:] == width and c.array.dtype == np.float32 for c in clips)
        assert [c.short_spans for c in clips] == [1, 1, 1]  # the 0.5 s span: 10 rows < 20
        assert clips[1].spans[1] == ("a person starts walking", 0, 40)
        assert clips[1].text_file == source / "texts" / "000001.txt"
    for f, j in zip(features, joints, strict=True):  # a whole-clip caption: every row
        assert f.spans[0] == ("a person walks forward", 0, len(f.array))
        assert j.spans[0] == ("a person walks forward", 0, len(j.array))
    short = next(read_clips(ds, ids, arrays="joints", min_frames=40, progress=False))
    assert short.short and short.spans == [] and short.short_spans == 0


def test_both_corpora_read_their_clips_through_it(source: Path) -> None:
    motion = MotionCorpus.load([source], min_frames=40, progress=False)
    tmor = TMORCorpus.load([source], min_frames=40, progress=False)
    assert motion.clip_ids == tmor.clip_ids == ["0:000001", "0:000002"]
    assert motion.skipped == {
        "shorter than min_frames": 1,
        "caption span shorter than min_frames": 2,
    }
    assert tmor.skipped == {
        "clips shorter than 40 frames": 1,
        "caption spans shorter than 40 frames": 2,
    }
    assert len(motion.captions) == 2 and tmor.texts[:2] == motion.captions
    for corpus in (motion, tmor):
        assert np.array_equal(corpus.clip_captions[1], [[0, 0, len(corpus.clip(1))], [1, 0, 40]])


def test_non_finite_arrays_name_their_file(source: Path, tmp_path: Path) -> None:
    features, joints = encode_clip(walking_clip(61, seed=0))
    joints[5, 3] = np.nan
    features[7, 0] = np.inf
    write_clip(tmp_path, "000000", features=features, joints=joints, captions=["a walk"])
    ds, ids = source_split(tmp_path, None)
    for arrays, folder in (("features", "new_joint_vecs"), ("joints", "new_joints")):
        with pytest.raises(DataError, match=rf"{folder}/000000\.npy: {arrays} hold NaN or inf"):
            list(read_clips(ds, ids, arrays=arrays, min_frames=20, progress=False))
