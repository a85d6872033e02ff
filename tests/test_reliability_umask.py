"""Issue 25, item 3: written files get the mode the user's umask gives a new file
(``0o666 & ~umask``), not ``tempfile.mkstemp``'s 0o600 that locks colleagues out."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kinemic.files import atomic_open, new_temp_file, save_npy, write_bytes, write_text
from kinemic.io.humanml3d import write_clip, write_split
from kinemic.io.ntu_vibe import FewShotSplit, write_fewshot_split


@pytest.fixture(params=[0o022, 0o002, 0o077], ids=["022", "002", "077"])
def umask(request) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    want = 0o666 & ~umask
    write_text(tmp_path / "a.txt", "a\n")
    write_bytes(tmp_path / "b.bin", b"b")
    save_npy(tmp_path / "c.npy", np.zeros(3))
    with atomic_open(tmp_path / "d.txt") as f:
        f.write("d")
    write_text(tmp_path / "a.txt", "again\n")  # replacing a file: the same mode
    for name in ("a.txt", "b.bin", "c.npy", "d.txt"):
        assert _mode(tmp_path / name) == want, f"{name}: {oct(_mode(tmp_path / name))}"
    fd, tmp = new_temp_file(tmp_path / "e.mp4", suffix=".mp4")  # what render's mp4 writer uses
    os.close(fd)
    assert tmp.parent == tmp_path and tmp.name.startswith(".e.mp4.") and tmp.suffix == ".mp4"
    assert _mode(tmp) == want
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        tmp.name,
        "a.txt",
        "b.bin",
        "c.npy",
        "d.txt",
    ]


def test_a_dataset_is_readable_as_the_umask_allows(tmp_path: Path, umask: int) -> None:
    ids = ["S001C001P001R001A001", "S001C001P002R001A001"]
    for clip_id in ids:
        write_clip(tmp_path, clip_id, features=np.zeros((4, 263)), captions=["a person waves"])
    write_split(tmp_path, "train", ids)
    write_fewshot_split(tmp_path, FewShotSplit("S0000", [0], 0, 1, ids[:1], [0], ids[1:], [0]))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    folders = [p for p in tmp_path.rglob("*") if p.is_dir()]
    assert len(files) == 10 and folders
    assert {_mode(p) for p in files} == {0o666 & ~umask}
    assert {_mode(p) for p in folders} == {0o777 & ~umask}
