"""The cosine noise schedule and its closed-form steps (math on tensors; no model inside).

Nichol & Dhariwal 2021: ᾱ(s) = cos²((s + 0.008) / 1.008 · π/2) for s = t/T, β_t =
min(1 − ᾱ((t+1)/T) / ᾱ(t/T), 0.999), ᾱ_t = Π(1 − β). Timesteps are 0-based: t = 0 is the
least noisy step, t = T−1 the noisiest. The model predicts x0; the reverse step is the Gaussian
posterior q(x_{t−1} | x_t, x0) with MDM's "fixed small" variance (the posterior variance).
Tables are float64 on the CPU and are cast to the sample's device and dtype when used.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["NoiseSchedule"]


def _cosine_alpha_bar(s: float) -> float:
    return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2


class NoiseSchedule:
    """Cosine schedule with ``num_steps`` diffusion steps (MDM's fast prior: 50)."""

    def __init__(self, num_steps: int = 50) -> None:
        if num_steps < 1:
            raise ValueError(f"NoiseSchedule: num_steps must be >= 1, found {num_steps}")
        self.num_steps = num_steps
        T = num_steps
        betas = [
            min(1 - _cosine_alpha_bar((i + 1) / T) / _cosine_alpha_bar(i / T), 0.999)
            for i in range(T)
        ]
        self.betas = torch.tensor(betas, dtype=torch.float64)  # (T,)
        alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(alphas, dim=0)  # ᾱ_t (T,)
        self.alphas_cumprod_prev = torch.cat(
            [torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]]
        )
        acp, prev = self.alphas_cumprod, self.alphas_cumprod_prev
        self.posterior_variance = self.betas * (1 - prev) / (1 - acp)  # (T,), 0 at t = 0
        # log of the variance with the t = 0 entry replaced by t = 1's (the usual clipping)
        pv = self.posterior_variance
        clipped = (
            torch.cat([pv[1:2], pv[1:]]) if T > 1 else torch.full_like(pv, float(self.betas[0]))
        )
        self.posterior_log_variance = torch.log(clipped)
        self.posterior_coef_x0 = self.betas * prev.sqrt() / (1 - acp)
        self.posterior_coef_xt = (1 - prev) * alphas.sqrt() / (1 - acp)

    def __repr__(self) -> str:
        return f"NoiseSchedule(num_steps={self.num_steps})"

    @staticmethod
    def _at(table: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """table[t] broadcast against ``like`` (B, ...): shape (B, 1, ..., 1)."""
        values = table.to(t.device)[t.long()].to(like.dtype)
        return values.view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Diffuse x0 (B, T, F) to step t (B,): √ᾱ_t·x0 + √(1−ᾱ_t)·noise -> (B, T, F)."""
        acp = self._at(self.alphas_cumprod, t, x0)
        return acp.sqrt() * x0 + (1 - acp).sqrt() * noise

    def posterior(self, x0: Tensor, xt: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q(x_{t−1} | x_t, x0): (mean (B, T, F), variance (B,1,1), log_variance (B,1,1))."""
        mean = (
            self._at(self.posterior_coef_x0, t, xt) * x0
            + self._at(self.posterior_coef_xt, t, xt) * xt
        )
        return (
            mean,
            self._at(self.posterior_variance, t, xt),
            self._at(self.posterior_log_variance, t, xt),
        )

    def ddpm_step(self, x0: Tensor, xt: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Ancestral step x_t -> x_{t−1}: posterior mean + σ_t·noise, no noise where t = 0."""
        mean, _, log_var = self.posterior(x0, xt, t)
        nonzero = (t != 0).to(xt.dtype).view(-1, *([1] * (xt.dim() - 1)))
        return mean + nonzero * (0.5 * log_var).exp() * noise

    def predict_noise(self, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """The ε implied by x0 at (x_t, t): (x_t − √ᾱ_t·x0) / √(1−ᾱ_t)."""
        acp = self._at(self.alphas_cumprod, t, xt)
        return (xt - acp.sqrt() * x0) / (1 - acp).sqrt()

    def ddim_step(self, x0: Tensor, xt: Tensor, t: Tensor, t_prev: Tensor | None) -> Tensor:
        """Deterministic DDIM (η = 0) from step t to the earlier step t_prev (B,), or to the
        clean sample when t_prev is None: √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε."""
        if t_prev is None:
            return x0
        eps = self.predict_noise(x0, xt, t)
        acp_prev = self._at(self.alphas_cumprod, t_prev, xt)
        return acp_prev.sqrt() * x0 + (1 - acp_prev).sqrt() * eps

    def ddim_timesteps(self, steps: int) -> list[int]:
        """``steps`` timesteps spread evenly over [0, T−1], noisiest first, always starting at
        T−1 (pure noise) and ending at 0."""
        if not 1 <= steps <= self.num_steps:
            raise ValueError(f"ddim steps must be in [1, {self.num_steps}], found {steps}")
        if steps == 1:
            return [self.num_steps - 1]
        grid = torch.linspace(0, self.num_steps - 1, steps, dtype=torch.float64).round().long()
        return sorted({int(s) for s in grid}, reverse=True)
