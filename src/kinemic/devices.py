"""Where a model runs: the one rule behind every verb's ``--device``, and seeded generators there.

``resolve_device`` turns what a user typed into a ``torch.device``: nothing (or ``"auto"``)
means CUDA where PyTorch sees a GPU, else the CPU; ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` are
taken as said, with a clear error when CUDA is asked for and absent. A process started by
``accelerate launch`` or ``torchrun`` (``LOCAL_RANK`` set) gets its own GPU for ``"cuda"`` and
for the default, so that N processes on N GPUs do not all land on the first.

``device_generator`` seeds a ``torch.Generator`` *on* the device: random numbers are drawn
where they are used, never on the CPU and copied every sampling step. A seed gives the same
numbers on one device type every time; CUDA's generator (Philox) and the CPU's (Mersenne
Twister) give different streams, so CPU and CUDA samples of one seed agree in distribution,
not one by one (to compare them one by one, pass both the same CPU generator).
"""

from __future__ import annotations

import os
import re

import torch

from kinemic.errors import KinemicError

__all__ = ["device_generator", "resolve_device", "worker_devices"]

_NAME = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def _launched_rank() -> int | None:
    """This process's local rank under ``accelerate launch``/``torchrun``; None otherwise."""
    value = os.environ.get("LOCAL_RANK")
    return int(value) if value is not None and value.strip().isdigit() else None


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """The device ``name`` asks for (module doc): None/"auto", "cpu", "cuda" or "cuda:N".

    Examples:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("gpu")
        Traceback (most recent call last):
        ...
        kinemic.errors.KinemicError: device 'gpu': expected cpu, cuda or cuda:N (N = 0, 1, ...)
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = "auto" if name is None else str(name).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    match = _NAME.match(text)
    if match is None:
        raise KinemicError(f"device {name!r}: expected cpu, cuda or cuda:N (N = 0, 1, ...)")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        if index is not None:
            raise KinemicError(f"device {name!r}: the CPU takes no index; use cpu")
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = torch.version.cuda
        why = (
            f"this PyTorch ({torch.__version__}) was built without CUDA"
            if build is None
            else f"this PyTorch (CUDA {build}) sees no GPU (driver, CUDA_VISIBLE_DEVICES?)"
        )
        raise KinemicError(f"device {name!r}: no CUDA device is available: {why}; use cpu")
    count = torch.cuda.device_count()
    if index is None:
        rank = _launched_rank()
        if rank is not None:
            index = rank % count
        else:  # the current GPU, without starting CUDA in a process that has not (0 then)
            index = torch.cuda.current_device() if torch.cuda.is_initialized() else 0
    elif int(index) >= count:
        raise KinemicError(
            f"device {name!r}: there is no GPU {index}; PyTorch sees {count} "
            f"(cuda:0 to cuda:{count - 1})"
        )
    return torch.device("cuda", int(index))


def worker_devices(name: str | torch.device | None, workers: int) -> list[torch.device]:
    """The device of each of ``workers`` worker processes: the CPU for every one when ``name``
    resolves to the CPU; one GPU for every one with ``"cuda:N"``; otherwise ("cuda" or the
    default on a GPU machine) the visible GPUs in turn, worker i on GPU i mod their number."""
    device = resolve_device(name)
    text = "" if name is None else str(name).strip().lower()
    if device.type == "cpu" or ":" in text:
        return [device] * workers
    count = torch.cuda.device_count()
    return [torch.device("cuda", i % count) for i in range(workers)]


def device_generator(seed: int, device: str | torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (module doc)."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))
