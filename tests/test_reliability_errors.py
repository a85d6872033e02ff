"""Bad input is a clear error naming the file, raised where the problem is found (issue 25,
item 10): no traceback from ValueError, KeyError, SafetensorError, BadZipFile or a NumPy
memory error reaches the user. Each test makes its own bad input; the CLI must exit with
status 2 and name the file on stderr."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kinemic.cli import INTERNAL_ERROR, VERBS, main
from kinemic.errors import KinemicError
from kinemic.prior.folder import SHIPPED_PRIOR

BVH_TEXT = """HIERARCHY
ROOT Hips
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Leg
  {{
    OFFSET 0 -1.5 0.25
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {{
      OFFSET 0 -2 0
    }}
  }}
}}
MOTION
Frames: {frames}
Frame Time: {frame_time}
{rows}"""


def bvh(frames: int = 3, frame_time: str = "0.0333333", declared: int | None = None) -> str:
    rows = "".join(f"0 10 0 {k} 0 0 {2 * k} 0 0\n" for k in range(frames))
    return BVH_TEXT.format(
        frames=frames if declared is None else declared, frame_time=frame_time, rows=rows
    )


def cli(capsys, *argv) -> tuple[int, str]:
    """Run ``kinemic ARGV``: (exit status, stderr)."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_refused(capsys, name: str | Path, *argv) -> str:
    code, err = cli(capsys, *argv)
    assert code == 2, err
    assert str(name) in err, err
    assert "Traceback" not in err
    return err


# ----------------------------------------------------------------------------------- BVH


@pytest.mark.parametrize(
    "header, problem",
    [
        (dict(frame_time="nan"), "Frame Time: nan is not a capture rate"),
        (dict(frame_time="inf"), "Frame Time: inf is not a capture rate"),
        (dict(frame_time="1e9"), "Frame Time: 1e9 is not a capture rate"),
        (dict(frames=0), "Frames: 0: a BVH file needs at least one frame"),
        (dict(declared=3_000_000_000), "declares Frames: 3000000000 but only"),
    ],
)
def test_bvh_header_values_are_checked(tmp_path, capsys, header, problem):
    src = tmp_path / "bvh"
    src.mkdir()
    (src / "01_01.bvh").write_text(bvh(**header))
    err = assert_refused(
        capsys, src / "01_01.bvh", "convert", "bvh", src, tmp_path / "out", "--min-seconds", 0
    )
    assert problem in err


def test_unknown_bvh_skeleton(tmp_path, capsys):
    src = tmp_path / "bvh"
    src.mkdir()
    (src / "01_01.bvh").write_text(bvh())
    err = assert_refused(
        capsys, "'nope'", "convert", "bvh", src, tmp_path / "out", "--skeleton", "nope"
    )
    assert "unknown BVH skeleton" in err and "cmu" in err


# ----------------------------------------------------------------------------------- NTU


def test_ntu_frame_count_in_the_billions_is_refused_before_allocating(tmp_path, capsys):
    src = tmp_path / "skeletons"
    src.mkdir()
    path = src / "S001C001P001R001A001.skeleton"
    joint = "0.1 0.2 3.0 277.4 191.8 1036.2 519.2 -0.2 0.05 0.97 -0.1 2"
    body = ["1", "72057594037931101 0 1 1 1 1 0 0.0276 0.0574 2", "25", *[joint] * 25]
    path.write_text("\n".join(["3000000000", *body * 2]) + "\n")
    err = assert_refused(capsys, path, "convert", "ntu-skeleton", src, tmp_path / "out")
    assert "declares 3000000000 frames" in err


# --------------------------------------------------------------------- model and stats files


@pytest.fixture
def prior_copy(tmp_path) -> Path:
    folder = tmp_path / "prior"
    shutil.copytree(SHIPPED_PRIOR, folder)
    return folder


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


SAMPLE = ["--n", 1, "--length", 4, "--ddim", 2, "--no-gif"]


def test_truncated_prior_weights(prior_copy, tmp_path, capsys):
    weights = truncate(prior_copy / "model.safetensors")
    err = assert_refused(
        capsys, weights, "sample", "--model", prior_copy, *SAMPLE, "--out", tmp_path / "s"
    )
    assert "truncated or damaged" in err


def test_truncated_normalizer(prior_copy, tmp_path, capsys):
    stats = truncate(prior_copy / "normalizer.npz")
    assert_refused(capsys, stats, "sample", "--model", prior_copy, *SAMPLE, "--out", tmp_path / "s")


def test_truncated_tmor_weights(tmp_path):
    from kinemic.tmor.encoder import SHIPPED_TMOR, load_tmor

    folder = tmp_path / "tmor"
    shutil.copytree(SHIPPED_TMOR, folder)
    weights = truncate(folder / "model.safetensors")
    with pytest.raises(KinemicError, match=str(weights)):
        load_tmor(folder)


def test_npy_header_declaring_billions_of_rows(tmp_path):
    from kinemic.files import read_npy

    path = tmp_path / "000001.npy"
    np.save(path, np.zeros((5, 263), np.float32))
    data = path.read_bytes()
    path.write_bytes(data.replace(b"(5, 263)", b"(500000000000, 263)", 1))
    with pytest.raises(KinemicError, match="declares a float32 array of shape"):
        read_npy(path)
    np.save(path, np.array(["a", "b"]))
    with pytest.raises(KinemicError, match="expected real numbers"):
        read_npy(path)


