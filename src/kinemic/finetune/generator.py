"""Fine-tuned generators: two streams on one copy of the prior's weights, and their folders.

KineMIC (``../shared/SPEC.md`` §5) runs two streams initialised from the same prior: the
*prior* stream (frozen, text-conditioned) and the *target* stream (text + action, LoRA-adapted).
The reference implementation holds two full models; here :class:`TwoStreamDenoiser` holds one:
peft LoRA adapters are injected into the prior's ``Denoiser`` (targets
``kinemic.diffusion.denoiser.LORA_TARGETS[layout]``: layout "packed" adapts each layer's q|k|v
projection as one Linear, "separate" splits it into q, k and v first (``Denoiser.split_qkv``)
and adapts each, as the reference does; LayerNorms and the text projection frozen), an action
table (``Denoiser.add_actions``) is added and trained, and the prior stream is the same module
run under peft's ``disable_adapter()`` — in eval mode, without gradients — which computes
exactly what the prior computes (the action table is not used without an action).

Full fine-tuning (``lora=None``; the reference's ``mdm-ft`` baseline, ``FinetuneConfig.mdm_ft
= "full"``) trains the prior's weights themselves, all but the LayerNorms and the text
projection (``full_finetune_names``), plus the action table; it has no prior stream.

Timesteps: the fine-tuning schedule may be longer than the prior's (KineMIC used 100 steps
on a 50-step prior). Noise levels follow the fine-tuning schedule; the network, which only
knows the prior's timestep embedding, is given ``prior_timestep(t) = min(ceil(t·P/S), P−1)``
(S = fine-tuning steps, P = the prior's). The cosine schedule depends on t/T only, so the
mapped step has (nearly) the same noise level. Both streams get the mapped step: they share
the one timestep MLP.

A generator folder (every fine-tuning checkpoint is one; written by ``kinemic finetune``)::

    config.json            format "kinemic-generator", method, the prior (path or "shipped",
                           sha256 of its weights), LoRA settings, classes and their names,
                           captions and few-shot lengths, target, split, MIC config, step
    adapter/               peft adapter (adapter_config.json, adapter_model.safetensors);
                           with full fine-tuning (config "adapter": "full", "lora": null)
    target.safetensors     instead: the fine-tuned denoiser tensors (full_finetune_names)
    actions.safetensors    the action table (num_classes, D); id i = classes[i]
    mic.safetensors        MIC weights and memory bank (method "kinemic" only)

:func:`load_generator` rebuilds the whole generator from that folder and the prior it names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from kinemic.constants import MAX_FRAMES
from kinemic.diffusion import Denoiser, DenoiserConfig, NoiseSchedule
from kinemic.errors import KinemicError
from kinemic.features import Normalizer
from kinemic.files import (
    CONFIG_FILE,
    MODEL_FORMATS,
    ModelFolder,
    open_model_folder,
    read_safetensors,
    write_bytes,
    write_text,
)
from kinemic.finetune.config import LoraSettings
from kinemic.mining.mic import MIC, MICConfig

__all__ = [
    "FORMAT",
    "ActionGenerator",
    "LoraSettings",
    "TwoStreamDenoiser",
    "full_finetune_names",
    "load_generator",
    "prior_pointer",
    "prior_timestep",
    "save_generator",
]

FORMAT, VERSION = MODEL_FORMATS["generator"]
ADAPTER_DIR = "adapter"
TARGET_FILE = "target.safetensors"
ACTIONS_FILE = "actions.safetensors"
MIC_FILE = "mic.safetensors"


def prior_timestep(t: Tensor, *, diffusion_steps: int, prior_diffusion_steps: int) -> Tensor:
    """The prior's timestep for step t (B,) of a ``diffusion_steps``-step schedule S, for a
    prior of P = ``prior_diffusion_steps``: min(ceil(t·P/S), P − 1) (the identity when S = P)."""
    S, P = diffusion_steps, prior_diffusion_steps
    if S == P:
        return t
    t = t.long()
    return torch.clamp((t * P + S - 1) // S, max=P - 1)


def full_finetune_names(denoiser: Denoiser) -> list[str]:
    """The parameters full fine-tuning trains besides the action table: every one but those of
    the LayerNorms and of the text projection ``embed_text`` (the reference's baseline freezes
    "norms" and, with text and action conditioning, ``embed_text``)."""
    frozen = {
        f"{name}.{p}" if name else p
        for name, module in denoiser.named_modules()
        if isinstance(module, nn.LayerNorm) or name == "embed_text"
        for p, _ in module.named_parameters(recurse=False)
    }
    return [
        n
        for n, _ in denoiser.named_parameters()
        if n not in frozen and not n.startswith("embed_action.")
    ]


class TwoStreamDenoiser(nn.Module):
    """The prior's denoiser with LoRA adapters and an action table: ``forward`` is the target
    stream, :meth:`prior_stream` the frozen prior. Both take timesteps t (B,) of the
    fine-tuning schedule (``diffusion_steps``) and map them to the prior's
    (``prior_timestep``).

    ``denoiser`` is modified in place (adapters are injected into it): it is the one copy of
    the weights. Only the LoRA matrices and the action table require grad. With ``lora=None``
    the target stream is fine-tuned whole (``full_finetune_names`` and the action table
    require grad) and there is no prior stream.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        *,
        num_actions: int,
        lora: LoraSettings | None,
        diffusion_steps: int,
        prior_diffusion_steps: int,
    ) -> None:
        super().__init__()
        from peft import get_peft_model

        if diffusion_steps < 1 or prior_diffusion_steps < 1:
            raise ValueError(
                f"diffusion_steps ({diffusion_steps}) and prior_diffusion_steps "
                f"({prior_diffusion_steps}) must be >= 1"
            )
        self.diffusion_steps = int(diffusion_steps)
        self.prior_diffusion_steps = int(prior_diffusion_steps)
        self.lora = lora
        denoiser.add_actions(num_actions)
        if lora is None:  # full fine-tuning: the prior's own weights are trained
            self.peft = None
            self.full = denoiser
            trained = set(full_finetune_names(denoiser))
            for name, p in denoiser.named_parameters():
                p.requires_grad_(name in trained)
        else:
            if lora.layout == "separate":
                denoiser.split_qkv()
            self.peft = get_peft_model(denoiser, lora.peft_config())
        denoiser.embed_action.weight.requires_grad_(True)  # peft froze everything else

    @property
    def net(self) -> nn.Module:
        """What the target stream runs: the peft model, or the denoiser fine-tuned whole."""
        return self.full if self.peft is None else self.peft

    @property
    def base(self) -> Denoiser:
        """The ``Denoiser`` holding the prior's weights (with the adapters injected)."""
        return self.full if self.peft is None else self.peft.base_model.model

    @property
    def config(self) -> DenoiserConfig:
        return self.base.config

    @property
    def action_table(self) -> nn.Embedding:
        return self.base.embed_action

    def model_timestep(self, t: Tensor) -> Tensor:
        return prior_timestep(
            t,
            diffusion_steps=self.diffusion_steps,
            prior_diffusion_steps=self.prior_diffusion_steps,
        )

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        *,
        text: Tensor | None = None,
        action: Tensor | None = None,
        mask: Tensor | None = None,
        uncond: Tensor | None = None,
        return_latents: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """The target stream: x (B, T, F) at steps t (B,) -> x0 (B, T, F) [, latents (B, T, D)];
        the arguments are those of ``Denoiser.forward``."""
        return self.net(
            x,
            self.model_timestep(t),
            text=text,
            action=action,
            mask=mask,
            uncond=uncond,
            return_latents=return_latents,
        )

    @contextlib.contextmanager
    def _frozen_prior(self) -> Iterator[None]:
        if self.peft is None:
            raise ValueError(
                "a fully fine-tuned target stream keeps no frozen prior: prior_stream needs "
                "LoRA adapters (FinetuneConfig.mdm_ft 'lora', or method 'kinemic')"
            )
        was = self.training
        self.eval()
        try:
            with torch.no_grad(), self.peft.disable_adapter():
                yield
        finally:
            self.train(was)

    def prior_stream(
        self,
        x: Tensor,
        t: Tensor,
        *,
        text: Tensor | None = None,
        mask: Tensor | None = None,
        uncond: Tensor | None = None,
        return_latents: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """The frozen prior: adapters off, eval mode (no dropout, no condition dropping), no
        gradients; the same outputs as the original prior at the mapped timesteps."""
        with self._frozen_prior():
            return self.peft(
                x,
                self.model_timestep(t),
                text=text,
                mask=mask,
                uncond=uncond,
                return_latents=return_latents,
            )

    def adapter_state(self) -> dict[str, Tensor]:
        """What the generator folder stores of the target stream: the peft adapter's tensors,
        or with full fine-tuning the ``full_finetune_names`` tensors of the denoiser."""
        if self.peft is None:
            params = dict(self.full.named_parameters())
            return {n: params[n] for n in full_finetune_names(self.full)}
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.peft)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


