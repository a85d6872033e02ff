"""Sampling motions from a prior or a fine-tuned generator: :func:`sample` in memory,
:func:`sample_motions` into a folder (``kinemic sample``).

Output folder of :func:`sample_motions`::

    OUT/features/<i>.npy    (T, 263) float32 de-normalised HumanML3D features
    OUT/joints/<i>.npy      (T, 22, 3) float32 joints recovered from the features
    OUT/samples[_k].gif     the samples side by side (at most 8 per GIF)
    OUT/info.json           every setting, and each sample's prompt, action and length

Sampling splits over processes like synthesis (:mod:`kinemic.shards`): batch b of
``batch_size`` samples is drawn from its own generator on the model's device, seeded with
``batch_seed(seed, b)``; a shard makes every N-th batch and writes its samples' files, and
the last shard to finish writes the GIFs and ``info.json`` (its parts are recorded in
``OUT/.parts/`` until then).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from kinemic.constants import FPS
from kinemic.devices import device_generator
from kinemic.errors import KinemicError
from kinemic.files import make_folder, read_npy, save_npy, write_text
from kinemic.models import load_model
from kinemic.shards import Shard, assembly_lock, batch_seed, end_assembly

if TYPE_CHECKING:
    from kinemic.finetune.generator import ActionGenerator
    from kinemic.prior.folder import Prior

GIF_COLUMNS = 8
#: Where the shards of a sharded ``sample_motions`` record their parts until it is assembled.
PARTS = ".parts"
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*s\s*$")


def parse_length(length: str | int, *, max_frames: int) -> int:
    """Frames (feature rows) from ``"3s"``, ``"3.5s"`` (20 fps) or an integer number of frames;
    a clear error outside [1, max_frames]."""
    if isinstance(length, str) and _SECONDS.match(length):
        frames = round(float(_SECONDS.match(length).group(1)) * FPS)
    else:
        try:
            frames = int(length)
            if isinstance(length, float) and frames != length:
                raise ValueError
        except (TypeError, ValueError):
            raise KinemicError(
                f"length {length!r}: expected seconds like '3s' or '3.5s', or a number of frames"
            ) from None
    if not 1 <= frames <= max_frames:
        raise KinemicError(
            f"length {length!r} = {frames} frames is outside what this model can make: "
            f"1..{max_frames} frames (up to {max_frames / FPS:g}s at {FPS:g} fps)"
        )
    return frames


def check_sampling(*, guidance: float, ddim: int | None, num_steps: int) -> None:
    """The rules every sampler entry point applies (``kinemic sample``, ``kinemic synthesize``):
    a finite classifier-free ``guidance`` scale > 0 (1 = none), and ``ddim`` steps, when given,
    within the model's ``num_steps`` diffusion steps."""
    if not (math.isfinite(guidance) and guidance > 0):
        raise KinemicError(
            f"guidance must be a number > 0 (1 = no guidance, 2.5 is usual), found {guidance}"
        )
    if ddim is not None and not 1 <= ddim <= num_steps:
        raise KinemicError(
            f"ddim must be in [1, {num_steps}] (this model's diffusion steps), found {ddim}"
        )


def _action_ids(actions: Sequence[str | int], names: list[str], num_actions: int) -> list[int]:
    if num_actions == 0:
        raise KinemicError("this model has no action condition (it was not fine-tuned on actions)")
    ids = []
    for a in actions:
        if isinstance(a, str) and not a.strip().isdigit():
            if a not in names:
                shown = ", ".join(repr(n) for n in names[:10]) or "(the model stores no names)"
                raise KinemicError(f"unknown action {a!r}; this model's actions are {shown}")
            ids.append(names.index(a))
        else:
            ids.append(int(a))
        if not 0 <= ids[-1] < num_actions:
            raise KinemicError(f"action {a!r}: expected a 0-based id in [0, {num_actions})")
    return ids


