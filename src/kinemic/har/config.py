"""Settings of the HAR classifier's training and of the evaluation protocol.

Plain dataclasses that import no torch, so that ``kinemic evaluate --help`` reads its defaults
here: :class:`HARTrainConfig` configures one ST-GCN training run (:mod:`kinemic.har.train`
explains the recipe and the rule that sets the epochs), :class:`ProtocolConfig` one protocol
evaluation (:mod:`kinemic.har.protocol`).
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field, replace
from typing import Literal

from kinemic.errors import KinemicError
from kinemic.har.data import FRAMES, Centre

__all__ = ["HARTrainConfig", "ProtocolConfig", "epoch_batches"]


@dataclass
class HARTrainConfig:
    """Optimisation settings of one ST-GCN training run."""

    epochs: int | None = None  # None: from the training set's size (kinemic.har.train)
    steps: int = 600  # optimiser steps aimed at when epochs is None
    min_epochs: int = 10
    max_epochs: int = 300
    batch_size: int = 16
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    evaluations: int = 10  # validation passes at most (evenly spaced; the last epoch always)
    # The fitting rule: stop after the first epoch whose mean training loss is at most
    # fit_loss; the epochs above are then the most a run trains. None: every epoch.
    fit_loss: float | None = None
    eval_batch_size: int = 64
    seed: int = 0
    mixed_precision: Literal["no", "bf16"] = "no"
    cpu: bool = False  # force the CPU even where a GPU is visible
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        for name in ("steps", "min_epochs", "batch_size", "evaluations", "eval_batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, found {getattr(self, name)}")
        if self.fit_loss is not None and not self.fit_loss > 0:
            problems.append(f"fit_loss must be > 0 or None, found {self.fit_loss}")
        if self.epochs is not None and self.epochs < 1:
            problems.append(f"epochs must be >= 1 or None, found {self.epochs}")
        if self.max_epochs < self.min_epochs:
            problems.append(f"max_epochs {self.max_epochs} < min_epochs {self.min_epochs}")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            problems.append("lr must be > 0, weight_decay >= 0 and momentum in [0, 1)")
        if self.mixed_precision not in ("no", "bf16"):
            problems.append(f"mixed_precision must be 'no' or 'bf16', not {self.mixed_precision!r}")
        if problems:
            raise KinemicError("HAR training settings: " + "; ".join(problems))

    def epochs_for(self, num_clips: int) -> int:
        """Epochs for a training set of ``num_clips`` clips (:mod:`kinemic.har.train`)."""
        if self.epochs is not None:
            return self.epochs
        per_epoch = len(epoch_batches(num_clips, self.batch_size))
        return min(self.max_epochs, max(self.min_epochs, math.ceil(self.steps / per_epoch)))

    def lr_at(self, step: int, total: int) -> float:
        """Cosine decay from ``lr`` at step 0 towards 0 at step ``total``."""
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * step / max(total, 1)))


def epoch_batches(num_clips: int, batch_size: int, min_size: int = 2) -> list[slice]:
    """Consecutive batches of one epoch; a last batch under ``min_size`` clips (BatchNorm needs
    two) joins the one before."""
    cuts = [*range(0, num_clips, batch_size), num_clips]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] < min_size:
        del cuts[-2]
    return [slice(a, b) for a, b in itertools.pairwise(cuts)]


@dataclass
class ProtocolConfig:
    """Settings of one protocol evaluation (the model is ST-GCN on SMPL-22)."""

    modes: tuple[str, ...] = ("real", "gt")
    seeds: int = 5
    jobs: int = 1
    threads: int | None = None  # torch threads per run; None: cores // jobs
    # Where runs train (kinemic.devices): None = CUDA when available, else the CPU; "cuda" =
    # the visible GPUs in turn, one per worker; "cuda:N" = that GPU; "cpu" = train.cpu.
    device: str | None = None
    frames: int = FRAMES
    centre: Centre = "first-frame"
    width: float = 1.0  # ST-GCN channel multiplier (1 = 64→128→256)
    dropout: float = 0.0
    train: HARTrainConfig = field(default_factory=HARTrainConfig)

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            self.train = HARTrainConfig(**self.train)
        self.modes = tuple(self.modes)
        if self.device is not None and self.device.strip().lower() == "cpu" and not self.train.cpu:
            self.train = replace(self.train, cpu=True)  # --device cpu is --cpu
        if self.seeds < 1 or self.jobs < 1 or (self.threads is not None and self.threads < 1):
            raise KinemicError(
                f"seeds, jobs and threads must be >= 1, found {self.seeds}, {self.jobs}, "
                f"{self.threads}"
            )

    def run_threads(self) -> int:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return self.threads or max(1, (cores or 1) // self.jobs)
