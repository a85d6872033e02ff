"""KineMIC fine-tuning (``kinemic finetune``): the run that trains the two-stream objective
(``kinemic.finetune.objective``) with the settings of ``kinemic.finetune.config``.

Per step, B few-shot target clips (normalised with the *prior's* normaliser; condition = the
class caption's embedding + the action id) are each paired with one soft positive source clip,
drawn uniformly from its class's top-k (``kinemic.mining.soft_positives``; with the kinematic
filter, ``FinetuneConfig.filter``, the caption top-``pool`` re-ranked by T-MOR against the
class's shots, fused with the caption score by ``weight``), with shared noise ε and a shared
step t of the fine-tuning schedule.

Which shots (``FinetuneConfig.batching``): "sampled" draws B with replacement per step;
"all-shots" walks a shuffled order of the N shots, min(B, N) per step, so that every shot is
used once per epoch of ceil(N / B) steps (the reference's DataLoader with ``shuffle=True``,
whose batch size shrinks to N when larger, and whose collate repeats a short last batch up to
the batch size: so does this). How they are cut (``crop_unit``): whole (a random window of the
longest length the prior takes, if longer), or a random window whose length is a multiple of
the unit (the reference's ``to_unit_length``), source clips the same way.

Every random draw of a step (target clips, soft positives, crops, source captions, t, ε) comes
from ``(seed, step)`` (the shots' order of an epoch from ``(seed, epoch)``); the global batch is
drawn once and each process takes its slice, so a resumed run sees what an uninterrupted one
would (the bank and dropout RNG are restored from the checkpoint).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kinemic.corpus import step_rng
from kinemic.diffusion import NoiseSchedule
from kinemic.errors import KinemicError
from kinemic.finetune.config import FinetuneConfig, default_recipe
from kinemic.finetune.data import SourceClips, TargetClips, load_sources, load_targets
from kinemic.finetune.generator import TwoStreamDenoiser, prior_pointer, save_generator
from kinemic.finetune.objective import FinetuneModel
from kinemic.mining.mic import MIC

__all__ = ["FinetuneConfig", "FinetuneModel", "FinetuneTask", "finetune", "unit_crop"]


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
        all_shots = self.config.batching == "all-shots"
        B = self.config.batch_size
        if all_shots:  # the reference's loader shrinks its batch size to the shots
            B = min(B, len(self.targets.features))
        if B % world_size:
            raise KinemicError(f"batch size {B} is not divisible by the {world_size} processes")
        rng = step_rng(self.config.seed, step)
        if all_shots:
            pick = self.shots(step)
        else:
            pick = rng.integers(0, len(self.targets.features), size=B)
        label = self.targets.labels[pick]  # (B,) class index
        tgt = [self._crop(self.targets.features[i], self.max_target_frames, rng) for i in pick]
        src: list[np.ndarray] = []
        src_caption: list[int] = []
        if self.positives is not None and self.sources is not None:
            for c in label:
                s = int(self.positives[c, rng.integers(0, self.positives.shape[1])])
                src.append(self._crop(self.sources.features[s], self.max_source_frames, rng))
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

    def shots(self, step: int) -> np.ndarray:
        """The shots (indices into ``targets``) of step ``step`` with "all-shots" batching:
        the slice of its epoch's shuffled order; a short last slice is repeated cyclically up
        to min(B, N), as the reference's collate does."""
        N = len(self.targets.features)
        per_step = min(self.config.batch_size, N)
        steps_per_epoch = -(-N // per_step)
        epoch, index = divmod(step, steps_per_epoch)
        order = step_rng(self.config.seed, epoch, 1).permutation(N)
        return np.resize(order[index * per_step : (index + 1) * per_step], per_step)

    def _crop(self, clip: np.ndarray, max_frames: int, rng: np.random.Generator) -> np.ndarray:
        if self.config.crop_unit == 0:
            return _crop(clip, max_frames, rng)
        return unit_crop(clip, self.config.crop_unit, max_frames, rng)

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


def unit_crop(clip: np.ndarray, unit: int, max_frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of ``clip`` (T, F) whose length is a multiple of ``unit``: the
    reference's ``to_unit_length``. The length is min(T, max_frames) floored to a multiple of
    ``unit``, one ``unit`` shorter with probability 1/3 when ``unit`` < 10, never below
    min(T, unit) frames; the window's first frame is uniform over the clip."""
    length = min(len(clip), max_frames)
    shorter = unit < 10 and int(rng.integers(0, 3)) == 2  # the reference's 'double' coin
    n = max((length // unit - shorter) * unit, min(length, unit))
    first = int(rng.integers(0, len(clip) - n + 1))
    return clip[first : first + n]


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
    torch_compile: bool = False,
) -> Path:
    """Fine-tune a prior to the classes of a few-shot split (KineMIC, or the ``mdm-ft`` baseline).

    ``target``: an NTU-VIBE-layout folder with the few-shot ``split`` (its train clips are the
    shots; each class conditions on its caption from ``ntu_metadata.json``). ``prior``: a prior
    folder, a pretraining run, or "shipped". ``source``: the HumanML3D-layout corpus soft
    positives come from (method ``kinemic``; default: the prior's recorded training sources
    that exist as folders). ``config`` None: the recipe ``default_recipe`` picks for the prior
    (``paper`` for an imported MDM, ``cpu`` otherwise). Every input is checked before training
    starts; a bad split,
    missing clips, classes with fewer clips than shots, empty captions, an incomplete prior
    folder or a wrong source raise ``KinemicError``.

    Writes the run folder OUT (``kinemic.training``): ``checkpoints/step-N/`` each a generator
    folder (adapter, action table, MIC, config pointing to the prior with its sha256; see
    ``kinemic.finetune.generator``) plus the resume state, ``latest`` and TensorBoard logs with
    each loss term. ``resume`` (OUT) continues exactly where it stopped. ``torch_compile``:
    ``torch.compile`` the objective (CUDA only, ``kinemic.training``). Returns OUT.
    """
    from kinemic.prior.folder import load_prior
    from kinemic.text import encoder_from_spec
    from kinemic.training import train

    out = Path(out)
    if resume is None and (out / "latest").exists():
        raise KinemicError(
            f"{out} already holds a training run; pass --resume {out} to continue it, or "
            "choose another output folder"
        )
    p = load_prior(prior)  # a generator is refused: "... is a fine-tuned generator, not a prior"
    config = config or FinetuneConfig.from_recipe(default_recipe(p.config))
    config = replace(config, lora=config.lora.resolved())  # recorded with its module names
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
            filter_config=config.filter,
            progress=progress,
        )
    diffusion_steps = config.diffusion_steps
    pointer = prior_pointer(p)
    mic_cfg = (
        config.mic_config(p.denoiser.config.latent_dim) if config.method == "kinemic" else None
    )
    generator_config = {
        "method": config.method,
        "prior": pointer,
        "adapter": "full" if config.full_finetune else "lora",
        "lora": None if config.full_finetune else config.lora.to_dict(),
        "schedule": {
            "kind": "cosine",
            "num_steps": diffusion_steps,
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
    settings = config.flat()
    fingerprint = {
        **_fingerprint_settings(config),
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
        lora=None if config.full_finetune else config.lora,
        diffusion_steps=diffusion_steps,
        prior_diffusion_steps=p.schedule.num_steps,
    )
    mic = None if mic_cfg is None else MIC(mic_cfg)
    task = FinetuneTask(
        targets=targets,
        sources=sources,
        positives=positives,
        class_text=class_text,
        schedule=NoiseSchedule(diffusion_steps),
        config=config,
        max_target_frames=max_tgt,
        max_source_frames=max_src,
        generator_config=generator_config,
    )
    objective = FinetuneModel(model, mic, task.schedule, config)
    hparams = {k: v for k, v in settings.items() if isinstance(v, (int, float, str))}
    train(
        objective,
        task,
        out,
        replace(
            config.train_config(progress=progress, position=progress_position),
            torch_compile=torch_compile,
        ),
        fingerprint=fingerprint,
        resume=resume,
        hparams=hparams,
    )
    return out


# Settings added after runs were first recorded, with the value that reproduces the behaviour
# from before: left out of the fingerprint at that value, so that those runs still resume.
_ADDED = {
    "batching": "sampled",
    "crop_unit": 0,
    "mic_arch": "small",
    "contrastive_loss": "supcon",
    "min_logit_scale": 0.0,
    "logit_scale_clamp": "value",
}


def _fingerprint_settings(config: FinetuneConfig) -> dict[str, Any]:
    """The settings that must be equal to resume a run: the flat layout of earlier versions
    (``FinetuneConfig.flat``) without what may change (steps, checkpointing, logging, the
    recipe's name) and without what only later versions record at its earlier value."""
    settings = config.flat()
    free = {"recipe", "train_steps", "checkpoint_every", "keep_checkpoints", "log_every"}
    free |= {k for k, v in _ADDED.items() if settings[k] == v}
    if not config.full_finetune:  # mdm_ft changes nothing else
        free.add("mdm_ft")
    if config.filter.kind == "none":  # runs from before the filter option resume as they did
        free |= {"filter", "filter_pool", "filter_encoder", "filter_weight"}
    elif config.filter.weight == 1.0:  # the motion-only ranking, the filter before the weight
        free.add("filter_weight")
    if settings["lora"]["layout"] == "packed":
        settings["lora"] = {k: v for k, v in settings["lora"].items() if k != "layout"}
    return {k: v for k, v in settings.items() if k not in free}


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