@dataclass
class Samples:
    """Motions made by :func:`sample`, in memory.

    - ``features`` (B, T, 263) float32: de-normalised HumanML3D features;
    - ``joints`` (B, T, 22, 3) float32: joint positions in metres (Y up, SMPL-22 order) recovered
      from the features, at ``fps`` (20) frames per second;
    - ``conditions``: each sample's (text, 0-based action id), None where not conditioned;
    - ``frames``: T, the feature rows (and joint frames) of every sample;
    - ``indices``: each row's place in the whole set (0, 1, ... unless one shard's part).

    The model they came from: ``model_folder`` (the folder it was loaded from), ``weights``
    ("ema", "raw", "adapter" or "full"), ``diffusion_steps`` (its schedule's), ``text_encoder`` and
    ``action_names``. Sample i was drawn with condition ``conditions[i]``; the ``n`` samples of
    one condition are consecutive.

    Examples:
        >>> import kinemic
        >>> motion = kinemic.sample("shipped", n=2, length=10, ddim=2)  # unconditional
        >>> motion.features.shape, motion.joints.shape, motion.frames
        ((2, 10, 263), (2, 10, 22, 3), 10)
        >>> motion.conditions, motion.titles
        ([(None, None), (None, None)], ['unconditional', 'unconditional'])
    """

    features: np.ndarray
    joints: np.ndarray
    conditions: list[tuple[str | None, int | None]]
    frames: int
    model_folder: Path
    weights: str
    diffusion_steps: int
    text_encoder: str | None
    action_names: list[str] = field(default_factory=list)
    fps: int = int(FPS)
    indices: list[int] = field(default_factory=list)

    @property
    def titles(self) -> list[str]:
        """A short title per sample: its action's name and its text (shortened)."""
        return [_title(t, a, self.action_names) for t, a in self.conditions]


def sample(
    model: Prior | ActionGenerator | str | Path,
    *,
    texts: Sequence[str] | None = None,
    actions: Sequence[str | int] | None = None,
    n: int = 8,
    length: str | int = "3s",
    diffusion_steps: int | None = None,
    ddim: int | None = None,
    guidance: float = 2.5,
    seed: int = 0,
    bf16: bool = False,
    device: str | torch.device = "cpu",
    text_cache: str | Path | None = None,
    progress: bool = False,
    batch_size: int | None = None,
    shard: Shard | None = None,
) -> Samples:
    """Sample motions in memory from a prior or a fine-tuned generator.

    ``model`` is a loaded prior (``load_prior``) or generator (``load_generator``), or a
    folder (a prior, a training run, a ``kinemic finetune`` run or checkpoint, or "shipped")
    loaded here on ``device``; a loaded model samples on the device it is on.

    Makes ``n`` samples of each condition: each text of ``texts``, each action of ``actions``
    (0-based ids or class names of a fine-tuned generator), or each (action, text) pair when
    both are given (same count, or one of them a single item) — with a generator, an action
    and an unrelated text blend both conditions (KineMIC's composition); no condition gives
    ``n`` unconditional samples. ``length`` is "3s", "3.5s" (20 fps) or a number of frames, at
    most the model's training length. Sampling is ancestral DDPM over the model's
    ``diffusion_steps`` (the only value accepted), or deterministic DDIM over ``ddim`` steps;
    ``guidance`` is the classifier-free guidance scale (1 = none). ``text_cache`` is the
    folder of the text-embedding cache (default: kinemic's).

    The samples are drawn in batches of ``batch_size`` (default: all in one), batch b with a
    generator on the model's device seeded with ``batch_seed(seed, b)`` (batch 0: ``seed``):
    the same seed and batch size give the same samples on one device type. ``shard`` makes
    only its batches (:mod:`kinemic.shards`); ``Samples.indices`` tells which.

    Returns :class:`Samples`: features (B, T, 263) and joints (B, T, 22, 3), B = n × conditions
    (a shard: its rows only).

    Examples:
        >>> import kinemic
        >>> prior = kinemic.load_prior("shipped")
        >>> motion = kinemic.sample(prior, texts=["a person waves"], n=2, length="1s", ddim=2)
        >>> motion.features.shape  # (B, T, 263), T = 1 s at 20 fps
        (2, 20, 263)
        >>> motion.joints.shape  # (B, T, 22, 3), metres
        (2, 20, 22, 3)
        >>> motion.conditions
        [('a person waves', None), ('a person waves', None)]
    """
    from kinemic.diffusion import sample as diffusion_sample
    from kinemic.features import features_to_joints

    if n < 1:
        raise KinemicError(f"n must be >= 1, found {n}")
    if batch_size is not None and batch_size < 1:
        raise KinemicError(f"batch_size must be >= 1, found {batch_size}")
    prior = load_model(model, device=device) if isinstance(model, (str, Path)) else model
    frames = parse_length(length, max_frames=prior.max_frames)
    check_sampling(guidance=guidance, ddim=ddim, num_steps=prior.schedule.num_steps)
    if diffusion_steps is not None and diffusion_steps != prior.schedule.num_steps:
        raise KinemicError(
            f"diffusion_steps={diffusion_steps}: this model samples with "
            f"{prior.schedule.num_steps} diffusion steps, the only number it can sample with; "
            "use ddim=N for fewer (faster) steps"
        )
    texts = list(texts or [])
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise KinemicError(
                f"text {t!r}: a caption must hold words; leave --text out to sample without text"
            )
    action_ids = (
        []
        if not actions
        else _action_ids(actions, prior.action_names, prior.denoiser.config.num_actions)
    )
    if (
        texts
        and action_ids
        and len(texts) != len(action_ids)
        and 1 not in (len(texts), len(action_ids))
    ):
        raise KinemicError(
            f"{len(texts)} texts and {len(action_ids)} actions: give as many of each, "
            "or one of either"
        )
    count = max(len(texts), len(action_ids), 1)
    conds = [
        (
            texts[i % len(texts)] if texts else None,
            action_ids[i % len(action_ids)] if action_ids else None,
        )
        for i in range(count)
    ]
    conds = [c for c in conds for _ in range(n)]  # n samples of each condition
    B = len(conds)

    text = None
    if texts:
        if prior.text_encoder is None:
            raise KinemicError(
                "this model takes no text; sample it with actions or unconditionally"
            )
        from kinemic.text import encoder_from_spec

        encoder = encoder_from_spec(prior.text_spec or prior.text_encoder, cache_dir=text_cache)
        if encoder.dim != prior.text_dim:
            raise KinemicError(
                f"text encoder {prior.text_encoder!r} gives {encoder.dim}-d embeddings but the "
                f"model expects {prior.text_dim}-d"
            )
        unique = list(dict.fromkeys(texts))
        emb = encoder.encode(unique).float().cpu()  # (U, E)
        text = emb[torch.tensor([unique.index(t) for t, _ in conds])]
    action = None if not action_ids else torch.tensor([a for _, a in conds], dtype=torch.long)

    shard = shard or Shard()
    on = next(prior.denoiser.parameters()).device
    F = prior.denoiser.config.feature_dim
    size = B if batch_size is None else batch_size
    parts, indices = [], []
    for b, a in enumerate(range(0, B, size)):
        if not shard.owns(b):
            continue
        rows = slice(a, min(a + size, B))
        x = diffusion_sample(
            prior.denoiser,
            prior.schedule,
            (rows.stop - a, frames, F),
            text=None if text is None else text[rows],
            action=None if action is None else action[rows],
            guidance=guidance,
            generator=device_generator(batch_seed(seed, b), on),
            ddim_steps=ddim,
            bf16=bf16,
            progress=progress,
        )
        parts.append(prior.normalizer.inverse(x.float().cpu().numpy()).astype(np.float32))
        indices += range(a, rows.stop)
    features = np.concatenate(parts) if parts else np.zeros((0, frames, F), np.float32)
    joints = features_to_joints(features).astype(np.float32)  # (B, T, 22, 3)
    return Samples(
        features=features,  # (B, T, 263) de-normalised
        joints=joints,
        conditions=[conds[i] for i in indices],
        indices=indices,
        frames=frames,
        model_folder=Path(prior.path),
        weights=prior.weights,
        diffusion_steps=prior.schedule.num_steps,
        text_encoder=prior.text_encoder,
        action_names=list(prior.action_names),
    )


