"""Turn a folder of joint-position clips into a HumanML3D-layout dataset.

Each ``src/<id>.npy`` holds SMPL-22 joints (T, 22, 3) or (T, 66), Y up, metres. The output gets
``new_joint_vecs/<id>.npy`` (T-1, 263), ``new_joints/<id>.npy`` (T-1, 22, 3) recovered from
those features (as HumanML3D stores them), optional ``texts/<id>.txt``, ``Mean.npy``/``Std.npy``
fitted on all clips, and ``train.txt`` listing every id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kinemic.errors import DataError, KinemicError
from kinemic.io.conversion import (
    SkippedFile,
    encode_finite,
    file_error,
    nothing_converted,
    skip_lines,
    skip_reason,
    staged_dataset,
)
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


@dataclass
class JointsConversionSummary:
    """What :func:`convert_joints_folder` did: the converted ids (sorted) and the skipped files
    with their reasons."""

    out: Path
    converted: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"wrote {len(self.converted)} clips to {self.out}"
        return "\n".join([head, *skip_lines(self.skipped)])


def _captions_for(clip_id: str, captions: CaptionSource | None) -> list[Caption] | None:
    """One clip's captions from a mapping or a folder of ``<id>.txt`` (plain or HumanML3D lines)."""
    if captions is None:
        return None
    if isinstance(captions, (str, Path)):
        path = Path(captions) / f"{clip_id}.txt"
        if not path.is_file():
            return None
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(path, f"cannot read the captions ({e})") from e
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
    lenient: bool = False,
    overwrite: bool = False,
) -> JointsConversionSummary:
    """Convert every ``src/*.npy`` joints clip into the HumanML3D layout under ``out``.

    ``convention``: ``"humanml3d"`` (retarget to the HumanML3D skeleton) or ``"ntu-vibe"``
    (keep the clip's own bones); see :func:`kinemic.features.joints_to_features`.
    ``captions``: a mapping id → caption text(s) or a folder of ``<id>.txt`` files.
    ``fps``: frame rate of the input clips; they are resampled to 20 fps.
    ``lenient``: skip and count every file with a problem instead of raising on the first; a
    bad file otherwise raises ``DataError`` naming it.
    ``out``: written complete or not at all (:func:`kinemic.io.conversion.staged_dataset`); an
    existing non-empty ``out`` is an error unless ``overwrite``.
    Returns the converted ids (sorted) and the skipped files.
    """
    from kinemic.features import Normalizer

    src, out = Path(src), Path(out)
    files = sorted(src.glob("*.npy")) if src.is_dir() else []
    if not files:
        raise DataError(src, "no .npy joint files here: expected <id>.npy of shape (T, 22, 3)")
    summary = JointsConversionSummary(out)
    all_features = []
    with staged_dataset(out, overwrite=overwrite) as staging:
        for path in tqdm(files, desc="converting joints", unit="clip", disable=None):
            try:
                joints = as_joints(load_npy(path, "joints"), where=path).astype(np.float64)
                joints = resample_frames(joints, fps_in=fps, fps_out=20.0)
                if len(joints) < 2:
                    reason = f"need at least 2 frames at 20 fps, found {len(joints)}"
                    if not lenient:
                        raise DataError(path, f"too short: {reason}")
                    summary.skipped.append(SkippedFile(path.name, "too-short", reason))
                    continue
                features, recovered = encode_finite(joints, path=path, convention=convention)
                clip_captions = _captions_for(path.stem, captions)
            except KinemicError as e:
                if not lenient:
                    raise file_error(e, path) from e
                summary.skipped.append(SkippedFile(path.name, "broken", skip_reason(e, path)))
                continue
            write_clip(
                staging, path.stem, features=features, joints=recovered, captions=clip_captions
            )
            summary.converted.append(path.stem)
            all_features.append(features)
        if not summary.converted:
            raise nothing_converted(src, summary.skipped, len(files))
        norm = Normalizer.fit(all_features)
        write_mean_std(staging, norm.mean, norm.std)
        write_split(staging, "train", summary.converted)
    return summary
