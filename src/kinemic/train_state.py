"""The checkpoint state that ``--resume`` reads: tensors and JSON only, never a pickle.

:func:`save_state` writes a checkpoint's ``state/`` (the layout is in :mod:`kinemic.training`'s
docstring), :func:`manifest` the size and SHA-256 of each of its files for ``trainer.json``,
:func:`check_state` refuses pickles, a missing manifest and missing or damaged files, naming
the file, and :func:`load_state` restores the weights, the EMA, the optimiser and each
process's RNG states.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kinemic.errors import KinemicError
from kinemic.files import TRAINER_FILE

STATE_DIR = "state"
#: ``trainer.json``'s manifest of ``state/`` names this format.
STATE_FORMAT = ("kinemic-train-state", 1)
MODEL_STATE = "model.safetensors"
EMA_STATE = "ema.safetensors"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_PLAIN = "optimizer.json"
#: What older versions' ``state/`` held (accelerate's pickles and ``torch.save`` files).
PICKLED = ("*.pkl", "*.bin", "*.pt", "*.pth")


def rng_file(rank: int) -> str:
    """The file of process ``rank``'s RNG states in ``state/``."""
    return f"rng-{rank}.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest(state: Path) -> dict:
    """Size and SHA-256 of every file in ``state/`` (goes into trainer.json, written last)."""
    files = {
        p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(state.iterdir())
        if p.is_file()
    }
    return {"format": STATE_FORMAT[0], "version": STATE_FORMAT[1], "files": files}


def _rng_state() -> dict:
    version, internal, gauss_next = random.getstate()
    # numpy's global generator: what tasks' np.random calls draw from
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "name": name,
            "keys": keys.tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in cuda],
    }


