"""Text encoders: a contract every encoder passes, then MiniLM, CLIP and the disk cache.

MiniLM loads once per module (a few seconds: importing transformers dominates). The CLIP code
path runs on a tiny random CLIP built here (one-character tokens); the real ViT-B/32 runs
only when its weights are in the Hugging Face cache.
"""

from __future__ import annotations

import json
import socket
import string
import time
import warnings
from pathlib import Path

import pytest
import torch

from kinemic.errors import KinemicError
from kinemic.text import (
    CLIP_FULL_TOKENS,
    CLIP_MODEL_ID,
    TEXT_ENCODERS,
    CachedEncoder,
    CLIPTextEncoder,
    HashEncoder,
    MiniLMEncoder,
    TextEncoder,
    default_cache_dir,
    encode_all,
    encoder_from_spec,
    encoder_spec,
    get_text_encoder,
    with_max_tokens,
)

# sentence-transformers' SentenceTransformer(<bundled folder>).encode(...)[:, :6] (v6.2)
MINILM_GOLDEN = {
    "a person walks forward": [-0.01811, -0.00892, -0.01507, -0.02065, 0.06946, 0.05342],
    "someone is walking ahead": [0.01092, -0.01156, -0.01158, -0.00415, 0.06756, 0.06034],
    "a person waves their left hand": [-0.0239, 0.00265, 0.0314, 0.00855, -0.07041, -0.01704],
}
TEXTS = ["a person walks forward", "a man kicks with his right leg", "someone jumps twice"]


def _real_clip_cached() -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(CLIP_MODEL_ID, "config.json"), str)


