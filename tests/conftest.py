"""Shared test fixtures: where ``../shared`` is, and skips that say why."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests never download and never write into the user's cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("KINEMIC_CACHE", tempfile.mkdtemp(prefix="kinemic-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KINEMIC_SHARED", REPO.parent / "shared"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(
            f"{path} is absent: these tests read the real fixtures from ../shared beside the "
            "checkout (set KINEMIC_SHARED to point elsewhere)"
        )
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def humanml3d_fixture() -> Path:
    """The real HumanML3D sample (clip 012314, Mean.npy, Std.npy)."""
    return _need(SHARED / "fixtures" / "humanml3d")


@pytest.fixture(scope="session")
def ntu_vibe_fixture() -> Path:
    """20 real NTU-VIBE clips (A099, A102) with the paper's S0000 few-shot split."""
    return _need(SHARED / "fixtures" / "ntu-vibe")


@pytest.fixture(scope="session")
def cmu_bvh_dir() -> Path:
    """98 real CMU mocap trials (BVH, 30 fps) with ``index.tsv``."""
    return _need(SHARED / "data" / "cmu-bvh")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train fastest (and least disturbed by other jobs) on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """A tiny procedural world (seed 0), generated once per test session and shared read-only:
    ``source/`` (60 sequences with segment sidecars) and ``target/`` (6 classes, split S0000).
    Tests that modify a world copy it first."""
    from kinemic.world.generate import generate_world

    out = tmp_path_factory.mktemp("tiny-world") / "world"
    generate_world(out, seed=0, scale="tiny", progress=False, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_generators(tiny_world, tmp_path_factory) -> dict[str, Path]:
    """Both fine-tuning methods, 4 steps of batch 6 from the shipped prior on ``tiny_world``'s
    split S0000 (checkpoints at steps 2 and 4): {"kinemic": RUN, "mdm-ft": RUN}. Read-only."""
    import torch

    from kinemic.finetune.run import FinetuneConfig, finetune

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    runs = {}
    try:
        for method in ("kinemic", "mdm-ft"):
            runs[method] = tmp_path_factory.mktemp("generator") / method
            config = FinetuneConfig(
                method=method, train_steps=4, batch_size=6, k=20, checkpoint_every=2, log_every=2
            )
            finetune(
                tiny_world / "target",
                runs[method],
                source=tiny_world / "source",
                config=config,
                progress=False,
            )
    finally:
        torch.set_num_threads(threads)
    return runs
