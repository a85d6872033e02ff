"""Motion corpora for training: HumanML3D-layout sources, packed on disk, and seeded batches.

:func:`read_clips` is the one reader of a source's clips for training — features or joints,
each clip's captions and their spans — behind both :class:`MotionCorpus` (features, for the
prior) and ``kinemic.tmor.data.TMORCorpus`` (joints, for T-MOR).

A :class:`MotionCorpus` reads one or more HumanML3D-layout folders (each folder's ``train``
split when it has one, else every clip) into one float32 array, with each clip's captions: by
default a pack (:mod:`kinemic.packed`) written on first use and memory-mapped, so the processes
of a machine share one copy of it and later runs open it in an instant. Clip
lengths follow HumanML3D's loader (``../shared/SPEC.md`` §2): clips with fewer than
``min_frames`` feature rows are skipped (and counted); longer clips are kept whole and cropped
when drawn, so a long mocap trial contributes a different window each time.

A caption with a span (``caption#tokens#start#end``) describes only rows
``[int(start * 20), int(end * 20))`` of its clip, as in HumanML3D's loaders; drawing that caption
crops to the span. Spans shorter than ``min_frames`` rows are dropped (and counted).

Batches are a pure function of a :class:`numpy.random.Generator` (:func:`draw_batch`): a
training loop seeds one per step from ``(seed, step)``, so resuming never replays a loader.
:func:`draw_batch` draws the whole batch's choices but reads only the rows of one process's
slice (``rows``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from kinemic.constants import FPS, MAX_FRAMES
from kinemic.errors import DataError, KinemicError
from kinemic.files import name_problem
from kinemic.io.humanml3d import FEATURE_DIM, HumanML3DDataset

#: Cropped lengths are a multiple of this (HumanML3D's ``unit_length``).
UNIT_LENGTH = 4
#: Caption index of a clip drawn without a caption (trained unconditionally).
NO_CAPTION = -1
#: Where each array of a HumanML3D layout lives.
_ARRAY_FOLDER = {"features": "new_joint_vecs", "joints": "new_joints"}
#: The count of clips trained without text, in ``MotionCorpus.skipped``.
_UNCAPTIONED = "uncaptioned (trained without text)"


def source_split(root: str | Path, split: str | None) -> tuple[HumanML3DDataset, list[str]]:
    """A HumanML3D-layout source and the ids of its ``split`` (``<split>.txt``); every clip
    where the source has no such file, or when ``split`` is None.

    The list is checked as ``kinemic validate`` checks it (``HumanML3DDataset.split``): plain
    ids, each once, with features, sharing none with the other train/val/test lists."""
    root = Path(root)
    ds = HumanML3DDataset(root)
    if split and (why := name_problem(split)) is not None:
        raise DataError(root / f"{split}.txt", f"split name {split!r}: {why}")
    ids = ds.split(split) if split and (root / f"{split}.txt").is_file() else ds.ids()
    return ds, ids


@dataclass
class SourceClip:
    """One clip as :func:`read_clips` gives it.

    ``array``: features (T, 263) or joints (T, 22, 3) float32, all finite. ``short``: fewer
    than ``min_frames`` rows (then nothing else was read: no ``spans``). ``spans``: (caption
    text, first row, end row) of each caption in file order: the whole clip, or the rows
    ``[int(start * 20), int(end * 20))`` of a caption with a span; ``short_spans`` counts the
    spans shorter than ``min_frames`` rows, left out. ``text_file``: ``texts/<id>.txt``
    (missing for a clip without captions).
    """

    clip_id: str
    array: np.ndarray
    text_file: Path
    short: bool = False
    spans: list[tuple[str, int, int]] = field(default_factory=list)
    short_spans: int = 0


def read_clips(
    ds: HumanML3DDataset,
    ids: Sequence[str],
    *,
    arrays: Literal["features", "joints"],
    min_frames: int,
    progress: bool = True,
) -> Iterator[SourceClip]:
    """Each clip of ``ids`` of ``ds`` in order, under a progress bar: its ``arrays`` and, for a
    clip of at least ``min_frames`` rows, its captions' spans (see :class:`SourceClip`).

    Raises ``DataError`` for an unreadable array or one holding NaN or inf, and malformed
    caption files. (Features and joints are read one at a time: a layout may hold one joint
    frame more than feature rows, so a span's rows can differ between the two.)
    """
    root = ds.root
    read = ds.features if arrays == "features" else ds.joints
    for clip_id in tqdm(ids, desc=f"reading {root.name}", disable=not progress or None):
        array = read(clip_id)
        if not np.isfinite(array).all():
            raise DataError(
                root / _ARRAY_FOLDER[arrays] / f"{clip_id}.npy",
                f"{arrays} hold NaN or inf; fix or remove the clip",
            )
        clip = SourceClip(clip_id, array, text_file=root / "texts" / f"{clip_id}.txt")
        if len(array) < min_frames:
            clip.short = True
            yield clip
            continue
        if clip.text_file.is_file():
            for cap in ds.captions(clip_id):
                start, end = 0, len(array)
                if not cap.whole_clip:
                    start, end = int(cap.start * FPS), min(int(cap.end * FPS), len(array))
                    if end - start < min_frames:
                        clip.short_spans += 1
                        continue
                clip.spans.append((cap.text, start, end))
        yield clip


class _MemoryRows:
    """``packed.RowWriter``'s calls, into memory (``MotionCorpus.load(cache=False)``)."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []

    def add(self, array: np.ndarray) -> None:
        self.chunks.append(array)

    def array(self) -> np.ndarray:
        return np.concatenate(self.chunks).astype(np.float32, copy=False)


def _read_corpus(
    roots: list[Path], split: str | None, min_frames: int, progress: bool, writer
) -> dict:
    """Read the clips of every source into ``writer`` (one ``add`` per kept clip); the tables
    of a :class:`MotionCorpus` (``offsets``, ``caption_table``, ``caption_starts``,
    ``clip_ids``, ``captions``, ``skipped``, ``uncaptioned``)."""
    lengths: list[int] = []
    clip_ids: list[str] = []
    clip_caps: list[np.ndarray] = []
    caption_index: dict[str, int] = {}
    skipped: dict[str, int] = {}
    uncaptioned: list[str] = []

    def skip(reason: str, count: int = 1) -> None:
        skipped[reason] = skipped.get(reason, 0) + count

    for n, root in enumerate(roots):
        ds, ids = source_split(root, split)
        if not ids:
            raise DataError(root / "new_joint_vecs", "no clips: expected <id>.npy features")
        kept = 0
        for clip in read_clips(
            ds, ids, arrays="features", min_frames=min_frames, progress=progress
        ):
            if clip.short:
                skip("shorter than min_frames")
                continue
            if clip.short_spans:
                skip("caption span shorter than min_frames", clip.short_spans)
            rows = [
                (caption_index.setdefault(text, len(caption_index)), start, end)
                for text, start, end in clip.spans
            ]
            if not rows:
                uncaptioned.append(str(clip.text_file))
            writer.add(clip.array)
            lengths.append(len(clip.array))
            clip_ids.append(f"{n}:{clip.clip_id}")
            clip_caps.append(np.asarray(rows, dtype=np.int64).reshape(-1, 3))
            kept += 1
        if kept == 0:
            raise DataError(
                root,
                f"no usable clips: all {len(ids)} clips have fewer than {min_frames} feature "
                "rows (lower min_frames or check the source)",
            )
    return {
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "caption_table": np.concatenate(clip_caps).astype(np.int64).reshape(-1, 3),
        "caption_starts": np.concatenate([[0], np.cumsum([len(c) for c in clip_caps])]).astype(
            np.int64
        ),
        "clip_ids": clip_ids,
        "captions": list(caption_index),
        "skipped": skipped,
        "uncaptioned": uncaptioned,
    }


def _corpus_pack(
    roots: list[Path], split: str | None, min_frames: int, progress: bool, cache: bool | str | Path
):
    """The pack (``kinemic.packed``) of these sources' features, built when missing."""
    from kinemic.packed import (
        RowWriter,
        default_pack_dir,
        folder_signature,
        open_or_build,
        pack_key,
        write_pack,
    )

    folder = default_pack_dir() if cache is True else Path(cache).expanduser()
    parts = ["", _ARRAY_FOLDER["features"], "texts"]
    key = pack_key(
        {
            "kind": "motion-corpus",
            "split": split,
            "min_frames": min_frames,
            "sources": [[str(r.resolve()), folder_signature(r, parts)] for r in roots],
        }
    )

    def build(tmp: Path) -> None:
        writer = RowWriter(tmp, (FEATURE_DIM,))
        try:
            tables = _read_corpus(roots, split, min_frames, progress, writer)
        finally:
            writer.close()
        index = {k: tables.pop(k) for k in ("offsets", "caption_table", "caption_starts")}
        write_pack(tmp, writer, index, tables)

    return open_or_build(folder, key, build)


@dataclass
class MotionCorpus:
    """Clips of one or more HumanML3D-layout sources, concatenated in memory.

    ``features`` (N, 263) float32 holds every clip's raw (not normalised) feature rows; clip
    ``i`` is ``features[offsets[i]:offsets[i + 1]]``. ``captions`` are the distinct caption texts;
    ``clip_captions[i]`` is a (K, 3) int64 array of (caption index, first row, end row) per
    caption of clip ``i`` (K = 0 for an uncaptioned clip). ``uncaptioned``: the missing or
    unusable caption files of such clips. ``pack``: the folder of the pack whose rows
    ``features`` maps (None: in memory).
    """

    features: np.ndarray
    offsets: np.ndarray
    clip_ids: list[str]
    sources: list[Path]
    captions: list[str]
    clip_captions: list[np.ndarray]
    skipped: dict[str, int] = field(default_factory=dict)
    uncaptioned: list[Path] = field(default_factory=list)
    pack: Path | None = None

    @classmethod
    def load(
        cls,
        sources: Sequence[str | Path],
        *,
        split: str | None = "train",
        min_frames: int = 40,
        allow_uncaptioned: bool = False,
        progress: bool = True,
        cache: bool | str | Path = True,
    ) -> MotionCorpus:
        """Read every source's ``split`` (all clips where the source has no ``<split>.txt``,
        or when ``split`` is None).

        ``cache``: hold the features in a pack (:mod:`kinemic.packed`), memory-mapped and
        shared by every process of the machine, built on first use in the default folder
        (True: ``$KINEMIC_CACHE/corpus``) or the folder given, and reused while the sources'
        files are unchanged; False reads them into this process's memory.

        Raises ``DataError`` for a folder that is not a HumanML3D layout, unreadable or
        non-finite features, malformed caption files, a source without usable clips, and clips
        without captions unless ``allow_uncaptioned`` (those are then trained unconditionally).
        """
        if not sources:
            raise KinemicError("no training sources given: pass at least one HumanML3D folder")
        if min_frames < UNIT_LENGTH:
            raise KinemicError(f"min_frames must be at least {UNIT_LENGTH}, got {min_frames}")
        roots = [Path(s) for s in sources]
        if cache is False:
            writer = _MemoryRows()
            tables = _read_corpus(roots, split, min_frames, progress, writer)
            corpus = cls._from_tables(writer.array(), tables, roots)
        else:
            corpus = cls._from_pack(_corpus_pack(roots, split, min_frames, progress, cache), roots)
        corpus._check_captions(allow_uncaptioned, min_frames)
        return corpus

    @classmethod
    def _from_tables(
        cls, features: np.ndarray, tables: dict, roots: list[Path], pack: Path | None = None
    ) -> MotionCorpus:
        starts = tables["caption_starts"]
        table = tables["caption_table"]
        return cls(
            features=features,
            offsets=tables["offsets"],
            clip_ids=list(tables["clip_ids"]),
            sources=roots,
            captions=list(tables["captions"]),
            clip_captions=[table[a:b] for a, b in pairwise(starts)],
            skipped=dict(tables["skipped"]),
            uncaptioned=[Path(p) for p in tables["uncaptioned"]],
            pack=pack,
        )

    @classmethod
    def _from_pack(cls, pack, roots: list[Path]) -> MotionCorpus:
        return cls._from_tables(pack.rows, {**pack.index, **pack.meta}, roots, pack.folder)

    def _check_captions(self, allow_uncaptioned: bool, min_frames: int) -> None:
        skipped = {k: v for k, v in self.skipped.items() if k != _UNCAPTIONED}
        if self.uncaptioned and not allow_uncaptioned:
            shown = "\n  ".join(str(p) for p in self.uncaptioned[:5])
            raise DataError(
                self.uncaptioned[0].parent,
                f"{len(self.uncaptioned)} clips have no usable caption (missing texts/<id>.txt, "
                f"or only caption spans shorter than {min_frames} rows), e.g.\n  {shown}\n"
                "add captions, or pass allow_uncaptioned=True (--allow-uncaptioned) to train "
                "those clips without text (as the classifier-free, unconditional branch)",
            )
        if self.uncaptioned:
            skipped[_UNCAPTIONED] = len(self.uncaptioned)
        self.skipped = skipped

    def __getstate__(self) -> dict:
        """Pickled (for a loader's worker processes) by the pack's folder, not its rows."""
        state = dict(self.__dict__)
        if self.pack is not None:
            state["features"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.features is None:
            from kinemic.packed import read_pack

            self.features = read_pack(self.pack).rows

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def lengths(self) -> np.ndarray:
        """(C,) feature rows per clip."""
        return np.diff(self.offsets)

    def clip(self, i: int) -> np.ndarray:
        """Raw features (T, 263) of clip ``i`` (a view)."""
        return self.features[self.offsets[i] : self.offsets[i + 1]]

    def fit_normalizer(self, *, eps: float = 1e-8):
        """A :class:`kinemic.features.Normalizer` over every frame of every clip (so clips weigh
        by their length), computed in two float64 passes over chunks (no full float64 copy)."""
        from kinemic.features import Normalizer

        n, chunk = len(self.features), 1 << 18
        total = np.zeros(FEATURE_DIM)
        for a in range(0, n, chunk):
            total += self.features[a : a + chunk].sum(0, dtype=np.float64)
        mean = total / n
        sq = np.zeros(FEATURE_DIM)
        for a in range(0, n, chunk):
            sq += ((self.features[a : a + chunk].astype(np.float64) - mean) ** 2).sum(0)
        std = Normalizer.group_std(np.sqrt(sq / n))
        return Normalizer(mean, np.maximum(std, eps))

    def summary(self) -> str:
        """One line: clips, frames, minutes, captions and what was skipped."""
        minutes = len(self.features) / FPS / 60
        text = (
            f"{len(self)} clips ({len(self.features)} frames, {minutes:.1f} min at 20 fps) from "
            f"{len(self.sources)} source(s), {len(self.captions)} distinct captions"
        )
        if self.skipped:
            text += "; skipped: " + ", ".join(f"{v} {k}" for k, v in self.skipped.items())
        return text


@dataclass
class MotionBatch:
    """A padded batch. Padding follows the valid frames of each row.

    features (B, T, 263) float32, normalised when a normaliser was given, zeros where padded;
    mask (B, T) bool, True = valid frame; lengths (B,) int64; caption (B,) int64 index into
    ``MotionCorpus.captions`` or ``NO_CAPTION``; clip (B,) int64 clip indices.
    """

    features: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    caption: torch.Tensor
    clip: torch.Tensor


def draw_batch(
    corpus: MotionCorpus,
    rng: np.random.Generator,
    batch_size: int,
    *,
    max_frames: int = MAX_FRAMES,
    normalizer=None,
    rows: slice | None = None,
) -> MotionBatch:
    """Draw ``batch_size`` clips uniformly (with replacement), one random caption each, and a
    random crop: the caption's span (the whole clip for whole-clip captions), shortened to at
    most ``max_frames`` rows and to a multiple of 4, at a random offset. Padded to the longest
    crop of the batch. Everything random comes from ``rng``.

    ``rows``: make only these rows of the batch (one process's slice), padded to their
    longest crop. The draws are those of the whole batch, so the slices of all processes are
    the rows of the whole batch, whatever their number; only the slice's features are read."""
    if max_frames < UNIT_LENGTH:
        raise KinemicError(f"max_frames must be at least {UNIT_LENGTH}, got {max_frames}")
    clips = rng.integers(0, len(corpus), size=batch_size)
    spans, caps = [], []
    for c in clips:
        table = corpus.clip_captions[c]
        if len(table):
            idx, start, end = table[rng.integers(0, len(table))]
        else:
            idx, start, end = NO_CAPTION, 0, corpus.offsets[c + 1] - corpus.offsets[c]
        length = min(end - start, max_frames) // UNIT_LENGTH * UNIT_LENGTH
        first = corpus.offsets[c] + start + rng.integers(0, end - start - length + 1)
        spans.append((first, length))
        caps.append(idx)
    if rows is not None:
        clips, spans, caps = clips[rows], spans[rows], caps[rows]
        if not spans:
            raise KinemicError(f"rows {rows} of a batch of {batch_size} are empty")
    longest = max(length for _, length in spans)
    out = np.zeros((len(spans), longest, FEATURE_DIM), dtype=np.float32)
    mask = np.zeros((len(spans), longest), dtype=bool)
    for b, (first, length) in enumerate(spans):
        rows = corpus.features[first : first + length]
        out[b, :length] = rows if normalizer is None else normalizer.normalize(rows)
        mask[b, :length] = True
    return MotionBatch(
        features=torch.from_numpy(out),
        mask=torch.from_numpy(mask),
        lengths=torch.tensor([length for _, length in spans], dtype=torch.int64),
        caption=torch.tensor(caps, dtype=torch.int64),
        clip=torch.from_numpy(clips.astype(np.int64)),
    )


def step_rng(seed: int, step: int, *stream: int) -> np.random.Generator:
    """The generator of training step ``step``: a pure function of ``(seed, step, *stream)``."""
    return np.random.default_rng([seed, step, *stream])
