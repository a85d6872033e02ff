"""Issue 25, items 4-6 and --lenient for the converters: unique BVH trial ids, datasets that are
complete or visibly incomplete, the NTU class list of a caption subset, complex and degenerate
joints, and every per-file problem a counted skip under ``lenient``."""

from __future__ import annotations

import fcntl
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from kinemic.cli import main
from kinemic.errors import DataError, KinemicError
from kinemic.io.conversion import LOCK_FILE, PARTIAL
from kinemic.io.humanml3d import HumanML3DDataset
from kinemic.validate import validate_dataset
from tests.synthetic import walking_clip
from tests.test_io_ntu_skeleton import ID_A, pose, skeleton_lines, write

# ------------------------------------------------------------------------ item 4: BVH trial ids


def test_trial_ids_come_from_the_relative_path_and_collisions_name_both_files(tmp_path):
    from kinemic.io.bvh_retarget import trial_ids

    src = tmp_path / "src"
    rel = ["03/03_04.bvh", "07_01.bvh", "a/walk.bvh", "b/walk.bvh", "a/b/walk.bvh", "x/x.bvh"]
    ids = trial_ids(src, [src / r for r in rel])
    # CMU's subject folders add nothing; the flat layout keeps its ids; the rest are unique
    assert list(ids.values()) == ["03_04", "07_01", "a_walk", "b_walk", "a_b_walk", "x"]
    assert all(os.sep not in i and "/" not in i for i in ids.values())

    for clash in (["a_b/c.bvh", "a/b_c.bvh"], ["03/03_04.bvh", "03_04.bvh"], ["A.bvh", "a.bvh"]):
        with pytest.raises(DataError) as err:
            trial_ids(src, [src / r for r in clash])
        assert str(src / clash[0]) in str(err.value) and str(src / clash[1]) in str(err.value)


def test_two_trials_with_one_file_name_are_two_trials(cmu_bvh_dir, tmp_path):
    pytest.importorskip("kinemic.features")
    from kinemic.io.bvh_retarget import convert_bvh_folder

    src = tmp_path / "src"
    for sub in ("02", "s1", "s2"):
        (src / sub).mkdir(parents=True)
    trial = cmu_bvh_dir / "02" / "02_03.bvh"  # 1.47 s: one clip, converts in a moment
    (src / "02" / "02_03.bvh").symlink_to(trial)
    (src / "s1" / "run.bvh").symlink_to(trial)
    (src / "s2" / "run.bvh").symlink_to(trial)
    summary = convert_bvh_folder(src, tmp_path / "out", min_seconds=0)

    assert summary.clips == ["02_03_000", "s1_run_000", "s2_run_000"]
    data = HumanML3DDataset(tmp_path / "out")
    assert data.ids() == summary.clips
    listed = [i for part in ("train", "val", "test") for i in data.split(part)]
    assert sorted(listed) == summary.clips  # each clip in one split, once
    assert "02_03_000" in data.split("val")  # CMU subject 02 is still a validation subject
    assert sorted(v for vs in summary.subjects.values() for v in vs) == ["02", "s1", "s2"]

    (src / ".run.bvh").symlink_to(trial)  # an id must stay a plain file name
    with pytest.raises(DataError, match=r"\.run\.bvh: its trial id cannot name clips"):
        convert_bvh_folder(src, tmp_path / "hidden", min_seconds=0)
    summary = convert_bvh_folder(src, tmp_path / "lenient", min_seconds=0, lenient=True)
    assert [(s.name, s.kind) for s in summary.skipped] == [(".run", "broken")]


# ------------------------------------------------------------ item 5: complete or not at all


def _joints_src(tmp_path: Path, n: int = 4) -> Path:
    src = tmp_path / "raw"
    src.mkdir()
    for i in range(n):
        np.save(src / f"clip{i}.npy", walking_clip(30, seed=i))
    return src


