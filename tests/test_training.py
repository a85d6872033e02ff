"""The training data (corpora, seeded batches) and the generic training loop, on a toy task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from kinemic.corpus import NO_CAPTION, MotionCorpus, draw_batch, step_rng
from kinemic.errors import DataError, KinemicError
from kinemic.features import Normalizer
from kinemic.io.humanml3d import Caption, write_clip, write_split
from kinemic.training import TrainConfig, finished_step, resolve_checkpoint, train


def _ramp(T: int, offset: float = 0.0) -> np.ndarray:
    """Features whose column 0 is the row index (+ offset), so crops can be located."""
    f = np.random.default_rng(T).normal(size=(T, 263)).astype(np.float32)
    f[:, 0] = np.arange(T) + offset
    return f


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def ramp_corpus(tmp_path: Path) -> Path:
    root = tmp_path / "ramps"
    write_clip(root, "long", features=_ramp(300), captions=["a long clip"])
    write_clip(
        root,
        "spans",
        features=_ramp(120, 1000),
        captions=[Caption.from_text("only the middle", start=2.0, end=4.5)],  # rows 40..90
    )
    write_clip(root, "short", features=_ramp(30), captions=["too short"])
    write_clip(root, "unlisted", features=_ramp(80), captions=["not in train"])
    write_split(root, "train", ["long", "spans", "short"])
    return root


def test_corpus_reads_the_train_split_and_skips_short_clips(ramp_corpus: Path) -> None:
    corpus = MotionCorpus.load([ramp_corpus], progress=False)
    assert [c.split(":")[1] for c in corpus.clip_ids] == ["long", "spans"]
    assert corpus.skipped == {"shorter than min_frames": 1}
    assert corpus.lengths.tolist() == [300, 120]
    assert corpus.captions == ["a long clip", "only the middle"]
    assert corpus.clip_captions[1].tolist() == [[1, 40, 90]]
    all_clips = MotionCorpus.load([ramp_corpus], split=None, min_frames=20, progress=False)
    assert len(all_clips) == 4


def test_normalizer_weighs_frames_like_normalizer_fit(ramp_corpus: Path) -> None:
    corpus = MotionCorpus.load([ramp_corpus], progress=False)
    ours = corpus.fit_normalizer()
    ref = Normalizer.fit([corpus.clip(i) for i in range(len(corpus))])
    np.testing.assert_allclose(ours.mean, ref.mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.std, ref.std, rtol=1e-5)


def test_batches_crop_to_multiples_of_4_within_spans(ramp_corpus: Path) -> None:
    corpus = MotionCorpus.load([ramp_corpus], progress=False)
    seen_offsets = set()
    for step in range(20):
        b = draw_batch(corpus, step_rng(0, step), 6, max_frames=64)
        assert b.features.shape == (6, int(b.lengths.max()), 263)
        assert b.mask.sum(1).tolist() == b.lengths.tolist()
        assert (b.features[~b.mask] == 0).all()
        for row, length, clip in zip(b.features, b.lengths.tolist(), b.clip.tolist(), strict=True):
            assert length % 4 == 0 and length <= 64
            idx = row[:length, 0].numpy()
            np.testing.assert_array_equal(np.diff(idx), 1)  # one contiguous crop
            if clip == 1:  # the span caption: rows 40..90 of clip "spans"
                assert length == 48 and idx[0] >= 1040 and idx[-1] < 1090
            seen_offsets.add(float(idx[0]))
    assert len(seen_offsets) > 5  # offsets are random
    a = draw_batch(corpus, step_rng(3, 7), 4)
    b = draw_batch(corpus, step_rng(3, 7), 4)
    assert torch.equal(a.features, b.features) and torch.equal(a.caption, b.caption)


def test_bad_sources_give_clear_errors(tmp_path: Path, ramp_corpus: Path) -> None:
    with pytest.raises(DataError, match="missing folder"):
        MotionCorpus.load([tmp_path], progress=False)  # not a HumanML3D layout
    (tmp_path / "empty" / "new_joint_vecs").mkdir(parents=True)
    with pytest.raises(DataError, match="no clips"):
        MotionCorpus.load([tmp_path / "empty"], progress=False)
    with pytest.raises(DataError, match="no usable clips"):
        MotionCorpus.load([ramp_corpus], min_frames=500, progress=False)
    write_clip(ramp_corpus, "mute", features=_ramp(60))
    write_split(ramp_corpus, "train", ["long", "mute"])
    with pytest.raises(DataError, match=r"(?s)1 clips have no usable caption.*allow_uncaptioned"):
        MotionCorpus.load([ramp_corpus], progress=False)
    corpus = MotionCorpus.load([ramp_corpus], allow_uncaptioned=True, progress=False)
    b = draw_batch(corpus, step_rng(0, 0), 16)
    assert NO_CAPTION in b.caption.tolist()


# ------------------------------------------------------------------------------ the loop


class ToyTask:
    """Regress y = x @ W with a dropout MLP: exercises RNG, EMA and the optimiser."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.w = torch.randn(8, 2, generator=torch.Generator().manual_seed(123))
        self.exported: list[int] = []

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1):
        g = torch.Generator().manual_seed(int(step_rng(self.seed, step).integers(2**62)))
        x = torch.randn(16, 8, generator=g)
        return {"x": x, "y": x @ self.w}

    def loss(self, model, batch):
        return ((model(batch["x"]) - batch["y"]) ** 2).mean()

    def export(self, folder: Path, model, ema, *, step: int) -> None:
        from safetensors.torch import save_file

        save_file(
            {k: v.contiguous() for k, v in (ema or model).state_dict().items()},
            folder / "w.safetensors",
        )
        self.exported.append(step)


