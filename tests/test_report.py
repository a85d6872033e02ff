"""The report folder: markdown + self-contained HTML, and the page checked in Chromium."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from kinemic.report.charts import (
    Interval,
    WindowRow,
    accuracy_chart,
    per_class_chart,
    windows_chart,
)
from kinemic.report.html import (
    Gallery,
    Heading,
    Image,
    Paragraph,
    Report,
    Settings,
    Table,
    to_html,
    write_report,
)

from .browser import chromium

PNG = b"\x89PNG\r\n\x1a\n"


def _report() -> Report:
    modes = ["real", "mixed (kinemic)"]
    final = [Interval(40.0, 35.0, 45.0), Interval(60.0, 55.0, 66.0)]
    best = [Interval(44.0, 40.0, 48.0), Interval(63.0, 58.0, 68.0)]
    rows = [
        WindowRow("side kick ← 000012", np.linspace(0, 1, 60), (20, 40), ((18, 42),), True),
        WindowRow("stretch ← 000040", np.ones(80) / 80, (0, 30), ((50, 70),), False),
    ]
    return Report(
        "A test report",
        [
            Heading("Results"),
            Paragraph("First paragraph.\n\nSecond <b>not bold</b>."),
            Table(["mode", "top-1 final", "top-1 best"], [["real", "40.0 ± 5.0", "44.0 ± 4.0"]]),
            Image("accuracy.png", accuracy_chart(modes, final, best), "top-1 per mode"),
            Image(
                "classes.png", per_class_chart(["a", "b"], modes, np.array([[10, 20], [30, 40]]))
            ),
            Image("windows.png", windows_chart(rows), "mined windows"),
            Gallery(
                [("side kick", [Image("kick_real.png", accuracy_chart(modes[:1], final[:1]))])]
            ),
            Settings({"seeds": [0, 1], "steps": 10}),
        ],
    )


def test_charts_are_png():
    report = _report()
    for block in report.blocks:
        if isinstance(block, Image):
            assert block.data.startswith(PNG) and len(block.data) > 1000


def test_writes_markdown_with_assets_and_self_contained_html(tmp_path):
    md, page = write_report(_report(), tmp_path / "rep")
    text = md.read_text()
    assert "| real | 40.0 ± 5.0 | 44.0 ± 4.0 |" in text
    for name in ("accuracy.png", "classes.png", "windows.png", "kick_real.png"):
        assert f"](assets/{name})" in text
        assert (tmp_path / "rep" / "assets" / name).read_bytes().startswith(PNG)
    html_text = page.read_text()
    assert "assets/" not in html_text  # nothing outside the one file
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', html_text)
    assert len(uris) == 4 and all(base64.b64decode(u).startswith(PNG) for u in uris)
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html_text  # text is escaped, never markup
    assert "&quot;steps&quot;: 10" in html_text


def test_refuses_clashing_or_odd_image_names(tmp_path):
    im = Image("a.png", b"x")
    with pytest.raises(ValueError, match="distinct"):
        write_report(Report("t", [im, im]), tmp_path)
    with pytest.raises(ValueError, match="plain file name"):
        write_report(Report("t", [Image("../a.png", b"x")]), tmp_path)
    with pytest.raises(ValueError, match="one interval per mode"):
        accuracy_chart(["a", "b"], [Interval(1, 0, 2)])


def test_broken_image_is_detected_by_the_browser_check(tmp_path):
    """The check below must be able to fail: a page with a corrupt image fails it."""
    page = tmp_path / "broken.html"
    page.write_text(to_html(Report("t", [Image("bad.png", b"not a png")])))
    with chromium() as browser:
        browser.get(page.as_uri())
        assert _broken_images(browser) == ["bad.png"]


def test_report_page_renders_in_chromium(tmp_path):
    _, page = write_report(_report(), tmp_path / "rep")
    with chromium() as browser:
        browser.get(page.as_uri())
        assert browser.title == "A test report"
        assert _broken_images(browser) == []
        cells = browser.execute_script(
            "return Array.from(document.querySelectorAll('td')).map(c => c.innerText)"
        )
        assert cells[:3] == ["real", "40.0 ± 5.0", "44.0 ± 4.0"]
        shot = tmp_path / "report.png"
        assert browser.save_screenshot(str(shot)) and shot.read_bytes().startswith(PNG)


def _broken_images(browser) -> list[str]:
    """Images that did not decode (incomplete, or zero natural width)."""
    return browser.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)"
    )
