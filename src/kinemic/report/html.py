"""A report folder: ``report.md`` (images as files beside it) and a self-contained
``report.html`` (every image inlined as a data URI, so the one file can be mailed or attached).

A report is a list of blocks, written in order by both writers::

    report = Report("KineMIC demo", [
        Heading("Results"),
        Paragraph("Top-1 on 1,706 validation clips ..."),
        Table(["mode", "top-1"], [["real", "41.2 ± 3.1"], ...]),
        Image("accuracy.png", png_bytes, "top-1 per mode"),
        Gallery([("side kick", [Image("side_kick_real.gif", ...), Image(...)])]),
        Settings({"seeds": [0, 1, 2], ...}),
    ])
    write_report(report, "out/demo")
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinemic.files import write_bytes, write_text

ASSETS = "assets"
_MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".svg": "image/svg+xml"}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }
td.num { text-align: right; white-space: nowrap; }
th { background: #f3f3f3; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; }
.gallery figure { margin: 0; }
.note { border-left: 5px solid #3b6fb6; background: #eef3fb; padding: 0.6em 1em; margin: 1em 0; }
.note.warning { border-color: #c98a00; background: #fff6e0; }
.note p { margin: 0.3em 0; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str  # plain text; blank lines separate paragraphs


@dataclass(frozen=True)
class Note:
    """A boxed paragraph read before anything else: the verdict, or a warning banner."""

    text: str
    kind: str = "verdict"  # "verdict" (blue) or "warning" (amber)


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    name: str  # file name under assets/, e.g. "accuracy.png"
    data: bytes
    caption: str = ""


@dataclass(frozen=True)
class Gallery:
    """Groups of images shown side by side, e.g. (class, [real GIF, synthetic GIF])."""

    groups: Sequence[tuple[str, Sequence[Image]]]
    notes: Sequence[str] = ()  # optional: one line of text per group, shown with its images


@dataclass(frozen=True)
class Settings:
    values: dict[str, Any]
    title: str = "Run settings"


Block = Heading | Paragraph | Note | Table | Image | Gallery | Settings


@dataclass
class Report:
    title: str
    blocks: list[Block] = field(default_factory=list)


def _images(report: Report) -> list[Image]:
    out: list[Image] = []
    for block in report.blocks:
        if isinstance(block, Image):
            out.append(block)
        elif isinstance(block, Gallery):
            out += [im for _, ims in block.groups for im in ims]
    names = [im.name for im in out]
    if len(set(names)) != len(names):
        raise ValueError(f"report images need distinct names, found {sorted(names)}")
    for im in out:
        if Path(im.name).suffix.lower() not in _MIME or "/" in im.name:
            raise ValueError(f"report image {im.name!r}: a plain file name ending in {list(_MIME)}")
    return out


# ------------------------------------------------------------------------------------ markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    for b in report.blocks:
        if isinstance(b, Heading):
            lines += [f"## {b.text}", ""]
        elif isinstance(b, Paragraph):
            lines += [b.text, ""]
        elif isinstance(b, Note):
            lines += [f"> {line}" if line else ">" for line in b.text.split("\n")] + [""]
        elif isinstance(b, Table):
            lines.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            lines.append(
                "|" + "|".join("---" if i == 0 else "---:" for i in range(len(b.header))) + "|"
            )
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            lines += [""] + ([f"*{b.caption}*", ""] if b.caption else [])
        elif isinstance(b, Image):
            lines += [f"![{b.caption}]({ASSETS}/{b.name})", ""]
            lines += [f"*{b.caption}*", ""] if b.caption else []
        elif isinstance(b, Gallery):
            notes = list(b.notes) or [""] * len(b.groups)
            for (title, images), note in zip(b.groups, notes, strict=True):
                cells = " ".join(f"![{im.caption}]({ASSETS}/{im.name})" for im in images)
                lines += [f"**{title}**", "", cells, ""] + ([note, ""] if note else [])
        elif isinstance(b, Settings):
            lines += [f"## {b.title}", "", "```json", _json(b.values), "```", ""]
    return "\n".join(lines)


def _json(values: dict[str, Any]) -> str:
    return json.dumps(values, indent=2, sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------- html


def _data_uri(image: Image) -> str:
    mime = _MIME[Path(image.name).suffix.lower()]
    return f"data:{mime};base64,{base64.b64encode(image.data).decode('ascii')}"


def _figure(image: Image) -> str:
    alt = html.escape(image.caption or image.name, quote=True)
    cap = f"<figcaption>{html.escape(image.caption)}</figcaption>" if image.caption else ""
    return f'<figure><img src="{_data_uri(image)}" alt="{alt}">{cap}</figure>'


_NUMBER = re.compile(r"^[-+]?\d[\d,.]*( ± [\d.]+)?%?$")


def _cell(text: str) -> str:
    """A table cell; figures (``12.5``, ``61.7 ± 3.2``, ``40%``) are right-aligned."""
    css = ' class="num"' if _NUMBER.match(text.strip()) else ""
    return f"<td{css}>{html.escape(text)}</td>"


def to_html(report: Report) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(report.title)}</h1>",
    ]
    for b in report.blocks:
        if isinstance(b, Heading):
            parts.append(f"<h2>{esc(b.text)}</h2>")
        elif isinstance(b, Paragraph):
            parts += [f"<p>{esc(p.strip())}</p>" for p in b.text.split("\n\n") if p.strip()]
        elif isinstance(b, Note):
            paras = "".join(f"<p>{esc(p.strip())}</p>" for p in b.text.split("\n\n") if p.strip())
            parts.append(f'<div class="note {esc(b.kind)}">{paras}</div>')
        elif isinstance(b, Table):
            head = "".join(f"<th>{esc(str(h))}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(_cell(str(c)) for c in row) + "</tr>" for row in b.rows)
            cap = f"<caption>{esc(b.caption)}</caption>" if b.caption else ""
            parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Image):
            parts.append(_figure(b))
        elif isinstance(b, Gallery):
            notes = list(b.notes) or [""] * len(b.groups)
            for (title, images), note in zip(b.groups, notes, strict=True):
                parts.append(f'<h3>{esc(title)}</h3><div class="gallery">')
                parts += [_figure(im) for im in images]
                parts.append("</div>" + (f"<p>{esc(note)}</p>" if note else ""))
        elif isinstance(b, Settings):
            parts.append(f"<h2>{esc(b.title)}</h2><pre>{esc(_json(b.values))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: Report, folder: str | Path) -> tuple[Path, Path]:
    """Write ``folder/report.md`` with ``folder/assets/*`` and the self-contained
    ``folder/report.html`` (atomically, file by file). Returns the two paths."""
    folder = Path(folder)
    for image in _images(report):
        write_bytes(folder / ASSETS / image.name, image.data)
    md, page = folder / "report.md", folder / "report.html"
    write_text(md, to_markdown(report))
    write_text(page, to_html(report))
    return md, page
