"""Soft positives: the source motions whose captions read most like a target class's caption.

KineMIC pairs each few-shot target clip with a *soft positive*, a source motion drawn from the
top-k motions by text similarity (SPEC §5 step 1). Here:

1. every caption of every source motion is embedded with a kinemic text encoder and
   L2-normalised;
2. the caption vectors of a motion are averaged and the mean re-normalised: one unit vector per
   motion (``motion_embeddings``), cached on disk;
3. each target caption (embedded and normalised the same way) takes the ``k`` motions of
   highest cosine, best first (``soft_positives``); ties go to the earlier id.

Choices, and why:

- **Which source motions**: the ``train`` split of the source corpus by default, the same clips
  the prior was pretrained on (``MotionCorpus.load``), so the source's val/test clips stay
  unseen; all ids when the source has no ``<split>.txt`` (noted), or when ``split=None``.
- **Sub-clip captions** (``caption#tokens#start#end`` with a span): included, with the same
  weight as whole-clip captions (``subclips="include"``). A sub-clip caption is true of a part
  of the motion, and that part is what window mining later cuts out: a long sequence whose
  second half is "runs on the spot" should rank for "a person runs on the spot" even though
  its whole-clip captions also name three other actions. (On the default world the choice
  hardly matters: 62.0% of the top-250 soft positives of the twelve classes contain the class's
  primitive with sub-clip captions included, 61.8% without; one world caption in ten is a
  sub-clip caption.)
  ``subclips="exclude"`` ignores them (a motion whose captions are all sub-clip captions then
  keeps them, counted in ``notes``).
  ``subclips="cut"`` ranks each sub-clip caption's rows as a clip of its own, the *cut clip*
  ``<id>#<n>`` of the id's n-th caption (``kinemic.io.humanml3d.cut_clip_id``; its readers give
  the cut's features, joints and its one caption), as the KineMIC reference does: a motion is
  then ranked by its whole-clip captions alone, and one without any is ranked only through its
  cut clips.
- **Lengths** (``min_frames``, ``max_frames``, inclusive, in feature rows; None: no bound): a
  motion outside the bounds is left out with its cut clips, a cut clip outside them is left
  out (and a cut clip always needs a row); both counted in ``notes``. The reference keeps 40 to
  199 rows (``FilterConfig.reference``).
- **Caption context** (``text_tokens``): the word pieces of each caption the text encoder
  reads for the ranking, source and target captions alike (``kinemic.text.with_max_tokens``;
  the CLIP encoder only). None keeps the encoder's own: MDM's 20 for CLIP, which fine-tuning
  conditions on whatever this is; the reference ranks with CLIP's whole context, 75.
- **Mirrors** (``M<id>``) are separate motions, with their own (mirrored) captions.

With the kinematic filter (``select_soft_positives(..., filter_config=FilterConfig(kind=
"kinematic"))``, ``kinemic.mining.config``) the caption top-``pool`` of each class is re-ranked
by ``kinematic_filter.kinematic_rerank`` (the best T-MOR window's cosine to the class's
few-shot clips, fused with the caption cosine by the motion weight ``weight``, default 0.5)
and the first ``k`` are kept.

The per-motion matrix is cached under ``cache_dir/<encoder name>/<key>.safetensors`` where the
key hashes the encoder name, the sub-clip policy, the ids and the bytes of their caption files
(with cut clips or length bounds, also the bounds and the ranked ids, which depend on lengths):
an edited caption gives a new key, so the stale entry is never read (and is removed when the
new one for the same folder is written). Writes are atomic. Only these caption embeddings are
cached, never a selection, so the filter leaves the cache as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kinemic.constants import FEATURE_DIM
from kinemic.errors import DataError, KinemicError
from kinemic.files import read_npy, write_bytes
from kinemic.io.humanml3d import (
    Caption,
    HumanML3DDataset,
    caption_rows,
    cut_clip_id,
    parse_caption_line,
)
from kinemic.mining.config import (
    DEFAULT_K,
    DEFAULT_WEIGHT,
    FILTERS,
    SUBCLIPS,
    Filter,
    FilterConfig,
    Subclips,
)
from kinemic.text import (
    TextEncoder,
    default_cache_dir,
    encode_all,
    get_text_encoder,
    with_max_tokens,
)

if TYPE_CHECKING:
    import torch

__all__ = [  # DEFAULT_K, FILTERS, Filter, FilterConfig, SUBCLIPS: kinemic.mining.config's
    "CACHE_FORMAT",
    "DEFAULT_K",
    "FILTERS",
    "SUBCLIPS",
    "Filter",
    "FilterConfig",
    "MotionEmbeddings",
    "SoftPositives",
    "as_encoder",
    "cache_root",
    "embed_texts",
    "motion_embeddings",
    "rank",
    "read_source_captions",
    "select_soft_positives",
    "soft_positives",
    "source_ids",
]

CACHE_FORMAT = "kinemic-motion-text/1"
ENCODE_BATCH = 512


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where per-motion embeddings are cached: ``cache_dir``, else ``motion-text/`` beside the
    text-embedding cache (``$KINEMIC_CACHE/motion-text``, default ``~/.cache/kinemic/...``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return default_cache_dir().parent / "motion-text"


def as_encoder(encoder: TextEncoder | str, text_tokens: int | None = None) -> TextEncoder:
    """A text encoder, or a name for ``kinemic.text.get_text_encoder`` ("minilm", ...); with
    ``text_tokens``, reading that many word pieces per caption (``with_max_tokens``)."""
    encoder = get_text_encoder(encoder) if isinstance(encoder, str) else encoder
    return encoder if text_tokens is None else with_max_tokens(encoder, text_tokens)


def source_ids(source_dir: str | Path, split: str | None = "train") -> tuple[list[str], str | None]:
    """The source motions soft positives are drawn from, and the split actually used: the ids
    of ``<split>.txt``, or every id (split None) when that file is absent or ``split`` is None."""
    ds = HumanML3DDataset(source_dir)
    if split is not None and (ds.root / f"{split}.txt").is_file():
        ids = ds.split(split)
        used: str | None = split
    else:
        ids, used = ds.ids(), None
    if not ids:
        where = ds.root / (f"{split}.txt" if used else "new_joint_vecs")
        raise DataError(where, "no source motions: soft positives need at least one captioned clip")
    return ids, used


def read_source_captions(root: Path, ids: list[str]) -> tuple[list[list[Caption]], str]:
    """The captions of each id and a hash of the caption files' bytes (with the ids). A missing
    or empty caption file is a ``DataError`` naming it."""
    digest = hashlib.sha256()
    out = []
    for clip_id in ids:
        path = root / "texts" / f"{clip_id}.txt"
        if not path.is_file():
            raise DataError(
                path,
                f"missing file: source motion {clip_id!r} has no captions, and soft "
                "positives are found by caption (caption it, or leave it out of the split)",
            )
        raw = path.read_bytes()
        digest.update(clip_id.encode() + b"\0" + raw + b"\0")
        lines = raw.decode("utf-8").splitlines()
        caps = [
            parse_caption_line(line, path=path, line_no=n)
            for n, line in enumerate(lines, start=1)
            if line.strip()
        ]
        if not caps:
            raise DataError(path, f"no caption lines for source motion {clip_id!r}")
        out.append(caps)
    return out, digest.hexdigest()


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def embed_texts(encoder: TextEncoder, texts: list[str], *, progress: bool = False) -> np.ndarray:
    """(N, dim) float32 unit rows; each distinct text is sent to the encoder once, shortest
    first (texts of like length pad less: 16,000 world captions encode 20% faster)."""
    unique = sorted(dict.fromkeys(texts), key=len)
    rows = encode_all(
        encoder, unique, chunk=ENCODE_BATCH, progress=progress, desc="embedding captions"
    ).numpy()  # (U, dim) float32
    where = {t: n for n, t in enumerate(unique)}
    return _unit(rows[[where[t] for t in texts]] if texts else rows[:0])


@dataclass
class MotionEmbeddings:
    """One unit vector per ranked source id (a motion, or with ``subclips`` "cut" also a cut
    clip): the re-normalised mean of its caption vectors.

    ``embeddings`` (N, dim) float32, row i for ``source_ids[i]``; ``split`` is the split used
    (None: every id); ``key`` the cache key; ``cached`` whether it was read from disk."""

    source_ids: list[str]
    embeddings: np.ndarray
    encoder: str
    split: str | None
    key: str
    cached: bool = False
    notes: list[str] = field(default_factory=list)
    subclips: Subclips = "include"

    def counted(self) -> str:
        """What the ids are, for notes: "motions of split 'train'", "motions and cut clips of
        the source"."""
        what = "motions and cut clips" if self.subclips == "cut" else "motions"
        return f"{what} of " + (f"split {self.split!r}" if self.split else "the source")