# ------------------------------------------------------------------------------ the folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prior_pointer(prior) -> dict[str, str]:
    """{"path": absolute prior folder or "shipped", "sha256": of the weights file it loaded}."""
    from kinemic.prior.folder import RAW_WEIGHTS_FILE, SHIPPED_PRIOR, WEIGHTS_FILE

    folder = Path(prior.path).resolve()
    file = WEIGHTS_FILE
    if prior.weights == "raw" and prior.config["weights"].get(WEIGHTS_FILE) == "ema":
        file = RAW_WEIGHTS_FILE
    path = "shipped" if folder == SHIPPED_PRIOR.resolve() else str(folder)
    return {"path": path, "sha256": _sha256(folder / file), "weights": prior.weights}


def save_generator(
    folder: str | Path, *, model: TwoStreamDenoiser, mic: MIC | None, config: dict[str, Any]
) -> Path:
    """Write a generator folder (see the module docstring); ``config.json`` last, every file
    atomically. ``config`` holds everything but "format" and "version"."""
    from safetensors.torch import save as st_save

    folder = Path(folder)
    meta = {"format": FORMAT, "version": str(VERSION)}

    def tensors(state: dict[str, Tensor]) -> bytes:
        return st_save({k: v.detach().cpu().contiguous() for k, v in state.items()}, meta)

    if model.peft is None:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes(folder / TARGET_FILE, tensors(model.adapter_state()))
    else:
        adapter = folder / ADAPTER_DIR
        adapter.mkdir(parents=True, exist_ok=True)
        peft_config = model.peft.peft_config["default"].to_dict()
        peft_config["target_modules"] = sorted(peft_config["target_modules"])
        write_text(adapter / "adapter_config.json", json.dumps(peft_config, indent=2, default=str))
        write_bytes(adapter / "adapter_model.safetensors", tensors(model.adapter_state()))
    write_bytes(folder / ACTIONS_FILE, tensors({"weight": model.action_table.weight}))
    if mic is not None:
        write_bytes(folder / MIC_FILE, tensors(mic.state_dict()))
    full = {"format": FORMAT, "version": VERSION, **config}
    write_text(folder / CONFIG_FILE, json.dumps(full, indent=2) + "\n")
    return folder


