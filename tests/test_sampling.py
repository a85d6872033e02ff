"""Cosine schedule math and the DDPM / DDIM samplers with classifier-free guidance."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kinemic.diffusion import (
    NoiseSchedule,
    guided_x0,
    lengths_to_mask,
    sample,
)
from tests.synthetic import SMALL_A, SMALL_E, SMALL_F, small_denoiser

F, E, A = SMALL_F, SMALL_E, SMALL_A
small = small_denoiser


class Oracle(nn.Module):
    """Always predicts the same x0; counts its calls and their batch sizes."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.x0 = nn.Parameter(x0)
        self.batches: list[int] = []

    def forward(self, x, t, *, text=None, action=None, mask=None, uncond=None):
        self.batches.append(x.shape[0])
        return self.x0[: x.shape[0]].expand_as(x)


def test_cosine_schedule_is_monotone_and_matches_the_formula():
    s = NoiseSchedule(50)
    acp = s.alphas_cumprod
    assert acp.shape == (50,) and (acp[1:] < acp[:-1]).all() and 0 < acp[-1] < 1e-5
    assert ((s.betas > 0) & (s.betas <= 0.999)).all() and s.betas[-1] == pytest.approx(0.999)

    def f(u):
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    for t in (0, 10, 30, 48):
        assert float(acp[t]) == pytest.approx(f((t + 1) / 50) / f(0), rel=1e-9)
    assert (s.posterior_variance[1:] > 0).all() and s.posterior_variance[0] == 0
    assert (s.posterior_variance[1:] <= s.betas[1:]).all()  # "fixed small" ≤ "fixed large"
    with pytest.raises(ValueError):
        NoiseSchedule(0)


def test_q_sample_statistics():
    s = NoiseSchedule(50)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((4, 1000, 8), 2.0)
    t = torch.tensor([0, 15, 35, 49])
    xt = s.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    acp = s.alphas_cumprod[t].float()
    torch.testing.assert_close(xt.mean(dim=(1, 2)), 2.0 * acp.sqrt(), atol=0.03, rtol=0)
    torch.testing.assert_close(xt.std(dim=(1, 2)), (1 - acp).sqrt(), atol=0.03, rtol=0.03)


def test_steps_with_an_exact_x0_recover_the_forward_process():
    s = NoiseSchedule(20)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    t, t_prev = torch.tensor([19, 10, 3]), torch.tensor([12, 4, 0])
    xt = s.q_sample(x0, t, eps)
    torch.testing.assert_close(s.predict_noise(x0, xt, t), eps, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        s.ddim_step(x0, xt, t, t_prev), s.q_sample(x0, t_prev, eps), atol=1e-5, rtol=1e-5
    )
    # posterior mean of q(x_{t-1} | x_t, x0) is linear in x0 and x_t with the Bayes coefficients
    mean, var, _ = s.posterior(x0, xt, torch.tensor([5, 5, 5]))
    b, a, ap = s.betas[5], s.alphas_cumprod[5], s.alphas_cumprod[4]
    expected = (ap.sqrt() * b / (1 - a)) * x0 + ((1 - b).sqrt() * (1 - ap) / (1 - a)) * xt
    torch.testing.assert_close(mean, expected.float(), atol=1e-6, rtol=1e-5)
    assert float(var[0]) == pytest.approx(float(b * (1 - ap) / (1 - a)))
    assert s.ddim_timesteps(5) == [19, 14, 10, 5, 0] and s.ddim_timesteps(1) == [19]


@pytest.mark.parametrize("ddim_steps", [None, 3])
def test_samplers_end_on_the_predicted_x0(ddim_steps):
    target = torch.randn(2, 6, F)
    oracle = Oracle(target)
    out = sample(
        oracle,
        NoiseSchedule(5),
        (2, 6, F),
        generator=torch.Generator().manual_seed(0),
        ddim_steps=ddim_steps,
    )
    torch.testing.assert_close(out, target)
    assert len(oracle.batches) == (5 if ddim_steps is None else 3)


@pytest.mark.parametrize("ddim_steps", [None, 3])
def test_samplers_give_finite_samples_and_are_deterministic(ddim_steps):
    model = small()
    text, action = torch.randn(2, E), torch.tensor([1, 4])
    kw = dict(text=text, action=action, ddim_steps=ddim_steps)

    def run(seed):
        return sample(
            model, NoiseSchedule(5), (2, 7, F), generator=torch.Generator().manual_seed(seed), **kw
        )

    a, b, c = run(0), run(0), run(1)
    assert a.shape == (2, 7, F) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert not a.is_inference()


def test_guidance_runs_one_batched_forward_equal_to_two_forwards():
    model = small()
    g = torch.Generator().manual_seed(2)
    xt, t = torch.randn(3, 8, F, generator=g), torch.tensor([4, 2, 0])
    text, action = torch.randn(3, E, generator=g), torch.tensor([0, 2, 4])
    mask = lengths_to_mask([8, 5, 3])
    with torch.no_grad():
        got = guided_x0(model, xt, t, text=text, action=action, mask=mask, guidance=2.5)
        cond = model(xt, t, text=text, action=action, mask=mask)
        uncond = model(xt, t, mask=mask)
    expected = uncond + 2.5 * (cond - uncond)
    valid = mask[..., None].expand_as(got)
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-5, rtol=1e-5)

    oracle = Oracle(torch.zeros(6, 8, F))
    guided_x0(oracle, xt, t, text=text, guidance=2.5)
    guided_x0(oracle, xt, t, text=text, guidance=1.0)
    guided_x0(oracle, xt, t, guidance=2.5)
    assert oracle.batches == [6, 3, 3]  # one forward of 2B; s = 1 or no condition: B only


def test_variable_lengths_share_one_batch():
    mask = lengths_to_mask([5, 9, 2])
    assert mask.shape == (3, 9) and mask.sum(1).tolist() == [5, 9, 2]
    assert lengths_to_mask([3], 6).tolist() == [[True] * 3 + [False] * 3]
    with pytest.raises(ValueError):
        lengths_to_mask([0, 4])
    model = small().train()
    out = sample(
        model,
        NoiseSchedule(3),
        (3, 9, F),
        text=torch.randn(3, E),
        mask=mask,
        generator=torch.Generator().manual_seed(0),
    )
    assert (
        torch.isfinite(out).all()
        and (out[~mask] == 0).all()
        and (out[mask].abs().sum(-1) > 0).all()
    )
    assert model.training  # the sampler restores the mode it found


def test_bf16_path_runs_on_cpu():
    model = small()
    kw = dict(text=torch.randn(2, E), ddim_steps=2, generator=torch.Generator().manual_seed(0))
    out = sample(model, NoiseSchedule(4), (2, 6, F), bf16=True, **kw)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    kw["generator"] = torch.Generator().manual_seed(0)
    ref = sample(model, NoiseSchedule(4), (2, 6, F), **kw)
    assert (out - ref).abs().max() < 0.25 * ref.abs().max()  # bf16 rounding, same trajectory
