"""Fuzz the readers with damaged copies of valid files (issue 25, "Must hold").

Every reader of user data (BVH, NTU ``.skeleton``, ``.npy`` features and joints, caption
lines, split files, the normaliser ``.npz`` and ``.safetensors`` weights) gets truncated and
mutated versions of a small valid file made here: byte flips, inserted garbage, a cut or
doubled line, a number replaced by a huge one, ``nan`` or ``inf``. Each outcome must be a
clean result or a ``KinemicError`` whose message names the damaged file: never another
exception, never a hang (each case runs under a time budget). Seeded, so a failure replays.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from kinemic.errors import KinemicError

SEED = 25
CASES = 60  # damaged copies per reader
BUDGET_S = 2.0  # per case; a reader that takes longer counts as hanging
ODD_NUMBERS = [b"1e308", b"-1e309", b"99999999999999999999", b"nan", b"inf", b"-0", b"1e-320"]
ODD_NUMBERS += [b"4294967296", b"-1", b"0", b"3000000000", b"0x10", b"1_000"]
GARBAGE = [b"\x00", b"\xff\xfe", b"#", b"\n", b"{", b"}", b" -", b"e", b".", b"\r\n", b"\t"]


class CaseTimeout(BaseException):
    """Raised by the alarm inside a case that ran over its budget (a BaseException, so no
    reader's ``except Exception`` swallows it)."""


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    if not hasattr(signal, "setitimer"):  # no alarms here: the elapsed time is checked after
        yield
        return

    def expire(signum, frame):
        raise CaseTimeout(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One damaged copy of ``data`` and a short description of the damage."""
    kind = rng.choice(["truncate", "flip", "insert", "cut line", "double line", "number"])
    n = len(data)
    if kind == "truncate":
        k = int(rng.integers(0, n))
        return f"truncated to {k} bytes", data[:k]
    if kind == "flip":
        out = bytearray(data)
        spots = rng.integers(0, n, size=int(rng.integers(1, 4)))
        for i in spots:
            out[i] ^= int(rng.integers(1, 256))
        return f"bytes flipped at {sorted(spots.tolist())}", bytes(out)
    if kind == "insert":
        k = int(rng.integers(0, n + 1))
        junk = GARBAGE[int(rng.integers(len(GARBAGE)))] * int(rng.integers(1, 4))
        return f"{junk!r} inserted at {k}", data[:k] + junk + data[k:]
    lines = data.split(b"\n")
    if kind in ("cut line", "double line"):
        k = int(rng.integers(len(lines)))
        new = lines[:k] + lines[k + 1 :] if kind == "cut line" else lines[: k + 1] + lines[k:]
        return f"{kind} {k + 1}", b"\n".join(new)
    numbers = list(re.finditer(rb"-?\d+(\.\d+)?(e-?\d+)?", data))
    if not numbers:
        return "unchanged (no number)", data
    # Half the time one of the first numbers: headers (counts, shapes, sizes) come first.
    m = numbers[int(rng.integers(len(numbers) if rng.random() < 0.5 else min(6, len(numbers))))]
    odd = ODD_NUMBERS[int(rng.integers(len(ODD_NUMBERS)))]
    return f"{m.group()!r} at {m.start()} -> {odd!r}", data[: m.start()] + odd + data[m.end() :]


def fuzz(read: Callable[[Path], object], path: Path, *, stream: int) -> None:
    """Read ``CASES`` damaged copies of ``path`` (written in its place, then restored)."""
    original = path.read_bytes()
    rng = np.random.default_rng([SEED, stream])
    failures = []
    try:
        for case in range(CASES):
            what, data = mutate(original, rng)
            path.write_bytes(data)
            start = time.perf_counter()
            try:
                with time_budget(BUDGET_S):
                    read(path)
            except KinemicError as e:
                if path.name not in str(e):
                    failures.append(f"case {case} ({what}): the error does not name it: {e}")
            except CaseTimeout as e:
                failures.append(f"case {case} ({what}): {e}")
            except Exception as e:  # what this test exists to find
                failures.append(f"case {case} ({what}): {type(e).__name__}: {e}")
            elapsed = time.perf_counter() - start
            if elapsed > BUDGET_S:
                failures.append(f"case {case} ({what}): took {elapsed:.1f} s")
    finally:
        path.write_bytes(original)
    read(path)  # the original still reads: the cases were about the damage
    assert not failures, f"{path.name}:\n" + "\n".join(failures)


# --------------------------------------------------------------------------------- the files

BVH_TEXT = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Leg
  {
    OFFSET 0 -1.5 0.25
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {
      OFFSET 0 -2 0
    }
  }
}
MOTION
Frames: 5
Frame Time: 0.0333333
0 10 0 0 0 0 0 0 0
0.1 10 0 5 0 0 10 0 0
0.2 10.1 0 10 0 0 20 0 0
0.3 10.1 0 15 0 0 30 0 0
0.4 10 0 20 0 0 40 0 0
"""


def skeleton_text(frames: int = 3) -> str:
    """An NTU RGB+D ``.skeleton`` file: one body, 25 joints, ``frames`` frames."""
    rng = np.random.default_rng(0)
    lines = [str(frames)]
    for _ in range(frames):
        lines += ["1", "72057594037931101 0 1 1 1 1 0 0.0276 0.0574 2", "25"]
        for x, y, z in rng.normal(0, 0.3, (25, 3)) + np.array([0, 0, 3]):
            lines.append(f"{x:.5f} {y:.5f} {z:.5f} 277.4 191.8 1036.2 519.2 -0.2 0.05 0.97 -0.1 2")
    return "\n".join(lines) + "\n"


CAPTIONS = (
    "a person walks forward.#a/DET person/NOUN walk/VERB forward/ADV#0.0#0.0\n"
    "someone waves with the left hand.#someone/PRON wave/VERB#0.5#2.5\n"
)


@pytest.fixture
def humanml3d(tmp_path: Path) -> Path:
    """A HumanML3D-layout folder of four tiny clips, with captions and splits."""
    from kinemic.io.humanml3d import write_clip, write_split

    rng = np.random.default_rng(1)
    root = tmp_path / "hml"
    ids = ["000001", "000002", "000003", "M000001"]
    for clip_id in ids:
        write_clip(
            root,
            clip_id,
            features=rng.normal(size=(6, 263)).astype(np.float32),
            joints=rng.normal(size=(6, 22, 3)).astype(np.float32),
        )
    (root / "texts").mkdir()
    (root / "texts" / "000001.txt").write_text(CAPTIONS)
    write_split(root, "train", ["000001", "M000001"])
    write_split(root, "val", ["000002"])
    write_split(root, "test", ["000003"])
    return root


@pytest.fixture
def ntu_vibe(tmp_path: Path) -> Path:
    """An NTU-VIBE-layout folder with a few-shot split of two classes (A099, A102)."""
    from kinemic.io.humanml3d import write_clip

    root = tmp_path / "ntu"
    ids = {
        "S019C001P050R002A099": 98,
        "S031C003P043R001A099": 98,
        "S019C002P042R002A102": 101,
        "S027C003P008R001A102": 101,
    }
    for clip_id in ids:
        write_clip(root, clip_id, features=np.zeros((4, 263), np.float32))
    (root / "ntu_classes.txt").write_text("\n".join(f"class {i}" for i in range(1, 121)))
    split = root / "splits" / "fewshot" / "S0000"
    (split / "xsub").mkdir(parents=True)
    (split / "meta.json").write_text(json.dumps({"class_list": [98, 101], "seed": 1, "shots": 1}))
    (split / "xsub" / "train.txt").write_text("S019C001P050R002A099\nS019C002P042R002A102\n")
    (split / "xsub" / "train_y.txt").write_text("98\n101\n")
    (split / "xsub" / "val.txt").write_text("S031C003P043R001A099\nS027C003P008R001A102\n")
    (split / "xsub" / "val_y.txt").write_text("98\n101\n")
    return root


# --------------------------------------------------------------------------------- the tests


def test_fuzz_bvh_reader(tmp_path: Path) -> None:
    from kinemic.io.bvh import bvh_positions, read_bvh

    path = tmp_path / "trial.bvh"
    path.write_text(BVH_TEXT)
    fuzz(lambda p: bvh_positions(read_bvh(p), end_sites=True), path, stream=1)


def test_fuzz_ntu_skeleton_reader(tmp_path: Path) -> None:
    from kinemic.io.ntu_skeleton import skeleton_file_to_smpl

    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(skeleton_text())
    fuzz(skeleton_file_to_smpl, path, stream=2)


def test_fuzz_npy_features_and_joints(humanml3d: Path) -> None:
    from kinemic.io.humanml3d import HumanML3DDataset

    ds = HumanML3DDataset(humanml3d)
    fuzz(lambda p: ds.features(p.stem), humanml3d / "new_joint_vecs" / "000002.npy", stream=3)
    fuzz(lambda p: ds.joints(p.stem), humanml3d / "new_joints" / "000002.npy", stream=4)


def test_fuzz_caption_lines(humanml3d: Path) -> None:
    from kinemic.io.humanml3d import HumanML3DDataset

    ds = HumanML3DDataset(humanml3d)
    fuzz(lambda p: ds.captions(p.stem), humanml3d / "texts" / "000001.txt", stream=5)


def test_fuzz_humanml3d_split_files(humanml3d: Path) -> None:
    from kinemic.io.humanml3d import HumanML3DDataset

    ds = HumanML3DDataset(humanml3d)
    fuzz(lambda p: ds.split(p.stem), humanml3d / "train.txt", stream=6)


@pytest.mark.parametrize("name", ["meta.json", "xsub/train.txt", "xsub/train_y.txt"])
def test_fuzz_fewshot_split_files(ntu_vibe: Path, name: str) -> None:
    from kinemic.io.ntu_vibe import NTUVibeDataset

    ds = NTUVibeDataset(ntu_vibe)
    path = ntu_vibe / "splits" / "fewshot" / "S0000" / name
    fuzz(lambda p: ds.fewshot_split("S0000"), path, stream=7 + len(name))


def test_fuzz_normalizer_and_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from kinemic.features import Normalizer
    from kinemic.files import read_safetensors

    rng = np.random.default_rng(2)
    Normalizer(rng.normal(size=263), rng.uniform(0.5, 1, 263)).save(tmp_path / "normalizer.npz")
    fuzz(Normalizer.load, tmp_path / "normalizer.npz", stream=20)
    import torch

    save_file({"w": torch.ones(4, 3), "b": torch.zeros(3)}, tmp_path / "model.safetensors")
    fuzz(read_safetensors, tmp_path / "model.safetensors", stream=21)
