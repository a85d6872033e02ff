"""Soft positives: per-motion caption embeddings, top-k ranking, the disk cache, errors."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from kinemic.errors import DataError, KinemicError
from kinemic.io.humanml3d import Caption, write_clip, write_split
from kinemic.io.ntu_vibe import NTUVibeDataset
from kinemic.mining.soft_positives import (
    SoftPositives,
    motion_embeddings,
    rank,
    soft_positives,
)
from kinemic.text import HashEncoder, get_text_encoder

CORPUS = {
    "000000": ["a person does a side kick with the left leg", "someone kicks out to the side"],
    "000001": ["a person walks forward slowly", "someone walks ahead"],
    "000002": ["a man waves the right hand", "a person waves hello"],
    "000003": ["a person jumps up and down", "someone hops in place"],
}


class CountingEncoder:
    """A hash encoder that counts the texts it is asked to encode."""

    def __init__(self) -> None:
        self.inner = HashEncoder(dim=64)
        self.name, self.dim = "counting-64", 64
        self.calls = 0

    def encode(self, texts):
        self.calls += len(texts)
        return self.inner.encode(texts)


def make_corpus(root: Path, corpus: dict[str, list], *, train: list[str] | None = None) -> Path:
    feats = np.zeros((50, 263), dtype=np.float32)
    for clip_id, caps in corpus.items():
        write_clip(root, clip_id, features=feats, captions=caps)
    if train is not None:
        write_split(root, "train", train)
    return root


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_names_the_class_above_unrelated(tmp_path):
    src = make_corpus(tmp_path / "src", CORPUS)
    sp = soft_positives(
        src,
        ["A person does a side kick.", "a person waves a hand"],
        encoder=HashEncoder(dim=64),
        k=4,
        cache=False,
        progress=False,
    )
    assert isinstance(sp, SoftPositives)
    assert sp.indices.shape == sp.scores.shape == (2, 4)
    assert sp.indices.dtype == np.int64 and sp.scores.dtype == np.float32
    assert sp.ids(0)[0] == "000000" and sp.ids(1)[0] == "000002"
    assert np.all(np.diff(sp.scores, axis=1) <= 1e-7)  # best first
    assert sp.split is None and [n for n in sp.notes if "capped" in n] == []  # all ids


def test_motion_embedding_is_renormalised_caption_mean(tmp_path):
    sub = Caption.from_text("a person runs on the spot", start=1.0, end=2.0)
    corpus = {"000000": ["a person walks forward", sub], "000001": ["someone claps"]}
    src = make_corpus(tmp_path / "src", corpus)
    enc = HashEncoder(dim=64)
    inc = motion_embeddings(src, encoder=enc, cache=False, progress=False)
    exc = motion_embeddings(src, encoder=enc, cache=False, progress=False, subclips="exclude")
    caps = unit(enc.encode(["a person walks forward", "a person runs on the spot"]).numpy())
    np.testing.assert_allclose(inc.embeddings[0], unit(caps.mean(0)), atol=1e-6)
    np.testing.assert_allclose(exc.embeddings[0], caps[0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(inc.embeddings, axis=1), 1.0, atol=1e-6)
    # a sub-clip caption pulls its motion towards captions of that part
    q = unit(enc.encode(["runs on the spot"]).numpy())[0]
    assert inc.embeddings[0] @ q > exc.embeddings[0] @ q


def test_uses_train_split_or_all_ids(tmp_path):
    src = make_corpus(tmp_path / "src", CORPUS, train=["000001", "000002"])
    enc = HashEncoder(dim=64)
    sp = soft_positives(src, ["a side kick"], encoder=enc, k=2, cache=False, progress=False)
    assert sp.split == "train" and sp.source_ids == ["000001", "000002"]
    every = soft_positives(
        src, ["a side kick"], encoder=enc, k=2, split=None, cache=False, progress=False
    )
    assert every.split is None and len(every.source_ids) == 4
    assert every.ids(0)[0] == "000000"
    other = soft_positives(
        src, ["a side kick"], encoder=enc, k=2, split="val", cache=False, progress=False
    )
    assert len(other.source_ids) == 4 and any("no val.txt" in n for n in other.notes)


def test_k_is_capped_with_a_note(tmp_path):
    src = make_corpus(tmp_path / "src", CORPUS)
    sp = soft_positives(
        src, ["a kick"], encoder=HashEncoder(dim=64), k=250, cache=False, progress=False
    )
    assert sp.k == 4 and sp.indices.shape == (1, 4)
    assert sorted(sp.indices[0].tolist()) == [0, 1, 2, 3]
    assert any("k=250 capped at the 4 motions" in n for n in sp.notes)


def test_rank_breaks_ties_by_index():
    motions = unit(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]))
    idx, scores = rank(unit(np.array([[1.0, 0.0]])), motions, 3)
    assert idx.tolist() == [[0, 2, 3]]
    np.testing.assert_allclose(scores, [[1.0, 1.0, np.sqrt(0.5)]], atol=1e-6)


def test_cache_reused_and_invalidated(tmp_path):
    src = make_corpus(tmp_path / "src", CORPUS)
    cache = tmp_path / "cache"
    enc = CountingEncoder()
    first = motion_embeddings(src, encoder=enc, cache_dir=cache, progress=False)
    assert not first.cached and enc.calls == 8
    files = list((cache / "counting-64").glob("*.safetensors"))
    assert len(files) == 1 and first.key in files[0].name

    again = motion_embeddings(src, encoder=enc, cache_dir=cache, progress=False)
    assert again.cached and enc.calls == 8  # nothing re-encoded
    np.testing.assert_array_equal(again.embeddings, first.embeddings)

    # a caption edit changes the key: recomputed, and the stale entry of this folder removed
    write_clip(src, "000001", captions=["a person does a side kick", "someone kicks sideways"])
    edited = motion_embeddings(src, encoder=enc, cache_dir=cache, progress=False)
    assert not edited.cached and edited.key != first.key
    assert not np.allclose(edited.embeddings[1], first.embeddings[1])
    assert [p.name for p in (cache / "counting-64").glob("*.safetensors")] == [
        f"{edited.key}.safetensors"
    ]
    # another split is another entry; it does not evict this one
    write_split(src, "train", ["000000", "000001"])
    motion_embeddings(src, encoder=enc, cache_dir=cache, progress=False)
    assert len(list((cache / "counting-64").glob("*.safetensors"))) == 2
    assert motion_embeddings(src, encoder=enc, cache_dir=cache, split=None, progress=False).cached


def test_damaged_cache_entry_is_recomputed(tmp_path):
    src = make_corpus(tmp_path / "src", CORPUS)
    cache = tmp_path / "cache"
    enc = CountingEncoder()
    first = motion_embeddings(src, encoder=enc, cache_dir=cache, progress=False)
    path = cache / "counting-64" / f"{first.key}.safetensors"
    path.write_bytes(b"not a safetensors file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = motion_embeddings(src, encoder=enc, cache_dir=cache, progress=False)
    assert not again.cached and any("unusable cache entry" in str(w.message) for w in caught)
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    assert motion_embeddings(src, encoder=enc, cache_dir=cache, progress=False).cached


def test_errors(tmp_path):
    src = make_corpus(tmp_path / "src", CORPUS)
    enc = HashEncoder(dim=64)
    kw = {"encoder": enc, "cache": False, "progress": False}
    with pytest.raises(KinemicError, match="no target captions"):
        soft_positives(src, [], **kw)
    with pytest.raises(KinemicError, match="caption 1 is empty"):
        soft_positives(src, ["a kick", "  "], **kw)
    with pytest.raises(KinemicError, match="not one string"):
        soft_positives(src, "a kick", **kw)  # type: ignore[arg-type]
    with pytest.raises(KinemicError, match="k must be at least 1"):
        soft_positives(src, ["a kick"], k=0, **kw)

    (src / "texts" / "000002.txt").unlink()
    with pytest.raises(DataError, match=r"000002\.txt.*has no captions"):
        soft_positives(src, ["a kick"], **kw)
    (src / "texts" / "000002.txt").write_text("\n\n")
    with pytest.raises(DataError, match=r"000002\.txt: no caption lines"):
        soft_positives(src, ["a kick"], **kw)
    shutil.rmtree(src / "texts")
    with pytest.raises(DataError, match="texts"):
        soft_positives(src, ["a kick"], **kw)


def test_minilm_on_tiny_world(tiny_world, tmp_path):
    """On the tiny world, MiniLM ranks motions that do the class's action first."""
    import json

    target = NTUVibeDataset(tiny_world / "target")
    labels = target.fewshot_split("S0000").class_list
    captions = [target.class_captions()[c] for c in labels]
    enc = get_text_encoder("minilm", cache_dir=tmp_path / "text")
    sp = soft_positives(
        tiny_world / "source",
        captions,
        encoder=enc,
        k=10,
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    assert sp.encoder == "minilm-l6-v2" and sp.split == "train"
    assert sp.indices.shape == (3, 10)
    side_kick = labels.index(101)

    def has(clip_id: str, primitive: str) -> bool:
        sidecar = json.loads((tiny_world / "source" / "segments" / f"{clip_id}.json").read_text())
        return any(s["primitive"] == primitive for s in sidecar["segments"])

    assert has(sp.ids(side_kick)[0], "side_kick")
    # over the whole corpus, motions with a side kick rank far above those without
    every = soft_positives(
        tiny_world / "source",
        [captions[side_kick]],
        encoder=enc,
        k=len(sp.source_ids),
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    with_kick = [r for r, i in enumerate(every.ids(0)) if has(i, "side_kick")]
    without = [r for r, i in enumerate(every.ids(0)) if not has(i, "side_kick")]
    assert with_kick and np.mean(with_kick) < np.mean(without) / 2