def _kill_after(monkeypatch, clips: int) -> None:
    """The conversion dies while writing clip ``clips + 1``, as under ``kill -9``: no clean-up
    runs (the staging folder is not removed) and the lock dies with the 'process'."""
    from kinemic.io import conversion, humanml3d, joints

    written = []
    real = humanml3d.write_clip

    def write_clip(*args, **kwargs):
        if len(written) == clips:
            raise KeyboardInterrupt
        written.append(args[1])
        real(*args, **kwargs)

    monkeypatch.setattr(humanml3d, "write_clip", write_clip)
    monkeypatch.setattr(joints, "write_clip", write_clip)
    monkeypatch.setattr(conversion.shutil, "rmtree", lambda *a, **k: None)


def test_a_killed_conversion_leaves_no_dataset_and_the_next_run_cleans_up(tmp_path, monkeypatch):
    from kinemic.io.joints import convert_joints_folder

    src, out = _joints_src(tmp_path), tmp_path / "data"
    with monkeypatch.context() as m:
        _kill_after(m, clips=2)
        with pytest.raises(KeyboardInterrupt):
            convert_joints_folder(src, out)
    assert not out.exists()
    assert not validate_dataset(out, progress=False).ok
    (left,) = tmp_path.glob(f"data{PARTIAL}*")  # visibly incomplete, by its name
    assert len(list((left / "new_joint_vecs").iterdir())) == 2

    summary = convert_joints_folder(src, out)  # removes the leftover, writes everything
    assert not list(tmp_path.glob(f"data{PARTIAL}*")) and not (out / LOCK_FILE).exists()
    assert (
        summary.converted == HumanML3DDataset(out).split("train") == [f"clip{i}" for i in range(4)]
    )
    assert validate_dataset(out, progress=False).ok


@pytest.mark.parametrize("kind", ["bvh", "ntu-skeleton"])
def test_every_converter_writes_nothing_when_it_fails_midway(
    kind, tmp_path, monkeypatch, cmu_bvh_dir
):
    from kinemic.io.bvh_retarget import convert_bvh_folder
    from kinemic.io.ntu_convert import convert_ntu_folder

    src = tmp_path / "src"
    src.mkdir()
    if kind == "bvh":
        for name in ("02_03", "02_04"):  # 1.5 and 4 s
            (src / f"{name}.bvh").symlink_to(cmu_bvh_dir / "02" / f"{name}.bvh")
        convert = convert_bvh_folder
        kwargs = {"min_seconds": 0}
    else:
        for a in (1, 2):
            write(src / f"S001C001P001R001A{a:03d}.skeleton", skeleton_lines(_moving(30)))
        convert, kwargs = convert_ntu_folder, {}
    out = tmp_path / "data"
    with monkeypatch.context() as m:
        _kill_after(m, clips=1)
        with pytest.raises(KeyboardInterrupt):
            convert(src, out, **kwargs)
    assert not out.exists() and not validate_dataset(out, progress=False).ok
    convert(src, out, **kwargs)
    assert validate_dataset(out, progress=False).ok and not list(tmp_path.glob(f"*{PARTIAL}*"))


