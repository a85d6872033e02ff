"""T-MOR pretraining (``kinemic tmor pretrain``): skeletons against captions (and video).

Each step draws a batch of captioned crops (:func:`kinemic.tmor.data.draw_tmor_batch`: clips
without replacement, a caption each — a ``#start#end`` caption crops to its span — random
crops, mirroring with the caption's sides swapped, body scale), embeds the motions with the
skeleton tower, the captions' frozen text embeddings with the text projection and, with
``visual``, the clips' visual features with the visual tower, and minimises

    L = InfoNCE(motion, text) + visual_weight · InfoNCE(motion, visual)

(symmetric, learnable temperatures). Captions whose frozen embeddings have cosine above
``dup_threshold`` — and crops of the same clip — are masked out of each other's denominators
(:mod:`kinemic.tmor.loss`); the visual pair masks crops of the same clip only. Clips without
visual features (e.g. mocap) take part in the text pair only.

Everything random in a step comes from ``(seed, step)``, so a resumed run sees the batches an
uninterrupted one would (the training loop restores weights, optimiser, EMA and dropout RNG).
Under several processes each one embeds its slice of the global batch and contrasts the
embeddings of all of them: the loss is that of the whole batch, whatever the process count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from kinemic.distributed import gather, process_state
from kinemic.errors import KinemicError
from kinemic.tmor.data import TMORBatches, TMORCorpus
from kinemic.tmor.inputs import motion_input
from kinemic.tmor.loss import duplicate_mask, info_nce


@dataclass
class TMORTask:
    """The T-MOR objective as a ``kinemic.training.TrainTask``."""

    corpus: TMORCorpus
    text_embeddings: torch.Tensor  # (len(corpus.texts), text_dim) frozen, CPU float32
    batch_size: int
    seed: int = 0
    max_frames: int = 160
    min_frames: int = 20
    crop: float = 0.8
    mirror: float = 0.5
    scale: tuple[float, float] = (0.9, 1.1)
    dup_threshold: float = 0.9
    visual_weight: float = 1.0
    text_spec: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    loader_workers: int = 0  # processes making batches ahead (kinemic.loader)
    pin_memory: bool = False  # batches in page-locked memory (CUDA)
    _loader: Any = field(default=None, init=False, repr=False, compare=False)

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> dict[str, torch.Tensor]:
        """This process's rows of step ``step``'s batch (``TMORBatches``), made ahead by
        ``loader_workers`` processes (``kinemic.loader``)."""
        from kinemic.loader import StepLoader

        shard = (rank, world_size)
        if self._loader is None or (self._loader.draw.rank, self._loader.draw.world_size) != shard:
            draw = TMORBatches(
                self.corpus,
                self.batch_size,
                seed=self.seed,
                max_frames=self.max_frames,
                min_frames=self.min_frames,
                crop=self.crop,
                mirror=self.mirror,
                scale=self.scale,
                rank=rank,
                world_size=world_size,
            )
            self._loader = StepLoader(draw, workers=self.loader_workers, pin_memory=self.pin_memory)
        out = dict(self._loader(step))
        out["text_emb"] = self.text_embeddings[out.pop("text")]
        return out

    def losses(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The named loss terms: ``text`` and, with visual features, ``visual``. Under several
        processes, over the embeddings of all of them (every process computes the loss of
        the whole batch, as one process would: ``kinemic.distributed.gather``)."""
        x = motion_input(batch["joints"], batch["mask"])
        visual = batch.get("visual")
        out = model(x, batch["mask"], batch["text_emb"], visual, batch.get("visual_mask"))
        motion, clip = gather(out["motion"]), gather(batch["clip"])
        ignore = duplicate_mask(
            gather(batch["text_emb"]), threshold=self.dup_threshold, groups=clip
        )
        terms = {"text": info_nce(motion, gather(out["text"]), out["scale_text"], ignore=ignore)}
        if visual is not None:
            has = gather(batch["has_visual"])
            if int(has.sum()) >= 2:
                same = duplicate_mask(None, groups=clip[has])
                terms["visual"] = info_nce(
                    motion[has], gather(out["visual"])[has], out["scale_visual"], ignore=same
                )
            else:  # keep the visual tower in the graph (multi-process training needs it)
                terms["visual"] = 0.0 * out["visual"].sum()
        return terms

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the total loss, its named terms: logged as ``train/text``, ``train/visual``)."""
        terms = self.losses(model, batch)
        total = terms["text"] + self.visual_weight * terms.get("visual", 0.0)
        return total, {k: v.detach() for k, v in terms.items()}

    def export(self, folder: Path, model: nn.Module, ema: nn.Module | None, *, step: int) -> None:
        from kinemic.tmor.encoder import save_tmor

        save_tmor(
            folder,
            model,
            ema=ema,
            text_encoder=self.text_spec,  # type: ignore[arg-type]
            visual_kind=self.corpus.visual_kind,
            extra={**self.extra, "step": step},
        )


def pretrain_tmor(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    preset: Literal["tiny", "small", "base"] = "small",
    model_overrides: dict[str, Any] | None = None,
    visual: bool = False,
    visual_dirs: Sequence[str | Path | None] | None = None,
    train_steps: int = 20_000,
    batch_size: int = 64,
    lr: float = 3e-4,
    weight_decay: float = 0.01,
    warmup_steps: int = 200,
    grad_clip: float | None = 1.0,
    ema: float | None = 0.995,
    text_encoder: str = "minilm",
    text_cache: str | Path | None = None,
    seed: int = 0,
    mixed_precision: Literal["no", "bf16"] = "no",
    cpu: bool = False,
    torch_compile: bool = False,
    checkpoint_every: int = 1000,
    keep_checkpoints: int = 3,
    log_every: int = 50,
    resume: str | Path | None = None,
    max_frames: int = 160,
    min_frames: int = 20,
    crop: float = 0.8,
    mirror: float = 0.5,
    dup_threshold: float = 0.9,
    visual_weight: float = 1.0,
    split: str | None = "train",
    progress: bool = True,
    loader_workers: int | None = None,
) -> Path:
    """Pretrain a T-MOR encoder on captioned HumanML3D-layout corpora; returns OUT.

    Reads each SOURCE's ``split`` (all clips without ``<split>.txt``): joints, captions and,
    with ``visual``, ``visual/<id>.npy`` (or ``visual_dirs``). Embeds every caption (and its
    mirrored text) once with the frozen ``text_encoder`` (disk-cached), then trains the
    ``preset`` model (``tiny``: tests; ``small``: CPU, the shipped size; ``base``: GPU) with the
    symmetric InfoNCE of the module docstring for ``train_steps`` optimiser steps on
    ``batch_size`` crops per step (at most ``max_frames`` frames, at least ``crop`` of the
    caption's span; ``loader_workers`` processes make them ahead: default 2 on a GPU, 0 on the
    CPU). Writes the run folder OUT:
    ``checkpoints/step-N/`` (each an encoder folder for ``load_tmor``, plus the state to
    resume), ``latest``, TensorBoard logs. ``resume`` continues exactly (same settings).
    """
    from kinemic.text import encode_all, encoder_spec, get_text_encoder
    from kinemic.tmor.model import TMOR, TMORConfig
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
    problems = []
    if batch_size < 2:
        problems.append(f"batch_size must be >= 2 (contrastive), found {batch_size}")
    if not 0.0 < crop <= 1.0:
        problems.append(f"crop must be in (0, 1], found {crop}")
    if not 0.0 <= mirror <= 1.0:
        problems.append(f"mirror must be in [0, 1], found {mirror}")
    if max_frames < min_frames or min_frames < 2:
        problems.append(f"need 2 <= min_frames ({min_frames}) <= max_frames ({max_frames})")
    if not -1.0 <= dup_threshold <= 1.0:
        problems.append(f"dup_threshold is a cosine in [-1, 1], found {dup_threshold}")
    if loader_workers is not None and loader_workers < 0:
        problems.append(f"loader_workers must be >= 0, found {loader_workers}")
    if problems:
        raise KinemicError("T-MOR pretraining settings: " + "; ".join(problems))
    on_gpu = not cpu and torch.cuda.is_available()  # pinned batches, 2 loader workers
    if resume is None and (out / "latest").exists():
        raise KinemicError(
            f"{out} already holds a training run; pass --resume {out} to continue it, or "
            "choose another output folder"
        )
    corpus = TMORCorpus.load(
        sources,
        split=split,
        min_frames=min_frames,
        visual=visual,
        visual_dirs=visual_dirs,
        progress=progress,
    )
    state = process_state(cpu=cpu)  # forms the group of a launched run
    with state.main_process_first():
        encoder = get_text_encoder(
            text_encoder, cache_dir=None if text_cache is None else Path(text_cache)
        )
        embeddings = encode_all(encoder, corpus.texts, progress=progress and state.is_main_process)
    overrides = dict(model_overrides or {})
    overrides["text_dim"] = encoder.dim
    if visual:
        overrides["visual"] = "clip" if corpus.visual_kind == "clip" else "frames"
        overrides["visual_dim"] = corpus.visual_dim
    try:
        mcfg = TMORConfig.preset(preset, **overrides)
    except TypeError as e:
        raise KinemicError(f"T-MOR model settings: {e}") from None
    torch.manual_seed(seed)
    model = TMOR(mcfg)
    data = {
        "sources": [str(Path(s).resolve()) for s in sources],
        "split": split,
        "visual": visual,
        "visual_dirs": None
        if visual_dirs is None
        else [None if v is None else str(Path(v).resolve()) for v in visual_dirs],
        "min_frames": min_frames,
        "max_frames": max_frames,
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
        "text_encoder": text_encoder,
        "crop": crop,
        "mirror": mirror,
        "dup_threshold": dup_threshold,
        "visual_weight": visual_weight,
    }
    fingerprint = {**data, **hyper, "model": mcfg.to_dict()}
    extra = {
        **data,
        **hyper,
        "steps": train_steps,  # the recorded key of earlier versions
        "corpus": corpus.summary(),
        "clips": len(corpus),
    }
    task = TMORTask(
        corpus=corpus,
        text_embeddings=embeddings,
        batch_size=batch_size,
        seed=seed,
        max_frames=max_frames,
        min_frames=min_frames,
        crop=crop,
        mirror=mirror,
        dup_threshold=dup_threshold,
        visual_weight=visual_weight,
        text_spec=encoder_spec(encoder),
        extra=extra,
        loader_workers=(2 if on_gpu else 0) if loader_workers is None else loader_workers,
        pin_memory=on_gpu,
    )
    if progress and state.is_main_process:
        tqdm.write(
            f"T-MOR pretraining on {corpus.summary()}; {model.num_parameters():,} parameters"
        )
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
