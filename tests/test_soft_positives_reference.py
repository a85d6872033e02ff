"""Soft positives as the KineMIC reference finds them: each sub-clip caption a cut clip of its
own, motions and cut clips of 40 to 199 rows, captions read at CLIP's whole context; the
default selection unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinemic.errors import DataError, KinemicError
from kinemic.io.humanml3d import Caption, HumanML3DDataset, cut_clip_id, write_clip
from kinemic.mining.config import FLAT_KEYS, FilterConfig
from kinemic.mining.soft_positives import (
    motion_embeddings,
    select_soft_positives,
    soft_positives,
    source_items,
)
from kinemic.text import CLIP_FULL_TOKENS, HashEncoder


def span(text: str, start: float, end: float) -> Caption:
    return Caption.from_text(text, start=start, end=end)


def features(rows: int) -> np.ndarray:
    return np.arange(rows * 263, dtype=np.float32).reshape(rows, 263)


# Rows at 20 fps: a span [s, e] seconds cuts rows [int(20 s), min(int(20 e), T)).
CORPUS = {
    # 100 rows: a whole-clip caption and three spans: rows 20..60 (40, kept), 10..49 (39, too
    # short), 40..100 (60 rows: the end, 12 s, is past the clip's 5 s)
    "000001": (
        100,
        [
            "a person walks in a circle",
            span("a person jumps on the spot", 1.0, 3.0),
            span("a person waves a hand", 0.5, 2.45),
            span("a person kicks forward", 2.0, 12.0),
        ],
    ),
    # 200 rows: one too many, left out with its span
    "000002": (200, ["a person runs", span("a person jumps high", 0.0, 3.0)]),
    # 199 rows, only spans: rows 0..199 (199, kept) and 0..200 -> 0..199 at the clip's end
    "000003": (199, [span("a person sits down", 0.0, 9.95), span("a person stands up", 0.0, 10.0)]),
    # 40 rows: the shortest kept
    "000004": (40, ["a person bows"]),
    # 39 rows: too short
    "000005": (39, ["a person claps"]),
}


def make_source(root: Path) -> Path:
    for clip_id, (rows, caps) in CORPUS.items():
        write_clip(root, clip_id, features=features(rows), captions=caps)
    return root


def test_cut_clips_and_length_bounds_as_the_reference_keeps_them(tmp_path):
    root = make_source(tmp_path / "src")
    ids = sorted(CORPUS)
    captions = [HumanML3DDataset(root).captions(i) for i in ids]
    items, texts, notes = source_items(
        root, ids, captions, subclips="cut", min_frames=40, max_frames=199
    )
    assert items == ["000001", "000001#2", "000001#4", "000003#1", "000003#2", "000004"]
    assert texts == [
        ["a person walks in a circle"],  # whole-clip captions only
        ["a person jumps on the spot"],
        ["a person kicks forward"],
        ["a person sits down"],
        ["a person stands up"],
        ["a person bows"],
    ]
    assert notes == [
        "2 motions outside 40..199 feature rows left out with their cut clips",
        "4 sub-clip captions ranked as cut clips of their own; 1 more cut clips outside "
        "40..199 feature rows left out",
        "1 motions have no whole-clip caption: ranked only through their cut clips",
    ]
    # the readers give a cut clip's rows and its one caption, which covers the whole cut
    ds = HumanML3DDataset(root)
    whole = ds.features("000001")
    np.testing.assert_array_equal(ds.features("000001#2"), whole[20:60])
    np.testing.assert_array_equal(ds.features("000001#4"), whole[40:100])
    assert ds.features("000003#2").shape == (199, 263)
    [cap] = ds.captions(cut_clip_id("000001", 2))
    assert cap.text == "a person jumps on the spot" and cap.whole_clip
    # without bounds every span with a row is a cut clip, and every motion is ranked
    items, _, _ = source_items(root, ids, captions, subclips="cut")
    assert items[:5] == ["000001", "000001#2", "000001#3", "000001#4", "000002"]
    assert "000005" in items and "000003" not in items


def test_cut_clip_ids_that_name_nothing_are_errors_naming_the_file(tmp_path):
    ds = HumanML3DDataset(make_source(tmp_path / "src"))
    with pytest.raises(DataError, match=r"000001\.txt.*cut clip 000001#9: the clip has 4"):
        ds.features("000001#9")
    with pytest.raises(DataError, match="cut clip 000001#1: caption 1 has no span to cut"):
        ds.captions("000001#1")
    write_clip(tmp_path / "src", "000006", features=features(20), captions=[span("x", 2.0, 3.0)])
    with pytest.raises(DataError, match="outside the clip's 20 rows"):
        ds.features("000006#1")
    assert HumanML3DDataset(tmp_path / "src").has_clip("000001")  # plain ids as before


def test_ranking_reaches_the_cut_clip_of_a_sub_clip_caption(tmp_path):
    root = make_source(tmp_path / "src")
    enc = HashEncoder(dim=256)
    queries = ["a person jumps on the spot", "a person kicks forward"]
    cut = soft_positives(
        root,
        queries,
        encoder=enc,
        k=3,
        subclips="cut",
        min_frames=40,
        max_frames=199,
        cache=False,
        progress=False,
    )
    assert cut.ids(0)[0] == "000001#2" and cut.ids(1)[0] == "000001#4"
    assert cut.scores[0, 0] == pytest.approx(1.0)  # the cut's one caption is the query
    assert "000002" not in cut.source_ids and "000005" not in cut.source_ids
    # today's default ranks whole motions, sub-clip captions averaged into their motion
    default = soft_positives(root, queries, encoder=enc, k=3, cache=False, progress=False)
    assert default.source_ids == sorted(CORPUS) and default.ids(0)[0] == "000001"
    assert default.scores[0, 0] < 0.9


def test_select_records_the_source_options_and_caches_by_them(tmp_path):
    root = make_source(tmp_path / "src")
    enc = HashEncoder(dim=64)
    common = dict(target=tmp_path, fewshot_ids=[[]], encoder=enc, k=2, progress=False)
    cache = tmp_path / "cache"
    how = FilterConfig.reference(text_tokens=None)  # the hash encoder has no token context
    sp = select_soft_positives(
        root, ["a person bows"], filter_config=how, cache_dir=cache, **common
    )
    assert sp.filter == {"name": "none", "subclips": "cut", "min_frames": 40, "max_frames": 199}
    assert "000001#2" in sp.source_ids
    assert any("cut clips of their own" in n for n in sp.notes)
    plain = select_soft_positives(root, ["a person bows"], cache_dir=cache, **common)
    assert plain.filter == {"name": "none"} and plain.source_ids == sorted(CORPUS)
    # both stay cached side by side, each read back as written
    again = motion_embeddings(
        root, encoder=enc, cache_dir=cache, subclips="cut", min_frames=40, max_frames=199
    )
    assert again.cached and again.source_ids == sp.source_ids
    assert motion_embeddings(root, encoder=enc, cache_dir=cache, progress=False).cached


def test_filter_config_source_options_validate_and_keep_old_records(tmp_path):
    assert FilterConfig().flat() == {
        "filter": "none",
        "filter_pool": None,
        "filter_encoder": None,
        "filter_weight": None,
    }  # a default selection's record is what it was
    ref = FilterConfig.reference()
    assert (ref.subclips, ref.min_frames, ref.max_frames, ref.text_tokens) == ("cut", 40, 199, 75)
    assert ref.text_tokens == CLIP_FULL_TOKENS
    flat = ref.flat()
    assert set(flat) == set(FLAT_KEYS) and FilterConfig.from_flat(flat) == ref
    assert FilterConfig.from_flat({"filter": "none"}) == FilterConfig()
    # a model's recorded source options fill those a selection leaves at their defaults
    record = {"name": "none", "subclips": "cut", "min_frames": 40, "text_tokens": 75}
    mined = FilterConfig(kind="kinematic", text_tokens=20).with_recorded_source(record)
    assert (mined.kind, mined.subclips, mined.min_frames, mined.max_frames) == (
        "kinematic",
        "cut",
        40,
        None,
    )
    assert mined.text_tokens == 20
    assert FilterConfig().with_recorded_source({"name": "none"}) == FilterConfig()
    # `kinemic mine --model` ranks what the model was trained with
    from kinemic.mining.report import _with_own

    assert _with_own(None, {"name": "none", **ref.source_options()}) == FilterConfig(
        subclips="cut", min_frames=40, max_frames=199, text_tokens=75
    )
    own = {"name": "kinematic", "pool": 12, "encoder": None, "weight": 0.5, "subclips": "cut"}
    assert _with_own(FilterConfig(kind="kinematic"), own) == FilterConfig(
        kind="kinematic", pool=12, weight=0.5, subclips="cut"
    )
    for bad, message in (
        (dict(subclips="split"), "subclips must be one of include, exclude, cut, found 'split'"),
        (dict(min_frames=0), "min_frames must be >= 1 or None, found 0"),
        (dict(min_frames=50, max_frames=40), r"min_frames \(50\) must not exceed max_frames"),
        (dict(max_frames=4.5), "max_frames must be a whole number of frames"),
        (dict(text_tokens=76), r"text_tokens must be in 1\.\.75 word pieces"),
    ):
        with pytest.raises(KinemicError, match=f"soft-positive filter: {message}"):
            FilterConfig(**bad)


class WordsEncoder:
    """A stand-in for CLIP's context: the hash encoder of the first ``max_tokens`` words."""

    def __init__(self, max_tokens: int = 2) -> None:
        self.inner, self.max_tokens = HashEncoder(dim=64), max_tokens
        self.name, self.dim = f"words-t{max_tokens}", 64

    def encode(self, texts):
        return self.inner.encode([" ".join(t.split()[: self.max_tokens]) for t in texts])

    def with_max_tokens(self, max_tokens: int) -> WordsEncoder:
        return self if max_tokens == self.max_tokens else WordsEncoder(max_tokens)


