"""Turn a folder of joint-position clips into a HumanML3D-layout dataset.

Each ``src/<id>.npy`` holds SMPL-22 joints (T, 22, 3) or (T, 66), Y up, metres. The output gets
``new_joint_vecs/<id>.npy`` (T-1, 263), ``new_joints/<id>.npy`` (T-1, 22, 3) recovered from
those features (as HumanML3D stores them), optional ``texts/<id>.txt``, ``Mean.npy``/``Std.npy``
fitted on all clips, and ``train.txt`` listing every id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kinemic.errors import DataError
from kinemic.io.humanml3d import (
    Caption,
    as_joints,
    load_npy,
    parse_caption_line,
    write_clip,
    write_mean_std,
    write_split,
)
from kinemic.resample import resample_frames

CaptionSource = Mapping[str, str | Sequence[str | Caption]] | str | Path


def _captions_for(clip_id: str, captions: CaptionSource | None) -> list[Caption] | None:
    """One clip's captions from a mapping or a folder of ``<id>.txt`` (plain or HumanML3D lines)."""
    if captions is None:
        return None
    if isinstance(captions, (str, Path)):
        path = Path(captions) / f"{clip_id}.txt"
        if not path.is_file():
            return None
        lines = path.read_text(encoding="utf-8").splitlines()
        return [
            parse_caption_line(line, path=path, line_no=n)
            if "#" in line
            else Caption.from_text(line)
            for n, line in enumerate(lines, start=1)
            if line.strip()
        ]
    value = captions.get(clip_id)
    if value is None:
        return None
    value = [value] if isinstance(value, str) else value
    return [c if isinstance(c, Caption) else Caption.from_text(c) for c in value]


def convert_joints_folder(
    src: str | Path,
    out: str | Path,
    *,
    convention: str = "humanml3d",
    captions: CaptionSource | None = None,
    fps: float = 20.0,
) -> list[str]:
    """Convert every ``src/*.npy`` joints clip into the HumanML3D layout under ``out``.

    ``convention``: ``"humanml3d"`` (retarget to the HumanML3D skeleton) or ``"ntu-vibe"``
    (keep the clip's own bones); see :func:`kinemic.features.joints_to_features`.
    ``captions``: a mapping id → caption text(s) or a folder of ``<id>.txt`` files.
    ``fps``: frame rate of the input clips; they are resampled to 20 fps.
    Returns the converted ids (sorted). A bad input file raises ``DataError`` naming it.
    """
    from kinemic.features import Normalizer, encode_clip

    src, out = Path(src), Path(out)
    files = sorted(src.glob("*.npy")) if src.is_dir() else []
    if not files:
        raise DataError(src, "no .npy joint files here: expected <id>.npy of shape (T, 22, 3)")
    ids, all_features = [], []
    for path in tqdm(files, desc="converting joints", unit="clip", disable=None):
        joints = as_joints(load_npy(path, "joints"), where=path).astype(np.float64)
        if not np.isfinite(joints).all():
            raise DataError(path, "joints hold NaN or inf values")
        joints = resample_frames(joints, fps_in=fps, fps_out=20.0)
        if len(joints) < 2:
            raise DataError(
                path, f"too short: need at least 2 frames at 20 fps, found {len(joints)}"
            )
        features, recovered = encode_clip(joints, convention=convention)
        write_clip(
            out,
            path.stem,
            features=features,
            joints=recovered,
            captions=_captions_for(path.stem, captions),
        )
        ids.append(path.stem)
        all_features.append(features)
    norm = Normalizer.fit(all_features)
    write_mean_std(out, norm.mean, norm.std)
    write_split(out, "train", ids)
    return ids
