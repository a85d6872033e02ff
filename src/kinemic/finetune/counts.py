"""What a fine-tune trains, counted without data or weights (``kinemic finetune
--count-params``): the modules are built on PyTorch's meta device, exactly as fine-tuning
builds them, and their parameters counted, so a count follows any change of the code.

At the ``mdm`` preset (MDM-512) the ``paper`` recipe's LoRA adapters have 975,072 parameters
(q, k, v and the attention output each adapted: 8 layers × 4 × 16 × (512 + 512), plus the
feed-forward, input, output and timestep projections) and its MIC 4,730,369, both as the
reference implementation's; the ``cpu`` recipe's packed layout has 844,000.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from kinemic.diffusion import Denoiser, DenoiserConfig
from kinemic.finetune.config import FinetuneConfig
from kinemic.finetune.generator import TwoStreamDenoiser
from kinemic.mining.mic import mic_parameter_count

__all__ = ["ParameterCounts", "parameter_counts"]


@dataclass(frozen=True)
class ParameterCounts:
    """Parameter counts of a fine-tune (the action table apart: ``latent_dim`` per class)."""

    prior: int  # the denoiser's, frozen by LoRA fine-tuning
    lora: int  # the LoRA matrices of the config's layout and rank
    mic: int  # the MIC encoder, without its logit scale (one more parameter)
    full: int  # what full fine-tuning trains of the denoiser: all but LayerNorms, embed_text
    latent_dim: int  # the action table's parameters per class

    def table(self, config: FinetuneConfig, where: str) -> str:
        """The counts as the command prints them; ``where`` names the denoiser counted."""
        per = f"+ {self.latent_dim} per class"
        mine = {config.mdm_ft: ", this recipe's"}
        lora = f"LoRA adapters (layout {config.lora.layout}, rank {config.lora.rank})"
        rows = [
            ("prior denoiser (frozen by LoRA)", self.prior, ""),
            (lora, self.lora, ""),
            (f"MIC (arch {config.mic_arch})", self.mic, "+ 1 logit scale"),
            ("action table", self.latent_dim, "per class"),
            ("trained by method kinemic: LoRA, MIC, logit scale", self.lora + self.mic + 1, per),
            (f"trained by mdm-ft, mdm_ft full{mine.get('full', '')}", self.full, per),
            (f"trained by mdm-ft, mdm_ft lora{mine.get('lora', '')}", self.lora, per),
        ]
        width = max(len(name) for name, _, _ in rows)
        lines = [f"parameters of recipe {config.recipe} at {where}:"]
        lines += [f"  {name:<{width}}  {n:>11,}  {note}".rstrip() for name, n, note in rows]
        return "\n".join(lines)


def parameter_counts(config: FinetuneConfig, denoiser: DenoiserConfig) -> ParameterCounts:
    """Count what ``config`` trains on a denoiser of ``denoiser``'s shape (nothing allocated)."""
    with torch.device("meta"):
        prior = Denoiser(replace(denoiser)).num_parameters()
        counts = {}
        for name, lora in (("lora", config.lora.resolved()), ("full", None)):
            model = TwoStreamDenoiser(
                Denoiser(replace(denoiser)),  # a copy: add_actions changes its config
                num_actions=1,
                lora=lora,
                diffusion_steps=config.diffusion_steps,
                prior_diffusion_steps=config.diffusion_steps,
            )
            trained = model.trainable_parameters()
            counts[name] = sum(p.numel() for p in trained) - denoiser.latent_dim  # no actions
    return ParameterCounts(
        prior=prior,
        lora=counts["lora"],
        mic=mic_parameter_count(config.mic_config(denoiser.latent_dim)),
        full=counts["full"],
        latent_dim=denoiser.latent_dim,
    )
