"""Shared by the benchmark scripts: a heading naming the machine, and appending to results.md."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).with_name("results.md")


def heading(title: str) -> str:
    """``### title — date UTC — machine``: every table in results.md says where it ran."""
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, python {sys.version.split()[0]}"
    return f"### {title} — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC — {machine}"


def append(text: str) -> None:
    """Print ``text`` and append it to bench/results.md (never rewrites earlier results)."""
    print(text)
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\n\n")
