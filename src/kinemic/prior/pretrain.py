"""Pretraining the text-to-motion prior on HumanML3D-layout corpora (``kinemic pretrain``).

The objective (``../shared/SPEC.md`` §4): draw a clip and one of its captions, crop, normalise
with the corpus statistics, diffuse to a uniform random timestep t with the cosine schedule,
and regress the clean sample x0 with a masked MSE (MDM's ``masked_l2``: mean over each clip's
valid frames and features, then over the batch). The caption's embedding conditions the
denoiser, which drops it with ``cond_drop_prob`` for classifier-free guidance.

Every random draw of a step (clips, captions, crops, t, noise) comes from ``(seed, step)``; each
process makes only its slice of the global batch (:mod:`kinemic.prior.batches`), so the data a
step sees does not depend on the number of processes, and a resumed run sees what an
uninterrupted one would. With ``loader_workers``, worker processes make the coming steps'
slices ahead of the loop (:class:`kinemic.loader.StepLoader`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from kinemic.constants import MAX_FRAMES
from kinemic.corpus import MotionCorpus
from kinemic.diffusion.losses import masked_mse
from kinemic.distributed import process_state
from kinemic.errors import KinemicError


@dataclass
class PretrainTask:
    """The pretraining objective as a ``kinemic.training.TrainTask``."""

    corpus: MotionCorpus
    normalizer: Any  # kinemic.features.Normalizer
    text_embeddings: torch.Tensor  # (num captions, E) CPU float32
    schedule: Any  # kinemic.diffusion.NoiseSchedule
    batch_size: int  # global, over all processes
    seed: int = 0
    max_frames: int = MAX_FRAMES
    prior_info: dict[str, Any] | None = None  # save_prior arguments besides the weights
    loader_workers: int = 0  # processes making batches ahead (kinemic.loader)
    pin_memory: bool = False  # batches in page-locked memory (CUDA)
    _loader: Any = field(default=None, init=False, repr=False, compare=False)

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> dict[str, torch.Tensor]:
        from kinemic.loader import StepLoader
        from kinemic.prior.batches import PretrainBatches

        shard = (rank, world_size)
        if self._loader is None or (self._loader.draw.rank, self._loader.draw.world_size) != shard:
            draw = PretrainBatches(
                self.corpus,
                self.normalizer,
                self.schedule.num_steps,
                self.batch_size,
                seed=self.seed,
                max_frames=self.max_frames,
                rank=rank,
                world_size=world_size,
            )
            self._loader = StepLoader(draw, workers=self.loader_workers, pin_memory=self.pin_memory)
        b = dict(self._loader(step))
        caption = b.pop("caption")
        return {**b, "text": self.text_embeddings[caption.clamp(min=0)], "uncond": caption < 0}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        xt = self.schedule.q_sample(batch["x0"], batch["t"], batch["noise"])
        x0 = model(xt, batch["t"], text=batch["text"], mask=batch["mask"], uncond=batch["uncond"])
        return masked_mse(x0, batch["x0"], batch["mask"])

    def export(self, folder: Path, model: nn.Module, ema: nn.Module | None, *, step: int) -> None:
        from kinemic.prior.folder import save_prior

        info = dict(self.prior_info or {})
        extra = {**info.pop("extra", {}), "step": step}
        save_prior(folder, denoiser=model, ema=ema, normalizer=self.normalizer, extra=extra, **info)


def pretrain(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    preset: Literal["tiny", "mdm"] = "tiny",
    model_overrides: dict[str, Any] | None = None,
    train_steps: int = 100_000,
    batch_size: int = 64,
    lr: float = 1e-4,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    grad_clip: float | None = 1.0,
    ema: float | None = 0.999,
    text_encoder: str = "minilm",
    text_cache: str | Path | None = None,
    diffusion_steps: int = 50,
    seed: int = 0,
    mixed_precision: Literal["no", "bf16"] = "no",
    cpu: bool = False,
    torch_compile: bool = False,
    checkpoint_every: int = 1000,
    keep_checkpoints: int = 3,
    log_every: int = 50,
    resume: str | Path | None = None,
    max_frames: int = MAX_FRAMES,
    min_frames: int = 40,
    split: str | None = "train",
    allow_uncaptioned: bool = False,
    progress: bool = True,
    loader_workers: int | None = None,
) -> Path:
    """Pretrain a text-to-motion diffusion prior on HumanML3D-layout corpora.

    Reads every SOURCE folder (its ``train`` split when it has ``train.txt``, else all clips;
    clips shorter than ``min_frames`` feature rows are skipped and counted), embeds each distinct
    caption once with ``text_encoder``, fits the feature mean/std over all frames, and trains
    the ``preset`` denoiser (``tiny``: 0.7 M parameters, for CPUs; ``mdm``: the official 17.9 M
    MDM size) to predict x0 with a masked MSE at uniform random timesteps of a cosine schedule
    of ``diffusion_steps``. Each of the ``train_steps`` optimiser steps draws ``batch_size``
    clips (global over processes), a random caption of each (a caption with a #start#end span
    crops to its span) and a random crop of at most ``max_frames`` rows, a multiple of 4.

    Writes the run folder OUT: ``checkpoints/step-N/`` every ``checkpoint_every`` steps (each a
    prior folder usable by ``kinemic sample``, plus the state to resume), ``latest``, and
    TensorBoard logs in ``logs/``. ``resume`` continues a run (the same folder as OUT, or a
    checkpoint in it) exactly where it stopped: same weights, optimiser, EMA and random state;
    its settings must match. Clips without captions are an error unless
    ``allow_uncaptioned``, which trains them without text (the unconditional branch).

    The corpus is read once per machine into a memory-mapped pack (``kinemic.packed``) that
    every process shares; ``loader_workers`` processes per training process make the batches
    ahead of the loop (default: 2 on a GPU, 0 on the CPU, where the step is long beside a
    batch's few milliseconds and every core already trains).

    Runs on one CPU or GPU as a plain command, or on several processes or GPUs under
    ``accelerate launch`` (bf16 with ``mixed_precision="bf16"``; ``cpu`` forces the CPU;
    ``torch_compile``: ``torch.compile`` on CUDA; see ``kinemic.training``).
    Returns OUT.
    """
    from kinemic.diffusion import Denoiser, DenoiserConfig, NoiseSchedule
    from kinemic.text import encode_all, encoder_spec, get_text_encoder
    from kinemic.training import TrainConfig, train

    out = Path(out)
    config = TrainConfig(
        steps=train_steps,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        grad_clip=grad_clip,
        ema=ema,
        seed=seed,
        mixed_precision=mixed_precision,
        cpu=cpu,
        torch_compile=torch_compile,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        log_every=log_every,
        progress=progress,
    )
    if batch_size < 1 or diffusion_steps < 1:
        raise KinemicError(
            f"batch_size and diffusion_steps must be >= 1 ({batch_size}, {diffusion_steps})"
        )
    if max_frames < min_frames:
        raise KinemicError(f"max_frames ({max_frames}) must be at least min_frames ({min_frames})")
    if resume is None and (out / "latest").exists():  # fail before reading the data
        raise KinemicError(
            f"{out} already holds a training run; pass --resume {out} to continue it, or "
            "choose another output folder"
        )
    if loader_workers is not None and loader_workers < 0:
        raise KinemicError(f"loader_workers must be >= 0, found {loader_workers}")
    on_gpu = not cpu and torch.cuda.is_available()
    corpus = MotionCorpus.load(
        sources,
        split=split,
        min_frames=min_frames,
        allow_uncaptioned=allow_uncaptioned,
        progress=progress,
    )
    # Processes share the accelerate state; the main one encodes first so a disk cache is
    # filled once and read by the others.
    state = process_state(cpu=cpu)  # forms the group of a launched run
    with state.main_process_first():
        encoder = get_text_encoder(
            text_encoder, cache_dir=None if text_cache is None else Path(text_cache)
        )
        embeddings = encode_all(
            encoder, corpus.captions, progress=progress and state.is_main_process
        )
    overrides = dict(model_overrides or {})
    if overrides.get("text_dim", encoder.dim) != encoder.dim:
        raise KinemicError(
            f"model override text_dim={overrides['text_dim']} does not match the text encoder "
            f"{text_encoder!r}, whose embeddings have {encoder.dim} dims"
        )
    overrides["text_dim"] = encoder.dim
    try:
        dcfg = DenoiserConfig.preset(preset, **overrides)
    except (TypeError, ValueError) as e:
        raise KinemicError(f"model settings: {e}") from None
    if max_frames + 1 > dcfg.max_len:
        raise KinemicError(
            f"max_frames {max_frames} exceeds the denoiser's max_len {dcfg.max_len} - 1"
        )
    torch.manual_seed(seed)  # the initial weights, then dropout (saved and restored on resume)
    model = Denoiser(dcfg)
    normalizer = corpus.fit_normalizer()
    data = {
        "sources": [str(Path(s).resolve()) for s in sources],
        "split": split,
        "min_frames": min_frames,
        "max_frames": max_frames,
        "allow_uncaptioned": allow_uncaptioned,
    }
    hyper = {
        "preset": preset,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup_steps": warmup_steps,
        "grad_clip": grad_clip,
        "ema": ema,
        "seed": seed,
        "mixed_precision": mixed_precision,
        "num_diffusion_steps": diffusion_steps,  # the recorded key of earlier versions
        "text_encoder": text_encoder,
    }
    fingerprint = {**data, **hyper, "denoiser": dcfg.to_dict()}
    extra = {
        **data,
        **hyper,
        "steps": train_steps,  # the recorded key of earlier versions
        "corpus": corpus.summary(),
        "clips": len(corpus),
        "frames": len(corpus.features),
        "captions": len(corpus.captions),
    }
    task = PretrainTask(
        corpus=corpus,
        normalizer=normalizer,
        text_embeddings=embeddings,
        schedule=NoiseSchedule(diffusion_steps),
        batch_size=batch_size,
        seed=seed,
        max_frames=max_frames,
        loader_workers=(2 if on_gpu else 0) if loader_workers is None else loader_workers,
        pin_memory=on_gpu,
        prior_info=dict(
            num_steps=diffusion_steps,
            text_encoder=encoder_spec(encoder),
            max_frames=max_frames,
            extra=extra,
        ),
    )
    if progress and state.is_main_process:
        tqdm.write(f"pretraining on {corpus.summary()}; {model.num_parameters():,} parameters")
    train(
        model,
        task,
        out,
        config,
        fingerprint=fingerprint,
        resume=resume,
        hparams={**hyper, "clips": len(corpus)},
    )
    return out
