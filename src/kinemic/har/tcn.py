"""A small temporal-convolution action classifier over joint positions.

The quick "reasonable skeleton classifier" of kinemic: used to calibrate the procedural
world's difficulty (10-shot vs all training clips) and to judge whether samples of the prior
look like the action their caption names. It is not the paper's protocol classifier (that is
the ST-GCN of ``../shared/SPEC.md`` §6); it trains in seconds on a CPU.

Input: joints (T, 22, 3) as stored in ``new_joints``; each clip is resampled uniformly to
``frames`` frames, made root-relative in the horizontal plane (heights kept) and flattened to
(frames, 66) channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def clip_input(joints: np.ndarray, frames: int = 64) -> np.ndarray:
    """(T, 22, 3) joints → (frames, 66) float32: uniform temporal sampling, root-relative XZ."""
    joints = np.asarray(joints, dtype=np.float64).reshape(len(joints), 22, 3)
    idx = np.linspace(0, len(joints) - 1, frames)
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, len(joints) - 1)
    w = (idx - lo)[:, None, None]
    x = joints[lo] * (1 - w) + joints[hi] * w
    x[..., [0, 2]] -= x[:, :1, [0, 2]]
    return x.reshape(frames, 66).astype(np.float32)


class TCN(nn.Module):
    """Conv1d blocks over time (channels = 66 joint coordinates), global pooling, linear."""

    def __init__(self, num_classes: int, *, channels: int = 128, depth: int = 3, dropout=0.2):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 66
        for i in range(depth):
            layers += [
                nn.Conv1d(c_in, channels, kernel_size=5, padding=2, stride=1 if i == 0 else 2),
                nn.BatchNorm1d(channels),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
            c_in = channels
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, frames, 66) -> logits (B, C)
        h = self.body(x.transpose(1, 2))  # (B, C, T')
        return self.head(h.mean(-1))


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random rotation about +Y, scale and small temporal shift, per clip. x (B, F, 66)."""
    b = x.shape[0]
    theta = torch.rand(b, generator=gen) * 2 * torch.pi
    c, s = torch.cos(theta), torch.sin(theta)
    j = x.view(b, x.shape[1], 22, 3)
    xr = c[:, None, None] * j[..., 0] + s[:, None, None] * j[..., 2]
    zr = -s[:, None, None] * j[..., 0] + c[:, None, None] * j[..., 2]
    scale = 0.9 + 0.2 * torch.rand(b, 1, 1, generator=gen)
    out = torch.stack([xr, j[..., 1], zr], -1) * scale[..., None]
    shift = int(torch.randint(-3, 4, (1,), generator=gen))
    return torch.roll(out.view_as(x), shifts=shift, dims=1)


@dataclass
class TCNClassifier:
    """A trained TCN with its class list; ``predict`` takes joint clips."""

    model: TCN
    frames: int

    def logits(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        x = torch.from_numpy(np.stack([clip_input(c, self.frames) for c in clips]))
        self.model.eval()
        with torch.inference_mode():
            return self.model(x)

    def predict(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        return self.logits(clips).argmax(-1).numpy()


def train_tcn(
    clips: Sequence[np.ndarray],
    labels: Sequence[int],
    *,
    num_classes: int,
    epochs: int = 60,
    batch_size: int = 32,
    lr: float = 3e-3,
    frames: int = 64,
    seed: int = 0,
    min_steps: int = 300,
) -> TCNClassifier:
    """Train a TCN on joint clips with integer labels; returns the final-epoch model.

    Small training sets get at least ``min_steps`` optimiser steps, so a 10-shot set is
    trained as long (in steps) as it needs to fit, not a fixed number of epochs.
    """
    if len(clips) != len(labels) or len(clips) < 2:
        raise ValueError(f"need ≥ 2 clips with one label each, got {len(clips)}/{len(labels)}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.stack([clip_input(c, frames) for c in clips]))
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    model = TCN(num_classes)
    steps_per_epoch = max(1, -(-len(x) // batch_size))
    total = max(epochs * steps_per_epoch, min_steps)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    model.train()
    step = 0
    while step < total:
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            if step >= total:
                break
            batch = order[i : i + batch_size]
            if len(batch) < 2:  # BatchNorm needs two samples
                continue
            loss = nn.functional.cross_entropy(model(_augment(x[batch], gen)), y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
    return TCNClassifier(model=model, frames=frames)
