"""Window mining: the part of a source clip that MIC's attention says moves like the target.

KineMIC (``../shared/SPEC.md`` §5 step 5) takes, in each soft-positive source clip, the window
of the paired target clip's length with the largest summed MIC attention, and cuts that same
window out of the clean source clip and out of the noise shared by both streams.

- :func:`best_window` — the start of that window (pure tensor code; ties go to the earliest);
- :func:`cut_windows` — the windows of a batch of sequences, padded, with their mask;
- :func:`source_attention` / :func:`mine_windows` — inference-time mining with a fine-tuned
  generator: noise the source to step t, run the prior stream, read MIC's attention, take the
  best window (what ``kinemic mine --model`` evaluates against the world's ground truth).

A source clip shorter than the target length gives start 0 and the whole clip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from kinemic.finetune.generator import ActionGenerator

__all__ = ["best_window", "cut_windows", "mine_windows", "source_attention", "window_lengths"]


def window_lengths(mask: Tensor, length: Tensor) -> Tensor:
    """(B,) long: the target length, or the whole clip where the clip is shorter.
    mask (B, T) bool True = valid; length (B,) positive ints."""
    valid = mask.sum(1)
    return torch.minimum(length.to(valid.device, torch.long), valid)


def best_window(attention: Tensor, mask: Tensor, length: Tensor) -> Tensor:
    """Start (B,) long of the window of ``length`` frames with the largest summed attention.

    attention (B, T) float; mask (B, T) bool True = valid, padding after the valid frames;
    length (B,) long ≥ 1. The window lies inside the valid frames; a clip with fewer valid
    frames than ``length`` gives start 0 (the window is then the whole clip: see
    :func:`window_lengths`). Ties go to the earliest start. Sums are taken in float64 (a
    cumulative sum), so the choice matches a brute-force search.
    """
    B, T = attention.shape
    if tuple(mask.shape) != (B, T) or tuple(length.shape) != (B,):
        raise ValueError(
            f"best_window: attention {tuple(attention.shape)}, mask {tuple(mask.shape)} and "
            f"length {tuple(length.shape)} should be (B, T), (B, T), (B,)"
        )
    if B and int(length.min()) < 1:
        raise ValueError(f"best_window: lengths must be >= 1, found {length.tolist()}")
    a = attention.detach().double() * mask  # (B, T)
    csum = torch.cat([a.new_zeros(B, 1), a.cumsum(1)], dim=1)  # (B, T+1)
    L = window_lengths(mask, length)  # (B,)
    n = mask.sum(1)  # (B,)
    starts = torch.arange(T, device=a.device)[None, :]  # (1, T)
    ends = starts + L[:, None]  # (B, T)
    ok = ends <= n[:, None]  # (B, T) windows inside the valid frames
    sums = csum.gather(1, ends.clamp(max=T)) - csum.gather(1, starts.expand(B, T))
    sums = sums.masked_fill(~ok, float("-inf"))
    return sums.argmax(1)  # first maximum; start 0 when only s = 0 fits


def cut_windows(x: Tensor, start: Tensor, length: Tensor) -> tuple[Tensor, Tensor]:
    """Rows ``start[b] : start[b] + length[b]`` of each x[b] (B, T, ...), padded to the longest:
    (windows (B, L, ...) with zeros where padded, mask (B, L) bool True = valid). Windows must
    lie inside x."""
    B, T = x.shape[:2]
    start, length = start.to(x.device, torch.long), length.to(x.device, torch.long)
    if B and int((start + length).max()) > T:
        raise ValueError(f"cut_windows: a window ends past the {T} frames of its sequence")
    L = int(length.max()) if B else 0
    offsets = torch.arange(L, device=x.device)[None, :]  # (1, L)
    mask = offsets < length[:, None]  # (B, L)
    index = (start[:, None] + offsets).clamp(max=max(T - 1, 0))  # (B, L)
    index = index.view(B, L, *([1] * (x.dim() - 2))).expand(B, L, *x.shape[2:])
    windows = x.gather(1, index)
    keep = mask.view(B, L, *([1] * (x.dim() - 2))).to(x.dtype)
    return windows * keep, mask


def source_attention(
    model: ActionGenerator,
    source_x0: Tensor,
    source_mask: Tensor,
    *,
    text: Tensor | None,
    t: int,
    generator: torch.Generator,
) -> Tensor:
    """MIC attention (B, T) of the prior stream over noised source clips.

    ``model``: a loaded fine-tuned generator (``load_generator``). source_x0 (B, T, F)
    normalised with its normaliser; source_mask (B, T) bool;
    text (B, E) the prior stream's condition (a caption embedding of each source clip, as in
    training; None: unconditional); ``t`` the diffusion step in the generator's schedule
    (0 = least noise); the noise comes from ``generator`` (drawn on its device). Needs a KineMIC
    generator (one with a MIC module).
    """
    if model.mic is None:
        raise ValueError(
            f"{model.path}: this generator was fine-tuned with method "
            f"{model.method!r} and has no MIC module to mine windows with"
        )
    diffusion_steps = model.schedule.num_steps
    if not 0 <= t < diffusion_steps:
        raise ValueError(
            f"mining step t={t} outside the generator's schedule [0, {diffusion_steps})"
        )
    param = next(model.denoiser.parameters())
    device = param.device
    x0 = source_x0.to(device, torch.float32)
    mask = source_mask.to(device, torch.bool)
    B = x0.shape[0]
    noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(device)
    tt = torch.full((B,), t, dtype=torch.long, device=device)
    xt = model.schedule.q_sample(x0, tt, noise)
    if text is not None:
        text = text.to(device, param.dtype)
    with torch.no_grad():
        _, latents = model.denoiser.prior_stream(xt, tt, text=text, mask=mask, return_latents=True)
        was = model.mic.training
        model.mic.eval()
        try:
            attention = model.mic(latents, mask).attention
        finally:
            model.mic.train(was)
    return attention


def mine_windows(
    model: ActionGenerator,
    source_x0: Tensor,
    source_mask: Tensor,
    target_length: Tensor,
    *,
    text: Tensor | None,
    action: Tensor | None = None,
    t: int,
    generator: torch.Generator,
) -> Tensor:
    """Starts (B,) long of the mined windows: the target-length window of each source clip with
    the largest summed MIC attention of the generator's prior stream (see
    :func:`source_attention` for the arguments). target_length (B,) frames; the window length
    is ``window_lengths(source_mask, target_length)``. ``action`` (B,) is the class each clip
    is mined for; it is only checked (the prior stream sees the source and its text, not the
    class, exactly as in training)."""
    B = source_x0.shape[0]
    if action is not None:
        n = len(model.classes)
        if tuple(action.shape) != (B,) or (
            B and not 0 <= int(action.min()) <= int(action.max()) < n
        ):
            raise ValueError(f"action should be (B,) ids in [0, {n}), found {action.tolist()}")
    attention = source_attention(
        model, source_x0, source_mask, text=text, t=t, generator=generator
    )  # (B, T)
    return best_window(
        attention, source_mask.to(attention.device), target_length.to(attention.device)
    ).cpu()
