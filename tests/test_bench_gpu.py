"""bench/gpu.py: without CUDA it measures nothing and says so; its agreement checks run (on
the CPU against the CPU here, so that the script does not first fail on a GPU machine)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible: it would measure")
def test_without_cuda_nothing_is_measured_or_appended():
    results = BENCH / "results.md"
    before = hashlib.sha256(results.read_bytes()).hexdigest()
    done = subprocess.run(
        [sys.executable, str(BENCH / "gpu.py")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "no CUDA device: nothing measured" in done.stderr
    assert done.stdout == "" and hashlib.sha256(results.read_bytes()).hexdigest() == before


@pytest.mark.slow
def test_the_agreement_checks_run_and_a_cpu_copy_agrees_exactly(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import gpu
    from kinemic.diffusion import Denoiser, DenoiserConfig

    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig.preset("tiny"))
    cpu = torch.device("cpu")
    assert gpu.check_denoiser(model, cpu, frames=48) == 0.0
    sampler = gpu.check_sampler(model, cpu, frames=24, steps=12)
    assert set(sampler) == {
        "DDIM-10",
        "DDPM-12",
        "device noise, same seed twice",
        "device noise: spread / CPU-noise spread − 1",
    }
    assert all(v == 0.0 for v in sampler.values())
    step = gpu.check_kinemic_step(model, cpu, frames=48)
    assert len(step) == 3 and all(v == 0.0 for v in step.values())
    assert gpu.forward_gflop(DenoiserConfig.preset("mdm"), 196) == pytest.approx(7.35, abs=0.01)