def _toy_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.Dropout(0.2), nn.GELU(), nn.Linear(32, 2))


def _cfg(steps: int, **kw) -> TrainConfig:
    opts = dict(lr=1e-2, checkpoint_every=5, log_every=5, progress=False, cpu=True, ema=0.9)
    return TrainConfig(steps=steps, **{**opts, **kw})


def test_loop_trains_checkpoints_and_prunes(tmp_path: Path) -> None:
    task = ToyTask()
    res = train(
        _toy_model(), task, tmp_path / "run", _cfg(40, keep_checkpoints=2), fingerprint={"a": 1}
    )
    assert res.step == 40 and task.exported == [5, 10, 15, 20, 25, 30, 35, 40]
    assert res.losses[-1][1] < 0.2 * res.losses[0][1]
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step-00000035", "step-00000040"]  # no temp folders left behind
    assert (
        resolve_checkpoint(tmp_path / "run") == tmp_path / "run" / "checkpoints" / "step-00000040"
    )
    info = json.loads((res.checkpoint / "trainer.json").read_text())
    assert info["step"] == 40 and info["fingerprint"] == {"a": 1} and len(info["losses"]) == 8
    assert any((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))
    with pytest.raises(KinemicError, match="already holds a training run"):
        train(_toy_model(), task, tmp_path / "run", _cfg(40), fingerprint={"a": 1})


def test_loop_resumes_exactly_after_an_interruption(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    train(_toy_model(), ToyTask(), tmp_path / "a", _cfg(20), fingerprint={})

    class Killed(ToyTask):
        def batch(self, step: int, **kw):
            if step == 13:  # after the step-10 checkpoint, before the next
                raise KeyboardInterrupt
            return super().batch(step, **kw)

    with pytest.raises(KeyboardInterrupt):
        train(_toy_model(), Killed(), tmp_path / "b", _cfg(20), fingerprint={})
    res = train(
        _toy_model(), ToyTask(), tmp_path / "b", _cfg(20), fingerprint={}, resume=tmp_path / "b"
    )
    a = load_file(tmp_path / "a" / "checkpoints" / "step-00000020" / "w.safetensors")
    b = load_file(res.checkpoint / "w.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    a_losses = json.loads((tmp_path / "a" / "checkpoints/step-00000020/trainer.json").read_text())
    assert [s for s, _ in res.losses] == [s for s, _ in a_losses["losses"]]


def test_resume_refuses_other_settings_and_incomplete_checkpoints(tmp_path: Path) -> None:
    train(_toy_model(), ToyTask(), tmp_path / "r", _cfg(10), fingerprint={"lr": 1e-2})
    with pytest.raises(
        KinemicError, match=r"different settings(.|\n)*lr: checkpoint 0.01, now 0.02"
    ):
        train(
            _toy_model(),
            ToyTask(),
            tmp_path / "r",
            _cfg(20),
            fingerprint={"lr": 2e-2},
            resume=tmp_path / "r",
        )
    (tmp_path / "r" / "checkpoints" / "step-00000010" / "state" / "optimizer.safetensors").unlink()
    with pytest.raises(KinemicError, match=r"incomplete checkpoint.*state/optimizer\.safetensors"):
        train(
            _toy_model(),
            ToyTask(),
            tmp_path / "r",
            _cfg(20),
            fingerprint={"lr": 1e-2},
            resume=tmp_path / "r",
        )
    with pytest.raises(KinemicError, match="not a training run or checkpoint"):
        resolve_checkpoint(tmp_path)


def test_finished_step_is_the_latest_complete_checkpoint(tmp_path: Path) -> None:
    assert finished_step(tmp_path / "run") is None  # nothing trained yet
    train(_toy_model(), ToyTask(), tmp_path / "run", _cfg(10), fingerprint={})
    assert finished_step(tmp_path / "run") == 10
    (tmp_path / "run" / "checkpoints" / "step-00000010" / "trainer.json").unlink()
    assert finished_step(tmp_path / "run") is None  # latest names an incomplete checkpoint


def test_train_config_validates() -> None:
    with pytest.raises(KinemicError, match="steps must be >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(KinemicError, match="ema must be in"):
        TrainConfig(steps=1, ema=1.5)
    assert TrainConfig(steps=1, lr=1.0, warmup_steps=4).lr_at(1) == 0.5
