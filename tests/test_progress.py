"""Progress in a log: whole lines, one per long unit or every 30 s, and one at the end."""

from __future__ import annotations

import io

from tqdm.auto import tqdm

import kinemic.progress as progress
from kinemic.progress import LogBar, log_style, progress_bar


def test_log_style_follows_the_stream_and_the_override(monkeypatch):
    monkeypatch.delenv("KINEMIC_PROGRESS", raising=False)
    assert log_style(io.StringIO())  # not a terminal
    monkeypatch.setenv("KINEMIC_PROGRESS", "tty")
    assert not log_style(io.StringIO())
    monkeypatch.setenv("KINEMIC_PROGRESS", "log")
    assert isinstance(progress_bar(total=3, desc="x"), LogBar)
    monkeypatch.setenv("KINEMIC_PROGRESS", "tty")
    bar = progress_bar(total=3, desc="x", enabled=False)
    assert isinstance(bar, tqdm) and bar.disable
    bar.close()


def test_a_line_per_finished_unit():
    out = io.StringIO()
    bar = LogBar(total=3, desc="HAR runs", unit="run", every_unit=True, file=out)
    for _ in range(3):
        bar.update(1)
        bar.set_postfix(top1="71.2%")
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # the start, then one per run; the end adds nothing new
    assert lines[0].startswith("HAR runs:") and "0/3" in lines[0]
    assert "3/3" in lines[-1] and "top1=71.2%" in lines[-1]
    assert all("\r" not in line for line in lines)


def test_short_units_print_every_interval_only(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    bar = LogBar(total=1000, desc="reading", unit="clip", file=out)
    for _ in range(1000):
        clock[0] += 0.1  # 100 s in all: a line at 30, 60 and 90 s
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + 3 + 1
    assert "1000/1000" in lines[-1]


def test_inner_loops_stay_quiet_and_iteration_counts(monkeypatch):
    out = io.StringIO()
    seen = list(LogBar(range(4), desc="epochs", leave=False, file=out))
    assert seen == [0, 1, 2, 3] and out.getvalue() == ""
    out = io.StringIO()
    assert list(LogBar(range(2), desc="batches", file=out)) == [0, 1]
    assert out.getvalue().splitlines()[-1].startswith("batches:")
