"""Generation split over processes (kinemic.shards): the parts of N shards add up to the set one
process makes, clip for clip, whichever shard finishes last assembles it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kinemic.cli import main
from kinemic.errors import KinemicError
from kinemic.finetune.synthesize import synthesize
from kinemic.prior.sample import PARTS, sample_motions
from kinemic.shards import Shard, batch_seed

pytestmark = pytest.mark.usefixtures("one_thread")


def test_shards_own_every_batch_once_and_batch_seeds_differ(monkeypatch):
    shards = [Shard(k, 3) for k in range(3)]
    assert [[b for b in range(7) if s.owns(b)] for s in shards] == [[0, 3, 6], [1, 4], [2, 5]]
    assert batch_seed(7, 0) == 7
    assert len({batch_seed(s, b) for s in range(5) for b in range(50)}) == 250
    with pytest.raises(KinemicError, match="--shards N and --shard K together"):
        Shard.from_args(2, None)
    with pytest.raises(KinemicError, match=r"in 0\.\.N-1"):
        Shard.from_args(2, 2)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert Shard.from_args() == Shard(2, 4) and Shard.from_args(1, 0).whole


@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory) -> Path:
    """A 2-layer prior with the "hash-64" test text encoder (fast to load and to encode)."""
    import torch

    from kinemic.diffusion import Denoiser, DenoiserConfig
    from kinemic.features import Normalizer
    from kinemic.prior.folder import save_prior

    torch.manual_seed(0)
    config = DenoiserConfig(latent_dim=32, num_layers=2, num_heads=4, ff_dim=64, text_dim=64)
    return save_prior(
        tmp_path_factory.mktemp("prior") / "tiny",
        denoiser=Denoiser(config),
        normalizer=Normalizer(np.zeros(263), np.ones(263)),
        num_steps=6,
        text_encoder="hash-64",
        max_frames=40,
    )


def _files(folder: Path, sub: str) -> dict[str, np.ndarray]:
    return {p.name: np.load(p) for p in sorted((folder / sub).glob("*.npy"))}


def test_sharded_sampling_writes_what_one_process_writes(tiny_prior, tmp_path, capsys):
    kw = dict(texts=["a person waves"], n=5, length=8, ddim=2, seed=3, batch_size=2, gif=False)
    one = sample_motions(tiny_prior, **kw, out=tmp_path / "one", progress=False)
    two = tmp_path / "two"
    args = ["sample", "--model", str(tiny_prior), "--text", "a person waves", "--n", "5"]
    args += ["--length", "8", "--ddim", "2"]
    args += ["--seed", "3", "--batch-size", "2", "--no-gif", "--device", "cpu", "--out", str(two)]
    assert main([*args, "--shards", "2", "--shard", "1"]) == 0
    assert "part-1-of-2" in capsys.readouterr().out
    assert sorted(_files(two, "features")) == ["2.npy", "3.npy"]  # batch 1 of 0, 1, 2
    assert (two / PARTS).is_dir() and not (two / "info.json").exists()
    assert main([*args, "--shards", "2", "--shard", "0"]) == 0
    assert not (two / PARTS).exists()
    for sub in ("features", "joints"):
        a, b = _files(one, sub), _files(two, sub)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    info_one, info_two = (json.loads((f / "info.json").read_text()) for f in (one, two))
    assert info_two["samples"] == info_one["samples"] and info_two["shards"] == 2
    # the default is one batch, seeded with the seed: a batch of 2 from seed 3 is its first two
    whole = sample_motions(tiny_prior, **{**kw, "n": 2, "batch_size": None}, out=tmp_path / "w")
    assert np.array_equal(np.load(whole / "features/1.npy"), np.load(one / "features/1.npy"))


def _same_sets(a: Path, b: Path) -> None:
    for sub in ("new_joint_vecs", "new_joints"):
        fa, fb = _files(a, sub), _files(b, sub)
        assert fa.keys() == fb.keys() and all(np.array_equal(fa[k], fb[k]) for k in fa)
    for name in ("synth.txt", "synth_y.txt", "info.json", "ntu_classes.txt"):
        assert (a / name).read_text() == (b / name).read_text(), name
    assert sorted(os.listdir(a / "texts")) == sorted(os.listdir(b / "texts"))


def test_two_shards_one_after_the_other_give_the_single_process_set(tiny_generators, tmp_path):
    run = tiny_generators["kinemic"]
    kw = dict(per_class=2, ddim=2, seed=4, batch_size=2, progress=False)  # 6 clips, 3 batches
    one = synthesize(run, tmp_path / "one", **kw)
    out = tmp_path / "two"
    synthesize(run, out, **kw, shard=Shard(0, 2))
    parts = tmp_path / "two.parts"
    assert not out.exists() and (parts / "part-0-of-2" / "part.json").is_file()
    assert len(list((parts / "part-0-of-2" / "new_joint_vecs").iterdir())) == 4  # batches 0, 2
    synthesize(run, out, **kw, shard=Shard(1, 2))
    assert not parts.exists() and not list(tmp_path.glob("*partial*"))
    _same_sets(one, out)
    # a shard of other settings is refused, naming the part it does not match
    synthesize(run, tmp_path / "three", **kw, shard=Shard(0, 2))
    with pytest.raises(KinemicError, match=r"part-0-of-2/part.json: a part of a synthesis with"):
        synthesize(run, tmp_path / "three", **{**kw, "seed": 5}, shard=Shard(1, 2))
    assert not (tmp_path / "three").exists()


@pytest.mark.slow
def test_two_launched_processes_at_once_give_the_single_process_set(tiny_generators, tmp_path):
    """Two processes as accelerate launch or torchrun start them (WORLD_SIZE, RANK), at once:
    whichever finishes last assembles the set."""
    run = tiny_generators["kinemic"]
    kw = dict(per_class=2, ddim=2, seed=4, batch_size=2, progress=False)
    one = synthesize(run, tmp_path / "one", **kw)
    out = tmp_path / "two"
    cmd = [sys.executable, "-m", "kinemic", "synthesize", "--model", str(run), "--per-class"]
    cmd += ["2", "--ddim", "2", "--seed", "4", "--batch-size", "2", "--out", str(out)]
    procs = [
        subprocess.Popen(
            cmd,
            env={**os.environ, "WORLD_SIZE": "2", "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert sum(f"wrote {out}\n" in log for log in logs) == 1, logs  # one assembled it
    assert not (tmp_path / "two.parts").exists()
    _same_sets(one, out)