def test_a_live_conversion_into_the_same_folder_is_named_not_removed(tmp_path):
    from kinemic.io.joints import convert_joints_folder

    src, out = _joints_src(tmp_path, n=1), tmp_path / "data"
    live = tmp_path / f"data{PARTIAL}12345"
    live.mkdir()
    fd = os.open(live / LOCK_FILE, os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(KinemicError, match=re.escape(str(live))):
            convert_joints_folder(src, out)
    finally:
        os.close(fd)
    assert live.is_dir() and not out.exists()


def test_a_non_empty_out_is_refused_or_replaced_whole(tmp_path):
    from kinemic.io.joints import convert_joints_folder

    src, out = _joints_src(tmp_path, n=2), tmp_path / "data"
    out.mkdir()  # an empty folder is fine
    convert_joints_folder(src, out)
    (src / "clip0.npy").unlink()
    with pytest.raises(KinemicError, match=r"not empty.*--overwrite"):
        convert_joints_folder(src, out)
    assert HumanML3DDataset(out).ids() == ["clip0", "clip1"]  # untouched
    convert_joints_folder(src, out, overwrite=True)
    data = HumanML3DDataset(out)
    assert data.ids() == data.split("train") == ["clip1"]  # no old clip outside the splits
    assert validate_dataset(out, progress=False).ok
    with pytest.raises(KinemicError, match="is a file"):
        convert_joints_folder(src, src / "clip1.npy")


def test_cli_convert_refuses_a_non_empty_out_and_counts_lenient_skips(tmp_path, capsys):
    src, out = _joints_src(tmp_path, n=2), tmp_path / "data"
    np.save(src / "zeros.npy", np.zeros((30, 22, 3)))
    assert main(["convert", "joints", str(src), str(out)]) == 2
    assert "zeros.npy" in capsys.readouterr().err and not out.exists()
    assert main(["convert", "joints", str(src), str(out), "--lenient"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 2 clips" in printed and "skipped 1 files (broken 1)" in printed
    assert "skipped zeros.npy (broken): degenerate joints" in printed
    assert main(["convert", "joints", str(src), str(out), "--lenient"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", "joints", str(src), str(out), "--lenient", "--overwrite"]) == 0


# ------------------------------------------------------------------ item 6: converter data bugs


def _moving(n: int) -> list[dict[str, np.ndarray]]:
    return [{ID_A: pose(at=(0.01 * t, 0, 3), raise_left=t / n)} for t in range(n)]


def test_ntu_captions_for_a_subset_of_classes_label_every_clip_right(tmp_path):
    from kinemic.io.ntu_convert import convert_ntu_folder
    from kinemic.io.ntu_vibe import NTUVibeDataset

    src = tmp_path / "skeletons"
    src.mkdir()
    for a in (1, 99):
        write(src / f"S001C001P001R001A{a:03d}.skeleton", skeleton_lines(_moving(30)))
    meta = tmp_path / "ntu_metadata.json"
    actions = [  # a subset, not in class order
        {"tag": "A099", "action": "run on the spot", "captions": ["A person runs in place."]},
        {"tag": "A001", "action": "drink water", "captions": ["A person drinks water."]},
    ]
    meta.write_text(json.dumps({"actions": actions}))
    out = tmp_path / "out"
    convert_ntu_folder(src, out, captions=meta)

    data = NTUVibeDataset(out)
    names = data.class_names()
    assert len(names) == 120 and names[0] == "drink water" and names[98] == "run on the spot"
    assert names[1] == "eat meal"  # a class the metadata leaves out keeps its NTU name
    ids, labels = data.default_split("xsub", "train")
    assert dict(zip(ids, labels, strict=True)) == {
        "S001C001P001R001A001": 0,
        "S001C001P001R001A099": 98,
    }
    assert data.captions("S001C001P001R001A001")[0].text == "A person drinks water."
    assert validate_dataset(out, progress=False).ok

    # a clip of a class the metadata does not caption: an error naming both, or a counted skip
    write(src / "S001C001P001R001A002.skeleton", skeleton_lines(_moving(30)))
    with pytest.raises(
        DataError, match=r"ntu_metadata\.json: no captions for class A002.*A002\.sk"
    ):
        convert_ntu_folder(src, tmp_path / "strict", captions=meta)
    summary = convert_ntu_folder(src, tmp_path / "lenient", captions=meta, lenient=True)
    assert [(s.name, s.kind) for s in summary.skipped] == [
        ("S001C001P001R001A002.skeleton", "no-caption")
    ]
    assert "no caption 1" in str(summary)


def test_complex_joints_are_an_error_naming_the_file(tmp_path):
    from kinemic.io.joints import convert_joints_folder

    src = _joints_src(tmp_path, n=1)
    np.save(src / "complex.npy", walking_clip(30, seed=9) * (1 + 1j))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning instead of the error
        with pytest.raises(DataError, match=r"complex\.npy: .*complex128"):
            convert_joints_folder(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_degenerate_joints_are_refused_before_anything_is_written(tmp_path):
    from kinemic.io.joints import convert_joints_folder

    src = _joints_src(tmp_path, n=1)
    np.save(src / "zeros.npy", np.zeros((30, 22, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from the division by zero
        with pytest.raises(DataError, match=r"zeros\.npy: degenerate joints"):
            convert_joints_folder(src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(f"*{PARTIAL}*"))

    summary = convert_joints_folder(src, tmp_path / "out", lenient=True)
    assert summary.converted == ["clip0"]
    assert [(s.name, s.kind) for s in summary.skipped] == [("zeros.npy", "broken")]
    data = HumanML3DDataset(tmp_path / "out")
    assert data.ids() == ["clip0"] and np.isfinite(data.mean_std()[1]).all()


# -------------------------------------------------------------------------------- --lenient


def test_lenient_ntu_counts_every_per_file_problem(tmp_path):
    from kinemic.io.ntu_convert import convert_ntu_folder

    src = tmp_path / "skeletons"
    src.mkdir()
    write(src / "S001C001P001R001A001.skeleton", skeleton_lines(_moving(30)))
    point = [{ID_A: np.full((25, 3), 3.0)} for _ in range(30)]  # every joint at one point
    write(src / "S001C001P001R001A002.skeleton", skeleton_lines(point))
    write(src / "S001C001P001R001A003.skeleton", skeleton_lines(_moving(30))[:50])
    write(src / "not-an-ntu-name.skeleton", skeleton_lines(_moving(30)))
    write(src / "S001C001P001R001A004.skeleton", skeleton_lines(_moving(6)))

    with pytest.raises(DataError, match=r"A002\.skeleton: degenerate joints"):
        convert_ntu_folder(src, tmp_path / "strict")
    summary = convert_ntu_folder(src, tmp_path / "out", lenient=True)
    assert summary.converted == ["S001C001P001R001A001"]
    kinds = {s.name: s.kind for s in summary.skipped}
    assert kinds == {
        "S001C001P001R001A002.skeleton": "broken",
        "S001C001P001R001A003.skeleton": "broken",
        "not-an-ntu-name.skeleton": "broken",
        "S001C001P001R001A004.skeleton": "too-short",
    }
    assert "broken 3" in str(summary) and "degenerate joints" in str(summary)

    for path in src.glob("*A001.skeleton"):
        path.unlink()
    with pytest.raises(DataError, match=r"no clips written: all 4 files skipped \(broken 3"):
        convert_ntu_folder(src, tmp_path / "none", lenient=True)
    assert not (tmp_path / "none").exists()


def test_lenient_bvh_counts_degenerate_trials_and_unknown_skeletons_fail_first(
    cmu_bvh_dir, tmp_path
):
    from kinemic.io.bvh_retarget import convert_bvh_folder

    src = tmp_path / "src"
    src.mkdir()
    run = cmu_bvh_dir / "02" / "02_03.bvh"
    (src / "02_03.bvh").symlink_to(run)
    flat = re.sub(r"OFFSET [^\n]*", "OFFSET 0 0 0", run.read_text())  # one point: no bones
    (src / "09_99.bvh").write_text(flat)

    with pytest.raises(DataError, match=r"09_99\.bvh: degenerate joints"):
        convert_bvh_folder(src, tmp_path / "strict", min_seconds=0)
    summary = convert_bvh_folder(src, tmp_path / "out", min_seconds=0, lenient=True)
    assert summary.clips == ["02_03_000"]
    assert [(s.name, s.kind) for s in summary.skipped] == [("09_99", "broken")]
    assert "skipped 1 trials (broken 1)" in str(summary)
    with pytest.raises(KinemicError, match="unknown BVH skeleton 'nope'"):
        convert_bvh_folder(src, tmp_path / "x", skeleton="nope", lenient=True)
    assert not (tmp_path / "x").exists()


def test_a_killed_world_generation_leaves_no_half_dataset(tmp_path, monkeypatch):
    from kinemic.world import generate as gen

    def dies_midway(root, **kwargs):
        np.save(root / "half.npy", np.zeros(3))
        raise KeyboardInterrupt

    monkeypatch.setattr(gen, "generate_source", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        gen.generate_world(tmp_path / "w", scale="tiny", progress=False)
    assert not (tmp_path / "w" / "source").exists() and list((tmp_path / "w").iterdir()) == []
