"""``--device``: one rule for every verb (kinemic.devices), and sampling noise drawn from a
seeded generator on the model's device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kinemic.diffusion
from kinemic.cli import main
from kinemic.devices import device_generator, resolve_device, worker_devices
from kinemic.errors import KinemicError

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    """PyTorch believes it sees two GPUs (nothing is allocated on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_the_default_is_the_cpu_without_cuda_and_cuda_asked_for_is_an_error(no_cuda):
    assert resolve_device(None) == resolve_device("auto") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(KinemicError, match=r"no CUDA device is available.*use cpu"):
            resolve_device(name)
    with pytest.raises(KinemicError, match="expected cpu, cuda or cuda:N"):
        resolve_device("gpu")
    with pytest.raises(KinemicError, match="takes no index"):
        resolve_device("cpu:1")


def test_cuda_names_and_the_launchers_local_rank(two_gpus, monkeypatch):
    assert resolve_device(None) == resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(KinemicError, match="no GPU 2; PyTorch sees 2"):
        resolve_device("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "3")  # the 4th process of a launch: its own GPU, 3 mod 2
    assert resolve_device(None) == resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)  # said explicitly: kept


def test_workers_take_the_visible_gpus_in_turn(two_gpus):
    assert worker_devices(None, 3) == [torch.device("cuda", i) for i in (0, 1, 0)]
    assert worker_devices("cuda:1", 2) == [torch.device("cuda", 1)] * 2
    assert worker_devices("cpu", 2) == [torch.device("cpu")] * 2


def test_a_bad_device_is_a_clear_cli_error(no_cuda, tmp_path, capsys):
    code = main(["sample", "--n", "1", "--device", "cuda", "--out", str(tmp_path / "s")])
    assert code == 2 and "device 'cuda': no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def _spy(monkeypatch) -> list[tuple[torch.device, torch.device]]:
    """Record (generator device, denoiser device) of every call of the sampler."""
    seen = []
    real = kinemic.diffusion.sample

    def spy(denoiser, schedule, shape, *, generator, **kw):
        seen.append((generator.device, next(denoiser.parameters()).device))
        return real(denoiser, schedule, shape, generator=generator, **kw)

    monkeypatch.setattr(kinemic.diffusion, "sample", spy)
    return seen


def test_sampling_on_the_cpu_is_reproducible_with_the_generator_on_the_models_device(
    monkeypatch,
):
    seen = _spy(monkeypatch)
    kw = dict(n=2, length=10, ddim=2, seed=5, device="cpu")
    a = kinemic.sample("shipped", **kw)
    b = kinemic.sample("shipped", **kw)
    c = kinemic.sample("shipped", **{**kw, "seed": 6})
    np.testing.assert_array_equal(a.features, b.features)
    assert not np.array_equal(a.features, c.features)
    assert seen and all(g == m == torch.device("cpu") for g, m in seen)
    # batch 0 is seeded with the seed itself: the same as one CPU generator of that seed
    prior = kinemic.load_prior("shipped")
    x = kinemic.diffusion.sample(
        prior.denoiser,
        prior.schedule,
        (2, 10, 263),
        generator=torch.Generator().manual_seed(5),
        ddim_steps=2,
    )
    np.testing.assert_array_equal(a.features, prior.normalizer.inverse(x.numpy()))


@CUDA
def test_sampling_on_cuda_draws_its_noise_there(monkeypatch):
    seen = _spy(monkeypatch)
    kw = dict(n=2, length=10, ddim=2, seed=5, device="cuda")
    a = kinemic.sample("shipped", **kw)
    b = kinemic.sample("shipped", **kw)
    np.testing.assert_array_equal(a.features, b.features)
    assert seen and all(g.type == m.type == "cuda" for g, m in seen)
    assert device_generator(0, "cuda").device.type == "cuda"
