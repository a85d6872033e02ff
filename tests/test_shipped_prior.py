"""The prior that ships inside the package: complete, small, and it samples."""

import json

import numpy as np
import pytest

from kinemic.prior.folder import SHIPPED_PRIOR, load_prior


def test_shipped_prior_is_complete_and_small():
    files = {p.name for p in SHIPPED_PRIOR.iterdir()}
    assert {"config.json", "model.safetensors", "normalizer.npz"} <= files
    size = sum(p.stat().st_size for p in SHIPPED_PRIOR.rglob("*") if p.is_file())
    assert size <= 25 * 2**20, f"{size / 2**20:.1f} MB > 25 MB"
    config = json.loads((SHIPPED_PRIOR / "config.json").read_text())
    assert config["text_encoder"]["name"].startswith("minilm")
    prior = load_prior("shipped")
    assert prior.denoiser.config.text_dim == 384
    # trained with the tiny preset's text scale: unit-norm MiniLM embeddings times √384
    assert prior.denoiser.config.text_scale == pytest.approx(384**0.5)
    assert not prior.denoiser.training


@pytest.mark.slow  # loads MiniLM (~10 s on the 2-core machine)
def test_shipped_prior_samples_from_text(tmp_path):
    from kinemic.prior.sample import sample_motions

    out = sample_motions(
        "shipped",
        texts=["a person waves with the right hand", "someone squats down"],
        n=2,
        length="2s",
        ddim=4,
        out=tmp_path / "s",
        gif=False,
        progress=False,
    )
    joints = sorted((out / "joints").glob("*.npy"))
    assert len(joints) == 4
    for path in joints:
        j = np.load(path)
        assert j.shape == (40, 22, 3) and np.isfinite(j).all()
        # a standing body: the head is well above the feet
        assert (j[:, 15, 1] - j[:, [10, 11], 1].min(-1)).mean() > 1.0
