"""``HashEncoder``: a tiny deterministic stand-in for a sentence encoder, for fast tests.

Not for real use: it knows nothing about meaning. Each lowercase word maps to a fixed
pseudo-random unit-variance vector seeded by its CRC-32; a text is the L2-normalised sum of its
words' vectors (a bag of words), so the same words in any order give the same embedding and a
text with no words gives zeros.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import torch

from kinemic.text.protocol import check_texts

_WORD = re.compile(r"[a-z0-9']+")


class HashEncoder:
    """Bag of hashed words -> (N, dim) float32, L2-normalised. Name ``hash-{dim}``."""

    def __init__(self, *, dim: int = 64):
        if dim < 1:
            raise ValueError(f"HashEncoder dim must be >= 1, got {dim}")
        self.dim = dim
        self.name = f"hash-{dim}"
        self._words: dict[str, np.ndarray] = {}

    def _word(self, word: str) -> np.ndarray:
        vec = self._words.get(word)
        if vec is None:
            rng = np.random.default_rng(zlib.crc32(word.encode("utf-8")))
            vec = self._words[word] = rng.standard_normal(self.dim)
        return vec

    def encode(self, texts: list[str]) -> torch.Tensor:
        """(N, dim) float32 CPU; rows have unit norm (zeros for a text without words)."""
        texts = check_texts(texts)
        out = np.zeros((len(texts), self.dim))
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[i] += self._word(word)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = np.divide(out, norms, out=out, where=norms > 0)
        return torch.from_numpy(out.astype(np.float32))

    def spec(self) -> dict:
        return {"name": self.name, "dim": self.dim}