def mdm_checkpoint(path: Path) -> Path:
    from kinemic.diffusion import Denoiser, DenoiserConfig, to_mdm_state_dict

    config = DenoiserConfig(
        feature_dim=12, latent_dim=16, num_layers=1, num_heads=4, ff_dim=32, text_dim=None
    )
    torch.save(to_mdm_state_dict(Denoiser(config)), path)
    return path


@pytest.mark.parametrize(
    "bad, problem", [("std0", "std must be > 0"), ("nan_mean", "must be finite")]
)
def test_import_mdm_with_unusable_statistics(tmp_path, capsys, bad, problem):
    mean, std = np.zeros(12, np.float32), np.ones(12, np.float32)
    if bad == "std0":
        std[3] = 0
    else:
        mean[5] = np.nan
    stats = tmp_path / "HumanML3D"
    stats.mkdir()
    np.save(stats / "Mean.npy", mean)
    np.save(stats / "Std.npy", std)
    checkpoint = mdm_checkpoint(tmp_path / "model.pt")
    err = assert_refused(
        capsys, stats, "import-mdm", checkpoint, "--mean-std", stats, "--out", tmp_path / "p"
    )
    assert problem in err
    assert not (tmp_path / "p").exists()


def test_import_mdm_of_truncated_safetensors(tmp_path, capsys):
    from safetensors.torch import save_file

    state = torch.load(mdm_checkpoint(tmp_path / "model.pt"), weights_only=True)
    save_file(state, tmp_path / "model.safetensors")
    checkpoint = truncate(tmp_path / "model.safetensors")
    np.save(tmp_path / "Mean.npy", np.zeros(12, np.float32))
    np.save(tmp_path / "Std.npy", np.ones(12, np.float32))
    args = ["--mean-std", tmp_path, "--out", tmp_path / "p"]
    assert_refused(capsys, checkpoint, "import-mdm", checkpoint, *args)


# ---------------------------------------------------------------------------- output paths


def test_out_onto_a_file(tmp_path, capsys):
    file = tmp_path / "taken"
    file.write_text("not a folder")
    err = assert_refused(capsys, file, "sample", *SAMPLE, "--out", file)
    assert "is a file, not a folder" in err
    assert file.read_text() == "not a folder"
    np.save(tmp_path / "Mean.npy", np.zeros(12, np.float32))
    np.save(tmp_path / "Std.npy", np.ones(12, np.float32))
    checkpoint = mdm_checkpoint(tmp_path / "model.pt")
    assert_refused(capsys, file, "import-mdm", checkpoint, "--mean-std", tmp_path, "--out", file)


def test_make_folder_names_the_file_in_the_way(tmp_path):
    """The shared check every output folder goes through (atomic writes, training runs,
    priors, samples)."""
    from kinemic.files import make_folder, write_text

    file = tmp_path / "taken"
    file.write_text("")
    for out in (file, file / "run", file / "run" / "checkpoints"):
        with pytest.raises(KinemicError, match=f"{file} is a file, not a folder"):
            make_folder(out)
    with pytest.raises(KinemicError, match=f"{file} is a file, not a folder"):
        write_text(file / "info.json", "{}")
    with pytest.raises(KinemicError, match="is a folder; expected the name of a file"):
        write_text(tmp_path, "{}")
    assert make_folder(tmp_path / "a" / "b").is_dir()


def test_validate_json_into_a_missing_folder_a_folder_and_below_a_file(tmp_path, capsys):
    from kinemic.io.humanml3d import write_clip, write_split

    root = tmp_path / "data"
    write_clip(root, "000001", features=np.zeros((8, 263), np.float32))
    write_split(root, "train", ["000001"])
    report = tmp_path / "new" / "folder" / "report.json"
    code, err = cli(capsys, "validate", root, "--json", report)
    assert code in (0, 1) and report.is_file(), err
    assert_refused(capsys, tmp_path / "new", "validate", root, "--json", tmp_path / "new")
    file = tmp_path / "file"
    file.write_text("")
    assert_refused(capsys, file, "validate", root, "--json", file / "report.json")


@pytest.mark.parametrize("value", [1e30, np.nan, np.inf])
def test_render_of_absurd_joints(tmp_path, capsys, value):
    joints = np.zeros((6, 22, 3), np.float32)
    joints[2, 5, 1] = value
    np.save(tmp_path / "clip.npy", joints)
    clip = tmp_path / "clip.npy"
    assert_refused(capsys, clip, "render", clip, "--out", tmp_path / "clip.png")
    assert not (tmp_path / "clip.png").exists()


# ---------------------------------------------------------------------------- the last resort


def test_an_unexpected_exception_asks_for_a_report(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setitem(VERBS, "info", (VERBS["info"][0], broken))
    code, err = cli(capsys, "info", "anything")
    assert code == INTERNAL_ERROR
    assert "internal error (RuntimeError: a bug)" in err and "please report" in err


def test_damaged_evaluator_folder(tmp_path):
    from kinemic.har.stgcn import STGCN, STGCNConfig, load_stgcn, save_stgcn

    folder = save_stgcn(tmp_path / "m", STGCN(STGCNConfig(num_classes=3, width=0.125)))
    config = (folder / "config.json").read_text()
    weights = truncate(folder / "model.safetensors")
    with pytest.raises(KinemicError, match=f"{weights}.*truncated or damaged"):
        load_stgcn(folder)
    (folder / "config.json").write_text(config[: len(config) // 2])
    with pytest.raises(KinemicError, match=r"config\.json: not valid JSON"):
        load_stgcn(folder)
    (folder / "config.json").write_text('{"format": "kinemic-stgcn", "model": {"depth": 3}}')
    with pytest.raises(KinemicError, match=r"config\.json: bad ST-GCN model settings"):
        load_stgcn(folder)