def sample_motions(
    model: str | Path,
    *,
    texts: Sequence[str] | None = None,
    actions: Sequence[str | int] | None = None,
    n: int = 8,
    length: str | int = "3s",
    diffusion_steps: int | None = None,
    ddim: int | None = None,
    guidance: float = 2.5,
    seed: int = 0,
    out: str | Path,
    bf16: bool = False,
    gif: bool = True,
    device: str | torch.device = "cpu",
    weights: str = "ema",
    text_cache: str | Path | None = None,
    progress: bool = True,
    batch_size: int | None = None,
    shard: Shard | None = None,
) -> Path:
    """Sample motions from a prior (a prior folder, or a training run: its latest checkpoint) or
    from a fine-tuned generator (a ``kinemic finetune`` run or checkpoint) into a folder.

    The conditions and settings are those of :func:`sample`; ``weights`` ("ema" or "raw")
    picks a prior's weights.

    Writes OUT/features/<i>.npy (T, 263), OUT/joints/<i>.npy (T, 22, 3), GIFs of up to 8
    samples side by side (unless ``gif=False``) and OUT/info.json. Returns OUT.

    ``shard``: write this shard's samples only (module doc); the shard that finds every part
    written writes the GIFs and OUT/info.json, which is therefore there once the set is whole.
    """
    out = Path(out)
    if n < 1:
        raise KinemicError(f"n must be >= 1, found {n}")
    shard = shard or Shard()
    prior = load_model(model, weights=weights, device=device)  # type: ignore[arg-type]
    samples = sample(
        prior,
        texts=texts,
        actions=actions,
        n=n,
        length=length,
        diffusion_steps=diffusion_steps,
        ddim=ddim,
        guidance=guidance,
        seed=seed,
        bf16=bf16,
        text_cache=text_cache,
        progress=progress,
        batch_size=batch_size,
        shard=shard,
    )
    make_folder(out)  # a clear error when OUT is a file, before anything is written
    for r, i in enumerate(samples.indices):
        save_npy(out / "features" / f"{i}.npy", samples.features[r])
        save_npy(out / "joints" / f"{i}.npy", samples.joints[r])
    settings = {
        "model": str(Path(model)),
        "prior_folder": str(samples.model_folder),
        "weights": samples.weights,
        "texts": list(texts or []),
        "actions": list(actions or []),
        "n": n,
        "length": length,
        "frames": samples.frames,
        "fps": int(FPS),
        "steps": samples.diffusion_steps,
        "sampler": "ddpm" if ddim is None else f"ddim-{ddim}",
        "ddim": ddim,
        "guidance": guidance,
        "seed": seed,
        "batch_size": batch_size,
        "bf16": bf16,
        "text_encoder": samples.text_encoder,
    }
    rows = [
        {"index": i, "text": t, "action": a}
        for i, (t, a) in zip(samples.indices, samples.conditions, strict=True)
    ]
    if not shard.whole:
        rows = _record_part(out / PARTS, shard, settings, rows)
        if rows is None:  # other parts are still being made
            return out
    joints = (
        list(samples.joints)
        if shard.whole
        else [read_npy(out / "joints" / f"{r['index']}.npy") for r in rows]
    )
    titles = [_title(r["text"], r["action"], samples.action_names) for r in rows]
    gifs = _write_gifs(out, joints, titles) if gif else []
    info = {
        **settings,
        "device": str(device),
        "shards": shard.count,
        "gifs": gifs,
        "samples": [
            {
                **r,
                "frames": samples.frames,
                "features": f"features/{r['index']}.npy",
                "joints": f"joints/{r['index']}.npy",
            }
            for r in rows
        ],
    }
    write_text(out / "info.json", json.dumps(info, indent=2) + "\n")
    return out


