"""The training loop: one loop for pretraining, fine-tuning and classifier training.

What varies lives in a :class:`TrainTask` (draw a batch, compute a loss, export a model
folder); what does not lives here: HF accelerate process setup (one CPU or GPU, or several
processes under ``torchrun``/``accelerate launch --multi_gpu``: NCCL on GPUs, gloo on CPUs, see
:mod:`kinemic.distributed`; bf16 autocast; TF32 and fused AdamW on CUDA; an opt-in
``torch.compile``), AdamW with a linear warm-up, gradient clipping, an optional EMA of the
weights, TensorBoard logging, a progress bar, periodic checkpoints and exact resume.

Several processes (data parallel, DDP): the task gives each process its slice of one global
batch; DDP averages the gradients; contrastive losses gather their embeddings over the
processes (:func:`kinemic.distributed.gather`), so that a run's result does not depend on the
number of processes at equal global batch, but for dropout and condition masks: process 0
draws them from the run's seed as a single process does, process r > 0 from
``process_seed(seed, r)``. Buffers are not broadcast from process 0 (each process updates its
own, identically: MIC's memory bank takes the gathered keys). Only process 0 writes the run
folder; every process reads the checkpoint on resume, which must have as many processes as the
run that wrote it (``trainer.json``'s ``world_size``). A non-finite loss on any process stops
every process at the same step with the same error. ``train`` may be called again in the same
processes: the group stays formed.

A run folder::

    RUN/latest                          the newest checkpoint: "checkpoints/step-00001000"
    RUN/checkpoints/step-00001000/      what TrainTask.export writes (a usable model folder) plus
        trainer.json                    step, settings, fingerprint, logged losses, measured steps/s
                                        and the manifest of state/ (written last)
        state/                          what resume reads, tensors and plain data only:
            model.safetensors           the raw weights (buffers included)
            ema.safetensors             the EMA of the weights (when EMA is on)
            optimizer.safetensors       the optimiser's tensors (AdamW moments, step counts)
            optimizer.json              the rest of its state: parameter groups, settings
            rng-<rank>.json             the python, numpy, torch (and CUDA) RNG states of
                                        each process (gathered to process 0, which writes)
    RUN/logs/                           TensorBoard events

Every checkpoint is written into a temp folder and renamed into place, then ``latest`` is
replaced atomically; the newest ``keep_checkpoints`` are kept.

Exact resume: batches must be a pure function of ``(seed, step, rank)`` (the task draws them
from ``step``), the learning rate is a pure function of the step, and ``state/`` restores
the weights, optimiser, EMA and the RNG states (dropout). On CPU processes (one or several),
training N steps and training N/2, stopping, and resuming for N/2 more give identical weights.

Nothing in a run folder is unpickled: a run folder may come from anyone, and unpickling runs
whatever code the file names. The state is safetensors and JSON, read without pickle; a
checkpoint written by older kinemic versions (accelerate's ``save_state``: ``*.pkl``,
``optimizer.bin``) is refused on resume, naming the file, never loaded.

A damaged or missing piece of the state is an error naming the file, not a fallback: the
manifest in ``trainer.json`` holds the size and SHA-256 of every file in ``state/``, and resume
checks them all (and then every tensor's shape) before it starts; the error names the earlier
checkpoints to resume from instead. Training on from a silently different state would not be
the run that was asked for.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from kinemic.distributed import any_process, process_seed, process_state, seed_process
from kinemic.errors import KinemicError
from kinemic.files import LATEST, TRAINER_FILE, make_folder, resolve_checkpoint, write_text
from kinemic.progress import log_style, progress_bar
from kinemic.train_state import STATE_DIR, check_state, load_state, manifest, save_state


@dataclass
class TrainConfig:
    """Optimisation settings shared by every training task."""

    steps: int
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    grad_clip: float | None = 1.0  # None: no clipping (the norm is still logged)
    ema: float | None = 0.999  # EMA decay of the weights; None: no EMA
    seed: int = 0
    mixed_precision: Literal["no", "bf16"] = "no"
    cpu: bool = False  # force the CPU even where a GPU is visible
    tf32: bool = True  # fp32 matrix products in TF32 on CUDA (Ampere and newer); no-op on CPU
    torch_compile: bool = False  # torch.compile the model (CUDA only; refused on the CPU)
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 50
    progress: bool = True
    progress_desc: str = "training"  # the progress bar's label
    progress_position: int | None = None  # its terminal row (several runs at once)

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        problems = []
        if self.steps < 1:
            problems.append(f"steps must be >= 1, found {self.steps}")
        if self.lr <= 0 or self.weight_decay < 0:
            problems.append(
                f"lr must be > 0 and weight_decay >= 0, found {self.lr}, {self.weight_decay}"
            )
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            problems.append(f"ema must be in (0, 1) or None, found {self.ema}")
        if self.mixed_precision not in ("no", "bf16"):
            problems.append(
                f"mixed_precision must be 'no' or 'bf16', found {self.mixed_precision!r}"
            )
        for name in ("checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, found {getattr(self, name)}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            problems.append(f"grad_clip must be > 0 or None, found {self.grad_clip}")
        if problems:
            raise KinemicError("training settings: " + "; ".join(problems))

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based step ``step``: linear warm-up, then constant."""
        if self.warmup_steps <= 0:
            return self.lr
        return self.lr * min(1.0, (step + 1) / self.warmup_steps)


