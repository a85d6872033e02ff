"""T-MOR encoder folders and the loaded encoder: skeletons (and captions) in, embeddings out.

An encoder folder (every pretraining checkpoint is one; ``assets/tmor-small`` ships)::

    config.json         {"format": "kinemic-tmor", "version": 1, "model": TMORConfig,
                         "text_encoder": {"name", "dim"}, "visual": {"kind", "dim"},
                         "training": {...}}
    model.safetensors   the weights (the EMA when training kept one)

:func:`load_tmor` needs that folder alone (or a run folder: its latest checkpoint), never the
training data. At inference only the skeleton tower is needed; the text tower (a frozen
``kinemic.text`` encoder + the trained projection) is loaded on first use, and an encoder used
with another text encoder than it was trained with is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kinemic.errors import KinemicError
from kinemic.files import (
    CONFIG_FILE,
    MODEL_FORMATS,
    ModelFolder,
    open_model_folder,
    read_safetensors,
    write_bytes,
    write_text,
)
from kinemic.progress import progress_bar
from kinemic.tmor.data import pad_joints
from kinemic.tmor.inputs import motion_input
from kinemic.tmor.model import TMOR, TMORConfig
from kinemic.training import cpu_state_dict

FORMAT, VERSION = MODEL_FORMATS["tmor"]
WEIGHTS_FILE = "model.safetensors"
RAW_WEIGHTS_FILE = "model_raw.safetensors"
#: The encoder that ships in the package (docs/tmor.md gives the command that reproduces it).
SHIPPED_TMOR = Path(__file__).resolve().parents[1] / "assets" / "tmor-small"


def save_tmor(
    folder: str | Path,
    model: TMOR,
    *,
    text_encoder: dict[str, Any],
    ema: TMOR | None = None,
    visual_kind: str = "none",
    extra: dict[str, Any] | None = None,
    raw: bool = True,
) -> Path:
    """Write an encoder folder; ``model.safetensors`` holds ``ema``'s weights when given (and
    ``model_raw.safetensors`` the raw ones, unless ``raw`` is False). ``config.json`` last."""
    from safetensors.torch import save as st_save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if int(text_encoder.get("dim", -1)) != model.config.text_dim:
        raise KinemicError(
            f"text encoder {text_encoder} does not give the model's {model.config.text_dim}-d input"
        )
    weights = {WEIGHTS_FILE: "ema" if ema is not None else "raw"}
    write_bytes(folder / WEIGHTS_FILE, st_save(cpu_state_dict(ema if ema is not None else model)))
    if ema is not None and raw:
        write_bytes(folder / RAW_WEIGHTS_FILE, st_save(cpu_state_dict(model)))
        weights[RAW_WEIGHTS_FILE] = "raw"
    config = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.config.to_dict(),
        "text_encoder": dict(text_encoder),
        "visual": {"kind": visual_kind, "dim": model.config.visual_dim},
        "input": "kinemic.tmor.inputs.motion_input: heading-normalised root-relative joints "
        "and velocities, 20 fps",
        "weights": weights,
        "training": extra or {},
    }
    write_text(folder / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return folder


@dataclass
class TMOREncoder:
    """A loaded T-MOR model (eval mode, CPU unless moved) with its text encoder description."""

    model: TMOR
    text_spec: dict[str, Any]
    path: Path
    config: dict[str, Any]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _text: Any = None

    @property
    def embed_dim(self) -> int:
        return self.model.config.embed_dim

    def to(self, device: str | torch.device) -> TMOREncoder:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def text_encoder(self, *, cache_dir: str | Path | None = None):
        """The frozen text encoder this model was trained with (loaded once)."""
        if self._text is None:
            from kinemic.text import encoder_from_spec

            self._text = encoder_from_spec(self.text_spec, cache_dir=cache_dir)
        return self._text

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str], *, raw: torch.Tensor | None = None) -> torch.Tensor:
        """Unit text embeddings (N, E) of ``texts`` (or of precomputed frozen embeddings
        ``raw`` (N, text_dim))."""
        if raw is None:
            raw = self.text_encoder().encode(list(texts))
        out = []
        for a in range(0, len(raw), 1024):
            out.append(self.model.encode_text(raw[a : a + 1024].to(self.device)).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.embed_dim)

    @torch.inference_mode()
    def embed_motions(
        self,
        clips: Sequence[np.ndarray],
        *,
        batch_size: int = 64,
        frames: bool = False,
        progress: bool = False,
        desc: str = "embedding motions",
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Unit clip embeddings (N, E) of joint clips (T_i, 22, 3); with ``frames`` also each
        clip's per-frame features (T_i, D). Clips are batched by length (less padding)."""
        if len(clips) == 0:
            empty = torch.zeros(0, self.embed_dim)
            return (empty, []) if frames else empty
        for i, c in enumerate(clips):
            if c.ndim != 3 or c.shape[1:] != (22, 3) or len(c) < 2:
                raise KinemicError(
                    f"clip {i}: expected joints (T >= 2, 22, 3), found {tuple(c.shape)}"
                )
        self.model.eval()
        order = np.argsort([len(c) for c in clips], kind="stable")
        out = torch.zeros(len(clips), self.embed_dim)
        per_frame: list[torch.Tensor] = [torch.zeros(0)] * len(clips)
        starts = range(0, len(order), batch_size)
        for a in progress_bar(starts, desc=desc, enabled=progress, leave=False):
            idx = order[a : a + batch_size]
            joints, mask = pad_joints([clips[i] for i in idx])
            joints, mask = joints.to(self.device), mask.to(self.device)
            z, f = self.model.encode_motion(motion_input(joints, mask), mask, frames=True)
            out[torch.as_tensor(idx)] = z.float().cpu()
            if frames:
                for b, i in enumerate(idx):
                    per_frame[i] = f[b, : len(clips[i])].float().cpu()
        return (out, per_frame) if frames else out

    def embed_windows(
        self,
        joints: np.ndarray,
        *,
        window: int,
        stride: int,
        batch_size: int = 128,
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Unit embeddings (W, E) of the sliding windows of one sequence (T, 22, 3), and their
        first frames (W,). A sequence shorter than ``window`` gives one window: itself."""
        starts = window_starts(len(joints), window, stride)
        clips = [joints[s : s + window] for s in starts]
        return self.embed_motions(clips, batch_size=batch_size), starts  # type: ignore[return-value]


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """First frames of windows of ``window`` frames every ``stride`` frames over ``length``
    frames, the last one flush with the end (so every frame is covered)."""
    if window < 2 or stride < 1:
        raise KinemicError(f"window must be >= 2 and stride >= 1, found {window}, {stride}")
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return np.asarray(starts, dtype=np.int64)


def load_tmor(
    path: str | Path | ModelFolder | None = None,
    *,
    text_encoder: str | None = None,
    device: str | torch.device = "cpu",
    weights: str = "ema",
) -> TMOREncoder:
    """Load an encoder folder, a run folder (its latest checkpoint), "shipped"/None (the encoder
    in the package), or a folder ``kinemic.files.open_model_folder`` opened.

    ``text_encoder``: the name of the text encoder the caller intends to use; refused with a
    clear error when it is not the one the model was trained with. ``weights="raw"`` loads the
    raw training weights where the folder has them.

    Example:
        >>> import kinemic
        >>> encoder = kinemic.load_tmor()  # the shipped encoder
        >>> encoder.path.name
        'tmor-small'
    """
    from kinemic.text import TEXT_ENCODERS

    if path is None or (not isinstance(path, ModelFolder) and str(path) == "shipped"):
        if not (SHIPPED_TMOR / CONFIG_FILE).is_file():
            raise KinemicError(
                f"the shipped T-MOR encoder is missing ({SHIPPED_TMOR}); reinstall kinemic or "
                "pass an encoder folder (--encoder RUN)"
            )
        path = SHIPPED_TMOR
    opened = open_model_folder(path, expect={"tmor"})
    folder, config = opened.path, opened.config
    spec = dict(config["text_encoder"])
    if text_encoder is not None:
        wanted = TEXT_ENCODERS.get(text_encoder)
        trained = TEXT_ENCODERS.get(spec["name"])
        if text_encoder != spec["name"] and (wanted is None or wanted is not trained):
            raise KinemicError(
                f"{folder}: this encoder was trained with the text encoder {spec['name']!r}, "
                f"not {text_encoder!r}; its text projection only understands {spec['name']!r} "
                "embeddings (drop --text-encoder, or pretrain with the one you want)"
            )
    file = RAW_WEIGHTS_FILE if weights == "raw" else WEIGHTS_FILE
    if not (folder / file).is_file():
        raise KinemicError(f"{folder}: missing {file}")
    try:
        model = TMOR(TMORConfig.from_dict(config["model"]))
    except (KeyError, ValueError, TypeError, KinemicError) as e:
        raise KinemicError(f"{folder / CONFIG_FILE}: bad T-MOR config ({e})") from None
    state = read_safetensors(folder / file)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise KinemicError(f"{folder / file}: weights do not fit the config ({e})") from None
    model.eval()
    enc = TMOREncoder(model=model, text_spec=spec, path=folder, config=config)
    return enc.to(device)
