"""Frame-rate conversion by linear interpolation along the first axis."""

from __future__ import annotations

import numpy as np


def resample_frames(x: np.ndarray, *, fps_in: float, fps_out: float) -> np.ndarray:
    """Frames (T, ...) at ``fps_in`` → (T', ...) at ``fps_out``, T' = int((T−1)·fps_out/fps_in)+1.

    Output frame i samples time i / fps_out by linear interpolation between the two nearest
    input frames (the first output frame is the first input frame). For positions of a rigid
    skeleton, interpolate the rotations instead (``kinemic.io.bvh_retarget`` does), since
    interpolated positions shorten bones on fast motion.
    """
    x = np.asarray(x, dtype=np.float64)
    if fps_in <= 0 or fps_out <= 0:
        raise ValueError(f"frame rates must be positive, got {fps_in} → {fps_out}")
    if len(x) < 1:
        raise ValueError("cannot resample an empty clip")
    if fps_in == fps_out or len(x) == 1:
        return x
    num_out = int((len(x) - 1) * fps_out / fps_in + 1e-9) + 1
    t = np.minimum(np.arange(num_out) * (fps_in / fps_out), len(x) - 1)
    lo = np.minimum(np.floor(t).astype(np.int64), len(x) - 2)
    w = (t - lo).reshape(-1, *([1] * (x.ndim - 1)))
    return x[lo] * (1.0 - w) + x[lo + 1] * w
