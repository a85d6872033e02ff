"""Sampling motions from a prior or a fine-tuned generator: :func:`sample` in memory,
:func:`sample_motions` into a folder (``kinemic sample``).

Output folder of :func:`sample_motions`::

    OUT/features/<i>.npy    (T, 263) float32 de-normalised HumanML3D features
    OUT/joints/<i>.npy      (T, 22, 3) float32 joints recovered from the features
    OUT/samples[_k].gif     the samples side by side (at most 8 per GIF)
    OUT/info.json           every setting, and each sample's prompt, action and length
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
from kinemic.errors import KinemicError
from kinemic.files import make_folder, save_npy, write_text
from kinemic.models import load_model

if TYPE_CHECKING:
    from kinemic.finetune.generator import ActionGenerator
    from kinemic.prior.folder import Prior

GIF_COLUMNS = 8
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
    - ``frames``: T, the feature rows (and joint frames) of every sample.

    The model they came from: ``model_folder`` (the folder it was loaded from), ``weights``
    ("ema", "raw" or "adapter"), ``diffusion_steps`` (its schedule's), ``text_encoder`` and
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
    device: str = "cpu",
    text_cache: str | Path | None = None,
    progress: bool = False,
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
    ``guidance`` is the classifier-free guidance scale (1 = none). The same ``seed`` gives the
    same samples. ``text_cache`` is the folder of the text-embedding cache (default: kinemic's).

    Returns :class:`Samples`: features (B, T, 263) and joints (B, T, 22, 3), B = n × conditions.

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

    generator = torch.Generator(device="cpu").manual_seed(seed)
    x = diffusion_sample(
        prior.denoiser,
        prior.schedule,
        (B, frames, prior.denoiser.config.feature_dim),
        text=text,
        action=action,
        guidance=guidance,
        generator=generator,
        ddim_steps=ddim,
        bf16=bf16,
        progress=progress,
    )
    features = prior.normalizer.inverse(x.float().cpu().numpy()).astype(np.float32)  # (B, T, 263)
    joints = features_to_joints(features).astype(np.float32)  # (B, T, 22, 3)
    return Samples(
        features=features,
        joints=joints,
        conditions=conds,
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
    device: str = "cpu",
    weights: str = "ema",
    text_cache: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Sample motions from a prior (a prior folder, or a training run: its latest checkpoint) or
    from a fine-tuned generator (a ``kinemic finetune`` run or checkpoint) into a folder.

    The conditions and settings are those of :func:`sample`; ``weights`` ("ema" or "raw")
    picks a prior's weights.

    Writes OUT/features/<i>.npy (T, 263), OUT/joints/<i>.npy (T, 22, 3), GIFs of up to 8
    samples side by side (unless ``gif=False``) and OUT/info.json. Returns OUT.
    """
    out = Path(out)
    if n < 1:
        raise KinemicError(f"n must be >= 1, found {n}")
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
    )
    make_folder(out)  # a clear error when OUT is a file, before anything is written
    conds = samples.conditions
    B = len(conds)
    for i in range(B):
        save_npy(out / "features" / f"{i}.npy", samples.features[i])
        save_npy(out / "joints" / f"{i}.npy", samples.joints[i])
    gifs = []
    if gif:
        from kinemic.render import render_clips

        titles = samples.titles
        for k, a in enumerate(range(0, B, GIF_COLUMNS)):
            name = "samples.gif" if B <= GIF_COLUMNS else f"samples_{k}.gif"
            render_clips(
                list(samples.joints[a : a + GIF_COLUMNS]),
                out / name,
                titles=titles[a : a + GIF_COLUMNS],
            )
            gifs.append(name)
    info = {
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
        "bf16": bf16,
        "device": device,
        "text_encoder": samples.text_encoder,
        "gifs": gifs,
        "samples": [
            {
                "index": i,
                "text": t,
                "action": a,
                "frames": samples.frames,
                "features": f"features/{i}.npy",
                "joints": f"joints/{i}.npy",
            }
            for i, (t, a) in enumerate(conds)
        ],
    }
    write_text(out / "info.json", json.dumps(info, indent=2) + "\n")
    return out


def _title(text: str | None, action: int | None, names: list[str]) -> str:
    parts = []
    if action is not None:
        parts.append(names[action] if action < len(names) else f"action {action}")
    if text is not None:
        parts.append(text if len(text) <= 32 else text[:31] + "…")
    return " + ".join(parts) or "unconditional"
