"""Synthetic datasets from a fine-tuned generator (``kinemic synthesize``).

For every class of the generator's split: condition on the action id and the class caption,
draw lengths from that class's few-shot clips' lengths (stored in the generator), sample with
classifier-free guidance (2.5 by default; conditional and unconditional halves in one batched
forward) by ancestral DDPM over the generator's schedule or deterministic DDIM, de-normalise
with the prior's normaliser (foot contacts rounded to 0/1, their domain) and recover joints.
Samples of similar length share a batch.

The output is an NTU-VIBE-layout folder (valid under ``kinemic validate``)::

    OUT/new_joint_vecs/<id>.npy   (T, 263) float32 de-normalised HumanML3D features
    OUT/new_joints/<id>.npy       (T, 22, 3) joints from ``features_to_joints``: one per
                                  feature row, as HumanML3D stores recovered joints
    OUT/texts/<id>.txt            the class caption
    OUT/ntu_classes.txt, OUT/ntu_metadata.json     copied from the target dataset
    OUT/synth.txt, OUT/synth_y.txt                 ids and 0-based NTU labels
    OUT/info.json                 every setting and the generator it came from

Ids are ``synth_A{action:03d}_{index:05d}`` (action 1-based): the few-shot clips are never part
of the output. The folder is written under a temporary name and renamed into place at the end
(``kinemic.io.conversion.staged_dataset``), so an interrupted run leaves no half dataset under
OUT.

Batch b (batches of ``batch_size`` clips, sorted by length) is sampled with its own generator on
the model's device, seeded with ``kinemic.shards.batch_seed(seed, b)``, so the work splits over
processes (:mod:`kinemic.shards`): under ``accelerate launch``/``torchrun``, or with
``shard=Shard(K, N)`` (``--shards N --shard K``), a process makes every N-th batch into
``OUT.parts/part-K-of-N/`` (itself staged, with its settings in ``part.json`` written last); the
process that finds every part finished moves their clips into one staged OUT and removes
``OUT.parts``. The union is the single-process set, clip for clip. A part already finished with
the same settings is kept (a killed shard reruns only itself); one of other settings is an error.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from kinemic.devices import device_generator
from kinemic.errors import KinemicError
from kinemic.files import write_text
from kinemic.progress import progress_bar
from kinemic.shards import Shard, assembly_lock, batch_seed, end_assembly

__all__ = ["matches", "plan_samples", "synth_id", "synthesize"]

FORMAT = "kinemic-synthetic"
CONTACTS = slice(259, 263)  # the foot-contact dims of the HumanML3D features
VERSION = 2  # 2: one generator per batch (kinemic.shards), so that shards add up to one run
#: The clip folders of a set, which assembly moves from the parts into the set.
CLIP_FOLDERS = ("new_joint_vecs", "new_joints", "texts")
#: ``OUT`` + this: the parts of a sharded synthesis until they are assembled.
PARTS = ".parts"
#: A finished part's record (its settings), written last into the part.
PART_FILE = "part.json"


def synth_id(label: int, index: int) -> str:
    """The clip id of the ``index``-th synthetic clip of 0-based class ``label``."""
    return f"synth_A{label + 1:03d}_{index:05d}"


def plan_samples(
    class_lengths: dict[int, list[int]],
    classes: list[int],
    *,
    per_class: int | None,
    oversample: float | None,
    rng: np.random.Generator,
) -> list[tuple[int, int]]:
    """(class index, length) of every sample, class by class: ``per_class`` each, or
    ceil(``oversample`` × that class's number of shots); lengths drawn uniformly (with
    replacement) from the class's few-shot lengths."""
    if (per_class is None) == (oversample is None):
        raise KinemicError(
            "give exactly one of per_class (--per-class) or oversample (--oversample)"
        )
    if per_class is not None and per_class < 1:
        raise KinemicError(f"per_class must be >= 1, found {per_class}")
    if oversample is not None and not oversample > 0:
        raise KinemicError(f"oversample must be > 0, found {oversample}")
    plan = []
    for i, label in enumerate(classes):
        lengths = class_lengths.get(label)
        if not lengths:
            raise KinemicError(f"the generator records no few-shot lengths for class {label}")
        n = per_class if per_class is not None else math.ceil(oversample * len(lengths))
        plan += [(i, int(x)) for x in rng.choice(np.asarray(lengths), size=n, replace=True)]
    return plan


