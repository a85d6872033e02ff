"""The two-stream KineMIC objective of SPEC §5, on one batch.

A batch pairs B few-shot target clips (condition = the class caption's embedding + the action
id) with one soft positive source clip each (``kinemic.finetune.run`` draws it). With shared
noise ε and a shared step t of the fine-tuning schedule (S steps; the network gets the prior's
step, see ``kinemic.finetune.generator.prior_timestep``):

1. target stream on the noised target clip -> x̂0_g, latents L_g;  L_rec = masked MSE(x̂0_g, x0_g)
2. prior stream (adapters off, no grad) on the noised source clip under its own caption -> L_p
3. MIC: z_g, a_g = MIC(L_g); z_p, a_p = MIC(L_p);  L_con = MIC's contrastive loss (supervised
   InfoNCE or the reference's soft nearest-neighbour loss, ``FinetuneConfig.contrastive_loss``;
   anchors z_g, keys z_p + memory bank, positives = same class; the source inherits its
   target's label)
4. the target-length window of the source with the largest summed a_p; the same window of
   x0_p and of ε, re-noised at t, denoised by the target stream under the target's condition
   -> x̂0_w, L_w;  L_wrec = mean_b w_b · masked MSE_b(x̂0_w, x0_w), with the dynamic weight
   w_b = (cos(z_g, MIC(L_w)) + 1) / 2 (no gradient through the weight)
5. optional latent distillation: masked MSE(L_w, the prior's latents of the window)
6. loss = L_rec + λ_con·L_con + λ_w·L_wrec + λ_d·L_dist; the batch's z_p enter the bank
   (with λ_w = λ_d = 0 the window pass is skipped).

``mdm-ft`` (the paper's baseline) is step 1 alone, training the same adapters and action table
or, with ``FinetuneConfig.mdm_ft = "full"`` (the reference's), the whole target stream but its
LayerNorms and text projection.
Each term is returned separately (logged as TensorBoard ``train/rec``, ``train/con``,
``train/wrec``, ``train/window_weight``, ``train/logit_scale``, ``train/dist``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kinemic.diffusion import NoiseSchedule, masked_mse, per_clip_mse
from kinemic.finetune.config import FinetuneConfig
from kinemic.finetune.generator import TwoStreamDenoiser
from kinemic.mining.mic import MIC
from kinemic.mining.windows import best_window, cut_windows, window_lengths

__all__ = ["FinetuneModel"]


class FinetuneModel(nn.Module):
    """What is trained: the two-stream denoiser and (for ``kinemic``) MIC. ``forward(batch)``
    is the whole objective (so that DDP sees every parameter through one forward) and returns
    (loss, {term: value}).

    ``batch``: ``x0`` (B, T, F) target clips, ``mask`` (B, T), ``t`` (B,), ``noise``
    (B, max(T, Tp), F), ``text`` (B, E), ``action`` (B,); for ``kinemic`` also ``src_x0``
    (B, Tp, F), ``src_mask`` (B, Tp) and ``src_text`` (B, E), the soft positives."""

    def __init__(
        self,
        denoiser: TwoStreamDenoiser,
        mic: MIC | None,
        schedule: NoiseSchedule,
        config: FinetuneConfig,
    ) -> None:
        super().__init__()
        self.denoiser, self.mic = denoiser, mic
        self.schedule = schedule
        self.weights = (config.contrastive_weight, config.window_weight, config.distill_weight)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        x0, mask, t, noise = batch["x0"], batch["mask"], batch["t"], batch["noise"]
        T = x0.shape[1]
        xt = self.schedule.q_sample(x0, t, noise[:, :T])
        cond = dict(text=batch["text"], action=batch["action"])
        x0_hat, lat_g = self.denoiser(xt, t, mask=mask, return_latents=True, **cond)
        rec = masked_mse(x0_hat, x0, mask)
        if self.mic is None:  # mdm-ft
            return rec, {"rec": rec.detach()}
        w_con, w_win, w_dist = self.weights
        src, src_mask = batch["src_x0"], batch["src_mask"]
        xt_p = self.schedule.q_sample(src, t, noise[:, : src.shape[1]])
        _, lat_p = self.denoiser.prior_stream(
            xt_p, t, text=batch["src_text"], mask=src_mask, return_latents=True
        )  # (B, Tp, D), no grad
        z_g, _ = self.mic(lat_g, mask)
        z_p, a_p = self.mic(lat_p, src_mask)
        label = batch["action"]
        con = self.mic.contrastive_loss(z_g, label, z_p, label)
        loss = rec + w_con * con
        terms = {"rec": rec.detach(), "con": con.detach(), "logit_scale": self.mic.scale.detach()}
        if w_win == 0 and w_dist == 0:  # no window terms: skip the window pass
            self.mic.enqueue(z_p.detach(), label)
            return loss, terms
        # window mining on the source, under the target's condition
        length = window_lengths(src_mask, mask.sum(1))
        start = best_window(a_p.detach(), src_mask, length)
        x0_w, mask_w = cut_windows(src, start, length)
        eps_w, _ = cut_windows(noise, start, length)
        xt_w = self.schedule.q_sample(x0_w, t, eps_w)
        x0_w_hat, lat_w = self.denoiser(xt_w, t, mask=mask_w, return_latents=True, **cond)
        with torch.no_grad():  # the weight carries no gradient: MIC's pass need not either
            z_w, _ = self.mic(lat_w.detach(), mask_w)
        weight = ((z_g.detach() * z_w).sum(-1) + 1) / 2  # (B,) in [0, 1]
        wrec = (weight * per_clip_mse(x0_w_hat, x0_w, mask_w)).mean()
        loss = loss + w_win * wrec
        terms.update(wrec=wrec.detach(), window_weight=weight.mean())
        if w_dist > 0:
            lat_p_w, _ = cut_windows(lat_p, start, length)
            dist = masked_mse(lat_w, lat_p_w, mask_w)
            loss = loss + w_dist * dist
            terms["dist"] = dist.detach()
        self.mic.enqueue(z_p.detach(), label)
        return loss, terms
