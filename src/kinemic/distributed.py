"""Several processes of one training run: forming the group, a seed per process, and the
collectives the contrastive losses need.

A run is started as several processes by ``torchrun --nproc_per_node N -m kinemic ...`` or
``accelerate launch --multi_gpu --num_processes N -m kinemic ...`` (on CPUs too: accelerate
starts a single process without ``--multi_gpu`` unless the machine has several GPUs). Each
process then finds ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in its environment, and
:func:`process_state` forms the group through accelerate:

- NCCL where every process has a GPU of its own;
- gloo on CUDA where processes share a GPU (NCCL refuses two processes on one device);
- gloo on the CPU where PyTorch sees no GPU, or where the run is told to use the CPU
  (accelerate alone would leave each process training by itself there, all writing the same
  run folder).

A launched process that does not end up in a group of ``WORLD_SIZE`` is an error, never a
run that silently trains alone.

:func:`gather` concatenates a tensor over the processes, with gradient: a loss computed on the
gathered batch is the one loss a single process computes on the whole batch, and the backward
pass sums each process's gradient of its loss into the rows it contributed, so that after
DDP averages the gradients over processes every parameter gets the single-process gradient.
:func:`process_seed` derives the seed of each process from the run's seed.
"""

from __future__ import annotations

import atexit
import os
import random
import sys

import numpy as np
import torch
import torch.distributed as dist

from kinemic.errors import KinemicError

__all__ = [
    "any_process",
    "gather",
    "launched_world_size",
    "process_seed",
    "process_state",
    "seed_process",
    "world",
]


def launched_world_size() -> int:
    """How many processes the launcher started (``WORLD_SIZE``; 1 in a plain process)."""
    value = os.environ.get("WORLD_SIZE", "1").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 1


def _single_process_launch() -> bool:
    """``accelerate launch --num_processes N`` without ``--multi_gpu`` on a machine with fewer
    than two GPUs: accelerate then starts one process, with ``MASTER_ADDR`` set for the N it
    was asked for but no ``WORLD_SIZE``."""
    return (
        "ACCELERATE_MIXED_PRECISION" in os.environ
        and "MASTER_ADDR" in os.environ
        and "WORLD_SIZE" not in os.environ
    )


_warned_single = False


def process_state(*, cpu: bool = False):
    """accelerate's ``PartialState`` of this process, with the group formed as the module doc
    says; ``cpu`` forces the CPU (gloo between processes).

    In a plain (single) process accelerate's process-wide state is reset first, so that one
    Python process can run several trainings with different settings; a formed group is kept
    for the next training in the same processes and never destroyed by kinemic before exit.
    """
    from accelerate.state import AcceleratorState, GradientState, PartialState

    global _warned_single
    world = launched_world_size()
    cpu = cpu or (world > 1 and not torch.cuda.is_available())
    if world == 1 and not dist.is_initialized():
        # accelerate keeps one process-wide state; its own tests reset it the same way.
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        if _single_process_launch() and not _warned_single:
            _warned_single = True
            print(
                "kinemic: warning: accelerate launch started a single process; for several "
                "processes on a machine with fewer than two GPUs (CPUs included) pass "
                "--multi_gpu (accelerate launch --multi_gpu --num_processes N ...)",
                file=sys.stderr,
            )
        return PartialState(cpu=cpu)
    if PartialState._shared_state:
        state = PartialState()
        if state.num_processes == world:
            return state
        if dist.is_initialized():
            raise KinemicError(
                f"this process is in a group of {dist.get_world_size()} processes, but "
                f"WORLD_SIZE says {world}"
            )
        AcceleratorState._reset_state(reset_partial_state=True)  # made before the group formed
    created = not dist.is_initialized()
    backend = None
    if not cpu and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        if local > torch.cuda.device_count():  # processes share a GPU: NCCL refuses that
            backend = "gloo"
            # accelerate would hand DDP the local rank as device id, a GPU that is not there
            os.environ["ACCELERATE_BYPASS_DEVICE_MAP"] = "true"
    state = PartialState(cpu=cpu, backend=backend)
    if state.num_processes != world:
        raise KinemicError(
            f"this process was launched as one of WORLD_SIZE={world} processes, but "
            f"accelerate formed a group of {state.num_processes} ({state.distributed_type}); "
            "launch with torchrun --nproc_per_node N or accelerate launch --multi_gpu "
            "--num_processes N"
        )
    if created and dist.is_initialized():
        atexit.register(_destroy_group)
    return state


def _destroy_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def world() -> tuple[int, int]:
    """(this process's rank, the number of processes) of the formed group; (0, 1) alone."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _Gather(torch.autograd.Function):
    """All-gather along dim 0 with gradient (module doc). Implemented with a sum-all-reduce
    into zeros, which every backend supports for every device (gloo has no CUDA all-gather)
    and which is exact: each row is added to zeros only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        rank, size = world()
        ctx.rank, ctx.rows = rank, x.shape[0]
        return _all_rows(x, rank, size)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # every process's gradient of its loss w.r.t. these rows
        first = ctx.rank * ctx.rows
        return grad[first : first + ctx.rows]


def _all_rows(x: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    out = x.new_zeros((size, *x.shape))
    out[rank] = x
    dist.all_reduce(out)
    return out.flatten(0, 1)


def gather(x: torch.Tensor) -> torch.Tensor:
    """``x`` (n, ...) of every process concatenated in rank order: (world · n, ...); ``x``
    itself in a single process. Every process must pass the same shape. Floating tensors keep
    their gradient (module doc); integer and bool tensors (labels, masks) are gathered as
    they are."""
    rank, size = world()
    if size == 1:
        return x
    if x.dtype == torch.bool:
        return _all_rows(x.long(), rank, size).bool()
    if not x.is_floating_point():
        return _all_rows(x, rank, size)
    return _Gather.apply(x)


def any_process(flag: bool, device: torch.device | str = "cpu") -> list[int]:
    """The ranks whose ``flag`` is true (every process calls this); ``[0]`` or ``[]`` alone.
    ``device``: where the collective runs (NCCL needs the process's GPU)."""
    _, size = world()
    if size == 1:
        return [0] if flag else []
    flags = gather(torch.tensor([int(flag)], device=device))
    return [r for r in range(size) if int(flags[r])]


def process_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank`` of a run seeded ``seed`` (a 63-bit integer, distinct per
    rank, the same on every machine)."""
    state = np.random.SeedSequence([int(seed), int(rank)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def seed_process(seed: int) -> None:
    """Seed python's, numpy's global and torch's (every device's) generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (the global generator tasks may draw from)
    torch.manual_seed(seed)
