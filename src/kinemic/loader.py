"""Training batches made ahead, in worker processes: :class:`StepLoader`.

A training task draws each step's batch as a pure function of the step (``draw(step)``, from
``(seed, step, rank)``: see :mod:`kinemic.training`). A :class:`StepLoader` calls that
function for the coming steps in ``workers`` processes of a ``torch.utils.data.DataLoader``
(over an index dataset: item i is the batch of step ``start + i``), ``prefetch`` batches per
worker ahead of the loop, in pinned memory for a fast copy to a GPU. Asked for another step
than the next one (a resumed or restarted loop), it starts over from that step. With no
workers it calls ``draw`` in the loop's own process.

The batches are the same with and without workers, so exact resume holds either way; the
workers only move the drawing off the loop's critical path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

#: The index dataset's length: steps are counted, never exhausted.
_ENDLESS = 2**62


class _Steps(Dataset):
    """Item i: ``draw(start + i)``."""

    def __init__(self, draw: Callable[[int], Any], start: int):
        self.draw = draw
        self.start = start

    def __len__(self) -> int:
        return _ENDLESS

    def __getitem__(self, i: int) -> Any:
        return self.draw(self.start + i)


class StepLoader:
    """``loader(step)`` is ``draw(step)``, made ahead by ``workers`` processes when they are
    asked for consecutive steps. ``pin_memory``: tensors come in page-locked memory (for a
    CUDA device). :meth:`close` stops the workers (also done when the loader is collected)."""

    def __init__(
        self,
        draw: Callable[[int], Any],
        *,
        workers: int = 0,
        prefetch: int = 4,
        pin_memory: bool = False,
    ):
        if workers < 0 or prefetch < 1:
            raise ValueError(f"workers must be >= 0 and prefetch >= 1, got {workers}, {prefetch}")
        self.draw = draw
        self.workers = workers
        self.prefetch = prefetch
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self._batches = None  # the DataLoader's iterator
        self._next = 0  # the step it gives next

    def __call__(self, step: int) -> Any:
        if self.workers == 0:
            batch = self.draw(step)
            return _pin(batch) if self.pin_memory else batch
        if self._batches is None or step != self._next:
            self.close()
            loader = DataLoader(
                _Steps(self.draw, step),
                batch_size=None,  # items are whole batches
                num_workers=self.workers,
                prefetch_factor=self.prefetch,
                pin_memory=self.pin_memory,
            )
            self._batches, self._next = iter(loader), step
        self._next += 1
        return next(self._batches)

    def close(self) -> None:
        """Stop the workers; the next call starts new ones."""
        self._batches = None  # the iterator shuts its workers down when collected

    def __del__(self) -> None:
        self.close()


def _pin(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    if isinstance(batch, dict):
        return {k: _pin(v) for k, v in batch.items()}
    return batch
