"""The world's ground truth: where each primitive action lies in a source sequence.

``kinemic world`` writes ``source/segments/<id>.json`` beside every source sequence:
``{"frames": N, "segments": [{"primitive", "start", "end"}, ...]}`` in joint frames. Mining
precision and the prior's quality gate read it here, in feature rows (frames - 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kinemic.errors import DataError


@dataclass(frozen=True)
class SourceTruth:
    """A world source's ground truth in feature rows: ``rows`` (= frames - 1) and its segments
    as (primitive, start, end), clipped to the rows."""

    rows: int
    segments: tuple[tuple[str, int, int], ...]

    def spans(self, primitives: Sequence[str]) -> np.ndarray:
        """(m, 2) [start, end) rows of the segments of any of ``primitives``."""
        spans = [(a, b) for p, a, b in self.segments if p in primitives and b > a]
        return np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def has_segments(source_dir: str | Path) -> bool:
    """Whether a source folder carries ground-truth segment sidecars (a procedural world)."""
    folder = Path(source_dir) / "segments"
    return folder.is_dir() and any(folder.glob("*.json"))


def read_truth(source_dir: str | Path, clip_id: str) -> SourceTruth:
    """The ground truth of one world source from ``segments/<id>.json``."""
    path = Path(source_dir) / "segments" / f"{clip_id}.json"
    if not path.is_file():
        raise DataError(path, f"missing file: no ground-truth segments for source {clip_id!r}")
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
        rows = int(sidecar["frames"]) - 1
        segs = tuple(
            (str(s["primitive"]), int(s["start"]), min(int(s["end"]), rows))
            for s in sidecar["segments"]
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(
            path, f"expected {{'frames': N, 'segments': [{{'primitive', 'start', 'end'}}]}} ({e!r})"
        ) from None
    return SourceTruth(rows, segs)
