"""The command line: help that teaches, verbs that call the library, errors without tracebacks."""

import shutil

import numpy as np
import pytest

from kinemic.cli import VERBS, build_parser, main
from tests.synthetic import walking_clip


def test_every_verb_has_help_with_examples(capsys):
    for verb in VERBS:
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: kinemic " + verb)
    assert "VERB" in build_parser().format_help()


def test_convert_joints_then_info_validate_render(tmp_path, capsys):
    src = tmp_path / "raw"
    src.mkdir()
    for i in range(3):
        np.save(src / f"clip{i}.npy", walking_clip(50 + 10 * i, seed=i))
    out = tmp_path / "data"
    assert main(["convert", "joints", str(src), str(out)]) == 0
    assert sorted(p.name for p in (out / "new_joint_vecs").iterdir()) == [
        "clip0.npy",
        "clip1.npy",
        "clip2.npy",
    ]
    assert main(["info", str(out)]) == 0
    assert "3 features" in capsys.readouterr().out
    assert main(["validate", str(out)]) == 0
    gif = tmp_path / "x.png"
    assert main(["render", str(out / "new_joints" / "clip0.npy"), "--out", str(gif)]) == 0
    assert gif.stat().st_size > 1000


def test_validate_exits_1_and_names_the_file(tmp_path, ntu_vibe_fixture, capsys):
    data = tmp_path / "ntu"
    shutil.copytree(ntu_vibe_fixture, data)
    for p in data.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    bad = data / "new_joint_vecs" / "S019C001P050R002A099.npy"
    feats = np.load(bad)
    feats[3:5] = np.nan
    np.save(bad, feats)
    assert main(["validate", str(data), "--json", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert "S019C001P050R002A099.npy" in out and "NaN" in out
    assert "S019C001P050R002A099" in (tmp_path / "r.json").read_text()


def test_split_verb_writes_a_new_split(tmp_path, ntu_vibe_fixture, capsys):
    data = tmp_path / "ntu"
    shutil.copytree(ntu_vibe_fixture, data)
    for p in data.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    code = main(["split", str(data), "--shots", "3", "--classes", "run on the spot", "101"])
    assert code == 0
    assert (data / "splits" / "fewshot" / "S0001" / "meta.json").exists()
    assert "S0001" in capsys.readouterr().out


def test_user_errors_print_one_line_and_exit_2(tmp_path, capsys):
    assert main(["convert", "joints", str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kinemic convert: error:") and "Traceback" not in err
    assert main(["render", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "a.gif")]) == 2
    assert "missing.npy" in capsys.readouterr().err


@pytest.mark.parametrize(
    "module", ["cli", "cli.data", "cli.prior", "cli.kinemic", "cli.har", "cli.tmor"]
)
def test_each_cli_module_imports_on_its_own(module):
    """A fresh interpreter imports each CLI module first: no circular import between them."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", f"import kinemic.{module}"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("args", "dest", "new"),
    [
        (["pretrain", "--source", "s", "--out", "o"], "train_steps", "--train-steps"),
        (["finetune", "--target", "t", "--out", "o"], "train_steps", "--train-steps"),
        (["tmor", "pretrain", "--source", "s", "--out", "o"], "train_steps", "--train-steps"),
        (["sample", "--out", "o"], "diffusion_steps", "--diffusion-steps"),
        (["demo"], "finetune_steps", "--finetune-steps"),
        (["evaluate", "--target", "t", "--split", "S0000"], "train_steps", "--train-steps"),
    ],
)
def test_steps_flags_say_which_steps_and_keep_the_old_name(args, dest, new):
    """Optimiser steps and diffusion steps have their own flags; ``--steps``, the old name of
    each, still parses (kept for one release)."""
    parser = build_parser()
    assert getattr(parser.parse_args([*args, new, "7"]), dest) == 7
    assert getattr(parser.parse_args([*args, "--steps", "8"]), dest) == 8
