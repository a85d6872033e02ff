"""``CachedEncoder``: a disk cache of text embeddings, keyed by (encoder name, exact text).

Layout: ``cache_dir/<encoder name>/*.safetensors``, one *shard* per ``encode`` call that met
new texts. A shard holds ``embeddings`` (M, dim) float32 and, in its metadata, the M texts
(JSON), the encoder name and the dim. Shards are written atomically under unique names, so
processes may fill the same cache at once without locks; each process reads every shard once
and re-lists the folder only when it meets a text it has not seen. When a folder holds more
than ``compact_at`` shards, a reader merges them into one (the merged shard is written before
the old ones are removed, so a concurrent reader never loses an entry).

Why shards and not one file per text: writing ~30k captions as single files (each fsynced)
ran at ~230 files/s here, slower than encoding them; a shard per call costs one write.

A shard that cannot be read is renamed to ``*.corrupt`` with a warning, and its texts are
encoded again. Texts are keys as given: "A man walks." and "a man walks" are two entries.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch

from kinemic.errors import KinemicError
from kinemic.files import write_bytes
from kinemic.text.protocol import TextEncoder, check_texts, default_cache_dir

SHARD_FORMAT = "kinemic-text-cache/1"
SHARD_SUFFIX = ".safetensors"


class CachedEncoder:
    """Wraps ``encoder``; only texts missing from the disk cache reach it. Same ``name`` and
    ``dim`` as ``encoder``; ``encode`` returns (N, dim) float32 CPU.

    ``cache_dir``: the cache root (default ``kinemic.text.default_cache_dir()``); entries go to
    ``cache_dir/<encoder.name>/``. ``hits`` and ``misses`` count texts served from the cache
    and texts sent to the encoder.
    """

    def __init__(
        self, encoder: TextEncoder, cache_dir: str | Path | None = None, *, compact_at: int = 32
    ):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", encoder.name):
            raise KinemicError(
                f"text encoder name {encoder.name!r} cannot name a cache folder; use letters, "
                "digits and . _ + -"
            )
        self.encoder = encoder
        self.name = encoder.name
        self.dim = encoder.dim
        root = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
        self.folder = root / encoder.name
        self.compact_at = compact_at
        self.hits = 0
        self.misses = 0
        self._rows: dict[str, np.ndarray] = {}  # text -> (dim,) float32 view into a shard
        self._loaded: set[str] = set()  # shard file names read (or found unreadable)
        self._scanned = False

    def encode(self, texts: list[str]) -> torch.Tensor:
        """(N, dim) float32 CPU embeddings; new texts are encoded once and stored."""
        texts = check_texts(texts)
        if not self._scanned:
            self._scan()
        missing = [t for t in dict.fromkeys(texts) if t not in self._rows]
        if missing:
            self._scan()  # another process may have stored them meanwhile
            missing = [t for t in missing if t not in self._rows]
        if missing:
            emb = self.encoder.encode(missing)
            emb = emb.detach().float().cpu().numpy()
            if emb.shape != (len(missing), self.dim):
                raise KinemicError(
                    f"text encoder {self.name!r} returned shape {tuple(emb.shape)} for "
                    f"{len(missing)} texts, expected ({len(missing)}, {self.dim})"
                )
            self._write_shard(missing, emb)
            self._add(missing, emb)
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.from_numpy(np.stack([self._rows[t] for t in texts]))

    def __len__(self) -> int:
        """Texts this process knows the embedding of (cached or encoded)."""
        return len(self._rows)

    def missing(self, texts: list[str]) -> list[str]:
        """The distinct texts of ``texts``, in order, that the cache lacks (its folder read
        again first: another process may have filled it)."""
        texts = check_texts(texts)
        self._scan()
        return [t for t in dict.fromkeys(texts) if t not in self._rows]

    def with_max_tokens(self, max_tokens: int) -> CachedEncoder:
        """The wrapped encoder's ``with_max_tokens`` variant, cached under the same root (in
        its own folder: the variant has its own name)."""
        from kinemic.text.protocol import with_max_tokens

        inner = with_max_tokens(self.encoder, max_tokens)
        if inner is self.encoder:
            return self
        return CachedEncoder(inner, self.folder.parent, compact_at=self.compact_at)

    def spec(self) -> dict:
        spec = getattr(self.encoder, "spec", None)
        return spec() if spec is not None else {"name": self.name, "dim": self.dim}

    # -- shards -------------------------------------------------------------------------------

    def _add(self, texts: list[str], emb: np.ndarray) -> None:
        for text, row in zip(texts, emb, strict=True):
            self._rows.setdefault(text, row)

    def _shards(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.name.endswith(SHARD_SUFFIX))

    def _scan(self) -> None:
        """Read the shards not read yet; compact when there are many."""
        self._scanned = True
        for _ in range(2):  # a second listing when a shard vanished (merged meanwhile)
            shards = self._shards()
            vanished = False
            for path in shards:
                if path.name in self._loaded:
                    continue
                try:
                    texts, emb = self._read_shard(path)
                except FileNotFoundError:
                    vanished = True
                    continue
                except Exception as e:  # any damage: safetensors, JSON or shape errors
                    self._quarantine(path, e)
                    self._loaded.add(path.name)
                    continue
                self._loaded.add(path.name)
                self._add(texts, emb)
            if not vanished:
                break
        if len(shards) > self.compact_at:
            self._compact(shards)

    def _read_shard(self, path: Path) -> tuple[list[str], np.ndarray]:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            emb = f.get_tensor("embeddings")
        if meta.get("format") != SHARD_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {SHARD_FORMAT!r}")
        if meta.get("encoder") != self.name:
            raise ValueError(f"written by encoder {meta.get('encoder')!r}, expected {self.name!r}")
        texts = json.loads(meta["texts"])
        if emb.dtype != np.float32 or emb.shape != (len(texts), self.dim):
            raise ValueError(
                f"embeddings {emb.dtype} {emb.shape}, expected float32 ({len(texts)}, {self.dim})"
            )
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("texts metadata is not a list of strings")
        return texts, emb

    def _write_shard(self, texts: list[str], emb: np.ndarray) -> Path:
        from safetensors.numpy import save

        meta = {
            "format": SHARD_FORMAT,
            "encoder": self.name,
            "dim": str(self.dim),
            "texts": json.dumps(texts, ensure_ascii=False),
        }
        name = f"{uuid.uuid4().hex}-{os.getpid()}{SHARD_SUFFIX}"
        path = self.folder / name
        write_bytes(path, save({"embeddings": np.ascontiguousarray(emb, np.float32)}, meta))
        self._loaded.add(name)
        return path

    def _quarantine(self, path: Path, error: Exception) -> None:
        bad = path.with_name(path.name + ".corrupt")
        with contextlib.suppress(OSError):
            os.replace(path, bad)
        warnings.warn(
            f"{path}: unreadable text-embedding cache shard ({type(error).__name__}: {error}); "
            f"moved it to {bad.name}, its texts will be encoded again",
            RuntimeWarning,
            stacklevel=4,
        )

    def _compact(self, shards: list[Path]) -> None:
        merged = [p for p in shards if p.name in self._loaded and p.exists()]
        if len(merged) < 2 or not self._rows:
            return
        texts = list(self._rows)
        self._write_shard(texts, np.stack([self._rows[t] for t in texts]))
        for path in merged:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
