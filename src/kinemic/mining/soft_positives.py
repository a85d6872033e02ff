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
- **Mirrors** (``M<id>``) are separate motions, with their own (mirrored) captions.

With the kinematic filter (``select_soft_positives(..., filter_config=FilterConfig(kind=
"kinematic"))``, ``kinemic.mining.config``) the caption top-``pool`` of each class is re-ranked
by ``kinematic_filter.kinematic_rerank`` (the best T-MOR window's cosine to the class's
few-shot clips, fused with the caption cosine by the motion weight ``weight``, default 0.5)
and the first ``k`` are kept.

The per-motion matrix is cached under ``cache_dir/<encoder name>/<key>.safetensors`` where the
key hashes the encoder name, the sub-clip policy, the ids and the bytes of their caption files:
an edited caption gives a new key, so the stale entry is never read (and is removed when the
new one for the same folder is written). Writes are atomic. Only these caption embeddings are
cached, never a selection, so the filter leaves the cache as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kinemic.errors import DataError, KinemicError
from kinemic.files import write_bytes
from kinemic.io.humanml3d import Caption, HumanML3DDataset, parse_caption_line
from kinemic.mining.config import DEFAULT_K, DEFAULT_WEIGHT, FILTERS, Filter, FilterConfig
from kinemic.text import TextEncoder, default_cache_dir, encode_all, get_text_encoder

if TYPE_CHECKING:
    import torch

