"""The motion diffusion prior: denoiser (nn.Module), noise schedule (math) and samplers
(pure functions) are three separate things; ``losses`` is the masked MSE they are trained with;
``mdm_import`` reads official MDM checkpoints."""

from kinemic.diffusion.denoiser import LORA_TARGET_MODULES, Denoiser, DenoiserConfig
from kinemic.diffusion.losses import masked_mse, per_clip_mse
from kinemic.diffusion.mdm_import import from_mdm_checkpoint, to_mdm_state_dict
from kinemic.diffusion.sampling import guided_x0, lengths_to_mask, sample
from kinemic.diffusion.schedule import NoiseSchedule

__all__ = [
    "LORA_TARGET_MODULES",
    "Denoiser",
    "DenoiserConfig",
    "NoiseSchedule",
    "from_mdm_checkpoint",
    "guided_x0",
    "lengths_to_mask",
    "masked_mse",
    "per_clip_mse",
    "sample",
    "to_mdm_state_dict",
]
