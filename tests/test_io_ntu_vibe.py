"""NTU clip names, the xsub/xset rules, and the NTU-VIBE layout (real fixture and round trips)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from kinemic.errors import DataError
from kinemic.io.humanml3d import write_clip
from kinemic.io.ntu_names import (
    XSUB_TRAIN_PERFORMERS,
    NTUName,
    is_two_person,
    xset_is_train,
    xsub_is_train,
)
from kinemic.io.ntu_vibe import (
    FewShotSplit,
    NTUVibeDataset,
    write_class_names,
    write_default_split,
    write_fewshot_split,
    write_metadata,
)

# --------------------------------------------------------------------------- NTU names


def test_ntu_name_round_trip():
    name = NTUName.parse("S001C002P003R002A013")
    assert name == NTUName(setup=1, camera=2, performer=3, replication=2, action=13)
    assert str(name) == "S001C002P003R002A013"
    assert name.label == 12
    assert str(NTUName(32, 3, 106, 1, 120)) == "S032C003P106R001A120"


@pytest.mark.parametrize(
    "bad",
    [
        "S001C002P003R002A13",
        "s001c002p003r002a013",
        "MS001C002P003R002A013",
        "S001C002P003R002A013.npy",
        "S001C002P003R002A121",
        "S000C002P003R002A013",
        "",
    ],
)
def test_ntu_name_parse_is_strict(bad):
    with pytest.raises(DataError, match="NTU RGB\\+D clip name"):
        NTUName.parse(bad)


def test_two_person_actions():
    two = [a for a in range(1, 121) if is_two_person(a)]
    assert two == [*range(50, 61), *range(106, 121)]


def test_xsub_reads_performer_and_xset_reads_setup():
    assert len(XSUB_TRAIN_PERFORMERS) == 53
    # setup 1 is a training *subject* id, performer 3 is not: xsub must say val
    assert not xsub_is_train("S001C001P003R001A001")
    assert xsub_is_train("S003C001P001R001A001")
    assert xsub_is_train(NTUName(7, 1, 103, 1, 1)) and not xsub_is_train(NTUName(7, 1, 106, 1, 1))
    assert xset_is_train("S002C001P003R001A001") and not xset_is_train("S001C001P002R001A001")


# --------------------------------------------------------------------------- real fixture


def test_all_fixture_clips_load(ntu_vibe_fixture):
    ds = NTUVibeDataset(ntu_vibe_fixture)
    ids = ds.ids()
    assert len(ids) == 20
    for clip_id in ids:
        f, j = ds.features(clip_id), ds.joints(clip_id)
        assert f.shape[1] == 263 and j.shape == (len(f), 22, 3)
        (cap,) = ds.captions(clip_id)
        assert cap.whole_clip and cap.tokens[:2] == ["a/DET", "person/NOUN"]
        assert ds.label_of(clip_id) in (98, 101)


def test_fixture_classes_and_captions(ntu_vibe_fixture):
    ds = NTUVibeDataset(ntu_vibe_fixture)
    names = ds.class_names()
    assert len(names) == 120
    assert names[0] == "drink water" and names[98] == "run on the spot"
    assert names[-1] == "rock-paper-scissors"
    captions = ds.class_captions()
    assert sorted(captions) == list(range(120))
    assert (
        captions[98] == "A person runs in place." and captions[101] == "A person does a side kick."
    )


def test_fixture_fewshot_split(ntu_vibe_fixture):
    split = NTUVibeDataset(ntu_vibe_fixture).fewshot_split("S0000", protocol="xsub")
    assert (split.name, split.class_list, split.seed, split.shots) == ("S0000", [98, 101], 42, 10)
    assert len(split.train_ids) == 20 and len(set(split.train_ids)) == 20
    assert split.train_labels == [98] * 10 + [101] * 10
    assert split.train_labels == [NTUName.parse(i).action - 1 for i in split.train_ids]
    assert split.val_ids == [] and split.val_labels == [] and split.extra == {}


def test_fixture_split_shows_the_reference_swap(ntu_vibe_fixture):
    """The published S0000 'xsub' shots were picked by setup id against the subject list."""
    names = [NTUName.parse(i) for i in NTUVibeDataset(ntu_vibe_fixture).fewshot_split().train_ids]
    assert all(n.setup in XSUB_TRAIN_PERFORMERS for n in names)
    assert sum(not xsub_is_train(n) for n in names) == 7  # performers 6, 42, 43, 51, 68


def test_fixture_has_no_other_protocols(ntu_vibe_fixture):
    ds = NTUVibeDataset(ntu_vibe_fixture)
    assert ds.fewshot_split_names() == ["S0000"]
    with pytest.raises(DataError, match="missing file"):
        ds.fewshot_split("S0000", protocol="xset")
    with pytest.raises(DataError, match="present: S0000"):
        ds.fewshot_split("S0042")
    with pytest.raises(DataError, match="missing file"):
        ds.default_split("xsub", "train")


# --------------------------------------------------------------------------- round trips


def _clip_ids() -> list[str]:
    return [f"S001C00{c}P00{p}R001A00{a}" for a in (1, 2) for p in (1, 3) for c in (1, 2)]


def _tiny(root: Path) -> NTUVibeDataset:
    rng = np.random.default_rng(0)
    for clip_id in _clip_ids():
        write_clip(root, clip_id, features=rng.normal(size=(12, 263)), captions=["a person waves"])
    write_class_names(root, ["drink water", "eat meal", "brush teeth"])
    return NTUVibeDataset(root)


def test_layout_round_trip(tmp_path):
    ds = _tiny(tmp_path)
    assert (tmp_path / "ntu_classes.txt").read_text() == "drink water\neat meal\nbrush teeth"
    assert ds.class_names() == ["drink water", "eat meal", "brush teeth"]
    write_metadata(
        tmp_path, {1: "A person eats.", 0: "A person drinks."}, class_names=ds.class_names()
    )
    assert ds.class_captions() == {0: "A person drinks.", 1: "A person eats."}
    write_metadata(tmp_path, ["A", "B", "C"])
    assert ds.class_captions() == {0: "A", 1: "B", 2: "C"}

    ids = _clip_ids()
    labels = [ds.label_of(i) for i in ids]
    assert labels == [0, 0, 0, 0, 1, 1, 1, 1]
    write_default_split(tmp_path, "xset", "val", ids[::-1], labels[::-1])
    assert ds.default_split("xset", "val") == (ids[::-1], labels[::-1])
    assert ds.has_default_split("xset") is False  # no train part yet

    extra = {"protocol": "xsub", "excluded": {"0": {ids[3]: "outlier"}}}
    split = FewShotSplit("S0003", [0, 1], 7, 1, [ids[0], ids[4]], [0, 1], ids[1:2], [0], extra)
    folder = write_fewshot_split(tmp_path, split)
    assert folder == tmp_path / "splits" / "fewshot" / "S0003"
    assert ds.fewshot_split("S0003") == split
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["class_list"] == [0, 1] and meta["seed"] == 7 and meta["shots"] == 1
    no_val = FewShotSplit("S0004", [1], 0, 2, ids[4:6], [1, 1])
    write_fewshot_split(tmp_path, no_val, protocol="xset")
    assert not (tmp_path / "splits/fewshot/S0004/xset/val.txt").exists()
    assert ds.fewshot_split("S0004", protocol="xset") == no_val
    assert ds.fewshot_split_names() == ["S0003", "S0004"]
    assert ds.label_of("M" + ids[4]) == 1


def test_fewshot_write_is_atomic(tmp_path, monkeypatch):
    ds = _tiny(tmp_path)
    ids = _clip_ids()
    split = FewShotSplit("S0001", [0], 1, 2, ids[:2], [0, 0], ids[2:4], [0, 0])

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_fewshot_split(tmp_path, split)
    monkeypatch.undo()
    fewshot = tmp_path / "splits" / "fewshot"
    assert list(fewshot.iterdir()) == []  # no final folder, no staging folder, no temp files
    write_fewshot_split(tmp_path, split)
    assert ds.fewshot_split("S0001") == split


# --------------------------------------------------------------------------- broken inputs


def test_label_count_mismatch_names_both_files(tmp_path):
    ds = _tiny(tmp_path)
    ids = _clip_ids()
    write_default_split(tmp_path, "xsub", "train", ids[:3], [0, 0, 0])
    folder = tmp_path / "splits" / "default" / "xsub"
    (folder / "train_y.txt").write_text("0\n0\n")
    with pytest.raises(DataError) as err:
        ds.default_split("xsub", "train")
    msg = str(err.value)
    assert msg.startswith(str(folder / "train_y.txt"))
    assert "2 labels" in msg and "3 ids" in msg and str(folder / "train.txt") in msg


@pytest.mark.parametrize(
    ("labels", "needle", "line"),
    [
        ("0\nzero\n0\n", "label is not an integer", 2),
        ("0\n0\n7\n", "label 7 outside 0..2", 3),
        ("-1\n0\n0\n", "label -1 outside", 1),
    ],
)
def test_bad_labels(tmp_path, labels, needle, line):
    ds = _tiny(tmp_path)
    write_default_split(tmp_path, "xsub", "val", _clip_ids()[:3], [0, 0, 0])
    path = tmp_path / "splits" / "default" / "xsub" / "val_y.txt"
    path.write_text(labels)
    with pytest.raises(DataError, match=needle) as err:
        ds.default_split("xsub", "val")
    assert str(err.value).startswith(f"{path}, line {line}: ")


def test_fewshot_label_outside_class_list_and_missing_clip(tmp_path):
    ds = _tiny(tmp_path)
    ids = _clip_ids()
    write_fewshot_split(tmp_path, FewShotSplit("S0000", [0], 1, 2, ids[:2], [0, 0]))
    sub = tmp_path / "splits" / "fewshot" / "S0000" / "xsub"
    (sub / "train_y.txt").write_text("0\n1\n")
    with pytest.raises(DataError, match=r"label 1 is not in the split's class_list \[0\]"):
        ds.fewshot_split("S0000")
    (sub / "train_y.txt").write_text("0\n0\n")
    (sub / "train.txt").write_text(f"{ids[0]}\nS009C001P001R001A001\n")
    with pytest.raises(
        DataError, match=re.escape("new_joint_vecs/S009C001P001R001A001.npy does not")
    ) as err:
        ds.fewshot_split("S0000")
    assert str(err.value).startswith(f"{sub / 'train.txt'}, line 2")
    (sub / "train.txt").write_text(f"{ids[0]}\n{ids[1]}\n")
    (sub / "val.txt").write_text(f"{ids[2]}\n")
    with pytest.raises(DataError, match=re.escape("val_y.txt: missing file")):
        ds.fewshot_split("S0000")


def test_bad_meta_class_names_and_metadata(tmp_path):
    ds = _tiny(tmp_path)
    ids = _clip_ids()
    folder = write_fewshot_split(tmp_path, FewShotSplit("S0000", [0], 1, 2, ids[:2], [0, 0]))
    (folder / "meta.json").write_text('{"class_list": [0], "seed": 1}')
    with pytest.raises(DataError, match=re.escape("meta.json: expected JSON")):
        ds.fewshot_split("S0000")
    (tmp_path / "ntu_classes.txt").write_text("a\n\nc\n")
    with pytest.raises(DataError, match="line 2: empty class name for class A002"):
        ds.class_names()
    with pytest.raises(DataError, match=re.escape("ntu_metadata.json: missing file")):
        ds.class_captions()
    (tmp_path / "ntu_metadata.json").write_text('{"actions": [{"tag": "A001", "captions": []}]}')
    with pytest.raises(DataError, match=r"actions\[0\] has no 'captions'"):
        ds.class_captions()
    with pytest.raises(ValueError, match="unknown protocol"):
        ds.default_split("xview", "train")
