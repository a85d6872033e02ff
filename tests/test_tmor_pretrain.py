"""T-MOR pretraining on the tiny world: data, learning, exact resume, encoder folders, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from kinemic.corpus import step_rng
from kinemic.errors import DataError, KinemicError
from kinemic.tmor.data import TMORCorpus, draw_tmor_batch
from kinemic.tmor.encoder import load_tmor
from kinemic.tmor.model import TMOR, TMORConfig
from kinemic.tmor.pretrain import TMORTask, pretrain_tmor

OPTS = dict(
    preset="tiny",
    text_encoder="hash-64",
    batch_size=8,
    cpu=True,
    progress=False,
    log_every=2,
    checkpoint_every=3,
    warmup_steps=0,
    max_frames=64,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tiny_world: Path) -> TMORCorpus:
    return TMORCorpus.load([tiny_world / "source"], visual=True, progress=False)


def test_corpus_reads_joints_captions_spans_and_keypoints(corpus: TMORCorpus, tiny_world) -> None:
    assert len(corpus) == 48 and corpus.visual_kind == "keypoints" and corpus.visual_dim == 88
    assert all(v is not None and len(v) == len(corpus.clip(i)) for i, v in enumerate(corpus.visual))
    spans = [row for table in corpus.clip_captions for row in table if row[1] > 0]
    assert spans, "the tiny world has sub-clip captions"
    # every text has a mirror and mirrors pair up
    m = corpus.mirror_of
    assert np.array_equal(m[m], np.arange(len(m))) or all(m[m[k]] == k for k in range(len(m)))
    sided = [k for k, t in enumerate(corpus.texts) if " left" in t]
    assert sided and all(" right" in corpus.texts[m[k]] for k in sided)


def test_batches_are_seeded_cropped_and_mirrored(corpus: TMORCorpus) -> None:
    a = draw_tmor_batch(corpus, step_rng(0, 5), 8, max_frames=48)
    b = draw_tmor_batch(corpus, step_rng(0, 5), 8, max_frames=48)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["joints"].shape[1] <= 48 and a["visual"].shape[:2] == a["joints"].shape[:2]
    assert len(set(a["clip"].tolist())) == 8  # without replacement
    lengths = a["mask"].sum(1)
    assert (lengths >= 20).all() and torch.equal(a["visual_mask"].sum(1), lengths)
    mirrored = 0
    for s in range(10):
        batch = draw_tmor_batch(corpus, step_rng(1, s), 8)
        mirrored += sum(int(k) >= 0 and corpus.mirror_of[int(k)] != int(k) for k in batch["text"])
    assert mirrored > 0


def test_a_few_steps_reduce_the_loss(corpus: TMORCorpus) -> None:
    from kinemic.text import encode_all, get_text_encoder

    emb = encode_all(get_text_encoder("hash-64"), corpus.texts, progress=False)
    task = TMORTask(corpus=corpus, text_embeddings=emb, batch_size=16, max_frames=64)
    torch.manual_seed(0)
    model = TMOR(TMORConfig.preset("tiny", text_dim=64, visual="frames", visual_dim=88))
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    batch = task.batch(0)
    first = {k: v.item() for k, v in task.losses(model, batch).items()}
    assert set(first) == {"text", "visual"}
    for _ in range(40):
        loss, terms = task.loss(model, batch)
        assert set(terms) == {"text", "visual"}
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = {k: v.item() for k, v in task.losses(model, batch).items()}
    assert last["text"] < 0.6 * first["text"] and last["visual"] < 0.8 * first["visual"]


def test_pretrain_resumes_exactly_and_writes_encoder_folders(tiny_world: Path, tmp_path) -> None:
    src = [tiny_world / "source"]
    full = pretrain_tmor(src, tmp_path / "full", train_steps=6, visual=True, **OPTS)
    half = pretrain_tmor(src, tmp_path / "half", train_steps=3, visual=True, **OPTS)
    pretrain_tmor(src, tmp_path / "half", train_steps=6, visual=True, resume=half, **OPTS)
    a = load_file(full / "checkpoints" / "step-00000006" / "model.safetensors")
    b = load_file(half / "checkpoints" / "step-00000006" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    config = json.loads((full / "checkpoints" / "step-00000006" / "config.json").read_text())
    assert config["format"] == "kinemic-tmor" and config["text_encoder"]["name"] == "hash-64"
    assert config["visual"] == {"kind": "keypoints", "dim": 88}
    assert config["training"]["step"] == 6 and config["model"]["visual"] == "frames"
    enc = load_tmor(full)
    assert enc.model.config.embed_dim == 32 and not enc.model.training
    z = enc.embed_motions([np.zeros((30, 22, 3), np.float32) + 0.1, _clip(tiny_world)])
    assert z.shape == (2, 32)
    assert enc.embed_texts(["a person walks"]).shape == (1, 32)
    with pytest.raises(KinemicError, match="trained with the text encoder 'hash-64'"):
        load_tmor(full, text_encoder="minilm")
    with pytest.raises(KinemicError, match="different settings"):
        pretrain_tmor(
            src, tmp_path / "half", train_steps=8, resume=half, **{**OPTS, "batch_size": 4}
        )


def _clip(world: Path) -> np.ndarray:
    from kinemic.io.humanml3d import HumanML3DDataset

    ds = HumanML3DDataset(world / "source")
    return ds.joints(ds.ids()[0])


def test_unusable_input_is_refused(tiny_world: Path, tmp_path) -> None:
    bad = tmp_path / "src"
    shutil.copytree(tiny_world / "source", bad)
    first = sorted((bad / "visual").glob("0*.npy"))[0]
    np.save(first, np.zeros((3, 22, 2), np.float32))
    with pytest.raises(DataError, match="visual features have 3 frames"):
        TMORCorpus.load([bad], visual=True, progress=False)
    np.save(first, np.zeros((5, 7, 3), np.float32))
    with pytest.raises(DataError, match=r"expected \(T, 22, 2\)"):
        TMORCorpus.load([bad], visual=True, progress=False)
    shutil.rmtree(bad / "visual")
    with pytest.raises(KinemicError, match="no source has visual features"):
        TMORCorpus.load([bad], visual=True, progress=False)
    shutil.rmtree(bad / "texts")
    with pytest.raises(DataError, match="no usable caption"):
        TMORCorpus.load([bad], progress=False)
    with pytest.raises(KinemicError, match="batch_size must be >= 2"):
        pretrain_tmor([bad], tmp_path / "run", train_steps=1, **{**OPTS, "batch_size": 1})
