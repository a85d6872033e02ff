"""Sampling motions from a prior folder (``kinemic sample``).

Output folder::

    OUT/features/<i>.npy    (T, 263) float32 de-normalised HumanML3D features
    OUT/joints/<i>.npy      (T, 22, 3) float32 joints recovered from the features
    OUT/samples[_k].gif     the samples side by side (at most 8 per GIF)
    OUT/info.json           every setting, and each sample's prompt, action and length
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from kinemic.errors import KinemicError
from kinemic.files import save_npy, write_text
from kinemic.models import load_model

FPS = 20
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
            f"1..{max_frames} frames (up to {max_frames / FPS:g}s at {FPS} fps)"
        )
    return frames


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


def sample_motions(
    model: str | Path,
    *,
    texts: Sequence[str] | None = None,
    actions: Sequence[str | int] | None = None,
    n: int = 8,
    length: str | int = "3s",
    steps: int | None = None,
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
    from a fine-tuned generator (a ``kinemic finetune`` run or checkpoint).

    Makes ``n`` samples of each condition: each text of ``texts``, each action of ``actions``
    (0-based ids or class names of a fine-tuned generator), or each (action, text) pair when
    both are given (same count, or one of them a single item) — with a generator, an action
    and an unrelated text blend both conditions (KineMIC's composition); no condition gives
    ``n`` unconditional samples. ``length`` is "3s", "3.5s" (20 fps) or a number of frames, at most
    the model's training length. Sampling is ancestral DDPM over the model's ``steps`` (the
    only value accepted), or deterministic DDIM over ``ddim`` steps; ``guidance`` is the
    classifier-free guidance scale (1 = none). The same ``seed`` gives the same samples.

    Writes OUT/features/<i>.npy (T, 263), OUT/joints/<i>.npy (T, 22, 3), GIFs of up to 8
    samples side by side (unless ``gif=False``) and OUT/info.json. Returns OUT.
    """
    from kinemic.diffusion import sample
    from kinemic.features import features_to_joints

    out = Path(out)
    if n < 1:
        raise KinemicError(f"n must be >= 1, found {n}")
    prior = load_model(model, weights=weights, device=device)  # type: ignore[arg-type]
    frames = parse_length(length, max_frames=prior.max_frames)
    if steps is not None and steps != prior.schedule.num_steps:
        raise KinemicError(
            f"steps={steps}: this model samples with {prior.schedule.num_steps} diffusion "
            "steps, the only number it can sample with; use ddim=N for fewer (faster) steps"
        )
    texts = list(texts or [])
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
    x = sample(
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
    for i in range(B):
        save_npy(out / "features" / f"{i}.npy", features[i])
        save_npy(out / "joints" / f"{i}.npy", joints[i])
    gifs = []
    if gif:
        from kinemic.render import render_clips

        titles = [_title(t, a, prior.action_names) for t, a in conds]
        for k, a in enumerate(range(0, B, GIF_COLUMNS)):
            name = "samples.gif" if B <= GIF_COLUMNS else f"samples_{k}.gif"
            render_clips(
                list(joints[a : a + GIF_COLUMNS]), out / name, titles=titles[a : a + GIF_COLUMNS]
            )
            gifs.append(name)
    info = {
        "model": str(Path(model)),
        "prior_folder": str(prior.path),
        "weights": prior.weights,
        "texts": texts,
        "actions": list(actions or []),
        "n": n,
        "length": length,
        "frames": frames,
        "fps": FPS,
        "steps": prior.schedule.num_steps,
        "sampler": "ddpm" if ddim is None else f"ddim-{ddim}",
        "ddim": ddim,
        "guidance": guidance,
        "seed": seed,
        "bf16": bf16,
        "device": device,
        "text_encoder": prior.text_encoder,
        "gifs": gifs,
        "samples": [
            {
                "index": i,
                "text": t,
                "action": a,
                "frames": frames,
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
