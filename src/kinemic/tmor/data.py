"""Captioned joint sequences (and, where present, visual features) for T-MOR pretraining.

A :class:`TMORCorpus` reads HumanML3D-layout folders (``kinemic.corpus.read_clips``, the
reader the prior's corpus uses too): joints from ``new_joints/`` (T, 22, 3), captions from
``texts/`` (a ``#start#end`` span in seconds makes a sub-clip pair: its caption
describes rows ``[int(start·20), int(end·20))`` only), and optionally visual features from
``visual/<id>.npy`` (or another folder per source):

- (T', 22, 2): 2-D keypoints in pixels (the world's proxy, or a 2-D pose estimator in SMPL-22
  order), turned into per-frame vectors by :func:`kinemic.tmor.inputs.keypoint_input`;
- (T', F): per-frame features of any video model;  (F,): one vector per clip.

Per-frame visual features must cover the clip: T' = T, or T + 1 (the world writes keypoints of
the joints before feature encoding, one frame more than ``new_joints``; the extra last frame is
dropped). Anything else is an error naming the file.

:func:`draw_tmor_batch` is a pure function of a NumPy generator: clips without replacement,
one caption each, a random crop of the caption's span (``crop`` fraction of it, at most
``max_frames``), a random left/right mirror (joints, keypoints and the caption's "left"/"right"
together) and a random body scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from kinemic.constants import FPS
from kinemic.corpus import read_clips, source_split, step_rng
from kinemic.errors import DataError, KinemicError
from kinemic.io.humanml3d import load_npy
from kinemic.tmor.inputs import (
    KEYPOINT_DIM,
    keypoint_input,
    mirror_caption,
    mirror_joints_np,
    mirror_keypoints,
)
from kinemic.world.visual import IMAGE_WIDTH

VisualKind = Literal["none", "keypoints", "frames", "clip"]


def visual_kind_of(array: np.ndarray) -> tuple[VisualKind, int]:
    """(kind, model input dim) of one visual array: keypoints (T, 22, 2), frames (T, F) or a
    clip vector (F,)."""
    if array.ndim == 3 and array.shape[1:] == (22, 2):
        return "keypoints", KEYPOINT_DIM
    if array.ndim == 2:
        return "frames", int(array.shape[1])
    if array.ndim == 1:
        return "clip", int(array.shape[0])
    raise ValueError(f"expected (T, 22, 2), (T, F) or (F,), found {array.shape}")


def read_visual(path: Path, frames: int) -> tuple[np.ndarray, VisualKind, int]:
    """A clip's visual array, checked against the clip's ``frames`` joint rows."""
    arr = load_npy(path, "visual features")
    try:
        kind, dim = visual_kind_of(arr)
    except ValueError as e:
        raise DataError(path, f"visual features: {e}") from None
    if not np.isfinite(arr).all():
        raise DataError(path, "visual features hold NaN or inf")
    if kind != "clip":
        if len(arr) not in (frames, frames + 1):
            raise DataError(
                path,
                f"visual features have {len(arr)} frames but the clip has {frames} joint rows; "
                "per-frame visual features must have one row per frame (or one more, as the "
                "world writes them)",
            )
        arr = arr[:frames]
    return arr.astype(np.float32, copy=False), kind, dim


@dataclass
class TMORCorpus:
    """Joint clips (concatenated), captions (plus their mirrored texts) and visual features.

    ``joints`` (N, 22, 3) float32; clip i is ``joints[offsets[i]:offsets[i+1]]``. ``texts``
    holds every distinct caption followed by the mirrored versions that differ;
    ``mirror_of[k]`` is the index of text k's mirror (itself when it has no side words).
    ``clip_captions[i]`` is (K, 3) int64 of (text index, first row, end row). ``visual[i]`` is
    the clip's visual array or None.
    """

    joints: np.ndarray
    offsets: np.ndarray
    clip_ids: list[str]
    sources: list[Path]
    texts: list[str]
    mirror_of: np.ndarray
    clip_captions: list[np.ndarray]
    visual: list[np.ndarray | None]
    visual_kind: VisualKind = "none"
    visual_dim: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        sources: Sequence[str | Path],
        *,
        split: str | None = "train",
        min_frames: int = 20,
        visual: bool = False,
        visual_dirs: Sequence[str | Path | None] | None = None,
        progress: bool = True,
    ) -> TMORCorpus:
        """Read every source's ``split`` (all clips when it has no ``<split>.txt``).

        ``visual``: read ``visual/<id>.npy`` of each source that has that folder (or the
        folder ``visual_dirs[i]`` for source i). Clips shorter than ``min_frames`` and caption
        spans shorter than that are skipped and counted; a clip without any caption is an
        error (T-MOR learns from captions).
        """
        if not sources:
            raise KinemicError("no sources given: pass at least one HumanML3D-layout folder")
        roots = [Path(s) for s in sources]
        if visual_dirs is not None and len(visual_dirs) != len(roots):
            raise KinemicError(
                f"{len(visual_dirs)} visual folders for {len(roots)} sources: give one per source"
            )
        chunks, clip_ids, caps, vis = [], [], [], []
        index: dict[str, int] = {}
        skipped: dict[str, int] = {}
        kinds: dict[tuple[str, int], Path] = {}
        uncaptioned: list[Path] = []

        def skip(reason: str, count: int = 1) -> None:
            skipped[reason] = skipped.get(reason, 0) + count

        for n, root in enumerate(roots):
            ds, ids = source_split(root, split)
            vdir = None
            if visual:
                given = None if visual_dirs is None else visual_dirs[n]
                vdir = Path(given) if given is not None else root / "visual"
                if given is not None and not vdir.is_dir():
                    raise DataError(vdir, "not a folder: expected visual features <id>.npy")
                if not vdir.is_dir():
                    vdir = None
            kept = 0
            for clip in read_clips(
                ds, ids, arrays="joints", min_frames=min_frames, progress=progress
            ):
                if clip.short:
                    skip(f"clips shorter than {min_frames} frames")
                    continue
                if clip.short_spans:
                    skip(f"caption spans shorter than {min_frames} frames", clip.short_spans)
                rows = [
                    (index.setdefault(text, len(index)), start, end)
                    for text, start, end in clip.spans
                ]
                if not rows:
                    uncaptioned.append(clip.text_file)
                    continue
                v = None
                if vdir is not None:
                    path = vdir / f"{clip.clip_id}.npy"
                    if path.is_file():
                        v, kind, dim = read_visual(path, len(clip.array))
                        kinds.setdefault((kind, dim), path)
                    else:
                        skip("clips without visual features (trained without the visual pair)")
                chunks.append(clip.array)
                clip_ids.append(f"{n}:{clip.clip_id}")
                caps.append(np.asarray(rows, dtype=np.int64).reshape(-1, 3))
                vis.append(v)
                kept += 1
            if kept == 0 and not uncaptioned:
                raise DataError(root, f"no usable clips of at least {min_frames} frames")
        if uncaptioned:
            shown = "\n  ".join(str(p) for p in uncaptioned[:5])
            raise DataError(
                uncaptioned[0].parent,
                f"{len(uncaptioned)} clips have no usable caption (missing texts/<id>.txt, or "
                f"only spans shorter than {min_frames} frames), e.g.\n  {shown}\n"
                "T-MOR learns from captions: caption these clips or leave them out of the split",
            )
        if len(kinds) > 1:
            found = "; ".join(f"{k} {d}-d ({p})" for (k, d), p in kinds.items())
            raise KinemicError(f"visual features of different kinds or sizes: {found}")
        if visual and not kinds:
            raise KinemicError(
                "visual pretraining asked for, but no source has visual features "
                f"(looked for visual/<id>.npy in {', '.join(str(r) for r in roots)})"
            )
        (kind, dim) = next(iter(kinds)) if kinds else ("none", 0)
        originals = list(index)
        pairs = [
            (k, index.setdefault(mirror_caption(t), len(index))) for k, t in enumerate(originals)
        ]
        texts = list(index)
        mirror_of = np.arange(len(texts))
        for k, j in pairs:
            mirror_of[k] = j
            if j >= len(originals):  # a new mirrored text points back to its original
                mirror_of[j] = k
        lengths = np.array([len(c) for c in chunks], dtype=np.int64)
        return cls(
            joints=np.concatenate(chunks).astype(np.float32, copy=False),
            offsets=np.concatenate([[0], np.cumsum(lengths)]),
            clip_ids=clip_ids,
            sources=roots,
            texts=texts,
            mirror_of=mirror_of,
            clip_captions=caps,
            visual=vis,
            visual_kind=kind,  # type: ignore[arg-type]
            visual_dim=dim,
            skipped=skipped,
        )

    def __len__(self) -> int:
        return len(self.clip_ids)

    def clip(self, i: int) -> np.ndarray:
        return self.joints[self.offsets[i] : self.offsets[i + 1]]

    def summary(self) -> str:
        minutes = len(self.joints) / FPS / 60
        with_visual = sum(v is not None for v in self.visual)
        text = (
            f"{len(self)} clips ({minutes:.1f} min) from {len(self.sources)} source(s), "
            f"{len(self.texts)} caption texts (with mirrored), {with_visual} with visual "
            f"features ({self.visual_kind})"
        )
        if self.skipped:
            text += "; skipped: " + ", ".join(f"{v} {k}" for k, v in self.skipped.items())
        return text


def pad_joints(clips: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint clips (T_i, 22, 3) → padded (B, T, 22, 3) float32 and mask (B, T) bool."""
    longest = max(len(c) for c in clips)
    out = np.zeros((len(clips), longest, 22, 3), dtype=np.float32)
    mask = np.zeros((len(clips), longest), dtype=bool)
    for b, c in enumerate(clips):
        out[b, : len(c)] = c
        mask[b, : len(c)] = True
    return torch.from_numpy(out), torch.from_numpy(mask)


