"""What every text encoder is: ``encode(texts) -> (N, dim)`` float32 CPU tensor, ``dim``, ``name``.

``name`` is a stable id ("minilm-l6-v2", "clip-vit-b32", "hash-64"): checkpoints store it and the
disk cache keys embeddings by it, so two encoders share a name only when they give the same
embeddings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from kinemic.errors import KinemicError


@runtime_checkable
class TextEncoder(Protocol):
    """A frozen sentence encoder. ``encode`` returns (N, dim) float32 on the CPU, row i for
    ``texts[i]``; an empty list gives (0, dim)."""

    name: str
    dim: int

    def encode(self, texts: list[str]) -> torch.Tensor: ...


def with_max_tokens(encoder: TextEncoder, max_tokens: int) -> TextEncoder:
    """``encoder`` reading at most ``max_tokens`` word pieces of each caption (its
    ``with_max_tokens``; the CLIP encoder and a cache around it have one). Raises
    ``KinemicError`` for an encoder without a settable caption context."""
    make = getattr(encoder, "with_max_tokens", None)
    if make is None:
        raise KinemicError(
            f"text encoder {encoder.name!r} has no caption context to set (to {max_tokens} "
            "word pieces): only the CLIP encoder ('clip') has one; MDM conditions on 20 word "
            "pieces, the KineMIC reference finds soft positives with 75. The setting comes from "
            "the soft-positive selection (`filter.text_tokens`, which the `paper` recipe sets for "
            "an imported MDM's CLIP): with this encoder use the `cpu` recipe or leave it unset"
        )
    return make(max_tokens)


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, or a ``TypeError`` that says which item is not a string."""
    if isinstance(texts, str | bytes):
        raise TypeError(
            f"encode takes a list of strings, not a single {type(texts).__name__}: "
            f"write encode([text]) for one text ({texts[:40]!r})"
        )
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(f"encode takes a list of strings, got {type(texts).__name__}") from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"encode takes a list of strings, but item {i} is a {type(text).__name__} "
                f"({text!r:.60}); convert captions to str first"
            )
    return texts


def default_cache_dir() -> Path:
    """Where embeddings are cached when no folder is given: ``$KINEMIC_CACHE/text`` when
    ``KINEMIC_CACHE`` is set, else ``$XDG_CACHE_HOME/kinemic/text`` (``~/.cache/kinemic/text``)."""
    root = os.environ.get("KINEMIC_CACHE")
    if root:
        return Path(root).expanduser() / "text"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "kinemic" / "text"
