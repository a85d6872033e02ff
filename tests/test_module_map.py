"""The module map in docs/architecture.md matches the package tree, both ways."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "kinemic"
MAP = ROOT / "docs" / "architecture.md"


def _tree() -> tuple[set[str], set[str], set[str]]:
    """Under src/kinemic: the modules the map must name (``prior/folder.py``), every file it
    may name (``__init__.py`` files too) and the packages (``prior/``)."""
    files = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    modules = {f for f in files if not f.endswith(("__init__.py", "__main__.py"))}
    packages = {f.removesuffix("__init__.py") for f in files if f.endswith("/__init__.py")}
    return modules, files, packages


def test_the_module_map_names_every_module_and_nothing_else() -> None:
    text = MAP.read_text(encoding="utf-8")
    named = {m for m in re.findall(r"`([\w/]+\.py)`", text) if not m.startswith("tests/")}
    named_packages = set(re.findall(r"`([\w/]+/)`", text))
    modules, files, packages = _tree()
    assert not modules - named, f"modules missing from {MAP.name}: {sorted(modules - named)}"
    assert not named - files, f"named but absent: {sorted(named - files)}"
    assert not packages - named_packages, f"packages missing: {sorted(packages - named_packages)}"
    assert not named_packages - packages, f"not packages: {sorted(named_packages - packages)}"
