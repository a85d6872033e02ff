"""Generation split over processes: which batches a process makes, each batch's seed, and
which process puts the parts together.

A set of generated clips (``kinemic synthesize``, ``kinemic sample``) is made in batches
0, 1, 2, ...; batch b is drawn from its own generator, seeded with :func:`batch_seed` of the
run's seed and b. Shard K of N makes the batches b with b mod N = K (round robin: batches are
sorted by length, so every shard gets short and long ones). Each batch is computed exactly as a
single process computes it, so the union of the N parts is the single-process set, clip for
clip, for the same seed and batch size (on the same kind of device).

The shards are the processes of ``accelerate launch``/``torchrun`` (``WORLD_SIZE``, ``RANK``),
or named by hand (``--shards N --shard K``: N commands, at once on N GPUs or machines sharing
the folder, or one after another). Each writes its part and then, under :func:`assembly_lock`,
looks whether every part is there; the process that finds them all (the last to finish)
assembles the set. No process waits for another, and no process group is needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kinemic.errors import KinemicError

__all__ = ["Shard", "assembly_lock", "batch_seed", "end_assembly"]

#: The increment of SplitMix64's Weyl sequence (2^64 / golden ratio, odd).
_WEYL = 0x9E3779B97F4A7C15


def batch_seed(seed: int, batch: int) -> int:
    """The seed of batch ``batch`` of a run seeded with ``seed``: ``seed`` for batch 0, then
    steps of 2^64/φ (mod 2^64), so that the batches of one run, and the first batches of runs
    with nearby seeds, never share a seed."""
    if batch < 0:
        raise ValueError(f"batch must be >= 0, found {batch}")
    return (int(seed) + batch * _WEYL) % 2**64


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``; ``Shard()`` is the whole set."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise KinemicError(
                f"shard {self.index} of {self.count}: expected --shards N >= 1 and --shard K "
                "in 0..N-1"
            )

    @classmethod
    def from_args(cls, shards: int | None = None, shard: int | None = None) -> Shard:
        """``--shards N --shard K`` (both or neither); with neither, this process's place under
        ``accelerate launch``/``torchrun`` (``WORLD_SIZE``, ``RANK``), else the whole set."""
        if (shards is None) != (shard is None):
            raise KinemicError("give --shards N and --shard K together (K = 0..N-1), or neither")
        if shards is not None and shard is not None:
            return cls(index=shard, count=shards)
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        return cls(index=int(os.environ.get("RANK", "0") or 0), count=world)

    @property
    def whole(self) -> bool:
        """Whether this is the only shard (nothing to assemble)."""
        return self.count == 1

    @property
    def name(self) -> str:
        """``part-K-of-N``, the name of this shard's part."""
        return f"part-{self.index}-of-{self.count}"

    def owns(self, batch: int) -> bool:
        """Whether this shard makes batch ``batch`` (module doc)."""
        return batch % self.count == self.index


@contextlib.contextmanager
def assembly_lock(folder: str | Path) -> Iterator[bool]:
    """Hold an exclusive lock while the block runs, so that one process at a time looks whether
    every part in ``folder`` is there and assembles them. Yields False when ``folder`` is gone:
    another process has assembled the set (:func:`end_assembly`). The kernel releases the lock
    when the process ends, even when killed.

    The lock is a file beside ``folder`` (``<folder>.lock``), not in it: a lock file inside a
    folder the assembler deletes can be recreated by a late process while the deletion runs,
    and that process would then lock a file nobody else holds and assemble the set again."""
    folder = Path(folder)
    fd = os.open(_lock_path(folder), os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield folder.is_dir()
    finally:
        os.close(fd)  # closing releases the lock


def end_assembly(folder: str | Path) -> None:
    """Remove the parts ``folder`` and then its lock file; call it holding :func:`assembly_lock`
    once the parts are read: a process that locks afterwards finds ``folder`` gone."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_lock_path(folder))


def _lock_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".lock")
