"""Synthetic motion for tests that need a plausible moving body without ../shared."""

import numpy as np
import torch

from kinemic.diffusion import Denoiser, DenoiserConfig
from kinemic.features import humanml3d_offsets
from kinemic.skeleton import SMPL22


def walking_clip(T: int, seed: int) -> np.ndarray:
    """A rest-pose body that walks along a curve, turns and bobs (joints (T, 22, 3))."""
    rng = np.random.default_rng(seed)
    offsets = humanml3d_offsets() * rng.uniform(0.9, 1.1)
    rest = np.zeros((22, 3))
    for j in range(1, 22):
        rest[j] = rest[SMPL22.parents[j]] + offsets[j]
    rest[:, 1] += 1.0
    t = np.arange(T) / 20.0
    yaw = 0.8 * np.sin(0.5 * t)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.stack([np.stack([c, 0 * c, s], -1), [[0, 1, 0]] * T, np.stack([-s, 0 * c, c], -1)], 1)
    body = np.einsum("tij,kj->tki", rot, rest)
    body[..., 1] += 0.03 * np.sin(2 * np.pi * 2 * t)[:, None]
    body[..., 0] += np.cumsum(np.sin(yaw) * 0.06)[:, None]
    body[..., 2] += np.cumsum(np.cos(yaw) * 0.06)[:, None]
    return body + rng.normal(scale=0.005, size=body.shape)


#: Feature, text and action sizes of the small test denoiser.
SMALL_F, SMALL_E, SMALL_A = 12, 16, 5


def small_denoiser(**overrides) -> Denoiser:
    """A 2-layer denoiser (F=12, E=16, 5 actions) in eval mode, seeded: fast CPU tests."""
    cfg = dict(
        feature_dim=SMALL_F,
        latent_dim=32,
        num_layers=2,
        num_heads=4,
        ff_dim=64,
        text_dim=SMALL_E,
        num_actions=SMALL_A,
    )
    torch.manual_seed(0)
    return Denoiser(DenoiserConfig(**{**cfg, **overrides})).eval()
