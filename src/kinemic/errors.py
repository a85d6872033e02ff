"""The exceptions kinemic raises on bad input; the CLI prints them without a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any


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


def check_known_settings(config_class: type, data: Mapping[str, Any], what: str) -> None:
    """Refuse settings a dataclass config does not have (a config file from another version,
    or a typo), naming them and the known ones."""
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise KinemicError(f"{what}: unknown settings {unknown}; known are {sorted(known)}")
