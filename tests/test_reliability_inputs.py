"""Inputs that used to pass silently are refused with a clear error (issue 25, item 8):
``export pyskl`` of clips with no frame or NaN keypoints, and sampling settings outside the
rules that ``sample`` and ``synthesize`` now share (empty text, guidance <= 0, DDIM steps
outside the model's schedule)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from kinemic.cli import main
from kinemic.errors import DataError, KinemicError
from kinemic.io.pyskl import PysklData, annotation, read_pyskl, write_pyskl
from kinemic.prior.sample import check_sampling

CLIP = "S019C001P050R002A099"  # a training clip of the fixture's S0000 split


def cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.fixture
def dataset(ntu_vibe_fixture: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ntu"
    shutil.copytree(ntu_vibe_fixture, root)
    return root


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda j: j[:0], "no frames"),
        (lambda j: np.where(np.arange(len(j))[:, None] == 3, np.nan, j), "NaN or infinite"),
        (lambda j: np.full_like(j, np.inf), "NaN or infinite keypoints in"),
    ],
)
def test_export_pyskl_refuses_empty_and_nan_clips(dataset, tmp_path, capsys, damage, problem):
    joints_file = dataset / "new_joints" / f"{CLIP}.npy"
    joints = np.load(joints_file)  # (T, 66)
    joints_file.chmod(0o644)
    np.save(joints_file, damage(joints))
    out = tmp_path / "s.pkl"
    code, err = cli(capsys, "export", "pyskl", dataset, "--split", "S0000", "--out", out)
    assert code == 2, err
    assert str(joints_file) in err and problem in err
    assert not out.exists()


def test_pyskl_pickles_with_empty_or_nan_keypoints_are_refused(tmp_path):
    empty = annotation("a", 0, np.zeros((0, 22, 3)))
    with pytest.raises(DataError, match=r"annotation 0 \(a\): no frames"):
        write_pyskl(tmp_path / "bad.pkl", PysklData({"train": ["a"]}, [empty]))
    nan = annotation("b", 0, np.zeros((4, 22, 3)))
    nan["keypoint"][0, 2, 7, 1] = np.nan
    with pytest.raises(DataError, match=r"annotation 0 \(b\): NaN or infinite .* frame 2"):
        write_pyskl(tmp_path / "bad.pkl", PysklData({"train": ["b"]}, [nan]))
    assert not (tmp_path / "bad.pkl").exists()
    # written by another tool: the reader refuses it too
    import pickle

    (tmp_path / "other.pkl").write_bytes(
        pickle.dumps({"split": {"train": ["b"]}, "annotations": [nan]})
    )
    with pytest.raises(DataError, match=r"other\.pkl.*NaN or infinite"):
        read_pyskl(tmp_path / "other.pkl")


SAMPLE = ["sample", "--n", 1, "--length", 4, "--no-gif"]


@pytest.mark.parametrize(
    "option, problem",
    [
        (["--text", ""], "a caption must hold words"),
        (["--text", "   "], "a caption must hold words"),
        (["--guidance", -3], "guidance must be a number > 0"),
        (["--guidance", 0], "guidance must be a number > 0"),
        (["--guidance", "nan"], "guidance must be a number > 0"),
        (["--guidance", "inf"], "guidance must be a number > 0"),
        (["--ddim", 0], "ddim must be in [1, 50]"),
        (["--ddim", 999], "ddim must be in [1, 50]"),
    ],
)
def test_sample_refuses_settings_outside_the_rules(tmp_path, capsys, option, problem):
    out = tmp_path / "s"
    code, err = cli(capsys, *SAMPLE, *option, "--out", out)
    assert code == 2, err
    assert problem in err
    assert not out.exists()


def test_synthesize_applies_the_same_rules(monkeypatch, tmp_path):
    import kinemic.finetune.generator as generator
    from kinemic.finetune.synthesize import synthesize

    fake = SimpleNamespace(schedule=SimpleNamespace(num_steps=10))
    monkeypatch.setattr(generator, "load_generator", lambda model, device: fake)
    for settings, problem in [
        (dict(guidance=-3), "guidance must be a number > 0"),
        (dict(guidance=float("nan")), "guidance must be a number > 0"),
        (dict(ddim=0), r"ddim must be in \[1, 10\]"),
        (dict(ddim=11), r"ddim must be in \[1, 10\]"),
    ]:
        with pytest.raises(KinemicError, match=problem):
            synthesize("run", tmp_path / "out", per_class=1, progress=False, **settings)


def test_check_sampling_accepts_what_the_models_can_do():
    check_sampling(guidance=1.0, ddim=None, num_steps=50)
    check_sampling(guidance=2.5, ddim=50, num_steps=50)
    check_sampling(guidance=0.5, ddim=1, num_steps=50)
