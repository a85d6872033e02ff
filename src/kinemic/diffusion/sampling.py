"""Samplers: pure functions of (denoiser, schedule, condition, generator).

A sampler is a short loop: predict x0 with the denoiser (classifier-free guidance in ONE
batched forward), then take a closed-form step of the schedule. Ancestral DDPM with the fixed
small posterior variance (MDM's sampler) over all steps, or deterministic DDIM (η = 0) over a
subsequence of ``ddim_steps`` timesteps. Samples of different lengths share one batch: pad to
the longest and pass ``mask`` (see ``lengths_to_mask``). No dataset or global state here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from kinemic.diffusion.schedule import NoiseSchedule
from kinemic.progress import progress_bar

__all__ = ["guided_x0", "lengths_to_mask", "sample"]


def lengths_to_mask(
    lengths: Sequence[int] | Tensor,
    max_len: int | None = None,
    *,
    device: torch.device | str | None = None,
) -> Tensor:
    """Frame mask (B, max_len) bool, True = valid, for clip lengths (B,); max_len = longest."""
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=device)
    if lengths.dim() != 1 or (lengths.numel() and int(lengths.min()) < 1):
        raise ValueError(f"lengths must be a 1-D list of positive ints, found {lengths.tolist()}")
    T = int(lengths.max()) if max_len is None else max_len
    if lengths.numel() and int(lengths.max()) > T:
        raise ValueError(f"a length {int(lengths.max())} exceeds max_len {T}")
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def guided_x0(
    denoiser: nn.Module,
    xt: Tensor,
    t: Tensor,
    *,
    text: Tensor | None = None,
    action: Tensor | None = None,
    mask: Tensor | None = None,
    guidance: float = 2.5,
) -> Tensor:
    """x0 prediction (B, T, F) with classifier-free guidance x0_u + s·(x0_c − x0_u).

    The conditional and unconditional halves run as one forward of batch 2B (``uncond`` marks
    the second half); with s = 1 or no condition only one forward of batch B runs.
    """
    if guidance == 1.0 or (text is None and action is None):
        return denoiser(xt, t, text=text, action=action, mask=mask)
    B = xt.shape[0]

    def twice(z: Tensor | None) -> Tensor | None:
        return None if z is None else torch.cat([z, z])

    uncond = torch.arange(2 * B, device=xt.device) >= B  # (2B,) False, ..., True, ...
    x0 = denoiser(
        twice(xt), twice(t), text=twice(text), action=twice(action), mask=twice(mask), uncond=uncond
    )
    x0_c, x0_u = x0.float().chunk(2)
    return x0_u + guidance * (x0_c - x0_u)


def sample(
    denoiser: nn.Module,
    schedule: NoiseSchedule,
    shape: tuple[int, int, int],
    *,
    text: Tensor | None = None,
    action: Tensor | None = None,
    mask: Tensor | None = None,
    guidance: float = 2.5,
    generator: torch.Generator,
    ddim_steps: int | None = None,
    bf16: bool = False,
    progress: bool = False,
) -> Tensor:
    """Draw normalised samples x0 (B, T, F) = ``shape`` (float32, on the denoiser's device).

    text (B, E) / action (B,) long condition each sample (None = unconditional); mask (B, T)
    bool, True = valid frame, for clips shorter than T (their padded frames come back zero).
    ``guidance`` is the classifier-free scale s (2.5 like MDM; 1 = no guidance). ``generator``
    supplies every random number (x_T and each DDPM step's noise), drawn on the generator's
    device: give one on the denoiser's device (``kinemic.devices.device_generator``) and nothing
    is copied per step; a CPU generator with a GPU denoiser works too (its noise is copied over,
    which reproduces CPU samples one by one). The same seed gives the same samples.
    ``ddim_steps`` = N switches from ancestral DDPM over all schedule steps to deterministic
    DDIM over N of them. ``bf16`` runs the denoiser under ``torch.autocast(bfloat16)`` (fast
    on GPUs; slow on CPUs without bf16 instructions). The denoiser runs in eval mode; its
    previous mode is restored afterwards.
    """
    if len(shape) != 3:
        raise ValueError(f"shape must be (B, T, F), found {shape}")
    param = next(denoiser.parameters())
    device = param.device
    B, T, _ = shape
    if mask is not None:
        if tuple(mask.shape) != (B, T):
            raise ValueError(f"mask should have shape {(B, T)}, found {tuple(mask.shape)}")
        mask = mask.to(device=device, dtype=torch.bool)
    text = None if text is None else text.to(device=device, dtype=param.dtype)
    action = None if action is None else action.to(device=device, dtype=torch.long)
    steps = (
        list(range(schedule.num_steps - 1, -1, -1))
        if ddim_steps is None
        else schedule.ddim_timesteps(ddim_steps)
    )

    def noise() -> Tensor:  # (B, T, F) on the generator's device; moved only if not there
        return torch.randn(shape, generator=generator, device=generator.device).to(device)

    was_training = denoiser.training
    denoiser.eval()
    try:
        with torch.inference_mode():
            x = noise()  # x_T (B, T, F)
            for k, step in enumerate(progress_bar(steps, enabled=progress, desc="sampling")):
                t = torch.full((B,), step, dtype=torch.long, device=device)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                    x0 = guided_x0(
                        denoiser, x, t, text=text, action=action, mask=mask, guidance=guidance
                    )
                x0 = x0.float()  # the step arithmetic stays in float32
                if ddim_steps is None:
                    x = schedule.ddpm_step(x0, x, t, noise()) if step > 0 else x0
                else:
                    t_prev = torch.full_like(t, steps[k + 1]) if k + 1 < len(steps) else None
                    x = schedule.ddim_step(x0, x, t, t_prev)
            if mask is not None:
                x = x * mask[..., None].to(x.dtype)  # padded frames come back zero
    finally:
        denoiser.train(was_training)
    return x.clone()  # an ordinary tensor (not an inference tensor) for the caller
