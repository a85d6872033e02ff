"""Every relative link in README.md and docs/ points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=[\"']([^\"']+)[\"']", re.IGNORECASE)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
EXTERNAL = ("http:", "https:", "mailto:", "#")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def relative_targets(text: str) -> list[str]:
    """Relative link targets of a Markdown text, without their #fragment; code is skipped."""
    text = CODE.sub("", text)
    targets = MARKDOWN_LINK.findall(text) + IMG_SRC.findall(text)
    return [t.split("#", 1)[0] for t in targets if not t.lower().startswith(EXTERNAL)]


def test_relative_targets_parses_links_and_images() -> None:
    text = (
        '[a](docs/a.md#x) [b](https://x.org) [c](#top) ![d](img/d.png "t") '
        '<img src="e.gif"> `[f](not-a-link.md)` [g](mailto:x@y.z)'
    )
    assert relative_targets(text) == ["docs/a.md", "img/d.png", "e.gif"]


def test_every_relative_link_resolves() -> None:
    assert (ROOT / "docs").is_dir()
    broken = [
        f"{md.relative_to(ROOT)}: {target}"
        for md in markdown_files()
        for target in relative_targets(md.read_text(encoding="utf-8"))
        if target and not (md.parent / target).exists()
    ]
    assert not broken, "broken links:\n" + "\n".join(broken)
