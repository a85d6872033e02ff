"""Pretraining, prior folders and sampling, end to end with a 2-layer denoiser and the
"hash-64" test text encoder on a synthetic HumanML3D corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from kinemic.diffusion.losses import masked_mse, per_clip_mse
from kinemic.errors import DataError, KinemicError
from kinemic.features import encode_clip
from kinemic.io.humanml3d import Caption, write_clip, write_split
from kinemic.prior.folder import load_prior
from kinemic.prior.pretrain import pretrain
from kinemic.prior.sample import parse_length, sample_motions
from tests.synthetic import walking_clip

TINY = dict(latent_dim=32, num_layers=2, ff_dim=64, num_heads=2)
OPTS = dict(
    text_encoder="hash-64",
    model_overrides=TINY,
    batch_size=4,
    cpu=True,
    progress=False,
    log_every=5,
    checkpoint_every=5,
)
CAPTIONS = ["a person walks forward", "someone walks in a curve", "a man strolls and turns"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Six walking clips of 60..110 joint frames, with captions; one has a sub-clip caption;
    clip 000005 is left out of train.txt."""
    root = tmp_path_factory.mktemp("corpus")
    for i in range(6):
        features, joints = encode_clip(walking_clip(60 + 10 * i, seed=i))
        caps: list[Caption | str] = [CAPTIONS[i % 3], CAPTIONS[(i + 1) % 3]]
        if i == 3:
            caps.append(Caption.from_text("the first two and a half seconds", start=0.0, end=2.5))
        write_clip(root, f"{i:06d}", features=features, joints=joints, captions=caps)
    write_split(root, "train", [f"{i:06d}" for i in range(5)])
    return root


