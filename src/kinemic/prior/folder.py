"""Prior folders: a text-to-motion denoiser with everything needed to use it, and nothing else.

A prior folder (written by :func:`save_prior`; every training checkpoint is one)::

    config.json             format, denoiser config, schedule steps, text encoder (name, id, dim),
                            max frames, which weights each file holds, training settings
    model.safetensors       the weights to sample with (the EMA weights when training kept one)
    model_raw.safetensors   the raw training weights (only when model.safetensors holds an EMA)
    normalizer.npz          the feature mean/std the model was trained with

:func:`load_prior` needs that folder alone (or a training run folder, whose ``latest``
checkpoint it loads) — never the training data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from kinemic.constants import MAX_FRAMES
from kinemic.diffusion import Denoiser, DenoiserConfig, NoiseSchedule, from_mdm_checkpoint
from kinemic.diffusion.mdm_import import Weights, read_mdm_checkpoint
from kinemic.errors import KinemicError
from kinemic.features import Normalizer
from kinemic.files import (
    CONFIG_FILE,
    MODEL_FORMATS,
    ModelFolder,
    make_folder,
    open_model_folder,
    read_safetensors,
    write_bytes,
    write_text,
)
from kinemic.training import cpu_state_dict

__all__ = [
    "SHIPPED_PRIOR",
    "Prior",
    "from_mdm_checkpoint",
    "import_mdm",
    "load_prior",
    "open_prior",
    "save_prior",
]

FORMAT, VERSION = MODEL_FORMATS["prior"]
WEIGHTS_FILE = "model.safetensors"
RAW_WEIGHTS_FILE = "model_raw.safetensors"
NORMALIZER_FILE = "normalizer.npz"
#: The prior that ships inside the package (``tiny`` preset, MiniLM text), trained on the default
#: world's source corpus and the converted CMU trials; docs/prior.md gives the command that
#: reproduces it and its quality figures. ``load_prior("shipped")`` loads it.
SHIPPED_PRIOR = Path(__file__).resolve().parents[1] / "assets" / "prior-tiny"


@dataclass
class Prior:
    """A loaded prior: denoiser (in eval mode), schedule, normaliser and its text encoder.

    ``text_encoder`` is the encoder's name for ``kinemic.text.get_text_encoder`` (None: no
    text); ``text_spec`` its full description for ``kinemic.text.encoder_from_spec``;
    ``config`` is the whole ``config.json``.
    """

    denoiser: Denoiser
    schedule: NoiseSchedule
    normalizer: Normalizer
    text_encoder: str | None
    config: dict[str, Any]
    path: Path
    weights: Literal["ema", "raw"] = "ema"
    action_names: list[str] = field(default_factory=list)
    text_spec: dict[str, Any] | None = None

    @property
    def max_frames(self) -> int:
        """The longest clip (feature rows) the model was trained on."""
        return int(self.config.get("max_frames", MAX_FRAMES))

    @property
    def text_dim(self) -> int | None:
        return self.denoiser.config.text_dim


def save_prior(
    folder: str | Path,
    *,
    denoiser: Denoiser,
    normalizer: Normalizer,
    num_steps: int,
    text_encoder: str | dict[str, Any] | None,
    ema: Denoiser | None = None,
    max_frames: int = MAX_FRAMES,
    action_names: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a prior folder (see the module docstring); each file is written atomically and
    ``config.json`` last. With ``ema`` given, ``model.safetensors`` holds the EMA weights and
    ``model_raw.safetensors`` the raw ``denoiser``'s. ``extra`` (JSON-able) is stored under
    ``"training"`` (data sources, hyper-parameters, step). ``text_encoder`` is a name for
    ``kinemic.text.get_text_encoder`` or a spec from ``kinemic.text.encoder_spec`` (None for a
    denoiser without text). Returns ``folder``."""
    from safetensors.torch import save as st_save

    folder = make_folder(folder)
    cfg = denoiser.config
    if (text_encoder is None) != (cfg.text_dim is None):
        raise KinemicError(
            f"save_prior: text encoder {text_encoder!r} for a denoiser with text_dim={cfg.text_dim}"
        )
    text_spec = None
    if text_encoder is not None:
        text_spec = {"name": text_encoder} if isinstance(text_encoder, str) else dict(text_encoder)
        text_spec.setdefault("dim", cfg.text_dim)
        if text_spec["dim"] != cfg.text_dim:
            raise KinemicError(
                f"save_prior: text encoder {text_spec['name']!r} gives {text_spec['dim']}-d "
                f"embeddings, the denoiser takes {cfg.text_dim}-d"
            )
    meta = {"format": FORMAT, "version": str(VERSION)}
    files = {WEIGHTS_FILE: "ema" if ema is not None else "raw"}
    write_bytes(
        folder / WEIGHTS_FILE, st_save(cpu_state_dict(ema if ema is not None else denoiser), meta)
    )
    if ema is not None:
        write_bytes(folder / RAW_WEIGHTS_FILE, st_save(cpu_state_dict(denoiser), meta))
        files[RAW_WEIGHTS_FILE] = "raw"
    normalizer.save(folder / NORMALIZER_FILE)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "denoiser": cfg.to_dict(),
        "schedule": {"kind": "cosine", "num_steps": int(num_steps)},
        "text_encoder": text_spec,
        "max_frames": int(max_frames),
        "fps": 20,
        "actions": list(action_names or []),
        "weights": files,
        "normalizer": NORMALIZER_FILE,
        "training": extra or {},
    }
    write_text(folder / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return folder


def open_prior(path: str | Path | ModelFolder) -> ModelFolder:
    """``kinemic.files.open_model_folder`` for a prior: a prior folder, a training run (its
    latest checkpoint), or ``"shipped"`` (the prior in the package)."""
    if not isinstance(path, ModelFolder) and str(path) == "shipped":
        if not (SHIPPED_PRIOR / CONFIG_FILE).is_file():
            raise KinemicError(
                f"the shipped prior is missing from this installation ({SHIPPED_PRIOR})"
            )
        path = SHIPPED_PRIOR
    return open_model_folder(path, expect={"prior"})


def load_prior(
    run: str | Path | ModelFolder,
    *,
    weights: Literal["ema", "raw"] = "ema",
    device: str | torch.device = "cpu",
) -> Prior:
    """Load a prior folder, a training run folder (its ``latest`` checkpoint), "shipped", or a
    folder :func:`open_prior` opened.

    ``weights="ema"`` takes ``model.safetensors`` (the EMA weights when training kept one);
    ``"raw"`` the raw training weights. The denoiser comes back in eval mode on ``device``.
    Raises ``KinemicError`` naming every missing file of an incomplete folder.

    Example:
        >>> import kinemic
        >>> prior = kinemic.load_prior("shipped")
        >>> prior.max_frames, prior.denoiser.config.feature_dim  # longest clip, feature width
        (120, 263)
    """
    opened = open_prior(run)
    folder, config = opened.path, opened.config
    missing = [n for n in (WEIGHTS_FILE, NORMALIZER_FILE) if not (folder / n).is_file()]
    if missing:
        raise KinemicError(
            f"{folder}: incomplete prior folder, missing {', '.join(missing)}; a prior folder "
            f"holds {CONFIG_FILE}, {WEIGHTS_FILE} and {NORMALIZER_FILE} (written by kinemic "
            "pretrain or kinemic import-mdm)"
        )
    if weights not in ("ema", "raw"):
        raise KinemicError(f"weights must be 'ema' or 'raw', found {weights!r}")
    file = WEIGHTS_FILE
    if weights == "raw" and config["weights"].get(WEIGHTS_FILE) == "ema":
        file = RAW_WEIGHTS_FILE
        if not (folder / file).is_file():
            raise KinemicError(f"{folder}: incomplete prior folder, missing {file} (raw weights)")
    try:
        dcfg = DenoiserConfig.from_dict(config["denoiser"])
    except (KeyError, ValueError, TypeError, KinemicError) as e:
        raise KinemicError(f"{folder / CONFIG_FILE}: bad denoiser config ({e})") from None
    denoiser = Denoiser(dcfg)
    state = read_safetensors(folder / file)
    result = denoiser.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise KinemicError(
            f"{folder / file}: weights do not fit the config: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    denoiser.to(device).eval()
    normalizer = _normalizer_for(denoiser, folder / NORMALIZER_FILE)
    text = config.get("text_encoder")
    return Prior(
        denoiser=denoiser,
        schedule=NoiseSchedule(int(config["schedule"]["num_steps"])),
        normalizer=normalizer,
        text_encoder=None if text is None else text["name"],
        config=config,
        path=folder,
        weights="ema" if config["weights"].get(file) == "ema" else "raw",
        action_names=list(config.get("actions", [])),
        text_spec=text,
    )


def import_mdm(
    checkpoint: str | Path,
    out: str | Path,
    *,
    mean_std: str | Path,
    weights: Weights | None = None,
    num_heads: int | None = None,
    diffusion_steps: int | None = None,
    text_encoder: str | dict[str, Any] | None = None,
    trust_pickle: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Turn an official MDM checkpoint (``model*.pt``, any layout MDM writes) into a prior
    folder OUT (``kinemic.diffusion.mdm_import`` says which layouts and checks).

    ``mean_std`` is the HumanML3D folder holding the ``Mean.npy``/``Std.npy`` the model was
    trained with (or a ``normalizer.npz``). ``weights``: "ema" (MDM's ``model_avg``; an error
    when absent), "raw" (``model``), or None: the EMA copy when the checkpoint holds one, which
    then goes to ``model.safetensors`` and the raw weights to ``model_raw.safetensors``.
    ``num_heads`` and ``diffusion_steps`` default to the ``args.json`` beside the checkpoint
    (else 4 and 50) and must agree with it; ``text_encoder`` defaults to MDM's, CLIP ViT-B/32
    (``"clip"``). ``trust_pickle`` allows full unpickling of a checkpoint that plain tensor
    loading refuses. ``log`` receives each line of what was read and what was assumed.
    Returns OUT.
    """
    try:
        mdm = read_mdm_checkpoint(
            checkpoint,
            weights=weights,
            num_heads=num_heads,
            diffusion_steps=diffusion_steps,
            trust_pickle=trust_pickle,
        )
    except KinemicError:
        raise
    except (ValueError, FileNotFoundError) as e:
        raise KinemicError(f"cannot import {checkpoint}: {e}") from None
    if log is not None:
        for line in mdm.notes:
            log(line)
    if mdm.text_encoder is None:
        text_encoder = None
    elif text_encoder is None:
        text_encoder = mdm.text_encoder
    raw, ema = (mdm.raw, mdm.denoiser) if mdm.weights == "ema" else (mdm.denoiser, None)
    return save_prior(
        out,
        denoiser=raw,
        ema=ema,
        normalizer=_normalizer_for(mdm.denoiser, mean_std),
        num_steps=mdm.diffusion_steps,
        text_encoder=text_encoder,
        extra={
            "imported_from": str(Path(checkpoint).resolve()),
            "format": "mdm",
            "weights": mdm.weights,
            "mdm_args": mdm.args,
            "notes": mdm.notes,
        },
    )


def _normalizer_for(denoiser: Denoiser, path: Path | str) -> Normalizer:
    """The statistics in ``path``, refused (naming it) unless they fit ``denoiser``'s features."""
    normalizer = Normalizer.load(path)
    if normalizer.mean.shape != (denoiser.config.feature_dim,):
        raise KinemicError(
            f"{path}: normaliser statistics of shape {normalizer.mean.shape}, but the model's "
            f"features are ({denoiser.config.feature_dim},)"
        )
    return normalizer