def _record_part(parts: Path, shard: Shard, settings: dict, rows: list[dict]) -> list[dict] | None:
    """Record this shard's samples in ``parts``; then, if every part is recorded with the same
    settings, every sample's row in order (the caller assembles), else None."""
    write_text(
        parts / f"{shard.name}.json",
        json.dumps({"settings": settings, "samples": rows}, indent=1) + "\n",
    )
    with assembly_lock(parts) as there:
        if not there:  # another shard has assembled the set
            return None
        names = [Shard(k, shard.count).name for k in range(shard.count)]
        if not all((parts / f"{name}.json").is_file() for name in names):
            return None
        merged = []
        for name in names:
            record = json.loads((parts / f"{name}.json").read_text(encoding="utf-8"))
            if record["settings"] != settings:
                diff = sorted(k for k in settings if record["settings"].get(k) != settings[k])
                raise KinemicError(
                    f"{parts / name}.json: a part sampled with other settings ({', '.join(diff)}"
                    f" differ); sample every shard with the same settings, or delete {parts}"
                )
            merged += record["samples"]
        end_assembly(parts)  # this process assembles: one that locks after it finds none
        return sorted(merged, key=lambda r: r["index"])


def _write_gifs(out: Path, joints: list[np.ndarray], titles: list[str]) -> list[str]:
    """GIFs of the clips side by side, :data:`GIF_COLUMNS` per GIF; their names."""
    from kinemic.render import render_clips

    B, gifs = len(joints), []
    for k, a in enumerate(range(0, B, GIF_COLUMNS)):
        name = "samples.gif" if B <= GIF_COLUMNS else f"samples_{k}.gif"
        render_clips(joints[a : a + GIF_COLUMNS], out / name, titles=titles[a : a + GIF_COLUMNS])
        gifs.append(name)
    return gifs


def _title(text: str | None, action: int | None, names: list[str]) -> str:
    parts = []
    if action is not None:
        parts.append(names[action] if action < len(names) else f"action {action}")
    if text is not None:
        parts.append(text if len(text) <= 32 else text[:31] + "…")
    return " + ".join(parts) or "unconditional"
