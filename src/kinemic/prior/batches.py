"""One process's share of a pretraining step's batch: :class:`PretrainBatches`.

Step ``step``'s global batch is drawn from ``(seed, step)`` (``kinemic.corpus.draw_batch``:
clips, captions, crops; then the timesteps); process ``rank`` of ``world_size`` makes only its
rows of it: their features, normalised, and their noise. Each row's noise comes from a
generator of its own, seeded from the step's draws and the row's place in the global batch, so
a row is the same whatever the number of processes and without drawing the other rows' noise.
Noise is zero where a row is padded (the denoiser and the loss mask those frames).

A :class:`PretrainBatches` is a picklable callable of the step, for ``kinemic.loader``'s
worker processes; it returns CPU tensors and the captions as indices (the task looks their
embeddings up in the training process).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from kinemic.constants import MAX_FRAMES
from kinemic.corpus import MotionCorpus, draw_batch, step_rng
from kinemic.errors import KinemicError


@dataclass
class PretrainBatches:
    """``batches(step)``: process ``rank``'s rows of step ``step``'s batch of ``batch_size``
    (global), as a dict: x0 (B, T, 263) normalised, mask (B, T), noise (B, T, 263), t (B,),
    caption (B,) index into ``corpus.captions`` or ``NO_CAPTION``; B = batch_size / world_size,
    T the longest crop of these rows."""

    corpus: MotionCorpus
    normalizer: Any  # kinemic.features.Normalizer
    diffusion_steps: int
    batch_size: int
    seed: int = 0
    max_frames: int = MAX_FRAMES
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.batch_size % self.world_size:
            raise KinemicError(
                f"batch size {self.batch_size} is not divisible by the {self.world_size} processes"
            )

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        rng = step_rng(self.seed, step)
        per = self.batch_size // self.world_size
        rows = slice(self.rank * per, (self.rank + 1) * per)
        b = draw_batch(
            self.corpus,
            rng,
            self.batch_size,
            max_frames=self.max_frames,
            normalizer=self.normalizer,
            rows=rows,
        )
        base = int(rng.integers(2**62))
        gen = torch.Generator().manual_seed(base)
        t = torch.randint(0, self.diffusion_steps, (self.batch_size,), generator=gen)
        noise = torch.zeros_like(b.features)
        for i, (row, length) in enumerate(
            zip(range(self.batch_size)[rows], b.lengths.tolist(), strict=True)
        ):
            row_gen = torch.Generator().manual_seed(base + 1 + row)
            # drawn in place: assigning a drawn tensor into the slice is ten times slower
            torch.randn((length, noise.shape[-1]), generator=row_gen, out=noise[i, :length])
        return {
            "x0": b.features,
            "mask": b.mask,
            "noise": noise,
            "t": t[rows],
            "caption": b.caption,
        }
