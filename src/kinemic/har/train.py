"""Training an ST-GCN classifier: SGD with Nesterov momentum, cosine schedule, accelerate.

The recipe of ``../shared/SPEC.md`` §6 (and of pyskl's ST-GCN configs): SGD, lr 0.1, Nesterov
momentum 0.9, weight decay 5e-4 on every parameter, a per-step cosine decay from lr to 0, batch
16, cross-entropy, no augmentation, no gradient clipping. The settings are
:class:`kinemic.har.config.HARTrainConfig` (importable from here too).

**How long** (``epochs=None``): a few-shot set gets as many *optimiser steps* as a large one, not
as many epochs, so ``epochs = clamp(ceil(steps / steps_per_epoch), min_epochs, max_epochs)``:
with the defaults (``steps=600``, batch 16, at least 10 and at most 300 epochs) 30 few-shot
clips train 300 epochs (2 steps each), 120 clips 75 epochs, 330 clips 29 epochs (21 steps
each), 1,320 clips 10 epochs (83 steps each). The defaults were set on the *training* loss of
the default world's 12-class split S0001 (width 0.25): at 300 steps the 120 few-shot clips were
not yet fitted (final training loss 0.5–0.8 over 3 seeds), at 600 they were (0.2, 96% training
top-1); 1,320 clips after 5 epochs were underfitted (loss 0.7) and still improving at 10 (0.44).
It is a rule of the training set's size only — nothing is chosen by looking at validation
clips.

**The fitting rule** (``fit_loss``): the epochs above are then the most a run trains, and the
cosine schedule is laid over them. The first epoch whose mean training loss is at most
``fit_loss`` finds the training set fitted (0.05: the classifier gives the true class a
probability of about 95%, geometric mean over the epoch's clips); the run then trains as many
epochs again (at most up to the planned ones) with the learning rate falling from its value
then to 0 on a half cosine, and ends. Fitting at a high learning rate leaves a noisy model;
the annealed half settles it. The rule reads the training loss only, never a validation clip:
a few-shot set that fits in 20 epochs ends at 40, and a 330-clip set is neither cut at a
fixed epoch count while still learning nor trained for long after it has fitted. The
validation pass runs on the last epoch (the run's final epoch).

These are GPU-scale defaults: on a 2-core CPU a full-width run takes hours (see
``bench/har.py``); quick CPU runs use a small ``width`` and fewer ``steps``.

**What is recorded**: the *final* epoch's validation top-1 (the protocol's figure) and, for
comparison with the literature that reports it, the *best* validation top-1 over the evaluated
epochs (optimistic: it picks the epoch on the validation clips). To bound the cost, validation
runs at no more than ``evaluations`` evenly spaced epochs, always including the last.

**Why not** :func:`kinemic.training.train`: that loop is built for long step-based runs
(AdamW, EMA, checkpoint folders, TensorBoard, exact resume); a protocol run is seconds to
minutes, trains dozens of classifiers, needs SGD with a cosine schedule and a validation pass
per evaluated epoch, and keeps nothing but the final weights. This is the same accelerate set-up
(:func:`kinemic.training.make_accelerator`: one CPU, several processes under ``accelerate
launch``, GPUs, bf16 autocast) in an epoch loop.

**Determinism**: the initial weights and dropout come from ``torch.manual_seed(seed)``, the
batch order from a ``torch.Generator`` seeded with ``seed``; on one CPU process the same seed,
data and thread count give identical results. With N processes every process draws the same
permutation and takes every N-th clip of each batch (the global batch stays ``batch_size``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from kinemic.errors import KinemicError
from kinemic.har.config import HARTrainConfig, epoch_batches
from kinemic.har.stgcn import STGCN, STGCNConfig
from kinemic.progress import progress_bar

__all__ = [
    "HARTrainConfig",
    "TrainedClassifier",
    "epoch_batches",
    "eval_epochs",
    "predict_logits",
    "train_classifier",
]


def eval_epochs(epochs: int, evaluations: int) -> set[int]:
    """1-based epochs after which validation runs: at most ``evaluations``, the last included."""
    if epochs <= evaluations:
        return set(range(1, epochs + 1))
    return {round(epochs * (k + 1) / evaluations) for k in range(evaluations)}


@dataclass
class TrainedClassifier:
    """The final-epoch model and what its training measured."""

    model: STGCN  # final weights, eval mode, CPU
    epochs: int
    steps: int
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    history: list[tuple[int, float]] = field(default_factory=list)  # (epoch, val top-1 %)
    val_pred: np.ndarray | None = None  # (N_val,) final-epoch predictions
    seconds: float = 0.0  # training wall time, validation passes excluded
    samples_per_second: float = float("nan")

    planned_epochs: int = 0  # the epochs the schedule was set for (epochs < this: fitted early)
    fitted_epoch: int | None = None  # the first epoch the fitting rule found fitted

    @property
    def fitted_early(self) -> bool:
        """Whether the fitting rule ended the run before its planned epochs."""
        return self.epochs < self.planned_epochs

    @property
    def final_loss(self) -> float:
        """The last epoch's mean training loss."""
        return self.losses[-1] if self.losses else float("nan")

    @property
    def final_top1(self) -> float:
        return self.history[-1][1] if self.history else float("nan")

    @property
    def best(self) -> tuple[int, float]:
        """(epoch, top-1 %) of the best evaluated epoch (the earliest of ties)."""
        if not self.history:
            return 0, float("nan")
        return max(self.history, key=lambda h: (h[1], -h[0]))