def synthesize(
    model: str | Path,
    out: str | Path,
    *,
    per_class: int | None = None,
    oversample: float | None = None,
    guidance: float = 2.5,
    ddim: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    bf16: bool = False,
    text_cache: str | Path | None = None,
    progress: bool = True,
    shard: Shard | None = None,
) -> Path:
    """Write a synthetic split of every class of a generator (see the module docstring).

    ``model``: a ``kinemic finetune`` run or one of its checkpoints. ``per_class`` clips per
    class, or ``oversample`` × the class's shots. ``ddim`` = N samples with N deterministic
    DDIM steps instead of ancestral DDPM over all the generator's steps. The same ``seed``
    and batch size give the same clips on one device type. Refuses an existing non-empty OUT.
    ``shard``: make this shard's batches only, into ``OUT.parts/`` (module doc); OUT appears
    when the last shard has assembled the parts. Returns OUT.
    """
    from kinemic.finetune.generator import load_generator
    from kinemic.io.conversion import staged_dataset
    from kinemic.prior.sample import check_sampling

    out = Path(out)
    shard = shard or Shard()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise KinemicError(f"{out} already exists and is not empty; choose another --out")
    if batch_size < 1:
        raise KinemicError(f"batch_size must be >= 1, found {batch_size}")
    gen = load_generator(model, device=device)
    check_sampling(guidance=guidance, ddim=ddim, num_steps=gen.schedule.num_steps)
    rng = np.random.default_rng(seed)
    plan = plan_samples(
        gen.class_lengths, gen.classes, per_class=per_class, oversample=oversample, rng=rng
    )
    if gen.text_spec is None:
        raise KinemicError(f"{gen.path}: its prior takes no text")
    counters = dict.fromkeys(range(len(gen.classes)), 0)
    ids = []
    for c, _ in plan:
        ids.append(synth_id(gen.classes[c], counters[c]))
        counters[c] += 1
    order = sorted(range(len(plan)), key=lambda i: (plan[i][1], i))  # similar lengths together
    batches = [order[a : a + batch_size] for a in range(0, len(order), batch_size)]
    info = {
        "format": FORMAT,
        "version": VERSION,
        "model": str(gen.path.resolve()),
        "method": gen.method,
        "prior": gen.config["prior"],
        "split": gen.config["split"],
        "target": gen.config.get("target"),
        "classes": gen.classes,
        "class_names": gen.class_names,
        "class_captions": gen.class_captions,
        "per_class": {str(gen.classes[c]): n for c, n in counters.items()},
        "per_class_setting": per_class,
        "oversample": oversample,
        "guidance": guidance,
        "sampler": "ddpm" if ddim is None else "ddim",
        "steps": gen.schedule.num_steps if ddim is None else ddim,
        "schedule_steps": gen.schedule.num_steps,
        "seed": seed,
        "noise": "batch b drawn from its own generator seeded with batch_seed(seed, b)",
        "batch_size": batch_size,
        "bf16": bf16,
        "lengths": "drawn from the few-shot clips' lengths of each class",
        "clips": len(ids),
        "generator_step": gen.config.get("step"),
        "joints": "features_to_joints of the features: one frame per feature row",
        "foot_contacts": "rounded to 0/1 (the model predicts them continuous)",
    }

    def make(folder: Path) -> None:
        _make_clips(
            gen,
            folder,
            plan,
            ids,
            batches,
            shard=shard,
            seed=seed,
            guidance=guidance,
            ddim=ddim,
            bf16=bf16,
            text_cache=text_cache,
            progress=progress,
        )

    if shard.whole:
        with staged_dataset(out) as staging:
            make(staging)
            _finish(staging, gen, plan, ids, info)
        return out
    parts = out.with_name(out.name + PARTS)
    part = parts / shard.name
    if not _part_done(part, info):
        with staged_dataset(part, overwrite=True) as staging:
            make(staging)
            write_text(staging / PART_FILE, json.dumps({"settings": info}, indent=1) + "\n")
    with assembly_lock(parts) as there:
        names = [Shard(k, shard.count).name for k in range(shard.count)]
        if not there or not all((parts / name / PART_FILE).is_file() for name in names):
            return out  # another shard has assembled the set, or will
        for name in names:
            _part_done(parts / name, info)  # a clear error for a part of other settings
        with staged_dataset(out) as staging:
            for name in names:
                for sub in CLIP_FOLDERS:
                    (staging / sub).mkdir(exist_ok=True)
                    for f in sorted((parts / name / sub).glob("*")):
                        os.replace(f, staging / sub / f.name)
            _finish(staging, gen, plan, ids, info)
        end_assembly(parts)
    return out


def _part_done(part: Path, info: dict) -> bool:
    """Whether ``part`` is a finished part of the synthesis ``info`` describes; a clear error
    when it is one of other settings."""
    path = part / PART_FILE
    if not path.is_file():
        return False
    have = json.loads(path.read_text(encoding="utf-8"))["settings"]
    if have != json.loads(json.dumps(info)):
        diff = sorted(k for k in info.keys() | have.keys() if have.get(k) != info.get(k))
        raise KinemicError(
            f"{path}: a part of a synthesis with other settings ({', '.join(diff)} differ); "
            f"synthesize every shard with the same settings, or delete {part.parent}"
        )
    return True