def draw_tmor_batch(
    corpus: TMORCorpus,
    rng: np.random.Generator,
    batch_size: int,
    *,
    max_frames: int = 160,
    min_frames: int = 20,
    crop: float = 0.8,
    mirror: float = 0.5,
    scale: tuple[float, float] = (0.9, 1.1),
    rows: slice | None = None,
) -> dict[str, torch.Tensor]:
    """One training batch (CPU tensors): joints (B, T, 22, 3), mask (B, T), text (B,) index into
    ``corpus.texts``, clip (B,), and with visual features visual (B, T, F) or (B, F),
    visual_mask (B, T) and has_visual (B,) bool. Everything random comes from ``rng``.

    ``rows``: make only these rows of the batch (one process's slice, padded to its longest
    crop); the draws are those of the whole batch, so the slice is the same rows of it."""
    replace = batch_size > len(corpus)
    clips = rng.choice(len(corpus), size=batch_size, replace=replace)
    made = set(range(batch_size)[rows] if rows is not None else range(batch_size))
    crops, texts, vis = [], [], []
    for i, c in enumerate(clips):
        table = corpus.clip_captions[c]
        k, start, end = table[rng.integers(0, len(table))]
        span = end - start
        length = round(span * rng.uniform(crop, 1.0))
        length = int(min(max(length, min(min_frames, span)), max_frames, span))
        first = start + int(rng.integers(0, span - length + 1))
        flip = rng.random() < mirror and corpus.visual_kind in ("none", "keypoints")
        body = rng.uniform(*scale)
        if i not in made:  # another process's row: drawn, not made
            continue
        joints = corpus.clip(c)[first : first + length]
        joints = mirror_joints_np(joints) if flip else joints
        joints = joints * body
        crops.append(joints)
        texts.append(corpus.mirror_of[k] if flip else k)
        v = corpus.visual[c]
        if v is not None and corpus.visual_kind == "keypoints":
            kp = v[first : first + length]
            v = keypoint_input(mirror_keypoints(kp, IMAGE_WIDTH) if flip else kp)
        elif v is not None and corpus.visual_kind == "frames":
            v = v[first : first + length]
        vis.append(v)
    if not crops:
        raise KinemicError(f"rows {rows} of a batch of {batch_size} are empty")
    clips = clips[rows] if rows is not None else clips
    batch_size = len(crops)
    joints, mask = pad_joints(crops)
    out = {
        "joints": joints,
        "mask": mask,
        "text": torch.as_tensor(np.asarray(texts), dtype=torch.int64),
        "clip": torch.from_numpy(clips.astype(np.int64)),
    }
    if corpus.visual_kind != "none":
        has = np.array([v is not None for v in vis])
        if corpus.visual_kind == "clip":
            arr = np.zeros((batch_size, corpus.visual_dim), dtype=np.float32)
            for b, v in enumerate(vis):
                if v is not None:
                    arr[b] = v
            out["visual"] = torch.from_numpy(arr)
        else:
            arr = np.zeros((batch_size, joints.shape[1], corpus.visual_dim), dtype=np.float32)
            for b, v in enumerate(vis):
                if v is not None:
                    arr[b, : len(v)] = v
            out["visual"] = torch.from_numpy(arr)
            out["visual_mask"] = mask & torch.from_numpy(has)[:, None]
        out["has_visual"] = torch.from_numpy(has)
    return out


@dataclass
class TMORBatches:
    """``batches(step)``: process ``rank``'s rows of step ``step``'s batch of ``batch_size``
    (global), drawn by :func:`draw_tmor_batch` from ``(seed, step)``; a picklable callable for
    ``kinemic.loader``'s worker processes."""

    corpus: TMORCorpus
    batch_size: int
    seed: int = 0
    max_frames: int = 160
    min_frames: int = 20
    crop: float = 0.8
    mirror: float = 0.5
    scale: tuple[float, float] = (0.9, 1.1)
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.batch_size % self.world_size:
            raise KinemicError(
                f"batch size {self.batch_size} is not divisible by the {self.world_size} processes"
            )

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        per = self.batch_size // self.world_size
        return draw_tmor_batch(
            self.corpus,
            step_rng(self.seed, step),
            self.batch_size,
            max_frames=self.max_frames,
            min_frames=self.min_frames,
            crop=self.crop,
            mirror=self.mirror,
            scale=self.scale,
            rows=slice(self.rank * per, (self.rank + 1) * per),
        )
