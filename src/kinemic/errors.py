"""The exceptions kinemic raises on bad input; the CLI prints them without a traceback."""

from __future__ import annotations

from pathlib import Path


class KinemicError(Exception):
    """Base class for errors a user can act on (bad input, missing files, wrong settings)."""


class DataError(KinemicError, ValueError):
    """A data file or folder is unusable. The message names the file, the problem and, where
    it helps, the line and what was expected."""

    def __init__(self, path: str | Path | None, problem: str, *, line: int | None = None):
        self.path = None if path is None else Path(path)
        self.problem = problem
        self.line = line
        where = "" if path is None else f"{path}"
        if line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: {problem}" if where else problem)
