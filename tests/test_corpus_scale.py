"""The corpus at scale: packs shared by processes, each rank's slice, the loader, text-cache."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kinemic import corpus as corpus_module
from kinemic.corpus import MotionCorpus, draw_batch, step_rng
from kinemic.features import Normalizer
from kinemic.io.humanml3d import Caption, write_clip, write_split
from kinemic.loader import StepLoader
from kinemic.prior.batches import PretrainBatches


def make_source(root: Path, clips: int = 6, seed: int = 0) -> Path:
    """``clips`` random clips of 40..90 rows, each with a whole-clip caption and a 2 s span;
    the last one out of train.txt."""
    rng = np.random.default_rng(seed)
    for i in range(clips):
        features = rng.standard_normal((int(rng.integers(40, 91)), 263)).astype(np.float32)
        caps = [f"caption {i}", Caption.from_text(f"span {i}", start=0.0, end=2.0)]
        write_clip(root, f"{i:06d}", features=features, captions=caps)
    write_split(root, "train", [f"{i:06d}" for i in range(clips - 1)])
    return root


def same_corpus(a: MotionCorpus, b: MotionCorpus) -> None:
    assert np.array_equal(a.features, b.features) and a.features.dtype == b.features.dtype
    assert np.array_equal(a.offsets, b.offsets)
    assert (a.clip_ids, a.captions, a.skipped) == (b.clip_ids, b.captions, b.skipped)
    assert len(a.clip_captions) == len(b.clip_captions)
    for x, y in zip(a.clip_captions, b.clip_captions, strict=True):
        assert np.array_equal(x, y)


def packs(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_the_pack_holds_the_clips_exactly_and_is_reused(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    cache = tmp_path / "packs"
    memory = MotionCorpus.load([source], min_frames=20, progress=False, cache=False)
    built = MotionCorpus.load([source], min_frames=20, progress=False, cache=cache)
    assert memory.pack is None and isinstance(built.features, np.memmap)
    assert built.features.filename is not None and not built.features.flags.writeable
    same_corpus(built, memory)
    for i in range(len(memory)):
        assert np.array_equal(built.clip(i), memory.clip(i))
    (pack,) = packs(cache)
    stamp = (pack / "rows.bin").stat().st_mtime_ns
    opened = MotionCorpus.load([source], min_frames=20, progress=False, cache=cache)
    same_corpus(opened, memory)
    assert packs(cache) == [pack] and (pack / "rows.bin").stat().st_mtime_ns == stamp
    assert np.allclose(opened.fit_normalizer().mean, memory.fit_normalizer().mean)
    # other settings are another pack
    MotionCorpus.load([source], min_frames=20, split=None, progress=False, cache=cache)
    assert len(packs(cache)) == 2


def test_a_changed_folder_builds_a_new_pack(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    cache = tmp_path / "packs"
    before = MotionCorpus.load([source], min_frames=20, progress=False, cache=cache)
    new = np.full((44, 263), 7.0, dtype=np.float32)
    time.sleep(0.01)  # a later mtime, whatever the file system's resolution
    write_clip(source, "000002", features=new, captions=["caption 2"])
    after = MotionCorpus.load([source], min_frames=20, progress=False, cache=cache)
    assert len(packs(cache)) == 2 and after.pack != before.pack
    assert np.array_equal(after.clip(2), new)
    same_corpus(after, MotionCorpus.load([source], min_frames=20, progress=False, cache=False))


def test_a_damaged_pack_is_built_again(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    cache = tmp_path / "packs"
    first = MotionCorpus.load([source], min_frames=20, progress=False, cache=cache)
    with open(first.pack / "rows.bin", "r+b") as f:
        f.truncate(100)
    with pytest.warns(RuntimeWarning, match="damaged corpus pack"):
        again = MotionCorpus.load([source], min_frames=20, progress=False, cache=cache)
    same_corpus(again, MotionCorpus.load([source], min_frames=20, progress=False, cache=False))


def _open(source: Path, cache: Path, log: Path, queue) -> None:
    read = corpus_module._read_corpus

    def slow_read(*args, **kwargs):  # a build that takes a while, and says it happened
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        return read(*args, **kwargs)

    corpus_module._read_corpus = slow_read
    c = MotionCorpus.load([source], min_frames=20, progress=False, cache=cache)
    queue.put((str(c.pack), np.asarray(c.features).tobytes(), c.clip_ids))


def test_two_processes_opening_it_at_once_build_it_once(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    cache, log = tmp_path / "packs", tmp_path / "builds.log"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_open, args=(source, cache, log, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(log.read_text().split()) == 1  # one build; the other process waited and opened
    assert got[0] == got[1]
    memory = MotionCorpus.load([source], min_frames=20, progress=False, cache=False)
    assert got[0][1] == memory.features.tobytes()


def test_a_pickled_corpus_maps_its_pack_again(tmp_path: Path) -> None:
    import pickle

    c = MotionCorpus.load([make_source(tmp_path / "src")], progress=False, cache=tmp_path / "p")
    data = pickle.dumps(c)
    assert len(data) < c.features.nbytes  # the rows are not in the pickle
    back = pickle.loads(data)
    assert isinstance(back.features, np.memmap)
    same_corpus(back, c)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> MotionCorpus:
    root = tmp_path_factory.mktemp("scale")
    source = make_source(root / "src", clips=12, seed=1)
    return MotionCorpus.load([source], min_frames=20, progress=False, cache=root / "packs")


def test_each_rank_makes_its_slice_and_the_slices_are_the_global_batch(corpus) -> None:
    normalizer = Normalizer(np.zeros(263), np.ones(263))
    whole = PretrainBatches(corpus, normalizer, 50, 8, seed=3, max_frames=60)
    for step in (0, 5):
        full = whole(step)
        parts = [
            PretrainBatches(corpus, normalizer, 50, 8, seed=3, max_frames=60, rank=r, world_size=2)(
                step
            )
            for r in range(2)
        ]
        for key in ("t", "caption"):
            assert torch.equal(torch.cat([p[key] for p in parts]), full[key])
        for r, part in enumerate(parts):
            rows = slice(4 * r, 4 * r + 4)
            longest = int(part["mask"].sum(1).max())
            assert part["x0"].shape[1] == longest  # padded to its own longest crop only
            for key in ("x0", "mask", "noise"):
                assert torch.equal(part[key], full[key][rows, :longest])
        # draw_batch's slice: the global batch's rows, reading only those
        b = draw_batch(corpus, step_rng(3, step), 8, max_frames=60, rows=slice(4, 8))
        g = draw_batch(corpus, step_rng(3, step), 8, max_frames=60)
        assert torch.equal(b.clip, g.clip[4:]) and torch.equal(b.lengths, g.lengths[4:])
        assert torch.equal(b.features, g.features[4:, : b.features.shape[1]])


def test_the_loader_gives_what_the_task_draws_with_and_without_workers(corpus) -> None:
    normalizer = Normalizer(np.zeros(263), np.ones(263))
    draw = PretrainBatches(corpus, normalizer, 50, 4, seed=0, max_frames=60, rank=1, world_size=2)
    loader = StepLoader(draw, workers=2, prefetch=2)
    for step in [0, 1, 2, 3, 7, 8, 2]:  # consecutive, then a jump (a resumed run), then back
        got, want = loader(step), draw(step)
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want)
    loader.close()


def test_tmor_ranks_make_their_slices_of_the_global_batch(tmp_path: Path) -> None:
    from kinemic.features import encode_clip
    from kinemic.tmor.data import TMORBatches, TMORCorpus
    from tests.synthetic import walking_clip

    root = tmp_path / "src"
    for i in range(6):
        features, joints = encode_clip(walking_clip(50 + 5 * i, seed=i))
        write_clip(root, f"{i:06d}", features=features, joints=joints, captions=[f"walk left {i}"])
    c = TMORCorpus.load([root], progress=False)
    whole = TMORBatches(c, 6, seed=2, max_frames=40)(4)
    parts = [TMORBatches(c, 6, seed=2, max_frames=40, rank=r, world_size=3)(4) for r in range(3)]
    for r, part in enumerate(parts):
        longest = part["joints"].shape[1]
        assert longest == int(part["mask"].sum(1).max())
        rows = slice(2 * r, 2 * r + 2)
        assert torch.equal(part["joints"], whole["joints"][rows, :longest])
        assert torch.equal(part["text"], whole["text"][rows])
        assert torch.equal(part["clip"], whole["clip"][rows])


@pytest.mark.slow  # MiniLM loads twice, and a pretraining run: ~25 s
def test_text_cache_fills_what_pretraining_then_reads(tmp_path: Path, monkeypatch) -> None:
    from kinemic.cli import main
    from kinemic.prior.pretrain import pretrain
    from kinemic.text import MiniLMEncoder

    source = make_source(tmp_path / "src", clips=4)
    cache = tmp_path / "text"
    code = main(["text-cache", "--source", str(source), "--cache", str(cache), "--batch-size", "3"])
    assert code == 0
    shards = sorted((cache / "minilm-l6-v2").glob("*.safetensors"))
    assert len(shards) == 2  # 6 captions of train (3 clips x 2), 3 per call: one shard each

    def refuse(self, texts):
        raise AssertionError(f"encoded again: {texts}")

    monkeypatch.setattr(MiniLMEncoder, "encode", refuse)
    pretrain(
        [source],
        tmp_path / "run",
        train_steps=1,
        batch_size=2,
        text_cache=cache,
        diffusion_steps=4,
        checkpoint_every=1,
        progress=False,
        model_overrides={"latent_dim": 16, "ff_dim": 32, "num_layers": 1, "num_heads": 2},
    )
    assert (tmp_path / "run" / "latest").exists()


def test_the_pack_gets_the_mode_the_umask_gives(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src", clips=3)
    old = os.umask(0o022)
    try:
        c = MotionCorpus.load([source], min_frames=20, progress=False, cache=tmp_path / "p")
    finally:
        os.umask(old)
    assert c.pack.stat().st_mode & 0o777 == 0o755
    assert (c.pack / "rows.bin").stat().st_mode & 0o777 == 0o644