def motion_embeddings(
    source_dir: str | Path,
    *,
    encoder: TextEncoder | str = "minilm",
    cache_dir: str | Path | None = None,
    split: str | None = "train",
    subclips: Subclips = "include",
    min_frames: int | None = None,
    max_frames: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> MotionEmbeddings:
    """Caption embeddings of the motions of a HumanML3D-layout source, and with
    ``subclips="cut"`` of its cut clips: one unit row per ranked id (see the module
    docstring; ``source_items`` says which ids and captions)."""
    if subclips not in SUBCLIPS:
        raise KinemicError(f"subclips must be one of {', '.join(SUBCLIPS)}, got {subclips!r}")
    encoder = as_encoder(encoder)
    root = Path(source_dir)
    ids, used = source_ids(root, split)
    notes = [] if used == split else [f"{root} has no {split}.txt: all {len(ids)} motions used"]
    captions, content = read_source_captions(root, ids)
    items, texts, item_notes = source_items(
        root, ids, captions, subclips=subclips, min_frames=min_frames, max_frames=max_frames
    )
    notes += item_notes
    recipe = f"{CACHE_FORMAT}\0{encoder.name}\0{encoder.dim}\0{subclips}\0{content}"
    frames = [min_frames, max_frames]
    if subclips == "cut" or frames != [None, None]:  # the ranked ids depend on lengths too
        recipe += f"\0{frames}\0" + "\n".join(items)
    key = hashlib.sha256(recipe.encode()).hexdigest()[:32]
    path = cache_root(cache_dir) / encoder.name / f"{key}.safetensors"
    if cache and path.is_file():
        found = _read_cache(path, items, encoder.dim)
        if found is not None:
            return MotionEmbeddings(items, found, encoder.name, used, key, True, notes, subclips)

    owner = np.repeat(np.arange(len(items)), [len(t) for t in texts])
    emb = embed_texts(encoder, [t for group in texts for t in group], progress=progress)
    sums = np.zeros((len(items), encoder.dim), dtype=np.float64)
    np.add.at(sums, owner, emb)
    # The mean of the caption vectors, re-normalised: normalising the sum gives the same.
    matrix = _unit(sums).astype(np.float32)
    if cache:
        _write_cache(path, matrix, items, encoder.name, key, root, used, subclips, frames)
    return MotionEmbeddings(items, matrix, encoder.name, used, key, False, notes, subclips)


def source_items(
    root: Path,
    ids: list[str],
    captions: list[list[Caption]],
    *,
    subclips: Subclips = "include",
    min_frames: int | None = None,
    max_frames: int | None = None,
) -> tuple[list[str], list[list[str]], list[str]]:
    """What is ranked: (ids, the caption texts of each, notes). The motions ``ids`` of
    ``root`` (``captions[i]`` those of ``ids[i]``, as ``read_source_captions`` gives them) with
    their captions as ``subclips`` says; with "cut", a motion keeps its whole-clip captions
    (and is ranked only if it has one) and each sub-clip caption n of motion ``<id>`` adds the
    cut clip ``<id>#<n>`` with that caption alone. Motions and cut clips with fewer than
    ``min_frames`` or more than ``max_frames`` feature rows are left out (a motion with its cut
    clips; None: no bound, but a cut clip needs a row); the notes count what was left out."""
    bounded = min_frames is not None or max_frames is not None
    low = 1 if min_frames is None else min_frames
    high = math.inf if max_frames is None else max_frames
    span = f"{low}..{max_frames if max_frames is not None else ''} feature rows"
    items: list[str] = []
    texts: list[list[str]] = []
    outside = only_subclips = cuts = cuts_outside = 0
    for clip_id, caps in zip(ids, captions, strict=True):
        rows = _feature_rows(root, clip_id) if bounded or subclips == "cut" else 0
        if bounded and not low <= rows <= high:
            outside += 1
            continue
        whole = [c.text for c in caps if c.whole_clip]
        if subclips == "cut":
            if whole:
                items.append(clip_id)
                texts.append(whole)
            else:
                only_subclips += 1
            for n, cap in enumerate(caps, start=1):
                if cap.whole_clip:
                    continue
                first, end = caption_rows(cap, rows)
                if low <= end - first <= high:
                    items.append(cut_clip_id(clip_id, n))
                    texts.append([cap.text])
                    cuts += 1
                else:
                    cuts_outside += 1
            continue
        chosen = whole if subclips == "exclude" else [c.text for c in caps]
        if not chosen:  # every caption is a sub-clip caption: keep them rather than drop it
            chosen, only_subclips = [c.text for c in caps], only_subclips + 1
        items.append(clip_id)
        texts.append(chosen)
    notes = []
    if outside:
        with_cuts = " with their cut clips" if subclips == "cut" else ""
        notes.append(f"{outside} motions outside {span} left out{with_cuts}")
    if subclips == "cut":
        notes.append(
            f"{cuts} sub-clip captions ranked as cut clips of their own"
            + (f"; {cuts_outside} more cut clips outside {span} left out" if cuts_outside else "")
        )
        if only_subclips:
            notes.append(
                f"{only_subclips} motions have no whole-clip caption: ranked only through "
                "their cut clips"
            )
    elif only_subclips:
        notes.append(f"{only_subclips} motions have only sub-clip captions; those were kept")
    if not items:
        raise DataError(root, f"no source motion or cut clip left to rank ({'; '.join(notes)})")
    return items, texts, notes


def _feature_rows(root: Path, clip_id: str) -> int:
    """The feature rows of a clip, read from its file's header (the array is mapped, not read)."""
    path = root / "new_joint_vecs" / f"{clip_id}.npy"
    shape = read_npy(path, mmap=True).shape
    if len(shape) != 2 or shape[1] != FEATURE_DIM or shape[0] == 0:
        raise DataError(path, f"wrong shape: expected (T, 263), found {shape}")
    return int(shape[0])


def _read_cache(path: Path, ids: list[str], dim: int) -> np.ndarray | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            emb = f.get_tensor("embeddings")
        if meta.get("format") != CACHE_FORMAT or json.loads(meta["ids"]) != ids:
            raise ValueError("written for other ids or by another format")
        if emb.dtype != np.float32 or emb.shape != (len(ids), dim):
            raise ValueError(f"embeddings {emb.dtype} {emb.shape}, expected ({len(ids)}, {dim})")
    except Exception as e:  # any damage: recompute and overwrite
        warnings.warn(
            f"{path}: unusable cache entry ({e}); recomputing it", RuntimeWarning, stacklevel=3
        )
        return None
    return emb


def _write_cache(
    path: Path,
    matrix: np.ndarray,
    ids: list[str],
    encoder: str,
    key: str,
    root: Path,
    split: str | None,
    subclips: str,
    frames: list[int | None],
) -> None:
    from safetensors import safe_open
    from safetensors.numpy import save

    source = str(root.resolve())
    meta = {
        "format": CACHE_FORMAT,
        "encoder": encoder,
        "key": key,
        "source": source,
        "split": json.dumps(split),
        "subclips": subclips,
        "frames": json.dumps(frames),
        "ids": json.dumps(ids),
    }
    write_bytes(path, save({"embeddings": matrix}, meta))
    # Entries of earlier caption versions of this same folder are stale now: remove them.
    for other in path.parent.glob("*.safetensors"):
        if other == path:
            continue
        with contextlib.suppress(Exception):
            with safe_open(str(other), framework="numpy") as f:
                old = f.metadata() or {}
            unbounded = json.dumps([None, None])  # entries from before the bounds
            same = (old.get("source"), old.get("split"), old.get("subclips"))
            if same == (source, meta["split"], subclips) and (
                old.get("frames", unbounded) == meta["frames"]
            ):
                other.unlink()


@dataclass
class SoftPositives:
    """The top-k source motions of each target caption.

    ``indices`` (C, k) int64 into ``source_ids`` and ``scores`` (C, k) float32 cosine
    similarities, best first; row c belongs to ``captions[c]``. ``split`` is the source split
    drawn from (None: every id); ``notes`` say what was adjusted (k capped, split absent).
    ``filter`` records the selection: ``{"name": "none"}`` (caption ranking), or
    ``{"name": "kinematic", "pool": P, "encoder": T-MOR folder or None for the shipped one,
    "weight": w}``, and then ``scores`` are the ranking keys (``mining.kinematic_filter``: the best
    window cosine to the class prototype for w = 1, else its fusion with the caption cosine).
    A record without ``"weight"`` comes from before the option and means w = 1. Either record
    adds the source options not at their defaults (``FilterConfig.source_options``: e.g.
    ``"subclips": "cut"``); then ``source_ids`` may hold cut clips ``<id>#<n>``."""

    captions: list[str]
    source_ids: list[str]
    indices: np.ndarray
    scores: np.ndarray
    encoder: str
    split: str | None
    notes: list[str] = field(default_factory=list)
    filter: dict[str, Any] = field(default_factory=lambda: {"name": "none"})

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def ids(self, c: int) -> list[str]:
        """The soft positives of caption ``c``, best first."""
        return [self.source_ids[i] for i in self.indices[c]]

    def to_json(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "split": self.split,
            "k": self.k,
            "notes": self.notes,
            "filter": self.filter,
            "classes": [
                {
                    "caption": cap,
                    "ids": self.ids(c),
                    "scores": [round(float(s), 5) for s in self.scores[c]],
                }
                for c, cap in enumerate(self.captions)
            ],
        }


def rank(queries: np.ndarray, motions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows of ``motions`` (N, dim) by cosine with each of ``queries`` (C, dim), both
    unit rows: (indices (C, k) int64, scores (C, k) float32), best first, ties to the lower
    index."""
    scores = queries.astype(np.float32) @ motions.astype(np.float32).T  # (C, N)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64), np.take_along_axis(scores, order, axis=1)


def soft_positives(
    source_dir: str | Path,
    captions: list[str],
    *,
    encoder: TextEncoder | str = "minilm",
    k: int = DEFAULT_K,
    cache_dir: str | Path | None = None,
    split: str | None = "train",
    subclips: Subclips = "include",
    min_frames: int | None = None,
    max_frames: int | None = None,
    text_tokens: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> SoftPositives:
    """The ``k`` source motions (of ``split``) whose captions match each of ``captions`` best;
    ``subclips``, ``min_frames``, ``max_frames`` say what is ranked (``source_items``) and
    ``text_tokens`` the caption context (see the module docstring).

    ``k`` larger than the number ranked is capped at it (noted in ``.notes``). Raises
    ``KinemicError`` for no captions, an empty caption or k < 1, and ``DataError`` naming the
    file for a source motion without captions.
    """
    captions = _checked(captions, k)
    encoder = as_encoder(encoder, text_tokens)
    motions = motion_embeddings(
        source_dir,
        encoder=encoder,
        cache_dir=cache_dir,
        split=split,
        subclips=subclips,
        min_frames=min_frames,
        max_frames=max_frames,
        cache=cache,
        progress=progress,
    )
    return _ranked(motions, captions, encoder, k)


def _checked(captions: list[str], k: int) -> list[str]:
    """The target captions as a list, or a KinemicError for what is wrong with them or k."""
    if isinstance(captions, str):
        raise KinemicError(f"captions must be a list of strings, not one string ({captions!r})")
    captions = list(captions)
    if not captions:
        raise KinemicError("no target captions given: soft positives need at least one")
    for i, cap in enumerate(captions):
        if not isinstance(cap, str) or not cap.strip():
            raise KinemicError(f"target caption {i} is empty ({cap!r}): every class needs a text")
    if k < 1:
        raise KinemicError(f"k must be at least 1, got {k}")
    return captions


def _ranked(
    motions: MotionEmbeddings, captions: list[str], encoder: TextEncoder, k: int
) -> SoftPositives:
    """The top ``k`` of ``motions`` for each caption (k capped at their number, noted)."""
    notes = list(motions.notes)
    n = len(motions.source_ids)
    if k > n:
        notes.append(f"k={k} capped at the {n} {motions.counted()}")
        k = n
    queries = embed_texts(encoder, [c.strip() for c in captions])  # (C, dim)
    indices, scores = rank(queries, motions.embeddings, k)
    return SoftPositives(
        captions, motions.source_ids, indices, scores, motions.encoder, motions.split, notes
    )


def _source_embeddings(
    source_dir: str | Path,
    how: FilterConfig,
    encoder: TextEncoder,
    cache_dir: str | Path | None,
    split: str | None,
    progress: bool,
) -> MotionEmbeddings:
    """``motion_embeddings`` of what ``how``'s source options rank."""
    return motion_embeddings(
        source_dir,
        encoder=encoder,
        cache_dir=cache_dir,
        split=split,
        subclips=how.subclips,
        min_frames=how.min_frames,
        max_frames=how.max_frames,
        progress=progress,
    )


def select_soft_positives(
    source_dir: str | Path,
    captions: list[str],
    *,
    target: str | Path,
    fewshot_ids: list[list[str]],
    encoder: TextEncoder | str = "minilm",
    k: int = DEFAULT_K,
    filter_config: FilterConfig | None = None,
    cache_dir: str | Path | None = None,
    split: str | None = "train",
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> SoftPositives:
    """The soft positives of each caption, selected as ``filter_config`` says (None: the
    caption ranking, ``FilterConfig()``): the caption top-``k`` (kind "none"), or
    ("kinematic") the caption top-``pool`` (default 2k; both capped at the source size)
    re-ranked by the kinematic filter against class c's few-shot clips (``fewshot_ids[c]``,
    joints read from ``target``) with the T-MOR ``encoder`` of the config (None: the shipped
    one), of which the first ``k`` are kept. The ranking key is the config's ``weight``
    (default 0.5) times the standardised motion score plus the rest times the standardised
    caption score (``kinematic_filter.fused_scores``); 1 ranks by motion alone. The T-MOR
    encoder runs on ``device``. For either kind, the config's source options (``subclips``,
    ``min_frames``, ``max_frames``, ``text_tokens``) say what is ranked and how much of each
    caption ``encoder`` reads for it; the record (``.filter``) adds those not at their
    defaults."""
    how = FilterConfig() if filter_config is None else filter_config
    problems = how.problems(k)
    if problems:
        raise KinemicError("soft positives: " + "; ".join(problems))
    captions = _checked(captions, k)
    encoder = as_encoder(encoder, how.text_tokens)
    if how.kind == "none":
        text = _ranked(
            _source_embeddings(source_dir, how, encoder, cache_dir, split, progress),
            captions,
            encoder,
            k,
        )
        text.filter = {"name": "none", **how.source_options()}
        return text
    from kinemic.io.ntu_vibe import NTUVibeDataset
    from kinemic.mining.kinematic_filter import kinematic_rerank
    from kinemic.tmor.encoder import SHIPPED_TMOR, load_tmor

    if len(fewshot_ids) != len(captions):
        raise KinemicError(
            f"{len(fewshot_ids)} classes of few-shot clips for {len(captions)} captions"
        )
    tmor = load_tmor(how.encoder, device=device)  # before any work: a wrong folder fails at once
    motions = _source_embeddings(source_dir, how, encoder, cache_dir, split, progress)
    n = len(motions.source_ids)
    wanted = 2 * k if how.pool is None else how.pool
    pool = min(wanted, n)
    text = _ranked(motions, captions, encoder, pool)
    ds = NTUVibeDataset(target)
    joints = [[ds.joints(i) for i in ids] for ids in fewshot_ids]
    weight = DEFAULT_WEIGHT if how.weight is None else float(how.weight)
    order, scores = kinematic_rerank(
        tmor,
        source_dir,
        text.source_ids,
        text.indices,
        joints,
        text_scores=text.scores,
        weight=weight,
        progress=progress,
    )
    keep = min(k, pool)
    notes = list(text.notes)
    if pool < wanted:
        notes.append(f"filter pool {wanted} capped at the {n} {motions.counted()}")
    if keep < k:
        notes.append(f"k={k} capped at the {n} {motions.counted()}")
    shipped = Path(tmor.path).resolve() == SHIPPED_TMOR.resolve()
    record = {
        "name": "kinematic",
        "pool": pool,
        "encoder": None if shipped else str(Path(tmor.path).resolve()),
        "weight": weight,
        **how.source_options(),
    }
    return SoftPositives(
        list(captions),
        text.source_ids,
        order[:, :keep],
        scores[:, :keep].astype(np.float32),
        text.encoder,
        text.split,
        notes,
        record,
    )
