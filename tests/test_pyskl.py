"""The pyskl / mmaction2 skeleton pickle: export, read back, refuse what is malformed."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from kinemic.cli import main
from kinemic.errors import DataError, KinemicError
from kinemic.io.ntu_vibe import NTUVibeDataset
from kinemic.io.pyskl import PysklData, annotation, export_pyskl, read_pyskl, write_pyskl
from kinemic.skeleton import SMPL22
from tests.test_protocol import make_synthetic


def test_whole_dataset_round_trip(tiny_world, tmp_path):
    target = tiny_world / "target"
    ds = NTUVibeDataset(target)
    written = export_pyskl(target, tmp_path / "all.pkl", progress=False)
    data = read_pyskl(tmp_path / "all.pkl")
    assert set(data.split) == {"xsub_train", "xsub_val", "xset_train", "xset_val"}
    ids, labels = ds.default_split("xsub", "train")
    assert data.split["xsub_train"] == ids
    by = data.by_name()
    every = set(ids) | set(ds.default_split("xsub", "val")[0])
    assert len(by) == len(data.annotations) == len(every)
    for clip_id, label in list(zip(ids, labels, strict=True))[:5]:
        a = by[clip_id]
        joints = ds.joints(clip_id)
        assert a["label"] == label == ds.label_of(clip_id)  # 0-based NTU label
        assert a["total_frames"] == len(joints)
        assert a["keypoint"].dtype == np.float32 and a["keypoint"].shape == (1, len(joints), 22, 3)
        np.testing.assert_array_equal(a["keypoint"][0], joints)
        assert set(a) == {"frame_dir", "label", "total_frames", "keypoint"}
    assert data.meta["skeleton"]["parents"] == list(SMPL22.parents)
    assert written.split == data.split
    with open(tmp_path / "all.pkl", "rb") as f:  # a plain pickle: what pyskl's mmcv.load reads
        raw = pickle.load(f)
    assert set(raw) == {"split", "annotations", "kinemic"}


def test_fewshot_synthetic_and_mixed_exports(tiny_world, tmp_path):
    target = tiny_world / "target"
    fs = NTUVibeDataset(target).fewshot_split("S0000")
    data = export_pyskl(target, tmp_path / "s.pkl", split="S0000", progress=False)
    assert data.split == {"train": fs.train_ids, "val": fs.val_ids}
    assert {a["label"] for a in data.annotations} == {0, 1, 2}  # 0..K-1 in class_list order
    assert data.meta["classes"] == [98, 101, 103]
    syn = make_synthetic(tiny_world, tmp_path / "syn", method="kinemic", per_class=2)
    only = export_pyskl(target, tmp_path / "syn.pkl", synthetic=[syn], progress=False)
    assert only.split["train"] == (syn / "synth.txt").read_text().split()
    assert only.meta["split"] == "S0000"  # from info.json
    export_pyskl(target, tmp_path / "mix.pkl", synthetic=[syn], mixed=True, progress=False)
    mixed = read_pyskl(tmp_path / "mix.pkl")
    assert len(mixed.split["train"]) == 30 + 6 and mixed.split["val"] == fs.val_ids
    by = mixed.by_name()
    assert by["synth_A099_00000"]["label"] == 0 and by["synth_A104_00001"]["label"] == 2
    other = make_synthetic(tiny_world, tmp_path / "other", method="mdm-ft", per_class=1)
    two = export_pyskl(target, tmp_path / "two.pkl", synthetic=[syn, other], progress=False)
    assert "mdm-ft/synth_A099_00000" in two.split["train"]
    assert "kinemic/synth_A099_00000" in two.split["train"]
    with pytest.raises(KinemicError, match="--mixed adds synthetic"):
        export_pyskl(target, tmp_path / "x.pkl", split="S0000", mixed=True)


def test_reader_refuses_malformed_and_unsafe_pickles(tmp_path):
    good = annotation("a", 1, np.zeros((5, 22, 3)))
    write_pyskl(tmp_path / "ok.pkl", PysklData({"train": ["a"]}, [good]))
    assert read_pyskl(tmp_path / "ok.pkl").split == {"train": ["a"]}
    with pytest.raises(DataError, match="lists 1 clips without an annotation"):
        write_pyskl(tmp_path / "bad.pkl", PysklData({"train": ["a", "b"]}, [good]))
    bad = {**good, "total_frames": 6}
    with pytest.raises(DataError, match="total_frames 6"):
        write_pyskl(tmp_path / "bad.pkl", PysklData({}, [bad]))
    with pytest.raises(DataError, match="appears twice"):
        write_pyskl(tmp_path / "bad.pkl", PysklData({}, [good, good]))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"split": {}, "annotations": [Evil()]}))
    with pytest.raises(DataError, match="refusing to load"):
        read_pyskl(tmp_path / "evil.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match="'split' and 'annotations'"):
        read_pyskl(tmp_path / "list.pkl")


def test_cli_export(tiny_world, tmp_path, capsys):
    out = tmp_path / "s.pkl"
    argv = ["export", "pyskl", str(tiny_world / "target"), "--split", "S0000", "--out", str(out)]
    assert main(argv) == 0
    assert "60 clips (train: 30, val: 30)" in capsys.readouterr().out
    assert len(read_pyskl(out).annotations) == 60
    assert (
        main(["export", "pyskl", str(tiny_world / "target"), "--split", "S0042", "--out", str(out)])
        == 2
    )
    assert "S0042" in capsys.readouterr().err
