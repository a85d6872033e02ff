"""Text↔motion retrieval (``kinemic tmor retrieve``) on a captioned HumanML3D-layout split.

Each clip of the split gives one pair: its joints and its first whole-clip caption (a clip
with only sub-clip captions gives its first caption's span). Text→motion ranks the clips for
each caption, motion→text the captions for each clip; recall at 1/5/10 and the median rank
are reported

- over the whole split (every clip and caption compete), and
- in batches of 32 pairs, as in the HumanML3D evaluation protocol (seeded shuffle).

Captions of a generated corpus repeat ("a person jumps up" twice in a split): retrieving the
twin is then no error a model can avoid. Each figure is therefore also given with
near-duplicates counted as correct (``*_dedup``: frozen-text cosine ≥ ``dup_threshold``, as
TMR's thresholded protocol does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from kinemic.constants import FPS
from kinemic.errors import DataError, KinemicError
from kinemic.io.humanml3d import HumanML3DDataset
from kinemic.tmor.metrics import batched_recall, retrieval_metrics


@dataclass
class RetrievalReport:
    """Retrieval figures (percent; ranks 1-based). Each block: {"t2m": {...}, "m2t": {...}}."""

    source: str
    split: str
    pairs: int
    whole: dict
    batches_of_32: dict
    whole_dedup: dict
    batches_of_32_dedup: dict
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        rows = [
            "| protocol | direction | R@1 | R@5 | R@10 | median rank |",
            "|---|---|---:|---:|---:|---:|",
        ]
        blocks = {
            "whole split": self.whole,
            "batches of 32": self.batches_of_32,
            "whole, near-duplicates correct": self.whole_dedup,
            "batches of 32, near-duplicates correct": self.batches_of_32_dedup,
        }
        for name, block in blocks.items():
            for d in ("t2m", "m2t"):
                b = block[d]
                rows.append(
                    f"| {name} | {d} | {b['R@1']:.1f} | {b['R@5']:.1f} | {b['R@10']:.1f} | "
                    f"{b['median_rank']:.1f} |"
                )
        return "\n".join(rows)


def retrieval_pairs(
    source: str | Path, split: str | None = "test"
) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(joint clips, captions, clip ids): one pair per clip of ``split`` (all clips without a
    ``<split>.txt``)."""
    root = Path(source)
    ds = HumanML3DDataset(root)
    ids = ds.split(split) if split and (root / f"{split}.txt").is_file() else ds.ids()
    clips, captions, kept = [], [], []
    for clip_id in ids:
        if not (root / "texts" / f"{clip_id}.txt").is_file():
            continue
        caps = ds.captions(clip_id)
        joints = ds.joints(clip_id)
        whole = [c for c in caps if c.whole_clip]
        cap = whole[0] if whole else caps[0]
        if not cap.whole_clip:
            joints = joints[int(cap.start * FPS) : int(cap.end * FPS)]
        if len(joints) < 2:
            continue
        clips.append(joints)
        captions.append(cap.text)
        kept.append(clip_id)
    if not clips:
        raise DataError(
            root / "texts", f"no captioned clips in split {split!r}: retrieval needs captions"
        )
    return clips, captions, kept


def evaluate_retrieval(
    source: str | Path,
    *,
    encoder=None,
    split: str | None = "test",
    batch: int = 32,
    seed: int = 0,
    dup_threshold: float = 0.95,
    progress: bool = True,
) -> RetrievalReport:
    """Retrieval figures of ``encoder`` (a ``TMOREncoder``, a path, or None: the shipped one) on
    ``split`` of ``source`` (see the module docstring)."""
    from kinemic.tmor.encoder import TMOREncoder, load_tmor

    enc = encoder if isinstance(encoder, TMOREncoder) else load_tmor(encoder)
    clips, captions, _ = retrieval_pairs(source, split)
    if len(clips) < 2:
        raise KinemicError(
            f"{source}: retrieval needs at least 2 captioned clips, found {len(clips)}"
        )
    raw = enc.text_encoder().encode(captions)
    t = enc.embed_texts(captions, raw=raw)
    m = enc.embed_motions(clips, progress=progress)
    sim = (t @ m.T).numpy()  # (N texts, N motions)
    rn = torch.nn.functional.normalize(raw, dim=-1)
    relevant = ((rn @ rn.T) >= dup_threshold).numpy()
    full = retrieval_metrics(sim)
    full_d = retrieval_metrics(sim, relevant)
    if len(clips) >= batch:
        b32, b32_d = (
            batched_recall(sim, batch=batch, seed=seed),
            batched_recall(sim, relevant, batch=batch, seed=seed),
        )
    else:  # fewer pairs than one batch: the batch is the whole split
        b32, b32_d = full, full_d
    return RetrievalReport(
        source=str(source),
        split=str(split),
        pairs=len(clips),
        whole=full,
        batches_of_32=b32,
        whole_dedup=full_d,
        batches_of_32_dedup=b32_d,
        settings={
            "encoder": str(enc.path),
            "batch": batch,
            "seed": seed,
            "dup_threshold": dup_threshold,
        },
    )
