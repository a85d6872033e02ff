"""Progress of long work, on a terminal and in a log.

On a terminal, :func:`progress_bar` is a tqdm bar. When stderr is not a terminal (a log file,
SLURM, ``nohup``, a pipe) a redrawn bar would be either hidden or a mess of carriage returns,
so it prints whole lines instead: one when the work starts, one per finished unit where a unit
is long (``every_unit=True``: a checkpoint, a HAR run, a synthetic batch) and otherwise at
least every :data:`LOG_EVERY_S` seconds, and one when it ends::

    HAR runs: 7/25 [02:41<06:55, 23.0s/run] loss=0.041

``KINEMIC_PROGRESS=tty`` or ``=log`` forces either style (tests, or a terminal that wants
log lines).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from tqdm.auto import tqdm

__all__ = ["LOG_EVERY_S", "LogBar", "log_style", "progress_bar"]

#: a log line at least this often (seconds) while work goes on.
LOG_EVERY_S = 30.0


def log_style(stream: TextIO | None = None) -> bool:
    """Whether progress goes out as log lines (stderr, or ``stream``, is not a terminal)."""
    forced = os.environ.get("KINEMIC_PROGRESS", "").lower()
    if forced in ("tty", "log"):
        return forced == "log"
    stream = sys.stderr if stream is None else stream
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return True


class LogBar:
    """The log-line stand-in for a tqdm bar: the same calls (``update``, ``set_postfix``,
    ``set_description``, ``close``, iteration, ``with``), whole lines out."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        every_unit: bool = False,
        leave: bool = True,
        interval: float = LOG_EVERY_S,
        file: TextIO | None = None,
    ):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.every_unit, self.leave, self.interval = initial, every_unit, leave, interval
        self.file = file
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.initial = initial
        self.closed = False
        self.written = -1  # the count last written
        if leave:
            self._write()

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LogBar: nothing to iterate")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.total or 0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if (self.every_unit and n) or now - self.last >= self.interval:
            self._write(now)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kw) -> None:
        items = {**(ordered_dict or {}), **kw}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.leave and self.n != self.written:
            self._write()

    def line(self, now: float | None = None) -> str:
        """The current state as one line, in tqdm's words."""
        now = time.monotonic() if now is None else now
        return tqdm.format_meter(
            self.n,
            self.total,
            now - self.start,
            prefix=self.desc,
            unit=self.unit,
            postfix=self.postfix or None,
            initial=self.initial,
            ncols=0,  # no bar: counts, times and rate only
        ).strip()

    def _write(self, now: float | None = None) -> None:
        self.last = time.monotonic() if now is None else now
        self.written = self.n
        out = sys.stderr if self.file is None else self.file
        print(self.line(self.last), file=out, flush=True)


def progress_bar(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    every_unit: bool = False,
    leave: bool = True,
    initial: int = 0,
    position: int | None = None,
) -> Any:
    """A progress display for ``iterable`` (or ``total`` units fed by ``update``): a tqdm bar on
    a terminal, :class:`LogBar` lines in a log, nothing when ``enabled`` is False.

    every_unit: in a log, print a line for every finished unit (long units: runs, checkpoints,
        batches); otherwise at least every :data:`LOG_EVERY_S` seconds.
    leave: in a log, also a line when the work starts and when it ends (False for inner loops:
        their lines come only every :data:`LOG_EVERY_S` seconds).
    """
    if enabled and log_style():
        return LogBar(
            iterable, total=total, desc=desc, unit=unit, initial=initial,
            every_unit=every_unit, leave=leave,
        )  # fmt: skip
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        initial=initial,
        leave=leave,
        position=position,
        dynamic_ncols=True,
        disable=not enabled,
    )
