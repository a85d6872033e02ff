"""validate_dataset on the real fixtures, then on copies broken one way at a time (and many ways
at once): each problem must be reported against the right file, line and with a clear message."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kinemic.validate import Problem, ValidationReport, frames_text, validate_dataset

CLIP = "S019C001P050R002A099"  # 58 rows, first in the few-shot train list (label 98)
OTHER = "S027C003P080R001A102"  # last in the few-shot train list (label 101)
TASK = "splits/fewshot/S0000/xsub"


def writable_copy(src: Path, dst: Path) -> Path:
    """Copy a (read-only) fixture folder and make the copy writable."""
    shutil.copytree(src, dst)
    for folder, _, files in os.walk(dst):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    return dst


@pytest.fixture
def ntu(ntu_vibe_fixture, tmp_path) -> Path:
    return writable_copy(ntu_vibe_fixture, tmp_path / "ntu")


@pytest.fixture
def hml(humanml3d_fixture, tmp_path) -> Path:
    return writable_copy(humanml3d_fixture, tmp_path / "hml")


def find(report: ValidationReport, path: str, text: str, *, severity="error") -> Problem:
    hits = [p for p in report.problems if p.path == path and text in p.message]
    assert hits and hits[0].severity == severity, (
        f"no {severity} on {path} containing {text!r}:\n{report.format()}"
    )
    return hits[0]


def test_real_ntu_vibe_fixture_is_ok(ntu_vibe_fixture):
    report = validate_dataset(ntu_vibe_fixture, progress=False)
    assert report.layout == "ntu-vibe"
    assert report.ok, report.format()
    # 20 clips × (features, joints, texts) + classes, metadata, meta.json, train, train_y
    assert report.num_files_checked == 65
    # The only warning is justified: the paper's S0000 "xsub" train list was drawn with the
    # reference code's swapped setup/performer ids (P042 etc. are cross-subject test performers).
    assert [p.kind for p in report.problems] == ["protocol"]
    warning = find(report, f"{TASK}/train.txt", "look swapped", severity="warning")
    assert "P042" in warning.message and "7 of 20" in warning.message


def test_real_humanml3d_fixture_is_ok(humanml3d_fixture):
    report = validate_dataset(humanml3d_fixture, progress=False)
    assert report.layout == "humanml3d"
    assert report.ok, report.format()
    assert report.num_files_checked == 4  # features, joints, Mean, Std
    # The sample ships without texts/: one warning, not one error per clip.
    assert [(p.path, p.severity) for p in report.problems] == [("texts", "warning")]


def _features(root: Path, clip: str = CLIP) -> Path:
    return root / "new_joint_vecs" / f"{clip}.npy"


def nan_frames(root):
    x = np.load(_features(root))
    x[3:8, 10] = np.nan
    np.save(_features(root), x)


def wrong_shape(root):
    np.save(_features(root), np.load(_features(root))[:, :262])


def empty_clip(root):
    np.save(_features(root), np.zeros((0, 263), np.float32))


def truncated(root):
    data = _features(root).read_bytes()
    _features(root).write_bytes(data[: len(data) // 2])


def pickled(root):
    np.save(_features(root), np.array([{"a": 1}], dtype=object), allow_pickle=True)


def missing_text(root):
    (root / "texts" / f"{CLIP}.txt").unlink()


def bad_times(root):
    (root / "texts" / f"{CLIP}.txt").write_text("a person runs.#a/DET person/NOUN#5.0#2.0\n")


def bad_fields(root):
    (root / "texts" / f"{CLIP}.txt").write_text("ok#ok/ADJ#0.0#0.0\nno separators here\n")


def short_labels(root):
    path = root / TASK / "train_y.txt"
    path.write_text("\n".join(path.read_text().split()[:-1]) + "\n")


def wrong_label(root):
    labels = (root / TASK / "train_y.txt").read_text().split()
    labels[0] = "101"
    (root / TASK / "train_y.txt").write_text("\n".join(labels) + "\n")


def missing_clip(root):
    for name, extra in (("train.txt", "S001C001P001R001A099"), ("train_y.txt", "98")):
        path = root / TASK / name
        path.write_text(path.read_text().rstrip("\n") + f"\n{extra}\n")


def duplicate_id(root):
    for name, extra in (("train.txt", CLIP), ("train_y.txt", "98")):
        path = root / TASK / name
        path.write_text(path.read_text().rstrip("\n") + f"\n{extra}\n")


def frame_mismatch(root):
    joints = root / "new_joints" / f"{CLIP}.npy"
    np.save(joints, np.load(joints)[:50])


def joints_inf(root):
    joints = root / "new_joints" / f"{CLIP}.npy"
    x = np.load(joints)
    x[57, 0] = np.inf
    np.save(joints, x)


def label_outside_meta(root):
    (root / "splits/fewshot/S0000/meta.json").write_text('{"class_list": [98], "shots": 10}')


def broken_meta_json(root):
    (root / "splits/fewshot/S0000/meta.json").write_text('{"class_list": [98,\n')


CORRUPTIONS = [
    (nan_frames, f"new_joint_vecs/{CLIP}.npy", None, "NaN in frames 3–7 (5 of 58 frames)"),
    (wrong_shape, f"new_joint_vecs/{CLIP}.npy", None, "shape (58, 262), expected (T, 263)"),
    (empty_clip, f"new_joint_vecs/{CLIP}.npy", None, "empty clip: shape (0, 263)"),
    (truncated, f"new_joint_vecs/{CLIP}.npy", None, "truncated or corrupt"),
    (pickled, f"new_joint_vecs/{CLIP}.npy", None, "pickled Python objects"),
    (missing_text, f"texts/{CLIP}.txt", None, "missing"),
    (bad_times, f"texts/{CLIP}.txt", 1, "start 5.0 > end 2.0"),
    (bad_fields, f"texts/{CLIP}.txt", 2, "found 1 field"),
    (short_labels, f"{TASK}/train_y.txt", None, f"19 labels but {TASK}/train.txt lists 20 ids"),
    (wrong_label, f"{TASK}/train_y.txt", 1, f"label 101 for {CLIP}, expected 98"),
    (missing_clip, f"{TASK}/train.txt", 21, "new_joint_vecs/S001C001P001R001A099.npy does not"),
    (duplicate_id, f"{TASK}/train.txt", 21, f"duplicate id {CLIP} (first on line 1)"),
    (frame_mismatch, f"new_joints/{CLIP}.npy", None, "50 frames but new_joint_vecs/"),
    (joints_inf, f"new_joints/{CLIP}.npy", None, "inf in frames 57 (1 of 58 frames)"),
    (label_outside_meta, f"{TASK}/train_y.txt", None, "labels [101] are not in"),
    (broken_meta_json, "splits/fewshot/S0000/meta.json", 2, "invalid JSON"),
]


@pytest.mark.parametrize(
    ("corrupt", "path", "line", "text"), CORRUPTIONS, ids=[c[0].__name__ for c in CORRUPTIONS]
)
def test_each_corruption_is_reported(ntu, corrupt, path, line, text):
    corrupt(ntu)
    report = validate_dataset(ntu, progress=False)
    assert not report.ok
    problem = find(report, path, text)
    assert problem.line == line
    assert f"{path}{'' if line is None else f':{line}'}" in report.format()


def test_std_with_a_zero(hml):
    std = np.load(hml / "Std.npy")
    std[5] = 0.0
    np.save(hml / "Std.npy", std)
    report = validate_dataset(hml, progress=False)
    assert not report.ok
    assert "dims [5]" in find(report, "Std.npy", "values ≤ 0").message


def test_mean_wrong_shape_and_missing_std(hml):
    np.save(hml / "Mean.npy", np.zeros((262,), np.float32))
    (hml / "Std.npy").unlink()
    report = validate_dataset(hml, progress=False)
    find(report, "Mean.npy", "shape (262,) float32, expected (263,)")
    find(report, "Std.npy", "missing while Mean.npy exists")


def test_humanml3d_texts_and_root_splits(hml):
    (hml / "texts").mkdir()
    (hml / "texts" / "012314.txt").write_text(
        "a man walks.#a/DET man/NOUN walk/VERB#0.0#0.0\n#a/DET#0.0#0.0\nlate.#late/ADV#20.0#25.0\n"
        "nan.#nan/NOUN#nan#nan\nhalf nan.#nan/NOUN#2.0#nan\n"
    )
    (hml / "train.txt").write_text("012314\n000001\n")
    (hml / "val.txt").write_text("012314\n")
    report = validate_dataset(hml, progress=False)
    find(report, "texts/012314.txt", "empty caption text")
    late = find(report, "texts/012314.txt", "sub-clip starts at 20.0 s", severity="warning")
    assert late.line == 3
    assert find(report, "texts/012314.txt", "nan", severity="warning").line == 4
    assert find(report, "texts/012314.txt", "start 2.0 > end 0.0").line == 5
    find(report, "train.txt", "000001 but new_joint_vecs/000001.npy does not exist")
    find(report, "val.txt", "1 ids also in train.txt")
    assert not any(p.path == "train_y.txt" for p in report.problems)  # no labels at the root


def test_joints_one_row_longer_is_accepted(hml):
    joints = np.load(hml / "new_joints" / "012314.npy")
    np.save(
        hml / "new_joints" / "012314.npy", np.concatenate([joints, joints[-1:]]).reshape(-1, 66)
    )
    assert validate_dataset(hml, progress=False).ok


def test_many_corruptions_are_all_reported(ntu):
    clips = sorted(p.stem for p in (ntu / "new_joint_vecs").iterdir())[:3]
    x = np.load(_features(ntu, clips[0]))
    x[0] = np.nan
    np.save(_features(ntu, clips[0]), x)
    np.save(_features(ntu, clips[1]), np.zeros((4, 262), np.float32))
    _features(ntu, clips[2]).write_bytes(b"\x93NUMPY garbage")
    missing_text(ntu)
    (ntu / "texts" / f"{OTHER}.txt").write_text("a#a/DET#5.0#2.0\n")
    wrong_label(ntu)
    (ntu / "ntu_metadata.json").write_text("{not json")
    report = validate_dataset(ntu, progress=False)
    find(report, f"new_joint_vecs/{clips[0]}.npy", "NaN in frames 0 (1 of")
    find(report, f"new_joint_vecs/{clips[1]}.npy", "shape (4, 262)")
    find(report, f"new_joint_vecs/{clips[2]}.npy", "cannot be read")
    find(report, f"texts/{CLIP}.txt", "missing")
    find(report, f"texts/{OTHER}.txt", "start 5.0 > end 2.0")
    find(report, f"{TASK}/train_y.txt", "label 101")
    find(report, "ntu_metadata.json", "invalid JSON")
    find(report, f"{TASK}/train.txt", "found {98: 9, 101: 11}", severity="warning")
    assert report.count("error") == 7
    text = report.format()
    assert "features: 3 error(s)" in text and text.rstrip().endswith("fix the errors above")
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["num_errors"] == 7 and len(data["problems"]) == 9


def test_problem_cap_counts_but_does_not_keep(ntu):
    for path in (ntu / "texts").iterdir():
        path.write_text("no separator\n")
    report = validate_dataset(ntu, max_problems_per_kind=3, progress=False)
    assert len([p for p in report.problems if p.kind == "captions"]) == 3
    assert report.suppressed["captions"] == {"error": 17}
    assert report.count("error") == 20 and not report.ok
    assert "17 more of this kind not shown" in report.format()


def test_not_a_dataset(tmp_path):
    missing = validate_dataset(tmp_path / "nope", progress=False)
    assert not missing.ok and "does not exist" in missing.problems[0].message
    empty = validate_dataset(tmp_path, progress=False)
    assert not empty.ok and "not a HumanML3D or NTU-VIBE folder" in empty.problems[0].message


def test_frames_text_ranges():
    bad = np.zeros(120, bool)
    bad[[3, 4, 5, 6, 7, 10, 12, 13]] = True
    assert frames_text(bad) == "frames 3–7, 10, 12–13 (8 of 120 frames)"
