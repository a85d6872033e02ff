"""Symmetric InfoNCE with false negatives masked out of the denominator.

In a batch of captioned motions, row i of motion and column j of text are a negative pair
unless they say the same thing. Captions of a motion corpus repeat themselves ("a person walks
forward" / "someone walks forward"), and pushing those apart teaches the encoder that one walk
differs from another walk — noise at best. :func:`duplicate_mask` marks pairs whose *frozen*
text embeddings have cosine above a threshold (and pairs drawn from the same clip); those
entries are removed from both softmax denominators, so each row's only positive is its own
pair and near-duplicates are neither positive nor negative. A batch of identical captions then
gives a loss of exactly 0 (no negatives left) rather than asking for the impossible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def duplicate_mask(
    text: torch.Tensor | None,
    *,
    threshold: float = 0.9,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, B) bool, True = "do not use as a negative" (the diagonal is False).

    ``text`` (B, E): frozen caption embeddings (any scale; compared by cosine), pairs above
    ``threshold`` are duplicates. ``groups`` (B,): ids (e.g. clip indices); equal ids are
    duplicates too.
    """
    if text is None and groups is None:
        raise ValueError("duplicate_mask needs text embeddings, groups, or both")
    n = len(text) if text is not None else len(groups)  # type: ignore[arg-type]
    device = text.device if text is not None else groups.device  # type: ignore[union-attr]
    dup = torch.zeros(n, n, dtype=torch.bool, device=device)
    if text is not None:
        t = F.normalize(text.float(), dim=-1)
        dup |= (t @ t.T) > threshold
    if groups is not None:
        dup |= groups[:, None] == groups[None, :]
    dup.fill_diagonal_(False)
    return dup


def info_nce(
    a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor, *, ignore: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE of unit embeddings a (B, E) and b (B, E), positives on the diagonal.

    ``scale``: the logit scale (1 / temperature); ``ignore`` (B, B) bool: off-diagonal pairs
    left out of both denominators (see :func:`duplicate_mask`). Returns the mean of the a→b
    and b→a cross-entropies.
    """
    logits = scale * (a @ b.T)  # (B, B)
    if ignore is not None:
        logits = logits.masked_fill(ignore, float("-inf"))
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