class TrainTask(Protocol):
    """What one kind of training supplies to :func:`train`."""

    def batch(self, step: int, *, rank: int, world_size: int) -> dict[str, torch.Tensor]:
        """This process's share of step ``step``'s batch (CPU tensors). Must be a pure function
        of (the task's seed, step, rank, world_size) for exact resume."""
        ...

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss of ``model`` (prepared by accelerate) on a batch already on its device;
        or (loss, {name: scalar}) to log the named terms too (TensorBoard ``train/<name>``)."""
        ...

    def export(self, folder: Path, model: nn.Module, ema: nn.Module | None, *, step: int) -> None:
        """Write a usable model folder (config, weights, statistics) into ``folder``."""
        ...


@dataclass
class TrainResult:
    run: Path
    checkpoint: Path  # the last checkpoint folder
    step: int
    losses: list[tuple[int, float]] = field(
        default_factory=list
    )  # (step, mean loss since last log)
    steps_per_second: float = float("nan")  # this call's steps but the first; saving excluded
    # (step, {name: mean since last log}) of the named terms a task's loss returned, if any
    terms: list[tuple[int, dict[str, float]]] = field(default_factory=list)


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's weights as contiguous float32 CPU tensors, ready for safetensors."""
    return {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()
    }


def make_accelerator(
    *,
    cpu: bool,
    mixed_precision: str,
    project_dir: Path | None = None,
    broadcast_buffers: bool = True,
):
    """An ``accelerate.Accelerator``. Works in a plain process (single CPU or GPU) and under
    ``torchrun``/``accelerate launch`` (:func:`kinemic.distributed.process_state` forms the
    group: gloo on CPUs). In a single process, accelerate's process-wide state is reset first
    (accelerate otherwise refuses to switch precision). ``broadcast_buffers``: DDP copies
    process 0's buffers to the others before every forward (BatchNorm statistics)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DistributedDataParallelKwargs

    state = process_state(cpu=cpu)
    AcceleratorState._reset_state()  # the settings; the process group stays
    GradientState._reset_state()
    kwargs: dict[str, Any] = {}
    if project_dir is not None:
        kwargs = dict(log_with="tensorboard", project_dir=str(project_dir))
    ddp = DistributedDataParallelKwargs(broadcast_buffers=broadcast_buffers)
    return Accelerator(
        cpu=state.device.type == "cpu",
        mixed_precision=mixed_precision,
        kwargs_handlers=[ddp],
        **kwargs,
    )


def _read_trainer(ckpt: Path) -> dict:
    path = ckpt / TRAINER_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        int(info["step"])
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise KinemicError(f"{path}: not a readable checkpoint record ({e})") from None
    return info


def finished_step(run: str | Path) -> int | None:
    """The step of a run folder's latest complete checkpoint (the one its ``latest`` file
    names); None when the run has none yet (no ``latest``, or a checkpoint without its
    ``trainer.json``)."""
    latest = Path(run) / LATEST
    if not latest.is_file():
        return None
    ckpt = latest.parent / latest.read_text(encoding="utf-8").strip()
    if not (ckpt / TRAINER_FILE).is_file():
        return None
    return int(_read_trainer(ckpt)["step"])


def _check_resumable(ckpt: Path, fingerprint: dict, *, ema: bool) -> dict:
    info = _read_trainer(ckpt)
    check_state(ckpt, info, ema=ema)
    saved = info.get("fingerprint", {})
    now = json.loads(json.dumps(fingerprint))  # tuples -> lists, as stored
    diff = {k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k)}
    if diff:

        def shown(d: dict, k: str) -> str:
            return repr(d[k]) if k in d else "absent"

        lines = "\n".join(
            f"  {k}: checkpoint {shown(saved, k)}, now {shown(now, k)}" for k in sorted(diff)
        )
        raise KinemicError(
            f"{ckpt}: was trained with different settings, cannot resume exactly:\n{lines}\n"
            "use the same settings (only steps, checkpoint/log intervals and progress may change)"
        )
    return info


def _write_checkpoint(
    acc, out: Path, task: TrainTask, model, optimizer, ema, step: int, meta: dict, keep: int
) -> Path:
    """Save a checkpoint of ``step`` atomically (all processes call this)."""
    ckpts = out / "checkpoints"
    name = f"step-{step:08d}"
    tmp, final = ckpts / f".tmp-{name}", ckpts / name
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    acc.wait_for_everyone()
    save_state(acc, tmp / STATE_DIR, model, optimizer, ema)
    acc.wait_for_everyone()
    if acc.is_main_process:
        task.export(tmp, acc.unwrap_model(model), None if ema is None else ema.module, step=step)
        meta = {**meta, "step": step, "state": manifest(tmp / STATE_DIR)}
        write_text(tmp / TRAINER_FILE, json.dumps(meta, indent=2) + "\n")
        old = ckpts / f".old-{name}"
        if final.exists():  # re-training over a step (resumed from an earlier checkpoint)
            os.replace(final, old)
        os.replace(tmp, final)
        write_text(out / LATEST, f"checkpoints/{name}\n")
        shutil.rmtree(old, ignore_errors=True)
        done = sorted(p for p in ckpts.glob("step-*") if p.is_dir())
        for p in done[:-keep]:
            shutil.rmtree(p, ignore_errors=True)
    acc.wait_for_everyone()
    return final


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """fp32 matrix products in TF32 (``float32_matmul_precision`` "high") while training."""
    before = torch.get_float32_matmul_precision()
    if enabled:
        torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _speed(steps: int, seconds: float, seconds_after_first: float) -> float:
    """Steps per second, leaving out the first step when there are others."""
    if steps > 1:
        return (steps - 1) / max(seconds_after_first, 1e-9)
    return steps / max(seconds, 1e-9)


def train(
    model: nn.Module,
    task: TrainTask,
    out: str | Path,
    config: TrainConfig,
    *,
    fingerprint: dict[str, Any],
    resume: str | Path | None = None,
    parameters: list[nn.Parameter] | None = None,
    hparams: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` on ``task`` for ``config.steps`` steps, writing the run folder ``out``.

    ``fingerprint`` holds every setting that must be equal to resume exactly (data, model,
    optimiser, seed); it is stored in each checkpoint and compared on ``resume`` (a run or
    checkpoint folder). ``parameters`` are the trainable tensors (default: all parameters
    that require grad). ``hparams`` (scalars) go to TensorBoard. Returns where the last
    checkpoint is, the logged losses and the measured speed.
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    out = Path(out)
    if resume is None and (out / LATEST).exists():
        raise KinemicError(
            f"{out} already holds a training run; pass resume={str(out)!r} (--resume) to continue "
            "it, or choose another output folder"
        )
    ckpt = info = None
    if resume is not None:
        ckpt = resolve_checkpoint(resume)
        info = _check_resumable(ckpt, fingerprint, ema=config.ema is not None)
    acc = make_accelerator(
        cpu=config.cpu,
        mixed_precision=config.mixed_precision,
        project_dir=out,
        broadcast_buffers=False,  # each process keeps its buffers (MIC's bank): module doc
    )
    cuda = acc.device.type == "cuda"
    if config.torch_compile and not cuda:
        raise KinemicError(
            f"torch_compile (--compile) is for CUDA devices; this run is on {acc.device.type}: "
            "train without it"
        )
    model.to(acc.device)  # before the optimiser, which is fused on CUDA
    params = (
        [p for p in model.parameters() if p.requires_grad] if parameters is None else parameters
    )
    optimizer = torch.optim.AdamW(
        params,
        lr=config.lr,
        betas=config.betas,
        weight_decay=config.weight_decay,
        **({"fused": True} if cuda else {}),
    )
    ema = None
    if config.ema is not None:  # a copy of the raw module, averaged after every step
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
        ema.to(acc.device)
    with warnings.catch_warnings():
        # torch 2.13 renamed DDP's broadcast_buffers (forward_sync_buffers), a name
        # accelerate's DistributedDataParallelKwargs cannot pass yet; the old one still works
        warnings.filterwarnings("ignore", "`broadcast_buffers` is deprecated", FutureWarning)
        model, optimizer = acc.prepare(model, optimizer)
    # the compiled forward; the module itself stays as prepared (unwrapping a compiled module
    # would replace what it compiled)
    forward = torch.compile(model) if config.torch_compile else model
    start, history, terms_history = 0, [], []
    if ckpt is not None and info is not None:
        load_state(acc, ckpt, info, model, optimizer, ema)
        start, history = int(info["step"]), [tuple(x) for x in info.get("losses", [])]
        terms_history = [tuple(x) for x in info.get("terms", [])]
    elif acc.process_index > 0:  # dropout and condition masks of its own (module doc)
        seed_process(process_seed(config.seed, acc.process_index))
    with _tf32(cuda and config.tf32):  # restored when training ends
        meta = {
            "fingerprint": json.loads(json.dumps(fingerprint)),
            "train": asdict(config),
            "world_size": acc.num_processes,
            "mixed_precision": acc.mixed_precision,
            "device": str(acc.device),
        }
        if acc.is_main_process:
            make_folder(out)  # an --out that is a file is an error naming it
        scalars = {
            k: v for k, v in (hparams or {}).items() if isinstance(v, (bool, int, float, str))
        }
        acc.init_trackers("logs", config=scalars)
        result = TrainResult(run=out, checkpoint=ckpt if ckpt is not None else out, step=start)
        result.losses = [(int(a), float(b)) for a, b in history if a <= start]
        result.terms = [(int(a), dict(b)) for a, b in terms_history if a <= start]
        shown = config.progress and acc.is_main_process
        bar = progress_bar(
            total=config.steps,
            initial=start,
            desc=config.progress_desc,
            position=config.progress_position,
            enabled=shown,
        )
        model.train()
        loss_sum = torch.zeros((), device=acc.device)
        term_sums: dict[str, torch.Tensor] = {}  # named loss terms, summed since the last log
        term_counts: dict[str, int] = {}
        window = 0  # steps since the last log
        saving = 0.0  # seconds spent writing checkpoints (left out of the speed)
        loop_start = window_start = first_done = time.perf_counter()
        first_saving = 0.0
        window_saving = saving
        for step in range(start, config.steps):
            for group in optimizer.param_groups:
                group["lr"] = config.lr_at(step)
            batch = task.batch(step, rank=acc.process_index, world_size=acc.num_processes)
            batch = {k: v.to(acc.device, non_blocking=True) for k, v in batch.items()}
            loss = task.loss(forward, batch)
            if isinstance(loss, tuple):  # (loss, {name: term}): the terms are logged too
                loss, terms = loss
                for name, value in terms.items():
                    value = torch.as_tensor(value, device=acc.device).detach().float()
                    term_sums[name] = term_sums.get(name, 0) + value
                    term_counts[name] = term_counts.get(name, 0) + 1
            bad = any_process(not bool(torch.isfinite(loss)), acc.device)
            if bad:  # every process stops at this step, before DDP's gradient exchange
                where = f" on process {', '.join(map(str, bad))}" if acc.num_processes > 1 else ""
                raise KinemicError(
                    f"the loss became {loss.item() if acc.process_index in bad else 'non-finite'}"
                    f"{where} at step {step + 1}; lower the learning rate (--lr), keep gradient "
                    "clipping on, or check the data for extreme values"
                )
            optimizer.zero_grad(set_to_none=True)
            acc.backward(loss)
            clip = config.grad_clip if config.grad_clip is not None else math.inf
            grad_norm = acc.clip_grad_norm_(params, clip)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(acc.unwrap_model(model))
            loss_sum += loss.detach()
            window += 1
            done = step + 1
            bar.update(1)
            if step == start:  # speeds leave out the first step (allocations, lazy set-up)
                first_done, first_saving = time.perf_counter(), saving
            if done % config.log_every == 0 or done == config.steps:
                mean_loss = acc.reduce(loss_sum / window, reduction="mean").item()
                now = time.perf_counter()
                elapsed = now - window_start - (saving - window_saving)
                logs = {
                    "train/loss": mean_loss,
                    "train/lr": config.lr_at(step),
                    "train/grad_norm": float(grad_norm),
                    "train/steps_per_second": window / max(elapsed, 1e-9),
                }
                means = {
                    name: acc.reduce(total / term_counts[name], reduction="mean").item()
                    for name, total in term_sums.items()
                }
                logs.update({f"train/{name}": value for name, value in means.items()})
                acc.log(logs, step=done)
                result.losses.append((done, mean_loss))
                if means:
                    result.terms.append((done, means))
                term_sums.clear()
                term_counts.clear()
                bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
                loss_sum.zero_()
                window, window_start, window_saving = 0, now, saving
            if done % config.checkpoint_every == 0 or done == config.steps:
                t0 = time.perf_counter()
                meta["losses"] = result.losses
                if result.terms:
                    meta["terms"] = result.terms
                after_first = t0 - first_done - (saving - first_saving)
                meta["steps_per_second"] = _speed(
                    done - start, t0 - loop_start - saving, after_first
                )
                result.checkpoint = _write_checkpoint(
                    acc, out, task, model, optimizer, ema, done, meta, config.keep_checkpoints
                )
                saving += time.perf_counter() - t0
                if shown and log_style():  # a log gets a line per checkpoint
                    print(
                        f"{config.progress_desc}: step {done}/{config.steps}, checkpoint "
                        f"{result.checkpoint}",
                        file=sys.stderr,
                        flush=True,
                    )
        bar.close()
        for tracker in acc.trackers:  # not acc.end_training(): it destroys the process group
            tracker.finish()
        result.step = max(start, config.steps)
        if config.steps > start:
            end = time.perf_counter()
            after_first = end - first_done - (saving - first_saving)
            result.steps_per_second = _speed(
                config.steps - start, end - loop_start - saving, after_first
            )
        return result
