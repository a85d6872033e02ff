"""KineMIC fine-tuning (``kinemic finetune``): the two-stream objective of SPEC §5.

Per step, B few-shot target clips (normalised with the *prior's* normaliser; condition = the
class caption's embedding + the action id) are each paired with one soft positive source clip,
drawn uniformly from its class's top-k (``kinemic.mining.soft_positives``; with
``filter="kinematic"`` the caption top-``filter_pool`` re-ranked by the T-MOR kinematic filter
against the class's shots, fused with the caption score by ``filter_weight``). With shared
noise ε
and a shared step t of the fine-tuning schedule (S steps; the network gets the prior's step,
see ``kinemic.finetune.generator.prior_timestep``):

1. target stream on the noised target clip -> x̂0_g, latents L_g;  L_rec = masked MSE(x̂0_g, x0_g)
2. prior stream (adapters off, no grad) on the noised source clip under its own caption -> L_p
3. MIC: z_g, a_g = MIC(L_g); z_p, a_p = MIC(L_p);  L_con = supervised InfoNCE(anchors z_g,
   keys z_p + memory bank, positives = same class; the source inherits its target's label)
4. the target-length window of the source with the largest summed a_p; the same window of
   x0_p and of ε, re-noised at t, denoised by the target stream under the target's condition
   -> x̂0_w, L_w;  L_wrec = mean_b w_b · masked MSE_b(x̂0_w, x0_w), with the dynamic weight
   w_b = (cos(z_g, MIC(L_w)) + 1) / 2 (no gradient through the weight)
5. optional latent distillation: masked MSE(L_w, the prior's latents of the window)
6. loss = L_rec + λ_con·L_con + λ_w·L_wrec + λ_d·L_dist; the batch's z_p enter the bank
   (with λ_w = λ_d = 0 the window pass is skipped).

``mdm-ft`` (the paper's baseline) is step 1 alone with the same adapters and action table.
Each term is logged separately (TensorBoard ``train/rec``, ``train/con``, ``train/wrec``,
``train/window_weight``, ``train/logit_scale``, ``train/dist``).

Every random draw of a step (target clips, soft positives, crops, source captions, t, ε) comes
from ``(seed, step)``; the global batch is drawn once and each process takes its slice, so a
resumed run sees what an uninterrupted one would (the bank and dropout RNG are restored from
the checkpoint).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from kinemic.corpus import step_rng
from kinemic.diffusion import NoiseSchedule, masked_mse, per_clip_mse
from kinemic.errors import KinemicError
from kinemic.finetune.generator import (
    LoraSettings,
    TwoStreamDenoiser,
    prior_pointer,
    save_generator,
)
from kinemic.finetune.run.data import SourceClips, TargetClips, load_sources, load_targets
from kinemic.mining.mic import MIC, MICConfig
from kinemic.mining.soft_positives import Filter, filter_problems
from kinemic.mining.windows import best_window, cut_windows, window_lengths

Method = Literal["kinemic", "mdm-ft"]
METHODS = ("kinemic", "mdm-ft")


@dataclass
class FinetuneConfig:
    """Settings of a fine-tune. Defaults are sized for the shipped ``tiny`` CPU prior (see the
    README): the paper's (MDM, GPU) are lr 2e-5, batch 30, 10,000 steps."""

    method: Method = "kinemic"
    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    lora: LoraSettings = field(default_factory=LoraSettings)
    k: int = 250  # soft positives per class
    filter: Filter = "none"  # "kinematic": re-rank the caption top-filter_pool by T-MOR
    filter_pool: int | None = None  # caption candidates the filter re-ranks (None: 2k)
    filter_encoder: str | None = None  # the filter's T-MOR encoder folder or run (None: shipped)
    filter_weight: float | None = None  # the motion score's share of the filter's key (None: 0.5)
    diffusion_steps: int = 100  # the fine-tuning schedule (the prior's steps: no mapping)
    contrastive_weight: float = 1.0
    window_weight: float = 1.0
    distill_weight: float = 0.0
    mic_hidden: int = 64  # GRU units per direction (BiGRU width 128 = the tiny latent width)
    mic_embed: int = 128
    bank_size: int = 60
    temperature: float = 0.07
    max_source_frames: int | None = None  # None: the prior's max_frames
    max_target_frames: int | None = None  # None: the prior's max_frames
    seed: int = 0
    mixed_precision: Literal["no", "bf16"] = "no"
    cpu: bool = False
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    log_every: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)
        if self.filter_encoder is not None:
            self.filter_encoder = str(self.filter_encoder)  # a Path would not go into JSON
        problems = filter_problems(
            self.filter, self.filter_pool, self.filter_encoder, self.k, self.filter_weight
        )
        if self.filter == "kinematic" and self.filter_weight is None:
            from kinemic.mining.kinematic_filter import DEFAULT_WEIGHT

            self.filter_weight = DEFAULT_WEIGHT  # recorded as a number: a run stays exact
        if self.method == "mdm-ft" and self.filter != "none":
            problems.append("filter applies to method 'kinemic' (mdm-ft has no soft positives)")
        if self.method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}, found {self.method!r}")
        for name in ("steps", "batch_size", "k", "diffusion_steps", "mic_hidden", "mic_embed"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, found {getattr(self, name)}")
        for name in ("contrastive_weight", "window_weight", "distill_weight"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, found {getattr(self, name)}")
        for name in ("max_source_frames", "max_target_frames"):
            value = getattr(self, name)
            if value is not None and value < 4:
                problems.append(f"{name} must be >= 4 or None, found {value}")
        if self.bank_size < 0:
            problems.append(f"bank_size must be >= 0, found {self.bank_size}")
        if problems:
            raise KinemicError("fine-tuning settings: " + "; ".join(problems))

    def mic_config(self, latent_dim: int) -> MICConfig:
        return MICConfig(
            latent_dim=latent_dim,
            hidden_dim=self.mic_hidden,
            embed_dim=self.mic_embed,
            bank_size=self.bank_size,
            temperature=self.temperature,
        )

    def train_config(self, *, progress: bool, position: int | None = None):
        from kinemic.training import TrainConfig

        return TrainConfig(
            steps=self.steps,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_steps=self.warmup_steps,
            grad_clip=self.grad_clip,
            ema=None,
            seed=self.seed,
            mixed_precision=self.mixed_precision,
            cpu=self.cpu,
            checkpoint_every=self.checkpoint_every,
            keep_checkpoints=self.keep_checkpoints,
            log_every=self.log_every,
            progress=progress,
            progress_desc=f"fine-tuning ({self.method})",
            progress_position=position,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FinetuneModel(nn.Module):
    """What is trained: the two-stream denoiser and (for ``kinemic``) MIC. ``forward(batch)``
    is the whole objective (so that DDP sees every parameter through one forward) and returns
    (loss, {term: value})."""

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


@dataclass
class FinetuneTask:
    """The fine-tuning objective as a ``kinemic.training.TrainTask``."""

    targets: TargetClips
    sources: SourceClips | None  # None for mdm-ft
    positives: np.ndarray | None  # (C, k) indices into sources, per class (None for mdm-ft)
    class_text: Tensor  # (C, E) class caption embeddings
    schedule: NoiseSchedule
    config: FinetuneConfig
    max_target_frames: int
    max_source_frames: int
    generator_config: dict[str, Any]  # save_generator's config (without "step")

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> dict[str, Tensor]:
        B = self.config.batch_size
        if B % world_size:
            raise KinemicError(f"batch size {B} is not divisible by the {world_size} processes")
        rng = step_rng(self.config.seed, step)
        pick = rng.integers(0, len(self.targets.features), size=B)
        label = self.targets.labels[pick]  # (B,) class index
        tgt = [_crop(self.targets.features[i], self.max_target_frames, rng) for i in pick]
        src: list[np.ndarray] = []
        src_caption: list[int] = []
        if self.positives is not None and self.sources is not None:
            for c in label:
                s = int(self.positives[c, rng.integers(0, self.positives.shape[1])])
                src.append(_crop(self.sources.features[s], self.max_source_frames, rng))
                choices = self.sources.captions[s]
                src_caption.append(int(choices[rng.integers(0, len(choices))]))
        longest = max(len(x) for x in tgt + src)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        t = torch.randint(0, self.schedule.num_steps, (B,), generator=gen)
        noise = torch.randn((B, longest, tgt[0].shape[1]), generator=gen)
        per = B // world_size
        rows = list(range(rank * per, (rank + 1) * per))
        x0, mask = _pad([tgt[r] for r in rows])
        out = {
            "x0": x0,
            "mask": mask,
            "t": t[rows],
            "text": self.class_text[torch.as_tensor(label[rows])],
            "action": torch.as_tensor(label[rows], dtype=torch.long),
        }
        local = x0.shape[1]
        if src:
            assert self.sources is not None
            src_x0, src_mask = _pad([src[r] for r in rows])
            out.update(
                src_x0=src_x0,
                src_mask=src_mask,
                src_text=self.sources.text[torch.as_tensor([src_caption[r] for r in rows])],
            )
            local = max(local, src_x0.shape[1])
        out["noise"] = noise[rows, :local]
        return out

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        return model(batch)

    def export(self, folder: Path, model: nn.Module, ema: nn.Module | None, *, step: int) -> None:
        save_generator(
            folder,
            model=model.denoiser,
            mic=model.mic,
            config={**self.generator_config, "step": step},
        )


def _crop(clip: np.ndarray, max_frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of ``max_frames`` rows of a longer clip (the clip itself otherwise)."""
    if len(clip) <= max_frames:
        return clip
    first = int(rng.integers(0, len(clip) - max_frames + 1))
    return clip[first : first + max_frames]


def _pad(clips: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """(B, T, F) zero-padded float32 and the mask (B, T) of a list of (T_i, F) clips."""
    T = max(len(c) for c in clips)
    x = np.zeros((len(clips), T, clips[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(clips), T), dtype=bool)
    for i, c in enumerate(clips):
        x[i, : len(c)], mask[i, : len(c)] = c, True
    return torch.from_numpy(x), torch.from_numpy(mask)


def finetune(
    target: str | Path,
    out: str | Path,
    *,
    prior: str | Path = "shipped",
    split: str = "S0000",
    source: str | Path | None = None,
    config: FinetuneConfig | None = None,
    resume: str | Path | None = None,
    text_cache: str | Path | None = None,
    progress: bool = True,
    progress_position: int | None = None,
) -> Path:
    """Fine-tune a prior to the classes of a few-shot split (KineMIC, or the ``mdm-ft`` baseline).

    ``target``: an NTU-VIBE-layout folder with the few-shot ``split`` (its train clips are the
    shots; each class conditions on its caption from ``ntu_metadata.json``). ``prior``: a prior
    folder, a pretraining run, or "shipped". ``source``: the HumanML3D-layout corpus soft
    positives come from (method ``kinemic``; default: the prior's recorded training sources
    that exist as folders). Every input is checked before training starts; a bad split,
    missing clips, classes with fewer clips than shots, empty captions, an incomplete prior
    folder or a wrong source raise ``KinemicError``.

    Writes the run folder OUT (``kinemic.training``): ``checkpoints/step-N/`` each a generator
    folder (adapter, action table, MIC, config pointing to the prior with its sha256; see
    ``kinemic.finetune.generator``) plus the resume state, ``latest`` and TensorBoard logs with
    each loss term. ``resume`` (OUT) continues exactly where it stopped. Returns OUT.
    """
    from kinemic.prior.folder import load_prior
    from kinemic.text import encoder_from_spec
    from kinemic.training import train

    config = config or FinetuneConfig()
    out = Path(out)
    if resume is None and (out / "latest").exists():
        raise KinemicError(
            f"{out} already holds a training run; pass --resume {out} to continue it, or "
            "choose another output folder"
        )
    p = load_prior(prior)  # a generator is refused: "... is a fine-tuned generator, not a prior"
    if p.text_spec is None:
        raise KinemicError(f"{p.path}: this prior takes no text; KineMIC conditions on captions")
    targets = load_targets(target, split, normalizer=p.normalizer)
    encoder = encoder_from_spec(p.text_spec, cache_dir=text_cache)
    class_text = encoder.encode(targets.class_captions).float()  # (C, E)
    max_tgt = config.max_target_frames or p.max_frames
    max_src = config.max_source_frames or p.max_frames
    sources, positives, source_dir, source_info = None, None, None, {}
    if config.method == "kinemic":
        source_dir = _source_folder(source, p)
        sources, positives, source_info = load_sources(
            source_dir,
            targets.class_captions,
            encoder=encoder,
            k=config.k,
            normalizer=p.normalizer,
            target=target,
            fewshot_ids=targets.class_ids(),
            filter=config.filter,
            filter_pool=config.filter_pool,
            filter_encoder=config.filter_encoder,
            filter_weight=config.filter_weight,
            progress=progress,
        )
    steps = config.diffusion_steps
    pointer = prior_pointer(p)
    mic_cfg = (
        config.mic_config(p.denoiser.config.latent_dim) if config.method == "kinemic" else None
    )
    generator_config = {
        "method": config.method,
        "prior": pointer,
        "lora": config.lora.to_dict(),
        "schedule": {
            "kind": "cosine",
            "num_steps": steps,
            "prior_steps": p.schedule.num_steps,
            "prior_timestep": "min(ceil(t*P/S), P-1)",
        },
        "classes": targets.classes,
        "class_names": targets.class_names,
        "class_captions": targets.class_captions,
        "class_lengths": {str(c): v for c, v in targets.class_lengths.items()},
        "target": str(Path(target).resolve()),
        "split": split,
        "source": None if source_dir is None else str(source_dir.resolve()),
        "soft_positives": source_info,
        "mic": None if mic_cfg is None else mic_cfg.to_dict(),
        "finetune": config.to_dict(),
    }
    free = {"steps", "checkpoint_every", "keep_checkpoints", "log_every"}
    if config.filter == "none":  # runs from before the filter option resume as they did
        free |= {"filter", "filter_pool", "filter_encoder", "filter_weight"}
    elif config.filter_weight == 1.0:  # the motion-only ranking, the filter before the weight
        free.add("filter_weight")
    fingerprint = {
        **{k: v for k, v in config.to_dict().items() if k not in free},
        "prior": pointer,
        "target": generator_config["target"],
        "split": split,
        "train_ids": hashlib.sha256("\n".join(targets.ids).encode()).hexdigest(),
        "source": generator_config["source"],
        "positives": source_info.get("sha256"),
    }
    torch.manual_seed(config.seed)  # LoRA and MIC initial weights, then dropout
    model = TwoStreamDenoiser(
        p.denoiser,
        num_actions=len(targets.classes),
        lora=config.lora,
        steps=steps,
        prior_steps=p.schedule.num_steps,
    )
    mic = None if mic_cfg is None else MIC(mic_cfg)
    task = FinetuneTask(
        targets=targets,
        sources=sources,
        positives=positives,
        class_text=class_text,
        schedule=NoiseSchedule(steps),
        config=config,
        max_target_frames=max_tgt,
        max_source_frames=max_src,
        generator_config=generator_config,
    )
    objective = FinetuneModel(model, mic, task.schedule, config)
    hparams = {k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str))}
    train(
        objective,
        task,
        out,
        config.train_config(progress=progress, position=progress_position),
        fingerprint=fingerprint,
        resume=resume,
        hparams=hparams,
    )
    return out


def _source_folder(source: str | Path | None, prior) -> Path:
    if source is not None:
        path = Path(source)
        if not (path / "new_joint_vecs").is_dir():
            raise KinemicError(
                f"--source {path}: not a HumanML3D-layout folder (no new_joint_vecs/); pass "
                "the corpus the prior was pretrained on, e.g. out/world/source"
            )
        return path
    recorded = prior.config.get("training", {}).get("sources", [])
    found = [Path(s) for s in recorded if (Path(s) / "new_joint_vecs").is_dir()]
    if not found:
        raise KinemicError(
            f"method 'kinemic' needs source motions for its soft positives: pass --source DIR "
            f"(a HumanML3D-layout corpus, e.g. the world's source/); the prior {prior.path} "
            "records none that exists here"
        )
    return found[0]