@dataclass
class ActionGenerator:
    """A loaded fine-tuned generator (eval mode; not a ``torch.Generator``). ``denoiser`` is
    the target stream (call it like a ``Denoiser``; ``denoiser.prior_stream`` is the frozen
    prior); ``schedule`` the fine-tuning schedule it samples with; action id i is class
    ``classes[i]`` (0-based NTU label); ``class_lengths[label]`` the few-shot clips' lengths
    (feature rows); ``mic`` None for ``mdm-ft``. The attributes ``kinemic sample`` reads of a
    prior (``action_names``, ``text_encoder``, ``text_spec``, ``max_frames``, ``weights``) are
    provided too."""

    denoiser: TwoStreamDenoiser
    schedule: NoiseSchedule
    normalizer: Normalizer
    text_spec: dict[str, Any] | None
    classes: list[int]
    class_names: list[str]
    class_captions: list[str]
    class_lengths: dict[int, list[int]]
    mic: MIC | None
    config: dict[str, Any]
    path: Path
    prior_path: Path
    max_frames: int = MAX_FRAMES

    @property
    def method(self) -> str:
        return str(self.config["method"])

    @property
    def text_encoder(self) -> str | None:
        return None if self.text_spec is None else str(self.text_spec["name"])

    @property
    def text_dim(self) -> int | None:
        return self.denoiser.config.text_dim

    @property
    def action_names(self) -> list[str]:
        return list(self.class_names)

    @property
    def weights(self) -> str:
        return "full" if self.denoiser.peft is None else "adapter"


