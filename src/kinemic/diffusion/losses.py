"""The masked regression loss of motion diffusion: MSE over each clip's valid frames only.

Both reduce in float32 (under bf16 autocast too) and in one fixed order, so pretraining and
fine-tuning compute bit-identical values for the same tensors.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["masked_mse", "per_clip_mse"]


def per_clip_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Each clip's mean squared error over its valid frames and all features: pred, target
    (B, T, F), mask (B, T) bool (True = valid frame) -> (B,). A clip without valid frames
    gives 0."""
    m = mask[..., None].to(pred.dtype)  # (B, T, 1)
    total = ((pred.float() - target.float()) ** 2 * m).sum((1, 2))  # (B,)
    return total / (m.sum((1, 2)) * pred.shape[-1]).clamp(min=1)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """MDM's masked L2 (``masked_l2``): :func:`per_clip_mse` averaged over the batch, so clips
    weigh equally whatever their length. pred, target (B, T, F), mask (B, T) bool -> scalar."""
    return per_clip_mse(pred, target, mask).mean()