def make_tiny_clip(folder: Path) -> Path:
    """A random 2-layer CLIP text tower (16-d projection) whose tokens are single letters."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    letters = string.ascii_lowercase
    vocab = {c: i for i, c in enumerate(letters)}
    vocab.update({f"{c}</w>": len(letters) + i for i, c in enumerate(letters)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")  # no merges: one token per letter
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    eos = vocab["<|endoftext|>"]
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=16,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=eos,
        pad_token_id=eos,
    )
    torch.manual_seed(0)
    CLIPTextModelWithProjection(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder()


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module", params=["minilm", "hash-64", "tiny-clip", "clip"])
def encoder(request) -> TextEncoder:
    if request.param == "minilm":
        return request.getfixturevalue("minilm")
    if request.param == "hash-64":
        return HashEncoder()
    if request.param == "tiny-clip":
        return CLIPTextEncoder(path=request.getfixturevalue("tiny_clip_dir"), name="tiny-clip")
    if not _real_clip_cached():
        pytest.skip(
            f"CLIP ViT-B/32 weights are not in the Hugging Face cache: run "
            f"`hf download {CLIP_MODEL_ID}` once with network to test the real CLIP encoder"
        )
    return CLIPTextEncoder()


# -- the contract every encoder keeps ---------------------------------------------------------


def test_contract_shape_dtype_device(encoder):
    assert isinstance(encoder, TextEncoder)
    assert isinstance(encoder.name, str) and encoder.name
    emb = encoder.encode(TEXTS)
    assert emb.shape == (3, encoder.dim)
    assert emb.dtype == torch.float32 and emb.device.type == "cpu"
    assert torch.isfinite(emb).all()


def test_contract_empty_list(encoder):
    emb = encoder.encode([])
    assert emb.shape == (0, encoder.dim) and emb.dtype == torch.float32


def test_contract_deterministic_and_independent_of_batch(encoder):
    first = encoder.encode(TEXTS)
    assert torch.equal(first, encoder.encode(TEXTS))
    mixed = encoder.encode([TEXTS[2], "x " * 15, TEXTS[0], TEXTS[2]])
    torch.testing.assert_close(mixed[0], first[2], atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed[3], first[2], atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed[2], first[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(encoder.encode([TEXTS[1]])[0], first[1], atol=1e-5, rtol=0)


def test_contract_different_texts_differ(encoder):
    emb = encoder.encode(TEXTS)
    for i in range(3):
        for j in range(i + 1, 3):
            assert (emb[i] - emb[j]).abs().max() > 1e-3, (TEXTS[i], TEXTS[j])


def test_contract_rejects_non_strings(encoder):
    with pytest.raises(TypeError, match=r"item 1 is a int"):
        encoder.encode(["fine", 3])
    with pytest.raises(TypeError, match="not a single str"):
        encoder.encode("a person walks")


def test_contract_spec_names_encoder(encoder):
    spec = encoder_spec(encoder)
    assert spec["name"] == encoder.name and spec["dim"] == encoder.dim
    json.dumps(spec)  # a checkpoint can store it


# -- MiniLM -----------------------------------------------------------------------------------


def test_minilm_matches_sentence_transformers(minilm):
    emb = minilm.encode(list(MINILM_GOLDEN))
    expected = torch.tensor(list(MINILM_GOLDEN.values()))
    torch.testing.assert_close(emb[:, :6], expected, atol=2e-5, rtol=0)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))  # the model's Normalize module
    assert minilm.dim == 384 and minilm.name == "minilm-l6-v2"


def test_minilm_paraphrases_closer_than_unrelated(minilm):
    walk, paraphrase, wave = minilm.encode(list(MINILM_GOLDEN))
    assert walk @ paraphrase > walk @ wave + 0.1


def test_minilm_truncates_long_texts(minilm):
    base = "a person walks " * 100  # 300 words > 256 word pieces
    a, b = minilm.encode([base + "forward", base + "and then waves both hands above the head"])
    torch.testing.assert_close(a, b)


def test_minilm_bad_folder_teaches(tmp_path):
    with pytest.raises(KinemicError, match="missing"):
        MiniLMEncoder(path=tmp_path)


# -- CLIP -------------------------------------------------------------------------------------


def test_clip_truncates_to_max_tokens(tiny_clip_dir):
    enc = CLIPTextEncoder(path=tiny_clip_dir, max_tokens=20)
    assert enc.name == "clip-vit-b32" and enc.dim == 16
    same20 = "abcdefghij klmnopqrst"  # 20 one-letter tokens
    a, b, c = enc.encode([same20 + "uvw", same20 + "xyz", same20])
    torch.testing.assert_close(a, b)  # cut after the 20th token
    assert (a - c).abs().max() > 1e-4  # `c` ends in the word-end token "t</w>", `a` in "t"
    longer = CLIPTextEncoder(path=tiny_clip_dir, max_tokens=30)
    assert longer.name == "clip-vit-b32-t30" and encoder_spec(longer)["max_tokens"] == 30
    a, b = longer.encode([same20 + "uvw", same20 + "xyz"])
    assert (a - b).abs().max() > 1e-4


def test_clip_reads_the_whole_context_when_asked(tiny_clip_dir, tmp_path):
    enc = CLIPTextEncoder(path=tiny_clip_dir)
    full = with_max_tokens(enc, CLIP_FULL_TOKENS)
    assert (enc.name, enc.max_tokens) == ("clip-vit-b32", 20)  # MDM's, unchanged
    assert (full.name, full.max_tokens, full.dim) == ("clip-vit-b32-t75", 75, 16)
    assert encoder_spec(full)["max_tokens"] == 75 and with_max_tokens(enc, 20) is enc
    # one word piece per letter: these two differ after piece 20 only
    a, b = "abcdefghijabcdefghij klm", "abcdefghijabcdefghij xyz"
    short, long = enc.encode([a, b]), full.encode([a, b])
    torch.testing.assert_close(short[0], short[1])
    assert not torch.allclose(long[0], long[1], atol=1e-3)
    torch.testing.assert_close(
        long, CLIPTextEncoder(path=tiny_clip_dir, max_tokens=75).encode([a, b])
    )
    named = CLIPTextEncoder(path=tiny_clip_dir, name="tiny-clip")
    assert with_max_tokens(named, 75).name == "tiny-clip-t75"
    cached = with_max_tokens(CachedEncoder(enc, tmp_path), 75)
    assert isinstance(cached, CachedEncoder) and cached.folder == tmp_path / "clip-vit-b32-t75"
    with pytest.raises(ValueError, match=r"max_tokens must be in 1\.\.75"):
        enc.with_max_tokens(76)
    with pytest.raises(KinemicError, match="'minilm-l6-v2' has no caption context to set"):
        with_max_tokens(MiniLMEncoder(), 75)


def test_clip_missing_folder_fails_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(KinemicError, match="in Python pass path=DIR") as err:
        CLIPTextEncoder(path=tmp_path)
    assert str(tmp_path) in str(err.value)
    assert time.perf_counter() - start < 2.0


def test_clip_offline_without_weights_fails_fast(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(KinemicError) as err:
        CLIPTextEncoder()
    assert time.perf_counter() - start < 5.0
    message = str(err.value)
    assert f"hf download {CLIP_MODEL_ID}" in message and "huggingface-cli download" in message
    assert "path=DIR" in message and "HF_HOME" in message and "HF_HUB_OFFLINE" in message
    assert "--clip-path" not in message  # no command has such a flag


def test_clip_unreachable_hub_fails_fast(tmp_path, monkeypatch):
    from huggingface_hub import constants

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in (
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    start = time.perf_counter()
    with pytest.raises(KinemicError, match="cannot be reached"):
        CLIPTextEncoder()
    assert time.perf_counter() - start < 5.0


# -- HashEncoder ------------------------------------------------------------------------------


def test_hash_is_a_bag_of_lowercase_words():
    enc = HashEncoder()
    a, b, c, empty = enc.encode(["Walk forward now", "now forward walk", "walk back", "?!"])
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a.norm(), torch.tensor(1.0))
    assert (a - c).abs().max() > 1e-3
    assert torch.equal(empty, torch.zeros(64))
    assert enc.name == "hash-64" and HashEncoder(dim=8).encode(["x"]).shape == (1, 8)


# -- CachedEncoder ----------------------------------------------------------------------------


class Counting:
    """Wraps an encoder and records every list of texts it is asked to encode."""

    def __init__(self, inner: TextEncoder):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> torch.Tensor:
        self.calls.append(list(texts))
        return self.inner.encode(texts)


def _shards(cache: CachedEncoder) -> list[Path]:
    return sorted(cache.folder.glob("*.safetensors"))


def test_encode_all_sends_chunks_and_returns_float32_cpu_rows():
    inner = Counting(HashEncoder())
    texts = [f"text number {i}" for i in range(7)]
    out = encode_all(inner, texts, chunk=3, progress=False)
    assert [len(c) for c in inner.calls] == [3, 3, 1]  # in order, ``chunk`` at a time
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.equal(out, HashEncoder().encode(texts))
    assert encode_all(inner, [], progress=False).shape == (0, 64)
    with pytest.raises(KinemicError, match="chunk must be >= 1"):
        encode_all(inner, texts, chunk=0)


def test_cache_hits_skip_the_encoder(tmp_path):
    inner = Counting(HashEncoder())
    cache = CachedEncoder(inner, tmp_path)
    first = cache.encode(["a walk", "a kick", "a walk"])
    assert inner.calls == [["a walk", "a kick"]]  # each new text encoded once
    torch.testing.assert_close(first, HashEncoder().encode(["a walk", "a kick", "a walk"]))
    again = cache.encode(["a kick", "a walk"])
    assert len(inner.calls) == 1 and cache.hits == 3 and cache.misses == 2
    assert torch.equal(again, first[[1, 0]])
    cache.encode(["a kick", "a jump"])
    assert inner.calls[1] == ["a jump"]  # only the missing text
    assert cache.encode([]).shape == (0, 64)
    assert cache.folder == tmp_path / "hash-64" and len(_shards(cache)) == 2


def test_cache_survives_a_new_process(tmp_path, minilm):
    inner = Counting(minilm)
    first = CachedEncoder(inner, tmp_path).encode(TEXTS)
    later = Counting(minilm)
    again = CachedEncoder(later, tmp_path).encode(list(reversed(TEXTS)))
    assert later.calls == []
    assert torch.equal(again, first.flip(0))
    assert (tmp_path / "minilm-l6-v2").is_dir()


def test_minilm_behind_a_warm_cache_never_loads_its_model(tmp_path, minilm):
    first = CachedEncoder(minilm, tmp_path).encode(TEXTS)
    fresh = MiniLMEncoder()  # the folder is checked, the model not loaded yet
    assert fresh._loaded is None
    again = CachedEncoder(fresh, tmp_path).encode(TEXTS)
    assert fresh._loaded is None and torch.equal(again, first)
    fresh.encode(TEXTS[:1])  # a miss loads it
    assert fresh._loaded is not None


def test_cache_sees_entries_another_process_wrote(tmp_path):
    one, two = Counting(HashEncoder()), Counting(HashEncoder())
    c1, c2 = CachedEncoder(one, tmp_path), CachedEncoder(two, tmp_path)
    c2.encode(["warm up"])  # c2 has read the (empty) cache before c1 writes
    c1.encode(["a new text"])
    c2.encode(["a new text"])
    assert two.calls == [["warm up"]]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-encoder"])
def test_corrupt_shard_is_reencoded_with_a_warning(tmp_path, damage):
    CachedEncoder(HashEncoder(), tmp_path).encode(["a walk", "a kick"])
    (shard,) = _shards(CachedEncoder(HashEncoder(), tmp_path))
    if damage == "garbage":
        shard.write_bytes(b"not a safetensors file")
    elif damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:-40])
    else:  # a valid shard in the wrong folder
        other = CachedEncoder(HashEncoder(dim=8), tmp_path / "other")
        other.encode(["a walk", "a kick"])
        shard.write_bytes(_shards(other)[0].read_bytes())
    inner = Counting(HashEncoder())
    cache = CachedEncoder(inner, tmp_path)
    with pytest.warns(RuntimeWarning, match="unreadable text-embedding cache shard"):
        emb = cache.encode(["a kick"])
    assert inner.calls == [["a kick"]]
    torch.testing.assert_close(emb, HashEncoder().encode(["a kick"]))
    assert shard.with_name(shard.name + ".corrupt").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quarantined: no second warning
        CachedEncoder(HashEncoder(), tmp_path).encode(["a kick"])


def test_cache_compacts_many_shards(tmp_path):
    texts = [f"caption {i}" for i in range(12)]
    cache = CachedEncoder(HashEncoder(), tmp_path, compact_at=3)
    for i in range(0, 12, 2):
        cache.encode(texts[i : i + 2])
    assert len(_shards(cache)) <= 4
    inner = Counting(HashEncoder())
    assert torch.equal(CachedEncoder(inner, tmp_path).encode(texts), cache.encode(texts))
    assert inner.calls == []


def test_cache_checks_what_the_encoder_returns(tmp_path):
    class Wrong:
        name, dim = "wrong", 4

        def encode(self, texts):
            return torch.zeros(len(texts), 5)

    with pytest.raises(KinemicError, match=r"expected \(1, 4\)"):
        CachedEncoder(Wrong(), tmp_path).encode(["x"])
    Wrong.name = "../escape"
    with pytest.raises(KinemicError, match="cannot name a cache folder"):
        CachedEncoder(Wrong(), tmp_path)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("KINEMIC_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "text"
    monkeypatch.delenv("KINEMIC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "kinemic" / "text"


# -- building encoders by name ----------------------------------------------------------------


def test_get_text_encoder_by_name(tmp_path, monkeypatch, minilm):
    monkeypatch.setitem(TEXT_ENCODERS, "minilm", lambda **kw: minilm)  # no second load
    enc = get_text_encoder("minilm", cache_dir=tmp_path)
    assert isinstance(enc, CachedEncoder) and enc.name == "minilm-l6-v2" and enc.dim == 384
    assert enc.folder == tmp_path / "minilm-l6-v2"
    assert isinstance(get_text_encoder("minilm", cache=False), MiniLMEncoder)
    hashed = get_text_encoder("hash-64", cache_dir=tmp_path)
    assert isinstance(hashed, HashEncoder)  # faster than its cache: never wrapped
    assert not (tmp_path / "hash-64").exists()
    with pytest.raises(KinemicError, match=r"unknown text encoder 'bert'.*clip.*hash-64.*minilm"):
        get_text_encoder("bert")
    with pytest.raises(KinemicError, match="takes no path"):
        get_text_encoder("hash-64", path=tmp_path)


def test_spec_round_trip(tmp_path):
    enc = HashEncoder()
    rebuilt = encoder_from_spec(json.loads(json.dumps(encoder_spec(enc))), cache_dir=tmp_path)
    assert torch.equal(rebuilt.encode(TEXTS), enc.encode(TEXTS))
    assert encoder_from_spec("hash-64").name == "hash-64"
    with pytest.raises(KinemicError, match="recorded 32-d"):
        encoder_from_spec({"name": "hash-64", "dim": 32})


def test_tiny_clip_spec_round_trip(tiny_clip_dir, tmp_path):
    enc = CLIPTextEncoder(path=tiny_clip_dir, max_tokens=7)
    rebuilt = encoder_from_spec(encoder_spec(enc), path=tiny_clip_dir, cache_dir=tmp_path)
    assert rebuilt.name == "clip-vit-b32-t7" and isinstance(rebuilt, CachedEncoder)
    assert torch.equal(rebuilt.encode(["abc def"]), enc.encode(["abc def"]))