def load_generator(
    path: str | Path | ModelFolder, *, device: str | torch.device = "cpu"
) -> ActionGenerator:
    """Rebuild a generator from its folder (or a run folder: its latest checkpoint; or a folder
    ``kinemic.files.open_model_folder`` opened) and the prior it points to, whose weights must
    still have the recorded sha256. A prior folder is refused with a message saying to pass it
    as ``--prior``.

    Example (``run`` is a ``kinemic finetune`` run folder; a prior folder is refused):
        >>> import kinemic
        >>> generator = kinemic.load_generator(run)  # doctest: +SKIP
        >>> generator.action_names  # doctest: +SKIP
        ['run on the spot', 'side kick', 'stretch oneself']
        >>> kinemic.load_generator(kinemic.load_prior("shipped").path)
        Traceback (most recent call last):
        kinemic.errors.KinemicError: ...is a prior, not a fine-tuned generator...
    """
    from kinemic.prior.folder import load_prior, open_prior

    opened = open_model_folder(path, expect={"generator"})
    folder, config = opened.path, opened.config
    method = config.get("method")
    full = config.get("adapter") == "full"
    need = [TARGET_FILE if full else f"{ADAPTER_DIR}/adapter_model.safetensors", ACTIONS_FILE]
    if method == "kinemic":
        need.append(MIC_FILE)
    missing = [n for n in need if not (folder / n).is_file()]
    if missing:
        raise KinemicError(f"{folder}: incomplete generator folder, missing {', '.join(missing)}")
    pointer = config["prior"]
    try:
        prior_folder = open_prior(pointer["path"])
    except KinemicError as e:
        raise KinemicError(f"{folder}: its prior is unavailable: {e}") from None
    prior = load_prior(prior_folder, weights=pointer.get("weights", "ema"))
    found = prior_pointer(prior)["sha256"]
    if found != pointer["sha256"]:
        raise KinemicError(
            f"{folder}: the prior at {prior_folder.path} is not the one it was fine-tuned from "
            f"(sha256 {found[:12]}…, recorded {pointer['sha256'][:12]}…)"
        )
    lora = None if full else LoraSettings(**config["lora"])
    classes = [int(c) for c in config["classes"]]
    model = TwoStreamDenoiser(
        prior.denoiser,
        num_actions=len(classes),
        lora=lora,
        diffusion_steps=int(config["schedule"]["num_steps"]),
        prior_diffusion_steps=prior.schedule.num_steps,
    )
    if model.peft is None:
        _load_target(folder / TARGET_FILE, model.full)
    else:
        from peft import set_peft_model_state_dict

        adapter = read_safetensors(folder / ADAPTER_DIR / "adapter_model.safetensors")
        result = set_peft_model_state_dict(model.peft, adapter)
        if getattr(result, "unexpected_keys", None):
            raise KinemicError(
                f"{folder / ADAPTER_DIR}: unexpected adapter keys {result.unexpected_keys[:5]}"
            )
    table = read_safetensors(folder / ACTIONS_FILE)["weight"]
    if tuple(table.shape) != tuple(model.action_table.weight.shape):
        raise KinemicError(
            f"{folder / ACTIONS_FILE}: action table {tuple(table.shape)}, expected "
            f"{tuple(model.action_table.weight.shape)} ({len(classes)} classes)"
        )
    with torch.no_grad():
        model.action_table.weight.copy_(table)
    mic = None
    if method == "kinemic":
        try:
            mic = MIC(MICConfig.from_dict(config["mic"]))
        except (KeyError, ValueError, TypeError, KinemicError) as e:
            raise KinemicError(f"{folder / CONFIG_FILE}: bad MIC config ({e})") from None
        mic.load_state_dict(read_safetensors(folder / MIC_FILE))
        mic.requires_grad_(False).to(device).eval()
    model.requires_grad_(False).to(device).eval()  # an inference model
    return ActionGenerator(
        denoiser=model,
        schedule=NoiseSchedule(int(config["schedule"]["num_steps"])),
        normalizer=prior.normalizer,
        text_spec=prior.text_spec,
        classes=classes,
        class_names=list(config["class_names"]),
        class_captions=list(config["class_captions"]),
        class_lengths={int(k): [int(n) for n in v] for k, v in config["class_lengths"].items()},
        mic=mic,
        config=config,
        path=folder,
        prior_path=prior.path,
        max_frames=prior.max_frames,
    )


def _load_target(path: Path, denoiser: Denoiser) -> None:
    """Copy a full fine-tune's tensors into ``denoiser``: exactly ``full_finetune_names``, each
    of its shape, or a ``KinemicError`` naming the file."""
    state = read_safetensors(path)
    params = dict(denoiser.named_parameters())
    want = full_finetune_names(denoiser)
    missing, unexpected = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    wrong = [n for n in want if n in state and state[n].shape != params[n].shape]
    if missing or unexpected or wrong:
        raise KinemicError(
            f"{path}: does not fit the prior: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, of another shape {wrong[:5]}"
        )
    with torch.no_grad():
        for name in want:
            params[name].copy_(state[name])
