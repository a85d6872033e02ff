"""Filling the text-embedding cache for a corpus before training (``kinemic text-cache``).

Training embeds every distinct caption of its corpus once, through the disk cache
(:class:`kinemic.text.cache.CachedEncoder`). Under several processes the main process does it
while the others wait at a barrier; for HumanML3D's ~90,000 captions that is minutes on a CPU
thread, long enough for a GPU job's collective timeout to end the run. :func:`fill_text_cache`
does that work beforehand, as a command of its own: it reads the captions of the sources'
split (every caption, span or not, so the set covers what training keeps whatever its
``min_frames``; with ``mirrored`` also their left/right mirrored texts, which T-MOR trains
on), encodes those missing from the cache in batches on the chosen device under a progress
bar, and writes a cache shard per batch (an interrupted fill keeps what it did). Training then
finds every caption in the cache and encodes none.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kinemic.errors import KinemicError


@dataclass
class TextCacheFill:
    """What :func:`fill_text_cache` did: distinct texts of the corpus, those it encoded (the
    rest were cached already), the seconds it took, and the encoder's cache folder."""

    texts: int
    encoded: int
    seconds: float
    folder: Path

    def summary(self) -> str:
        return (
            f"{self.texts} distinct texts: {self.encoded} encoded, "
            f"{self.texts - self.encoded} already cached ({self.seconds:.1f} s); "
            f"cache {self.folder}"
        )


def corpus_texts(
    sources: Sequence[str | Path], *, split: str | None = "train", mirrored: bool = False
) -> list[str]:
    """The distinct caption texts of every source's ``split`` (all clips without
    ``<split>.txt``), in file order; with ``mirrored``, followed by their mirrored texts
    (``kinemic.tmor.inputs.mirror_caption``) that differ. Clips without a caption file are
    passed over (training decides what they mean)."""
    from kinemic.corpus import source_split

    if not sources:
        raise KinemicError("no sources given: pass at least one HumanML3D-layout folder")
    texts: dict[str, None] = {}
    for root in sources:
        ds, ids = source_split(root, split)
        for clip_id in ids:
            if (ds.root / "texts" / f"{clip_id}.txt").is_file():
                texts.update((cap.text, None) for cap in ds.captions(clip_id))
    if mirrored:
        from kinemic.tmor.inputs import mirror_caption

        texts.update((mirror_caption(t), None) for t in list(texts))
    return list(texts)


def fill_text_cache(
    sources: Sequence[str | Path],
    *,
    text_encoder: str = "minilm",
    cache_dir: str | Path | None = None,
    split: str | None = "train",
    mirrored: bool = False,
    batch_size: int = 512,
    device: str | None = "cpu",
    progress: bool = True,
) -> TextCacheFill:
    """Encode the captions of ``sources`` (:func:`corpus_texts`) that the cache of
    ``text_encoder`` under ``cache_dir`` (default ``kinemic.text.default_cache_dir()``, the
    folder training uses) lacks, ``batch_size`` at a time on ``device`` ("cpu", "cuda",
    "cuda:N"; None: a GPU when there is one), one cache shard per batch."""
    from kinemic.devices import resolve_device
    from kinemic.progress import progress_bar
    from kinemic.text import get_text_encoder
    from kinemic.text.cache import CachedEncoder

    if batch_size < 1:
        raise KinemicError(f"batch_size must be >= 1, found {batch_size}")
    start = time.perf_counter()
    texts = corpus_texts(sources, split=split, mirrored=mirrored)
    encoder = get_text_encoder(text_encoder, cache_dir=cache_dir, device=resolve_device(device))
    if not isinstance(encoder, CachedEncoder):
        raise KinemicError(
            f"text encoder {text_encoder!r} is never cached (it is faster than reading a cache): "
            "training computes it directly, there is nothing to fill"
        )
    missing = encoder.missing(texts)
    bar = progress_bar(
        total=len(missing),
        desc=f"encoding captions ({encoder.name})",
        unit="text",
        enabled=progress,
    )
    with bar:
        for a in range(0, len(missing), batch_size):
            chunk = missing[a : a + batch_size]
            encoder.encode(chunk)
            bar.update(len(chunk))
    return TextCacheFill(
        texts=len(texts),
        encoded=len(missing),
        seconds=time.perf_counter() - start,
        folder=encoder.folder,
    )