def _set_rng_state(path: Path) -> None:
    try:
        s = json.loads(path.read_text(encoding="utf-8"))
        py, npy = s["python"], s["numpy"]
        states = [torch.tensor(x, dtype=torch.uint8) for x in [s["torch"], *s["cuda"]]]
        if states[1:] and torch.cuda.is_available():
            if len(states) - 1 != torch.cuda.device_count():
                raise ValueError(
                    f"written with {len(states) - 1} CUDA devices visible, "
                    f"now {torch.cuda.device_count()}"
                )
            torch.cuda.set_rng_state_all(states[1:])
        random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
        keys = np.asarray(npy["keys"], dtype=np.uint32)
        numpy_state = (npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
        np.random.set_state(numpy_state)  # noqa: NPY002
        torch.set_rng_state(states[0])
    except (OSError, ValueError, TypeError, KeyError, IndexError, RuntimeError, OverflowError) as e:
        raise KinemicError(f"{path}: not a usable RNG state ({e})") from None


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (OSError, ValueError, SafetensorError) as e:
        raise KinemicError(f"{path}: not a readable safetensors file ({e})") from None


def _load_module(module: nn.Module, path: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:  # strict: every tensor, of its shape (tied weights are stored once)
        load_model(module, path)
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        raise KinemicError(f"{path}: does not hold this model's weights ({e})") from None


def _save_optimizer(optimizer, state: Path) -> None:
    """The optimiser's state dict: its tensors to safetensors (``state.<param>.<name>``,
    ``param_groups.<group>.<name>``), everything else to JSON."""
    from safetensors.torch import save_file

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}

    def plain(prefix: str, values: dict) -> dict:
        out = {}
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{prefix}.{k}"] = v.detach().to("cpu").contiguous()
            else:
                out[k] = v
        return out

    doc = {
        "param_groups": [plain(f"param_groups.{i}", g) for i, g in enumerate(sd["param_groups"])],
        "state": {str(i): plain(f"state.{i}", v) for i, v in sd["state"].items()},
    }
    save_file(tensors, state / OPTIMIZER_TENSORS)
    (state / OPTIMIZER_PLAIN).write_text(json.dumps(doc), encoding="utf-8")


def _load_optimizer(optimizer, state: Path) -> None:
    plain_file, tensor_file = state / OPTIMIZER_PLAIN, state / OPTIMIZER_TENSORS
    now = optimizer.state_dict()["param_groups"]
    try:
        doc = json.loads(plain_file.read_text(encoding="utf-8"))
        groups = [dict(g) for g in doc["param_groups"]]
        states = {int(k): dict(v) for k, v in doc["state"].items()}
        sizes = [len(g["params"]) for g in groups]
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise KinemicError(f"{plain_file}: not a usable optimiser state ({e})") from None
    if sizes != [len(g["params"]) for g in now]:
        raise KinemicError(
            f"{plain_file}: parameter groups of sizes {sizes}, the optimiser's are "
            f"{[len(g['params']) for g in now]}"
        )
    params = {
        i: p
        for g, live in zip(now, optimizer.param_groups, strict=True)
        for i, p in zip(g["params"], live["params"], strict=True)
    }
    for key, t in _read_tensors(tensor_file).items():
        section, index, name = [*key.split(".", 2), "", ""][:3]
        if section == "state" and index.isdigit() and int(index) in params:
            shape = params[int(index)].shape
            if t.ndim and t.shape != shape:  # moments have the parameter's shape
                raise KinemicError(
                    f"{tensor_file}: {key} has shape {tuple(t.shape)}, its parameter {tuple(shape)}"
                )
            states.setdefault(int(index), {})[name] = t
        elif section == "param_groups" and index.isdigit() and int(index) < len(groups):
            groups[int(index)][name] = t
        else:
            raise KinemicError(f"{tensor_file}: unexpected tensor {key!r}")
    for g, live in zip(groups, now, strict=True):  # JSON has no tuples (AdamW's betas)
        g.update({k: tuple(g[k]) for k, v in live.items() if isinstance(v, tuple) and k in g})
        # how this machine runs the step (fused on CUDA), not what the writer's did
        g.update({k: live[k] for k in ("fused", "foreach", "capturable") if k in live})
    try:
        optimizer.load_state_dict({"state": states, "param_groups": groups})
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise KinemicError(f"{plain_file}: not a usable optimiser state ({e})") from None


def save_state(acc, state: Path, model, optimizer, ema) -> None:
    """The main process writes every process's RNG states (gathered: every process calls
    this), the weights and the optimiser."""
    from safetensors.torch import save_model

    rng = [_rng_state()]
    if acc.num_processes > 1:
        rng = [None] * acc.num_processes
        torch.distributed.all_gather_object(rng, _rng_state())
    if not acc.is_main_process:
        return
    state.mkdir(parents=True, exist_ok=True)
    for rank, states in enumerate(rng):
        (state / rng_file(rank)).write_text(json.dumps(states), encoding="utf-8")
    save_model(acc.unwrap_model(model), str(state / MODEL_STATE))
    if ema is not None:
        save_model(ema, str(state / EMA_STATE))
    _save_optimizer(optimizer, state)


def check_state(ckpt: Path, info: dict, *, ema: bool) -> None:
    """Refuse pickles, a state without manifest, and missing or damaged files (module doc)."""
    state = ckpt / STATE_DIR
    earlier = sorted(p for p in ckpt.parent.glob("step-*") if p.is_dir() and p.name < ckpt.name)
    instead = (
        f"resume from an earlier checkpoint instead (--resume {earlier[-1]})"
        if earlier
        else "train again from the start (no earlier checkpoint is left)"
    )
    pickled = sorted(p for pattern in PICKLED for p in state.glob(pattern))
    if pickled:
        raise KinemicError(
            f"{pickled[0]}: an older, pickle-based checkpoint file, which kinemic no longer "
            "loads (unpickling a file from a run folder can run any code in it). The model "
            f"folder {ckpt} is still usable; to train on, start a new run, or finish this one "
            "with the kinemic version that wrote it if you trust where the folder came from"
        )
    manifest = info.get("state")
    files = manifest.get("files") if isinstance(manifest, dict) else None
    form = (manifest.get("format"), manifest.get("version")) if isinstance(files, dict) else None
    if form != STATE_FORMAT or not all(
        re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", n) and isinstance(w, dict)
        for n, w in files.items()
    ):
        raise KinemicError(
            f"{ckpt / TRAINER_FILE}: no usable manifest of {STATE_DIR}/ (expected format "
            f"{STATE_FORMAT[0]!r} version {STATE_FORMAT[1]}), cannot resume; {instead}"
        )
    need = [MODEL_STATE, OPTIMIZER_TENSORS, OPTIMIZER_PLAIN, *([EMA_STATE] if ema else [])]
    gone = [n for n in [*need, *files] if n not in files or not (state / n).is_file()]
    if gone:
        shown = ", ".join(f"{STATE_DIR}/{n}" for n in dict.fromkeys(gone))
        raise KinemicError(
            f"{ckpt}: incomplete checkpoint, cannot resume: missing {shown}; {instead}"
        )
    for name, want in files.items():
        path = state / name
        size = path.stat().st_size
        if size != want.get("bytes"):
            raise KinemicError(
                f"{path}: damaged, {size} bytes where trainer.json's manifest says "
                f"{want.get('bytes')}; {instead}"
            )
        if _sha256(path) != want.get("sha256"):
            raise KinemicError(
                f"{path}: damaged, its SHA-256 differs from trainer.json's manifest; {instead}"
            )


def load_state(acc, ckpt: Path, info: dict, model, optimizer, ema) -> None:
    """Restore what :func:`save_state` wrote (checked by :func:`check_state`)."""
    saved = info.get("world_size", 1)
    if saved != acc.num_processes:
        raise KinemicError(
            f"{ckpt}: written by {saved} processes, this run has {acc.num_processes}: resume "
            "exactly with as many (accelerate launch --num_processes)"
        )
    state = ckpt / STATE_DIR
    rng = state / rng_file(acc.process_index)
    if rng.name not in info["state"]["files"]:
        raise KinemicError(f"{ckpt}: incomplete checkpoint, cannot resume: missing {rng}")
    _load_module(acc.unwrap_model(model), state / MODEL_STATE)
    if ema is not None:
        _load_module(ema, state / EMA_STATE)
    _load_optimizer(optimizer, state)
    _set_rng_state(rng)