__all__ = [  # DEFAULT_K, FILTERS, Filter, FilterConfig: kinemic.mining.config's, also here
    "CACHE_FORMAT",
    "DEFAULT_K",
    "FILTERS",
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

Subclips = Literal["include", "exclude"]
CACHE_FORMAT = "kinemic-motion-text/1"
ENCODE_BATCH = 512


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where per-motion embeddings are cached: ``cache_dir``, else ``motion-text/`` beside the
    text-embedding cache (``$KINEMIC_CACHE/motion-text``, default ``~/.cache/kinemic/...``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return default_cache_dir().parent / "motion-text"


def as_encoder(encoder: TextEncoder | str) -> TextEncoder:
    """A text encoder, or a name for ``kinemic.text.get_text_encoder`` ("minilm", ...)."""
    return get_text_encoder(encoder) if isinstance(encoder, str) else encoder


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
    """One unit vector per source motion: the re-normalised mean of its caption vectors.

    ``embeddings`` (N, dim) float32, row i for ``source_ids[i]``; ``split`` is the split used
    (None: every id); ``key`` the cache key; ``cached`` whether it was read from disk."""

    source_ids: list[str]
    embeddings: np.ndarray
    encoder: str
    split: str | None
    key: str
    cached: bool = False
    notes: list[str] = field(default_factory=list)


def motion_embeddings(
    source_dir: str | Path,
    *,
    encoder: TextEncoder | str = "minilm",
    cache_dir: str | Path | None = None,
    split: str | None = "train",
    subclips: Subclips = "include",
    cache: bool = True,
    progress: bool = True,
) -> MotionEmbeddings:
    """Per-motion caption embeddings of a HumanML3D-layout source (see the module docstring)."""
    if subclips not in ("include", "exclude"):
        raise KinemicError(f"subclips must be 'include' or 'exclude', got {subclips!r}")
    encoder = as_encoder(encoder)
    root = Path(source_dir)
    ids, used = source_ids(root, split)
    notes = [] if used == split else [f"{root} has no {split}.txt: all {len(ids)} motions used"]
    captions, content = read_source_captions(root, ids)
    key = hashlib.sha256(
        f"{CACHE_FORMAT}\0{encoder.name}\0{encoder.dim}\0{subclips}\0{content}".encode()
    ).hexdigest()[:32]
    path = cache_root(cache_dir) / encoder.name / f"{key}.safetensors"
    if cache and path.is_file():
        found = _read_cache(path, ids, encoder.dim)
        if found is not None:
            return MotionEmbeddings(ids, found, encoder.name, used, key, True, notes)

    texts, owner = [], []
    only_subclips = 0
    for i, caps in enumerate(captions):
        chosen = [c for c in caps if c.whole_clip] if subclips == "exclude" else caps
        if not chosen:  # every caption is a sub-clip caption: keep them rather than drop it
            chosen, only_subclips = caps, only_subclips + 1
        texts += [c.text for c in chosen]
        owner += [i] * len(chosen)
    if only_subclips:
        notes.append(f"{only_subclips} motions have only sub-clip captions; those were kept")
    emb = embed_texts(encoder, texts, progress=progress)  # (M, dim)
    sums = np.zeros((len(ids), encoder.dim), dtype=np.float64)
    np.add.at(sums, np.asarray(owner), emb)
    # The mean of the caption vectors, re-normalised: normalising the sum gives the same.
    matrix = _unit(sums).astype(np.float32)
    if cache:
        _write_cache(path, matrix, ids, encoder.name, key, root, used, subclips)
    return MotionEmbeddings(ids, matrix, encoder.name, used, key, False, notes)


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
            same = (old.get("source"), old.get("split"), old.get("subclips"))
            if same == (source, meta["split"], subclips):
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
    A record without ``"weight"`` comes from before the option and means w = 1."""

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
    cache: bool = True,
    progress: bool = True,
) -> SoftPositives:
    """The ``k`` source motions (of ``split``) whose captions match each of ``captions`` best.

    ``k`` larger than the number of source motions is capped at it (noted in ``.notes``).
    Raises ``KinemicError`` for no captions, an empty caption or k < 1, and ``DataError``
    naming the file for a source motion without captions.
    """
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
    encoder = as_encoder(encoder)
    motions = motion_embeddings(
        source_dir,
        encoder=encoder,
        cache_dir=cache_dir,
        split=split,
        subclips=subclips,
        cache=cache,
        progress=progress,
    )
    notes = list(motions.notes)
    n = len(motions.source_ids)
    if k > n:
        where = f"split {motions.split!r}" if motions.split else "the source"
        notes.append(f"k={k} capped at the {n} motions of {where}")
        k = n
    queries = embed_texts(encoder, [c.strip() for c in captions])  # (C, dim)
    indices, scores = rank(queries, motions.embeddings, k)
    return SoftPositives(
        captions, motions.source_ids, indices, scores, motions.encoder, motions.split, notes
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
    encoder runs on ``device``."""
    how = FilterConfig() if filter_config is None else filter_config
    problems = how.problems(k)
    if problems:
        raise KinemicError("soft positives: " + "; ".join(problems))
    if how.kind == "none" or k < 1:  # soft_positives refuses k < 1
        return soft_positives(
            source_dir,
            captions,
            encoder=encoder,
            k=k,
            cache_dir=cache_dir,
            split=split,
            progress=progress,
        )
    from kinemic.io.ntu_vibe import NTUVibeDataset
    from kinemic.mining.kinematic_filter import kinematic_rerank
    from kinemic.tmor.encoder import SHIPPED_TMOR, load_tmor

    if len(fewshot_ids) != len(captions):
        raise KinemicError(
            f"{len(fewshot_ids)} classes of few-shot clips for {len(captions)} captions"
        )
    tmor = load_tmor(how.encoder, device=device)  # before any work: a wrong folder fails at once
    n = len(source_ids(source_dir, split)[0])
    wanted = 2 * k if how.pool is None else how.pool
    pool = min(wanted, n)
    text = soft_positives(
        source_dir,
        captions,
        encoder=encoder,
        k=pool,
        cache_dir=cache_dir,
        split=split,
        progress=progress,
    )
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
    where = f"split {text.split!r}" if text.split else "the source"
    notes = list(text.notes)
    if pool < wanted:
        notes.append(f"filter pool {wanted} capped at the {n} motions of {where}")
    if keep < k:
        notes.append(f"k={k} capped at the {n} motions of {where}")
    shipped = Path(tmor.path).resolve() == SHIPPED_TMOR.resolve()
    record = {
        "name": "kinematic",
        "pool": pool,
        "encoder": None if shipped else str(Path(tmor.path).resolve()),
        "weight": weight,
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