def test_the_ranking_reads_captions_at_the_context_the_config_names(tmp_path):
    a, b = "a person walks forward", "a person jumps up"
    root = tmp_path / "src"
    write_clip(root, "000001", features=features(50), captions=[a])
    write_clip(root, "000002", features=features(50), captions=[b])
    enc = WordsEncoder(max_tokens=2)  # the conditioning context: "a person" alone
    common = dict(target=tmp_path, fewshot_ids=[[]], encoder=enc, k=2, progress=False)
    common["cache_dir"] = tmp_path / "cache"
    short = select_soft_positives(root, [b], **common)
    assert short.encoder == "words-t2" and short.scores[0, 0] == short.scores[0, 1]  # a tie
    full = select_soft_positives(root, [b], filter_config=FilterConfig(text_tokens=75), **common)
    assert full.encoder == "words-t75" and full.filter == {"name": "none", "text_tokens": 75}
    assert full.ids(0) == ["000002", "000001"] and full.scores[0, 0] == pytest.approx(1.0)
    assert enc.max_tokens == 2  # the encoder given is left as it was
    with pytest.raises(KinemicError, match="'hash-64' has no caption context to set"):
        select_soft_positives(
            root,
            [b],
            filter_config=FilterConfig(text_tokens=75),
            **{**common, "encoder": "hash-64"},
        )
