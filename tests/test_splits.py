"""Few-shot split sampling: determinism, sources of train/val, outliers, errors, atomic writes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kinemic.errors import DataError
from kinemic.io.humanml3d import write_clip
from kinemic.io.ntu_vibe import NTUVibeDataset, write_class_names, write_default_split
from kinemic.splits import sample_fewshot_split


def _copy_tree(src: Path, dst: Path) -> Path:
    """Copy file contents only (the shared fixture may be read-only; the copy must not be)."""
    for path in src.rglob("*"):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return dst


@pytest.fixture
def ntu_copy(ntu_vibe_fixture, tmp_path) -> Path:
    return _copy_tree(ntu_vibe_fixture, tmp_path / "ntu")


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*.txt"))}


def test_sample_from_fixture_is_deterministic(ntu_copy):
    first = sample_fewshot_split(ntu_copy, shots=4, seed=3, classes=["run on the spot", "A102"])
    assert first.name == "S0001"  # S0000 exists already
    again = sample_fewshot_split(ntu_copy, shots=4, seed=3, classes=[101, 98])
    other = sample_fewshot_split(ntu_copy, shots=4, seed=4, classes=[98, 101])
    assert again.name == "S0002" and other.name == "S0003"
    assert _files(first) == _files(again)
    assert _files(first)["xsub/train.txt"] != _files(other)["xsub/train.txt"]

    ds = NTUVibeDataset(ntu_copy)
    split = ds.fewshot_split("S0001")
    assert (split.class_list, split.seed, split.shots) == ([98, 101], 3, 4)
    assert split.train_labels == [98] * 4 + [101] * 4
    assert [ds.label_of(i) for i in split.train_ids + split.val_ids] == (
        split.train_labels + split.val_labels
    )
    # xsub from the performer ids: every shot a training subject, validation all the others
    performers = {int(i[9:12]) for i in split.train_ids}
    assert performers <= {8, 49, 50, 58, 78, 80, 81, 82, 85, 97}
    assert len(split.val_ids) == 7 and {int(i[9:12]) for i in split.val_ids} == {6, 42, 43, 51, 68}
    assert split.extra["protocol"] == "xsub" and split.extra["excluded"] == {}


def test_sample_xset_and_explicit_name(ntu_copy):
    # the fixture has one even-setup (xset training) clip of A099: S028C002P042R001A099
    path = sample_fewshot_split(ntu_copy, shots=1, seed=0, protocol="xset", name="S0100")
    split = NTUVibeDataset(ntu_copy).fewshot_split("S0100", protocol="xset")
    assert path.name == "S0100" and split.class_list == [98, 101]
    assert all(int(i[1:4]) % 2 == 0 for i in split.train_ids)
    assert all(int(i[1:4]) % 2 == 1 for i in split.val_ids) and split.val_ids
    assert split.train_ids[0] == "S028C002P042R001A099"
    assert sample_fewshot_split(ntu_copy, shots=1, protocol="xset").name == "S0101"
    with pytest.raises(DataError, match="exists already"):
        sample_fewshot_split(ntu_copy, shots=1, protocol="xset", name="S0100")


def test_too_few_clips_names_class_and_counts(ntu_copy):
    with pytest.raises(DataError) as err:
        sample_fewshot_split(ntu_copy, shots=7, classes=["A099", "side kick"])
    msg = str(err.value)
    assert "class 101 (A102 side kick) has 6 usable training clips but 7 shots" in msg
    assert "6 clips in the xsub training part" in msg
    assert not (ntu_copy / "splits" / "fewshot" / "S0001").exists()


def test_unknown_class_name_lists_close_matches(ntu_copy):
    with pytest.raises(DataError, match="close matches: 'run on the spot'") as err:
        sample_fewshot_split(ntu_copy, classes=["run on spot"])
    assert str(err.value).startswith(str(ntu_copy / "ntu_classes.txt"))
    with pytest.raises(DataError, match="no close matches"):
        sample_fewshot_split(ntu_copy, classes=["zzzzqqqq"])
    with pytest.raises(DataError, match="not one of the 120 classes"):
        sample_fewshot_split(ntu_copy, classes=[120])


# --------------------------------------------------------------------------- synthetic data


def _still_joints(t: int, rng: np.random.Generator, drift: float = 0.0) -> np.ndarray:
    joints = rng.normal(scale=0.1, size=(t, 22, 3)) * 0.01 + rng.normal(size=(1, 22, 3))
    joints[:, :, 0] += np.linspace(0.0, drift, t)[:, None]
    return joints


def _synthetic(root: Path) -> tuple[list[str], list[str]]:
    """Class A001: 12 training clips (performer 1) and 3 validation clips (performer 3),
    of which 3 training clips are bad: one with NaN, one too short, one whose root flies 5 m."""
    rng = np.random.default_rng(0)
    train, val = [], []
    for k in range(12):
        clip_id = f"S{k + 1:03d}C001P001R001A001"
        t = 5 if k == 1 else 30
        features = rng.normal(size=(t, 263))
        if k == 0:
            features[3, 7] = np.nan
        write_clip(root, clip_id, features=features, joints=_still_joints(t, rng, 5.0 * (k == 2)))
        train.append(clip_id)
    for k in range(3):
        clip_id = f"S{k + 1:03d}C001P003R001A001"
        write_clip(
            root, clip_id, features=rng.normal(size=(30, 263)), joints=_still_joints(30, rng)
        )
        val.append(clip_id)
    write_class_names(root, ["drink water", "eat meal"])
    return train, val


def test_outliers_are_excluded_and_reported(tmp_path):
    train, val = _synthetic(tmp_path)
    path = sample_fewshot_split(tmp_path, shots=9, seed=1)
    split = NTUVibeDataset(tmp_path).fewshot_split(path.name)
    assert sorted(split.train_ids) == train[3:]
    assert split.val_ids == val and split.class_list == [0]
    meta = json.loads((path / "meta.json").read_text())
    assert meta["excluded"] == {
        "0": {train[0]: "non_finite", train[1]: "too_short", train[2]: "outlier"}
    }
    assert meta["num_excluded"] == 3
    with pytest.raises(DataError, match=r"excluded \{'non_finite': 1, 'outlier': 1, 'too_short'"):
        sample_fewshot_split(tmp_path, shots=10)
    # with the outlier test off the drifting clip becomes usable
    loose = sample_fewshot_split(tmp_path, shots=10, outlier_factor=None, min_frames=2)
    assert len(NTUVibeDataset(tmp_path).fewshot_split(loose.name).train_ids) == 10


def test_default_split_files_take_precedence(tmp_path):
    train, val = _synthetic(tmp_path)
    # a default split that disagrees with the performer rule: it must be used as written
    write_default_split(tmp_path, "xsub", "train", train[3:8] + val, [0] * 8)
    write_default_split(tmp_path, "xsub", "val", train[8:], [0] * 4)
    path = sample_fewshot_split(tmp_path, shots=8, seed=0)
    split = NTUVibeDataset(tmp_path).fewshot_split(path.name)
    assert sorted(split.train_ids) == sorted(train[3:8] + val)
    assert split.val_ids == train[8:]
    assert split.extra["source"] == "splits/default/xsub"


def test_names_that_are_not_ntu_need_a_default_split(tmp_path):
    write_clip(tmp_path, "000001", features=np.zeros((30, 263)))
    with pytest.raises(DataError, match="not an NTU RGB\\+D clip name") as err:
        sample_fewshot_split(tmp_path, shots=1)
    assert "splits/default/xsub" in str(err.value)


def test_sampling_write_is_atomic(tmp_path, monkeypatch):
    _synthetic(tmp_path)
    real_replace = os.replace

    def boom(src, dst):  # every file lands, then the final rename of the split folder fails
        if Path(src).is_dir():
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        sample_fewshot_split(tmp_path, shots=3)
    monkeypatch.undo()
    assert list((tmp_path / "splits" / "fewshot").iterdir()) == []
    assert sample_fewshot_split(tmp_path, shots=3).name == "S0000"
