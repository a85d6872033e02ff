"""Resume reads no pickle and no damaged state (issue 25, items 1 and 9).

Nothing in a run folder is unpickled on ``--resume``: an older, pickle-based checkpoint is
refused naming its file, and a pickle planted in place of any state file is refused unread.
A damaged or missing piece of a checkpoint is an error naming the file (never a silently
inexact run), and the error names the earlier checkpoint that still resumes."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from kinemic.errors import KinemicError
from kinemic.train_state import manifest
from kinemic.training import train
from test_training import ToyTask, _cfg, _toy_model

pytestmark = pytest.mark.usefixtures("one_thread")
LAST = "checkpoints/step-00000010"
STATE = ("model.safetensors", "ema.safetensors", "optimizer.safetensors", "optimizer.json")


class _Plant:
    """Unpickling this creates ``marker``: proof that a file was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run with checkpoints at steps 5 and 10."""
    run = tmp_path_factory.mktemp("resume") / "run"
    train(_toy_model(), ToyTask(), run, _cfg(10), fingerprint={})
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _resume(run: Path, **kw):
    return train(_toy_model(), ToyTask(), run, _cfg(15), fingerprint={}, resume=run, **kw)


def _remanifest(run: Path) -> None:
    """Make trainer.json's manifest agree with state/ (as a consistent forgery would)."""
    trainer = run / LAST / "trainer.json"
    info = json.loads(trainer.read_text())
    trainer.write_text(json.dumps({**info, "state": manifest(run / LAST / "state")}))


def test_the_planted_pickle_runs_code_when_unpickled(tmp_path) -> None:
    """The bait works: the tests below would see its marker had anything unpickled it."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_Plant(marker)))
    assert marker.exists()


def test_an_older_pickle_based_checkpoint_is_refused_unread(run, tmp_path) -> None:
    """The layout accelerate's save_state wrote, with a crafted EMA pickle."""
    marker = tmp_path / "marker"
    state = run / LAST / "state"
    for name in ("ema.safetensors", "optimizer.safetensors", "optimizer.json", "rng-0.json"):
        (state / name).unlink()
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"):
        (state / name).write_bytes(pickle.dumps(_Plant(marker)))
    trainer = run / LAST / "trainer.json"
    info = json.loads(trainer.read_text())
    del info["state"]
    trainer.write_text(json.dumps(info))
    with pytest.raises(KinemicError, match=r"custom_checkpoint_0\.pkl: an older, pickle-based"):
        _resume(run)
    assert not marker.exists()


@pytest.mark.parametrize("name", [*STATE, "rng-0.json", "custom_checkpoint_0.pkl"])
@pytest.mark.parametrize("manifest", ["as written", "forged to agree"])
def test_a_pickle_in_place_of_any_state_file_is_refused_unread(run, tmp_path, name, manifest):
    marker = tmp_path / "marker"
    path = run / LAST / "state" / name
    path.write_bytes(pickle.dumps(_Plant(marker)))
    if manifest != "as written":
        _remanifest(run)
    with pytest.raises(KinemicError) as refused:
        _resume(run)
    assert str(path) in str(refused.value)
    assert not marker.exists()


@pytest.mark.parametrize("name", [*STATE, "rng-0.json"])
@pytest.mark.parametrize("damage", ["truncated", "deleted", "one byte changed"])
def test_a_damaged_piece_of_the_state_is_an_error_naming_it(run, name, damage) -> None:
    path = run / LAST / "state" / name
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "deleted":
        path.unlink()
    else:
        path.write_bytes(data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
    with pytest.raises(KinemicError, match=rf"state/{name}(: damaged|$|;)") as refused:
        _resume(run)
    message = str(refused.value)
    assert ("missing" if damage == "deleted" else "damaged") in message
    assert f"--resume {run / 'checkpoints/step-00000005'}" in message  # what to do instead
    earlier = train(
        _toy_model(),
        ToyTask(),
        run,
        _cfg(15),
        fingerprint={},
        resume=run / "checkpoints/step-00000005",
    )
    assert earlier.step == 15


def _reshaped(path: Path, key: str | None = None) -> None:
    tensors = load_file(path)
    key = key or next(k for k, v in tensors.items() if v.ndim == 2)
    tensors[key] = torch.zeros(3, 3)
    save_file(tensors, path)


def _bad_rng(path: Path) -> None:
    state = json.loads(path.read_text())
    state["torch"] = state["torch"][:100]
    path.write_text(json.dumps(state))


def _bad_groups(path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["param_groups"][0]["params"] = doc["param_groups"][0]["params"][:-1]
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("name", "spoil", "problem"),
    [
        ("model.safetensors", _reshaped, "size mismatch for 0.weight"),
        ("ema.safetensors", _reshaped, "size mismatch for module.0.weight"),
        ("optimizer.safetensors", lambda p: _reshaped(p, "state.0.exp_avg"), "has shape (3, 3)"),
        ("optimizer.json", _bad_groups, "parameter groups of sizes"),
        ("rng-0.json", _bad_rng, "not a usable RNG state"),
        ("trainer.json", lambda p: p.write_text(p.read_text()[:50]), "not a readable checkpoint"),
    ],
)
def test_a_consistent_but_wrong_state_is_an_error_naming_the_file(run, name, spoil, problem):
    """A checkpoint whose manifest agrees with files of the wrong shapes or contents."""
    path = run / LAST / ("" if name == "trainer.json" else "state") / name
    if name != "trainer.json":
        spoil(path)
        _remanifest(run)
    else:
        spoil(path)
    with pytest.raises(KinemicError, match=re.escape(problem)) as refused:
        _resume(run)
    assert str(path) in str(refused.value)