def _make_clips(
    gen,
    folder: Path,
    plan: list[tuple[int, int]],
    ids: list[str],
    batches: list[list[int]],
    *,
    shard: Shard,
    seed: int,
    guidance: float,
    ddim: int | None,
    bf16: bool,
    text_cache: str | Path | None,
    progress: bool,
) -> None:
    """Sample the batches ``shard`` owns and write their clips into ``folder``."""
    from kinemic.diffusion import lengths_to_mask, sample
    from kinemic.features import features_to_joints
    from kinemic.io.humanml3d import write_clip
    from kinemic.text import encoder_from_spec

    encoder = encoder_from_spec(gen.text_spec, cache_dir=text_cache)
    class_text = encoder.encode(list(gen.class_captions)).float()  # (C, E)
    device = next(gen.denoiser.parameters()).device
    F = gen.denoiser.config.feature_dim
    mine = [b for b in range(len(batches)) if shard.owns(b)]
    bar = progress_bar(
        total=sum(len(batches[b]) for b in mine),
        desc="synthesizing",
        unit="clip",
        enabled=progress,
        every_unit=True,
    )
    for b in mine:
        chunk = batches[b]
        lengths = torch.tensor([plan[i][1] for i in chunk])
        cls = torch.tensor([plan[i][0] for i in chunk])
        mask = lengths_to_mask(lengths)
        x = sample(
            gen.denoiser,
            gen.schedule,
            (len(chunk), mask.shape[1], F),
            text=class_text[cls],
            action=cls,
            mask=mask,
            guidance=guidance,
            generator=device_generator(batch_seed(seed, b), device),
            ddim_steps=ddim,
            bf16=bf16,
        )
        x = x.float().cpu().numpy()
        for row, i in enumerate(chunk):
            n = plan[i][1]
            features = gen.normalizer.inverse(x[row, :n]).astype(np.float32)  # (T, 263)
            contacts = features[:, CONTACTS]
            features[:, CONTACTS] = (contacts > 0.5).astype(np.float32)  # binary, as stored
            joints = features_to_joints(features).astype(np.float32)  # (T, 22, 3)
            write_clip(
                folder,
                ids[i],
                features=features,
                joints=joints,
                captions=[gen.class_captions[plan[i][0]]],
            )
        bar.update(len(chunk))
    bar.close()


def _finish(folder: Path, gen, plan: list[tuple[int, int]], ids: list[str], info: dict) -> None:
    """The set's lists, class files and ``info.json``, beside its clips."""
    labels = [gen.classes[c] for c, _ in plan]
    _write_classes(folder, gen)
    write_text(folder / "synth.txt", "".join(f"{i}\n" for i in ids))
    write_text(folder / "synth_y.txt", "".join(f"{y}\n" for y in labels))
    write_text(folder / "info.json", json.dumps(info, indent=2) + "\n")


def matches(
    folder: str | Path, *, model: str | Path, per_class: int, guidance: float, seed: int
) -> bool:
    """Whether ``folder`` holds a synthetic set that :func:`synthesize` made from a checkpoint
    of the run ``model`` (a ``kinemic finetune`` folder) with ``per_class`` clips of every
    class, this ``guidance`` and this ``seed``, as its ``info.json`` records; False when it
    holds no synthetic set."""
    info = Path(folder) / "info.json"
    if not info.is_file():
        return False
    have = json.loads(info.read_text(encoding="utf-8"))
    return (
        have.get("guidance") == guidance
        and have.get("seed") == seed
        and set(map(int, have.get("per_class", {}).values())) == {per_class}
        and Path(have.get("model", "")).resolve().parent.parent == Path(model).resolve()
    )


def _write_classes(folder: Path, gen) -> None:
    """``ntu_classes.txt`` / ``ntu_metadata.json``: the target's, or (target gone) the NTU names
    and the generator's captions."""
    from kinemic.io.ntu_names import NTU_CLASS_NAMES
    from kinemic.io.ntu_vibe import write_class_names, write_metadata

    target = Path(gen.config.get("target") or "")
    files = ("ntu_classes.txt", "ntu_metadata.json")
    if all((target / name).is_file() for name in files):
        for name in files:
            write_text(folder / name, (target / name).read_text(encoding="utf-8"))
    else:
        names = list(NTU_CLASS_NAMES)
        for label, name in zip(gen.classes, gen.class_names, strict=True):
            names[label] = name
        write_class_names(folder, names)
        write_metadata(
            folder, dict(zip(gen.classes, gen.class_captions, strict=True)), class_names=names
        )
