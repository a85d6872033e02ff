"""The report's figures, drawn with matplotlib's Agg canvas into PNG bytes.

- ``accuracy_chart``: one bar per evaluation mode (mean top-1) with its 95% confidence
  interval, final epoch and best-validation epoch side by side;
- ``per_class_chart``: grouped bars, one group per class, one bar per mode;
- ``windows_chart``: mined windows drawn on their source motions, one row per source motion:
  the MIC attention over time, the mined window, and (on the world) the ground-truth segment
  of the primitive that moves like the target class.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: One colour per mode, in order (matplotlib's default cycle without the greys).
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% confidence interval (same units)."""

    mean: float
    low: float
    high: float


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def accuracy_chart(
    modes: Sequence[str],
    final: Sequence[Interval],
    best: Sequence[Interval] | None = None,
    *,
    chance: float | None = None,
    title: str = "top-1 on the validation clips (mean ± 95% CI)",
) -> bytes:
    """Bars of the final-epoch top-1 per mode (and, lighter, the best-validation epoch when
    given); ``chance`` (%) draws a dashed line at chance level."""
    if len(final) != len(modes) or (best is not None and len(best) != len(modes)):
        raise ValueError("accuracy_chart: one interval per mode is needed")
    fig = Figure(figsize=(1.4 + 1.3 * len(modes), 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(modes), dtype=float)
    width = 0.38 if best is not None else 0.6
    shift = width / 2 if best is not None else 0.0
    series = [("final epoch", final, 1.0)] + ([("best val. epoch", best, 0.45)] if best else [])
    for k, (label, values, alpha) in enumerate(series):
        mean = np.array([v.mean for v in values])
        err = np.array([[v.mean - v.low for v in values], [v.high - v.mean for v in values]])
        pos = x - shift + k * 2 * shift
        ax.bar(
            pos,
            mean,
            width,
            yerr=err,
            capsize=4,
            label=label,
            alpha=alpha,
            color=[PALETTE[i % len(PALETTE)] for i in range(len(modes))],
        )
        for p, m in zip(pos, mean, strict=True):
            ax.text(p, 1.0, f"{m:.1f}", ha="center", va="bottom", fontsize=8, color="white")
    if chance is not None:
        ax.axhline(chance, color="0.3", ls="--", lw=1, zorder=0)
        ax.text(
            x[-1] + 0.45, chance + 1.0, f"chance {chance:.1f}%", ha="right", va="bottom",
            fontsize=8, color="0.3",
        )  # fmt: skip
    ax.set_xticks(x, modes, rotation=15, ha="right")
    ax.set_ylabel("top-1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if best is not None:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncols=2)
    return _png(fig)


def per_class_chart(classes: Sequence[str], modes: Sequence[str], accuracy: np.ndarray) -> bytes:
    """Grouped bars: ``accuracy`` (modes, classes) in percent."""
    accuracy = np.asarray(accuracy, dtype=float)
    if accuracy.shape != (len(modes), len(classes)):
        raise ValueError(
            f"per_class_chart: accuracy should be {(len(modes), len(classes))}, "
            f"found {accuracy.shape}"
        )
    fig = Figure(figsize=(1.5 + 1.2 * len(classes), 3.4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(classes), dtype=float)
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        ax.bar(
            x - 0.4 + (i + 0.5) * width,
            accuracy[i],
            width,
            label=mode,
            color=PALETTE[i % len(PALETTE)],
        )
    ax.set_xticks(x, classes, rotation=15, ha="right")
    ax.set_ylabel("top-1 (%), final epoch")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncols=min(len(modes), 3), loc="upper center", bbox_to_anchor=(0.5, -0.3))
    return _png(fig)


@dataclass(frozen=True)
class WindowRow:
    """One source motion with its mined window (feature rows, end exclusive)."""

    label: str  # e.g. "side kick ← 004211"
    attention: np.ndarray  # (T,) MIC attention over the source's frames
    window: tuple[int, int]
    truth: tuple[tuple[int, int], ...] = ()  # ground-truth segments of the matching primitive
    hit: bool | None = None  # IoU >= 0.5 with a ground-truth segment (None: unknown)


def windows_chart(rows: Sequence[WindowRow], *, fps: float = 20.0) -> bytes:
    """Mined windows on their source motions: attention (line), mined window (blue band) and
    ground truth (green band underneath), one row per source motion."""
    if not rows:
        raise ValueError("windows_chart: no rows")
    fig = Figure(figsize=(7.5, 0.9 * len(rows) + 0.6), dpi=100)
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, row in zip(axes, rows, strict=True):
        seconds = np.arange(len(row.attention)) / fps
        for a, b in row.truth:
            ax.axvspan(a / fps, b / fps, ymin=0.0, ymax=0.35, color="#55a868", alpha=0.45, lw=0)
        a, b = row.window
        ax.axvspan(a / fps, b / fps, ymin=0.3, ymax=1.0, color="#4c72b0", alpha=0.25, lw=0)
        ax.plot(seconds, row.attention, color="#333333", lw=1.0)
        mark = "" if row.hit is None else ("  ✓ IoU ≥ 0.5" if row.hit else "  ✗ IoU < 0.5")
        ax.set_ylabel(row.label + mark, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_yticks([])
        ax.set_xlim(0, max(len(row.attention) - 1, 1) / fps)
    axes[-1].set_xlabel(
        "seconds (blue: mined window, green: ground-truth segment, line: attention)"
    )
    for ax in axes[:-1]:
        ax.set_xticklabels([])
    return _png(fig)