def _predict(acc, model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Predicted classes (N,) of every clip; each process does its share, all get all."""
    rank, world = acc.process_index, acc.num_processes
    idx = torch.arange(rank, len(x), world)
    pred = torch.zeros(len(x), dtype=torch.long, device=acc.device)
    model.eval()
    with torch.inference_mode():
        for a in range(0, len(idx), batch_size):
            rows = idx[a : a + batch_size]
            logits = model(x[rows].to(acc.device))
            pred[rows.to(acc.device)] = logits.argmax(-1) + 1  # 0 = not this process's clip
    if world > 1:
        pred = acc.reduce(pred, reduction="sum")
    model.train()
    return (pred - 1).cpu()


def train_classifier(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    model_config: STGCNConfig,
    config: HARTrainConfig,
    val_x: np.ndarray | torch.Tensor | None = None,
    val_y: np.ndarray | torch.Tensor | None = None,
    device: str | torch.device | None = None,
) -> TrainedClassifier:
    """Train an ST-GCN on prepared clips x (N, T, V, 3) with classes y (N,) in
    ``0..num_classes-1``; validate on (val_x, val_y) at the evaluated epochs. ``device``:
    ``kinemic.devices.resolve_device``'s (default: CUDA when available; ``config.cpu`` forces
    the CPU); under ``accelerate launch`` each process trains on its own GPU."""
    from kinemic.devices import resolve_device
    from kinemic.training import make_accelerator

    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    if len(x) < 2 or len(x) != len(y):
        raise KinemicError(f"need at least 2 training clips with one label each, got {len(x)}")
    if int(y.min()) < 0 or int(y.max()) >= model_config.num_classes:
        raise KinemicError(f"labels must be in 0..{model_config.num_classes - 1}")
    has_val = val_x is not None and val_y is not None
    if has_val:
        val_x = torch.as_tensor(val_x, dtype=torch.float32)
        val_y = torch.as_tensor(val_y, dtype=torch.long)
    on = resolve_device("cpu" if config.cpu else device)
    if on.type == "cuda":
        torch.cuda.set_device(on)  # accelerate puts a single process on the current GPU
    acc = make_accelerator(cpu=on.type == "cpu", mixed_precision=config.mixed_precision)
    rank, world = acc.process_index, acc.num_processes
    torch.manual_seed(config.seed)
    model = STGCN(model_config)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    model, optimizer = acc.prepare(model, optimizer)
    gen = torch.Generator().manual_seed(config.seed)
    epochs = config.epochs_for(len(x))
    batches = epoch_batches(len(x), config.batch_size, min_size=max(2, 2 * world))
    total = epochs * len(batches)
    evaluated = eval_epochs(epochs, config.evaluations)
    result = TrainedClassifier(model=model, epochs=epochs, steps=total, planned_epochs=epochs)
    bar = progress_bar(
        range(1, epochs + 1),
        desc="training ST-GCN",
        leave=False,
        enabled=config.progress and acc.is_main_process,
    )
    model.train()
    step, train_time = 0, 0.0
    end = epochs  # the run's last epoch (the fitting rule may bring it forward)
    anneal: tuple[int, int, float] | None = None  # (first step, steps, lr) once fitted
    for epoch in bar:
        t0 = time.perf_counter()
        order = torch.randperm(len(x), generator=gen)
        loss_sum = torch.zeros((), device=acc.device)
        for part in batches:
            rows = order[part][rank::world]
            if anneal is None:
                lr = config.lr_at(step, total)
            else:  # fitted: a half cosine from the lr it had down to 0 at the end
                first, steps, lr_fit = anneal
                lr = 0.5 * lr_fit * (1.0 + math.cos(math.pi * (step - first) / steps))
            for group in optimizer.param_groups:
                group["lr"] = lr
            logits = model(x[rows].to(acc.device))
            loss = nn.functional.cross_entropy(logits.float(), y[rows].to(acc.device))
            if not torch.isfinite(loss):
                raise KinemicError(
                    f"the ST-GCN loss became {loss.item()} at epoch {epoch}: lower the learning "
                    "rate or check the clips for extreme values"
                )
            optimizer.zero_grad(set_to_none=True)
            acc.backward(loss)
            optimizer.step()
            loss_sum += loss.detach()
            step += 1
        result.losses.append(float(acc.reduce(loss_sum, reduction="mean")) / len(batches))
        train_time += time.perf_counter() - t0
        if (
            config.fit_loss is not None
            and result.fitted_epoch is None
            and result.losses[-1] <= config.fit_loss
        ):  # the same on every process: the loss is reduced over them
            result.fitted_epoch = epoch
            end = min(epochs, 2 * epoch)
            anneal = (step, (end - epoch) * len(batches), config.lr_at(step, total))
        last = epoch == end
        if has_val and (epoch in evaluated or last):  # without DDP's wrapper: no collective
            pred = _predict(acc, acc.unwrap_model(model), val_x, config.eval_batch_size)
            top1 = float((pred == val_y).float().mean() * 100)
            result.history.append((epoch, top1))
            if last:
                result.val_pred = pred.numpy()
            bar.set_postfix(loss=f"{result.losses[-1]:.3f}", val=f"{top1:.1f}%", refresh=False)
        if last:
            result.epochs, result.steps = epoch, step
            break
    bar.close()
    acc.wait_for_everyone()
    result.model = acc.unwrap_model(model, keep_fp32_wrapper=False).cpu().eval()
    result.seconds = train_time
    result.samples_per_second = result.epochs * len(x) / max(train_time, 1e-9)
    return result


def predict_logits(
    model: STGCN, x: np.ndarray | torch.Tensor, *, batch_size: int = 64
) -> torch.Tensor:
    """Logits (N, C) of prepared clips on the model's device, in eval mode, without grad."""
    x = torch.as_tensor(x, dtype=torch.float32)
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        out = [
            model(x[a : a + batch_size].to(device)).float().cpu()
            for a in range(0, len(x), batch_size)
        ]
    return torch.cat(out) if out else torch.zeros(0, model.config.num_classes)
