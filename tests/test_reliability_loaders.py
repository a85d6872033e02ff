"""Issue 25, item 7: the loaders refuse what ``kinemic validate`` calls wrong, by the same rule.

Each corruption of a tiny NTU-VIBE dataset (made here) is reported by ``validate_dataset`` and
raised by the loader that reads the file, against the same file and line with the same words;
``finetune``'s ``load_targets`` refuses a few-shot split with two labels swapped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from kinemic.corpus import MotionCorpus
from kinemic.errors import DataError, KinemicError
from kinemic.io.humanml3d import HumanML3DDataset, write_clip, write_split
from kinemic.io.ntu_vibe import (
    FewShotSplit,
    NTUVibeDataset,
    write_class_names,
    write_default_split,
    write_fewshot_split,
    write_metadata,
)
from kinemic.validate import validate_dataset

TASK = Path("splits/fewshot/S0000/xsub")
DEFAULT = Path("splits/default/xsub")


def clip_id(action: int, performer: int) -> str:
    return f"S001C001P{performer:03d}R001A{action:03d}"


def tiny_target(root: Path) -> Path:
    """Six clips of classes 0 and 1 (performers 1, 2 train, 3 val), the xsub default split and
    a few-shot split S0000 of both classes with 2 shots; ``validate`` calls it OK."""
    rng = np.random.default_rng(0)
    for a in (1, 2):
        for p in (1, 2, 3):
            write_clip(
                root,
                clip_id(a, p),
                features=rng.normal(size=(12, 263)),
                joints=np.zeros((12, 22, 3)),
                captions=["a person waves"],
            )
    write_class_names(root, ["drink water", "eat meal", "brush teeth"])
    write_metadata(root, ["A person drinks.", "A person eats.", "A person brushes."])
    train = [clip_id(a, p) for a in (1, 2) for p in (1, 2)]
    val = [clip_id(a, 3) for a in (1, 2)]
    write_default_split(root, "xsub", "train", train, [0, 0, 1, 1])
    write_default_split(root, "xsub", "val", val, [0, 1])
    write_fewshot_split(root, FewShotSplit("S0000", [0, 1], 0, 2, train, [0, 0, 1, 1], val, [0, 1]))
    return root


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{x}\n" for x in lines))


def swap_two_labels(root: Path) -> None:
    y = _lines(root / TASK / "train_y.txt")  # 0 0 1 1 -> 0 1 0 1: the counts stay right
    y[1], y[2] = y[2], y[1]
    _write(root / TASK / "train_y.txt", y)


def label_against_the_action_code(root: Path) -> None:
    _write(root / DEFAULT / "val_y.txt", ["1", "1"])


def duplicate_id(root: Path) -> None:
    ids, y = _lines(root / TASK / "train.txt"), _lines(root / TASK / "train_y.txt")
    _write(root / TASK / "train.txt", [*ids, ids[0]])
    _write(root / TASK / "train_y.txt", [*y, y[0]])


def blank_line_inside(root: Path) -> None:
    ids = _lines(root / TASK / "train.txt")  # a blank line shifts every label after it
    _write(root / TASK / "train.txt", [ids[0], "", *ids[1:]])


def missing_clip(root: Path) -> None:
    (root / "new_joint_vecs" / f"{clip_id(2, 2)}.npy").unlink()


def val_clip_in_train(root: Path) -> None:
    ids = _lines(root / TASK / "val.txt")
    _write(root / TASK / "val.txt", [ids[0], clip_id(2, 1)])


def label_not_an_integer(root: Path) -> None:
    _write(root / DEFAULT / "train_y.txt", ["0", "zero", "1", "1"])


def class_list_twice(root: Path) -> None:
    meta = root / TASK.parent / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "class_list": [0, 1, 1]}))


def read_fewshot(root: Path) -> object:
    return NTUVibeDataset(root).fewshot_split("S0000")


def read_default(root: Path) -> object:
    ds = NTUVibeDataset(root)
    return ds.default_split("xsub", "train"), ds.default_split("xsub", "val")


# (corrupt, loader, file, line, words validate and the loader both say)
CASES: list[tuple[Callable, Callable, Path, int | None, str]] = [
    (swap_two_labels, read_fewshot, TASK / "train_y.txt", 2, f"label 1 for {clip_id(1, 2)}"),
    (label_against_the_action_code, read_default, DEFAULT / "val_y.txt", 1, "expected 0 (action"),
    (duplicate_id, read_fewshot, TASK / "train.txt", 5, f"duplicate id {clip_id(1, 1)}"),
    (blank_line_inside, read_fewshot, TASK / "train.txt", 2, "blank line"),
    (missing_clip, read_default, DEFAULT / "train.txt", 4, f"new_joint_vecs/{clip_id(2, 2)}.npy"),
    (val_clip_in_train, read_fewshot, TASK / "val.txt", None, "1 ids also in train.txt"),
    (label_not_an_integer, read_default, DEFAULT / "train_y.txt", 2, "not an integer"),
    (class_list_twice, read_fewshot, TASK.parent / "meta.json", None, "names a class twice"),
]


def test_the_tiny_target_is_valid_and_loads(tmp_path: Path) -> None:
    root = tiny_target(tmp_path / "ntu")
    assert validate_dataset(root, progress=False).ok
    split = read_fewshot(root)
    assert split.train_labels == [0, 0, 1, 1] and split.val_labels == [0, 1]
    (train, _), (val, _) = read_default(root)
    assert len(train) == 4 and len(val) == 2


@pytest.mark.parametrize(
    ("corrupt", "load", "rel", "line", "words"), CASES, ids=[c[0].__name__ for c in CASES]
)
def test_validate_and_the_loader_refuse_alike(
    tmp_path: Path, corrupt, load, rel: Path, line: int | None, words: str
) -> None:
    root = tiny_target(tmp_path / "ntu")
    corrupt(root)
    report = validate_dataset(root, progress=False)
    found = [p for p in report.errors if p.path == rel.as_posix() and words in p.message]
    assert found and found[0].line == line, report.format()
    with pytest.raises(DataError) as err:
        load(root)
    assert (err.value.path, err.value.line) == (root / rel, line)
    assert found[0].message in err.value.problem  # one rule, the same words


def test_finetune_refuses_a_split_with_two_labels_swapped(tmp_path: Path) -> None:
    from kinemic.features import Normalizer
    from kinemic.finetune.data import load_targets

    root = tiny_target(tmp_path / "ntu")
    normalizer = Normalizer(np.zeros(263), np.ones(263))
    assert load_targets(root, "S0000", normalizer=normalizer).labels.tolist() == [0, 0, 1, 1]
    swap_two_labels(root)
    with pytest.raises(KinemicError) as err:
        load_targets(root, "S0000", normalizer=normalizer)
    message = str(err.value)
    assert message.startswith(f"{root / TASK / 'train_y.txt'}, line 2: label 1 for ")
    assert "expected 0 (action A001 − 1) (and 1 more problem in this file)" in message
    assert not validate_dataset(root, progress=False).ok


def test_pretraining_refuses_overlapping_humanml3d_splits(tmp_path: Path) -> None:
    root = tmp_path / "hml"
    for k in range(3):
        write_clip(root, f"{k:06d}", features=np.zeros((48, 263)), captions=["a person walks"])
    write_split(root, "train", ["000000", "000001"])
    write_split(root, "test", ["000002"])
    assert len(MotionCorpus.load([root], progress=False)) == 2
    write_split(root, "test", ["000002", "000001"])
    report = validate_dataset(root, progress=False)
    (problem,) = [p for p in report.errors if p.kind == "splits"]
    assert (problem.path, problem.message[:24]) == ("train.txt", "1 ids also in test.txt (")
    for load in (lambda: HumanML3DDataset(root).split("train"), lambda: MotionCorpus.load([root])):
        with pytest.raises(DataError) as err:
            load()
        assert err.value.path == root / "train.txt" and err.value.problem == problem.message
