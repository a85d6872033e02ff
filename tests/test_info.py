"""dataset_info / format_info on the real fixtures, on a partial folder and on damaged files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from kinemic.info import dataset_info, format_info


def writable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for folder, _, files in os.walk(dst):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    return dst


def test_ntu_vibe_fixture_counts(ntu_vibe_fixture):
    info = dataset_info(ntu_vibe_fixture, progress=False)
    json.dumps(info)  # plain data
    assert info["layout"] == "ntu-vibe"
    assert info["clips"] == {
        "features": 20,
        "joints": 20,
        "texts": 20,
        "complete": 20,
        "mirrors": 0,
    }
    assert info["captions"] == {
        "total": 20,
        "per_clip": {"min": 1.0, "median": 1.0, "mean": 1.0, "max": 1.0},
        "sub_clip": 0,
    }
    frames = info["lengths"]["frames"]
    assert (frames["min"], frames["max"], frames["median"]) == (16, 64, 34)
    assert info["lengths"]["total_seconds"] == 732 / 20
    assert sum(b["count"] for b in info["lengths"]["histogram"]) == 20
    split = info["splits"]["fewshot/S0000/xsub/train"]
    assert split == {"size": 20, "missing_clips": 0, "per_class": {98: 10, 101: 10}}
    assert info["fewshot"]["S0000"]["class_list"] == [98, 101]
    assert info["classes"]["num_names"] == 120 and info["classes"]["num_present"] == 2
    assert info["classes"]["present"][98] == {"name": "run on the spot", "clips": 10}
    assert info["classes"]["present"][101] == {"name": "side kick", "clips": 10}
    assert info["stats"] == {"Mean.npy": None, "Std.npy": None}
    assert info["missing"] == ["Mean.npy", "Std.npy"] and info["unreadable"] == []
    text = format_info(info)
    assert "20 features, 20 joints, 20 texts" in text
    assert (
        "fewshot/S0000/xsub/train: 20 clips — A099 run on the spot: 10, A102 side kick: 10" in text
    )
    assert "min 16, median 34, mean 36.6, max 64" in text


def test_humanml3d_fixture_counts(humanml3d_fixture):
    info = dataset_info(humanml3d_fixture, progress=False)
    assert info["layout"] == "humanml3d"
    assert info["clips"]["features"] == 1 and info["clips"]["joints"] == 1
    assert info["lengths"]["frames"]["max"] == 170 and info["lengths"]["seconds"]["max"] == 8.5
    assert info["captions"] is None and info["classes"] is None
    assert info["stats"] == {"Mean.npy": [263], "Std.npy": [263]}
    assert "texts/" in info["missing"]
    text = format_info(info)
    assert "normalisation: Mean.npy (263,), Std.npy (263,)" in text
    assert "missing: texts/" in text


def test_partial_and_damaged_folder(humanml3d_fixture, tmp_path):
    root = writable_copy(humanml3d_fixture, tmp_path / "hml")
    feats = np.load(root / "new_joint_vecs" / "012314.npy")
    np.save(root / "new_joint_vecs" / "M012314.npy", feats[:40])
    (root / "new_joint_vecs" / "000002.npy").write_bytes(b"not numpy")
    (root / "Std.npy").unlink()
    (root / "texts").mkdir()
    (root / "texts" / "012314.txt").write_text(
        "walks.#walk/VERB#0.0#0.0\nturns.#turn/VERB#2.0#4.0\n"
    )
    (root / "texts" / "M012314.txt").write_bytes(b"\xff\xfe broken")
    (root / "train.txt").write_text("012314\nM012314\n000003\n")
    info = dataset_info(root, progress=False)
    assert info["clips"]["features"] == 3 and info["clips"]["mirrors"] == 1
    assert info["clips"]["complete"] == 1
    assert info["lengths"]["frames"]["min"] == 40 and info["lengths"]["frames"]["max"] == 170
    assert info["captions"]["total"] == 2 and info["captions"]["sub_clip"] == 1
    assert info["splits"]["train"] == {"size": 3, "missing_clips": 1, "per_class": None}
    assert info["stats"]["Std.npy"] is None and "Std.npy" in info["missing"]
    assert set(info["unreadable"]) == {"new_joint_vecs/000002.npy", "texts/M012314.txt"}
    text = format_info(info)
    assert "train: 3 clips (1 without features)" in text and "unreadable (2" in text


def test_empty_and_absent_folders(tmp_path):
    empty = dataset_info(tmp_path, progress=False)
    assert empty["clips"]["features"] == 0 and empty["lengths"] is None
    assert "new_joint_vecs/" in empty["missing"]
    assert "missing: new_joint_vecs/" in format_info(empty)
    absent = dataset_info(tmp_path / "nope", progress=False)
    assert "the folder itself" in format_info(absent)