@pytest.fixture(scope="module")
def run(corpus: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    pretrain([corpus], out, train_steps=10, **OPTS)
    return out


def test_pretrain_writes_a_self_describing_run(run: Path, corpus: Path) -> None:
    assert (run / "latest").read_text().strip() == "checkpoints/step-00000010"
    ckpt = run / "checkpoints" / "step-00000010"
    for name in (
        "config.json",
        "model.safetensors",
        "model_raw.safetensors",
        "normalizer.npz",
        "trainer.json",
        "state/model.safetensors",
        "state/ema.safetensors",
        "state/optimizer.safetensors",
        "state/optimizer.json",
        "state/rng-0.json",
    ):
        assert (ckpt / name).is_file(), name
    assert not list((ckpt / "state").glob("*.pkl"))  # resume reads no pickle
    assert (run / "checkpoints" / "step-00000005").is_dir()
    config = json.loads((ckpt / "config.json").read_text())
    assert config["denoiser"]["latent_dim"] == 32 and config["denoiser"]["text_dim"] == 64
    assert config["schedule"]["num_steps"] == 50
    assert config["text_encoder"]["name"] == "hash-64" and config["text_encoder"]["dim"] == 64
    assert config["weights"] == {"model.safetensors": "ema", "model_raw.safetensors": "raw"}
    training = config["training"]
    assert training["sources"] == [str(corpus.resolve())] and training["step"] == 10
    assert training["clips"] == 5 and training["batch_size"] == 4 and training["ema"] == 0.999
    ema, raw = load_file(ckpt / "model.safetensors"), load_file(ckpt / "model_raw.safetensors")
    assert ema.keys() == raw.keys() and any(not torch.equal(ema[k], raw[k]) for k in ema)
    # the statistics come from the five train clips, every frame weighing the same
    from kinemic.features import Normalizer
    from kinemic.io.humanml3d import HumanML3DDataset

    ds = HumanML3DDataset(corpus)
    ref = Normalizer.fit([ds.features(i) for i in ds.split("train")])
    stats = np.load(ckpt / "normalizer.npz")
    np.testing.assert_allclose(stats["mean"], ref.mean, rtol=1e-5, atol=1e-6)


def test_resume_after_a_kill_gives_identical_weights(
    corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    from kinemic.prior.pretrain import PretrainTask

    pretrain([corpus], tmp_path / "straight", train_steps=10, **OPTS)
    original = PretrainTask.batch

    def killed(self, step, **kw):
        if step == 7:
            raise KeyboardInterrupt  # killed between the checkpoints at 5 and 10
        return original(self, step, **kw)

    monkeypatch.setattr(PretrainTask, "batch", killed)
    with pytest.raises(KeyboardInterrupt):
        pretrain([corpus], tmp_path / "killed", train_steps=10, **OPTS)
    monkeypatch.setattr(PretrainTask, "batch", original)
    pretrain([corpus], tmp_path / "killed", train_steps=10, resume=tmp_path / "killed", **OPTS)
    for name in ("model.safetensors", "model_raw.safetensors"):
        a = load_file(tmp_path / "straight" / "checkpoints" / "step-00000010" / name)
        b = load_file(tmp_path / "killed" / "checkpoints" / "step-00000010" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    with pytest.raises(KinemicError, match=r"(?s)different settings.*batch_size"):
        pretrain(
            [corpus],
            tmp_path / "killed",
            train_steps=12,
            resume=tmp_path / "killed",
            **{**OPTS, "batch_size": 2},
        )


def test_loss_decreases(corpus: Path, tmp_path: Path) -> None:
    opts = {**OPTS, "log_every": 10, "checkpoint_every": 50, "ema": None, "batch_size": 8}
    pretrain([corpus], tmp_path / "r", train_steps=50, lr=3e-3, **opts)
    trainer = json.loads((tmp_path / "r" / "checkpoints/step-00000050/trainer.json").read_text())
    losses = [loss for _, loss in trainer["losses"]]  # mean of each 10 steps
    assert len(losses) == 5
    assert losses[-1] < 0.5 * losses[0], losses


def test_load_prior_rebuilds_and_samples(run: Path, tmp_path: Path) -> None:
    from kinemic.diffusion import sample

    prior = load_prior(run)
    assert prior.weights == "ema" and prior.text_encoder == "hash-64" and prior.max_frames == 196
    assert not prior.denoiser.training and prior.schedule.num_steps == 50
    raw = load_prior(run / "checkpoints" / "step-00000010", weights="raw")
    assert raw.weights == "raw"
    x = sample(
        prior.denoiser,
        prior.schedule,
        (2, 12, 263),
        text=torch.randn(2, 64),
        generator=torch.Generator().manual_seed(0),
        ddim_steps=4,
    )
    assert x.shape == (2, 12, 263) and torch.isfinite(x).all()
    # a copy of the folder alone is enough: no training data needed
    solo = tmp_path / "solo"
    shutil.copytree(
        run / "checkpoints" / "step-00000010", solo, ignore=shutil.ignore_patterns("state")
    )
    assert load_prior(solo).denoiser.config == prior.denoiser.config
    # a config from another version names the file and the setting
    config = json.loads((solo / "config.json").read_text())
    config["denoiser"]["n_embd"] = 3
    (solo / "config.json").write_text(json.dumps(config))
    with pytest.raises(KinemicError, match=r"solo/config\.json: bad denoiser config .*'n_embd'"):
        load_prior(solo)
    del config["denoiser"]["n_embd"]
    (solo / "config.json").write_text(json.dumps(config))
    (solo / "normalizer.npz").unlink()
    (solo / "model.safetensors").unlink()
    with pytest.raises(
        KinemicError, match=r"incomplete prior folder, missing model\.safetensors, normalizer\.npz"
    ):
        load_prior(solo)
    with pytest.raises(KinemicError, match="no such folder"):
        load_prior(tmp_path / "nowhere")


def test_sample_motions_writes_features_joints_gif(run: Path, tmp_path: Path) -> None:
    out = sample_motions(
        run,
        texts=["a person walks forward", "someone turns"],
        n=2,
        length="1s",
        ddim=3,
        out=tmp_path / "s",
        progress=False,
    )
    info = json.loads((out / "info.json").read_text())
    assert info["frames"] == 20 and len(info["samples"]) == 4 and info["sampler"] == "ddim-3"
    assert [s["text"] for s in info["samples"]] == ["a person walks forward"] * 2 + [
        "someone turns"
    ] * 2
    for i in range(4):
        assert np.load(out / "features" / f"{i}.npy").shape == (20, 263)
        assert np.load(out / "joints" / f"{i}.npy").shape == (20, 22, 3)
    assert (out / "samples.gif").stat().st_size > 0
    again = sample_motions(
        run,
        texts=["a person walks forward", "someone turns"],
        n=2,
        length=20,
        ddim=3,
        out=tmp_path / "t",
        gif=False,
        progress=False,
    )
    np.testing.assert_array_equal(
        np.load(out / "features/3.npy"), np.load(again / "features/3.npy")
    )
    assert not (again / "samples.gif").exists()
    with pytest.raises(KinemicError, match=r"outside what this model can make: 1\.\.196"):
        sample_motions(run, texts=["x"], length="10s", out=tmp_path / "u")
    with pytest.raises(KinemicError, match="no action condition"):
        sample_motions(run, actions=[1], out=tmp_path / "u")
    with pytest.raises(KinemicError, match="only number it can sample with"):
        sample_motions(run, texts=["x"], diffusion_steps=100, out=tmp_path / "u")


def test_parse_length() -> None:
    assert parse_length("3s", max_frames=196) == 60
    assert parse_length("3.5s", max_frames=196) == 70
    assert parse_length(45, max_frames=196) == 45
    with pytest.raises(KinemicError, match="expected seconds"):
        parse_length("3 seconds", max_frames=196)


def test_bad_input_fails_before_training(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing folder"):
        pretrain([tmp_path], tmp_path / "o", train_steps=2, **OPTS)
    mute = tmp_path / "mute"
    shutil.copytree(corpus, mute)
    (mute / "texts" / "000001.txt").unlink()
    with pytest.raises(DataError, match="no usable caption"):
        pretrain([mute], tmp_path / "o", train_steps=2, **OPTS)
    pretrain([mute], tmp_path / "o", train_steps=2, allow_uncaptioned=True, **OPTS)
    with pytest.raises(KinemicError, match="already holds a training run"):
        pretrain([mute], tmp_path / "o", train_steps=2, allow_uncaptioned=True, **OPTS)
    with pytest.raises(KinemicError, match="not a training run or checkpoint"):
        pretrain([corpus], tmp_path / "p", train_steps=2, resume=tmp_path, **OPTS)


def test_masked_mse_ignores_padding() -> None:
    target = torch.zeros(2, 4, 3)
    pred = torch.ones(2, 4, 3)
    pred[0, 2:] = 100.0  # padded frames of clip 0
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    assert masked_mse(pred, target, mask).item() == pytest.approx(1.0)
    # each clip weighs the same: the mean of the per-clip errors; a clip without frames gives 0
    pred[1] = 3.0
    mask[1, 1:] = False
    assert torch.equal(per_clip_mse(pred, target, mask), torch.tensor([1.0, 9.0]))
    assert masked_mse(pred, target, mask).item() == 5.0
    assert per_clip_mse(pred, target, torch.zeros_like(mask)).tolist() == [0.0, 0.0]


def test_import_mdm_writes_a_prior_folder(tmp_path: Path) -> None:
    from kinemic.diffusion import Denoiser, DenoiserConfig
    from kinemic.diffusion.mdm_import import to_mdm_state_dict
    from kinemic.io.humanml3d import write_mean_std
    from kinemic.prior.folder import import_mdm

    torch.manual_seed(0)
    mdm = Denoiser(DenoiserConfig.preset("tiny", **TINY, text_dim=64, text_scale=1.0))  # official
    torch.save({"model": to_mdm_state_dict(mdm)}, tmp_path / "model000.pt")
    write_mean_std(tmp_path / "stats", np.zeros(263), np.ones(263))
    out = import_mdm(
        tmp_path / "model000.pt",
        tmp_path / "prior",
        mean_std=tmp_path / "stats",
        num_heads=2,
        text_encoder="hash-64",
    )
    prior = load_prior(out)
    assert prior.weights == "raw" and prior.text_encoder == "hash-64"
    ref = mdm.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in prior.denoiser.state_dict().items())
    sample_motions(
        out,
        texts=["a person jumps"],
        n=1,
        length=8,
        ddim=2,
        out=tmp_path / "s",
        gif=False,
        progress=False,
    )
    assert np.load(tmp_path / "s" / "joints" / "0.npy").shape == (8, 22, 3)
    with pytest.raises(KinemicError, match="cannot import"):
        import_mdm(tmp_path / "missing.pt", tmp_path / "p2", mean_std=tmp_path / "stats")
