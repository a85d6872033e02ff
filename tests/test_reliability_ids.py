"""Issue 25, item 2: every id read from a split list is one plain file name inside the dataset.

A list naming ``../../outside/evil`` (whose features exist, outside the dataset) is refused by
every reader (HumanML3D lists and pretraining's corpus, NTU-VIBE default and few-shot splits,
fine-tuning's targets, synthetic sets) with a DataError naming the list, the line and the id;
``validate`` reports the same problem. ``kinemic split --name ../..`` and ``--shots 0`` are
clear errors, not tracebacks, and write nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from kinemic.cli import main
from kinemic.corpus import MotionCorpus
from kinemic.errors import DataError
from kinemic.files import name_problem
from kinemic.io.humanml3d import HumanML3DDataset, clip_id_problem, write_clip, write_split
from kinemic.io.ntu_vibe import FewShotSplit, NTUVibeDataset, write_fewshot_split
from kinemic.io.synthetic import read_synthetic
from kinemic.validate import validate_dataset
from tests.test_reliability_loaders import DEFAULT, TASK, tiny_target

EVIL = "../../outside/evil"

REAL_IDS = [
    "000021",
    "M000021",
    "S001C001P001R001A001",
    "MS017C003P020R002A060",
    "02_01_000",
    "synth_A099_00001",
    "walk 02",
    "Gehen-über_01",
]
BAD_IDS = [
    "",
    ".",
    "..",
    EVIL,
    "a/b",
    "/etc/passwd",
    "a\\b",
    "C:evil",
    "a\x00b",
    "a\tb",
    "a\u2028b",
    ".hidden",
    " 000021",
    "000021 ",
    "x" * 201,
]


@pytest.mark.parametrize("name", REAL_IDS)
def test_every_real_id_is_a_plain_name(name: str) -> None:
    assert name_problem(name) is None and clip_id_problem(name) is None


@pytest.mark.parametrize("name", BAD_IDS, ids=[ascii(n)[:20] for n in BAD_IDS])
def test_anything_else_is_refused_and_named(name: str) -> None:
    assert name_problem(name)
    problem = clip_id_problem(name)
    assert problem is not None and problem.startswith(f"{name!r} is not a clip id: ")


def _outside(tmp_path: Path) -> None:
    """Features at tmp_path/outside/evil.npy: where ``EVIL`` leads from ROOT/new_joint_vecs."""
    (tmp_path / "outside").mkdir()
    np.save(tmp_path / "outside" / "evil.npy", np.zeros((48, 263), np.float32))


def _assert_refused(err: pytest.ExceptionInfo, path: Path, line: int) -> None:
    assert (err.value.path, err.value.line) == (path, line)
    assert f"{EVIL!r} is not a clip id: it holds a path separator" in str(err.value)


def test_humanml3d_lists_and_pretraining_refuse_an_escaping_id(tmp_path: Path) -> None:
    _outside(tmp_path)
    root = tmp_path / "ds"
    write_clip(root, "000000", features=np.zeros((48, 263)), captions=["a person walks"])
    (root / "train.txt").write_text(f"000000\n{EVIL}\n")
    assert HumanML3DDataset(root).has_clip(EVIL)  # the file is there: only the rule stops it
    for load in (
        lambda: HumanML3DDataset(root).split("train"),
        lambda: MotionCorpus.load([root], progress=False),
    ):
        with pytest.raises(DataError) as err:
            load()
        _assert_refused(err, root / "train.txt", 2)
    report = validate_dataset(root, progress=False)
    (problem,) = [p for p in report.errors if p.path == "train.txt"]
    assert problem.line == 2 and problem.message.startswith(f"{EVIL!r} is not a clip id")
    for name in ("../train", "/tmp/x", ".."):
        with pytest.raises(DataError, match=re.escape(f"split name {name!r}")):
            HumanML3DDataset(root).split(name)
        with pytest.raises(DataError, match=re.escape(f"split name {name!r}")):
            MotionCorpus.load([root], split=name, progress=False)


@pytest.mark.parametrize("rel", [TASK / "train.txt", DEFAULT / "val.txt"])
def test_ntu_vibe_splits_and_finetuning_refuse_an_escaping_id(tmp_path: Path, rel: Path) -> None:
    from kinemic.features import Normalizer
    from kinemic.finetune.data import load_targets

    _outside(tmp_path)
    root = tiny_target(tmp_path / "ds")
    lines = (root / rel).read_text().splitlines()
    lines[1] = EVIL
    (root / rel).write_text("\n".join(lines) + "\n")
    ds = NTUVibeDataset(root)
    normalizer = Normalizer(np.zeros(263), np.ones(263))
    loaders = {
        "default": [lambda: ds.default_split("xsub", "val")],
        "fewshot": [
            lambda: ds.fewshot_split("S0000"),
            lambda: load_targets(root, "S0000", normalizer=normalizer),  # finetune's reader
        ],
    }
    for load in loaders[rel.parts[1]]:
        with pytest.raises(DataError) as err:
            load()
        _assert_refused(err, root / rel, 2)
    report = validate_dataset(root, progress=False)
    assert any(
        p.path == rel.as_posix() and p.line == 2 and "is not a clip id" in p.message
        for p in report.errors
    ), report.format()
    with pytest.raises(DataError, match=r"few-shot split name '\.\./\.\./S0000'"):
        ds.fewshot_split("../../S0000")


def test_a_synthetic_set_with_an_escaping_id_is_refused(tmp_path: Path) -> None:
    _outside(tmp_path)
    root = tiny_target(tmp_path / "target")
    synth = tmp_path / "synth"
    write_clip(synth, "synth_A001_00000", features=np.zeros((12, 263)))
    (synth / "synth.txt").write_text(f"synth_A001_00000\n{EVIL}\n")
    (synth / "synth_y.txt").write_text("0\n1\n")
    with pytest.raises(DataError) as err:
        read_synthetic(synth, NTUVibeDataset(root).fewshot_split("S0000"))
    _assert_refused(err, synth / "synth.txt", 2)


def test_writers_refuse_ids_no_reader_would_take(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a clip id"):
        write_clip(tmp_path, EVIL, features=np.zeros((4, 263)))
    with pytest.raises(DataError, match=r"train\.txt, line 2: '\.\./\.\./outside/evil' is not"):
        write_split(tmp_path, "train", ["000000", EVIL])
    with pytest.raises(DataError, match=re.escape("split name '../x'")):
        write_split(tmp_path, "../x", ["000000"])
    with pytest.raises(DataError, match=re.escape("few-shot split name '../S0000'")):
        write_fewshot_split(tmp_path, FewShotSplit("../S0000", [0], 0, 1, ["a"], [0]))
    with pytest.raises(DataError, match=re.escape("train.txt, line 1: '../a' is not a clip id")):
        write_fewshot_split(tmp_path, FewShotSplit("S0000", [0], 0, 1, ["../a"], [0]))
    assert list(tmp_path.rglob("*.*")) == []


def test_split_verb_refuses_bad_names_and_shots(tmp_path: Path, capsys) -> None:
    root = tiny_target(tmp_path / "ds")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cases = [
        (["--name", ".."], "split name '..': '..' names a folder"),
        (["--name", "../.."], "split name '../..': it holds a path separator"),
        (["--name", "../../evil"], "split name '../../evil': it holds a path separator"),
        (["--name", "/tmp/evil"], "split name '/tmp/evil': it holds a path separator"),
        (["--name", ".hidden"], "split name '.hidden': it starts with '.'"),
        (["--shots", "0"], "shots must be a whole number of at least 1, found 0"),
        (["--shots", "-3"], "shots must be a whole number of at least 1, found -3"),
    ]
    for args, message in cases:
        assert main(["split", str(root), "--classes", "0", "1", "--shots", "1", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("kinemic split: error: ") and message in err, err
        assert "Traceback" not in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert main(["split", str(root), "--classes", "0", "1", "--shots", "1", "--name", "S0005"]) == 0
    split = NTUVibeDataset(root).fewshot_split("S0005")  # the same command with a plain name
    assert split.train_labels == [0, 1] and split.train_ids[1].endswith("A002")
