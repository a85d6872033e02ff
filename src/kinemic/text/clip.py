"""``CLIPTextEncoder``: the CLIP ViT-B/32 text tower, as MDM and KineMIC condition on it.

MDM embeds a caption with ``clip_model.encode_text``: the tokens are cut to 20 (plus start and
end tokens), the transformer's final state at the end token is layer-normed and projected to
512 dims, unnormalised. ``CLIPTextModelWithProjection`` computes the same thing from the
Hugging Face weights ``openai/clip-vit-base-patch32`` (MDM ran the tower in float16 on GPU;
this runs it in float32, so values agree to ~1e-3).

The KineMIC reference conditions on the same 20 word pieces, but finds soft positives with
captions embedded at CLIP's whole context (``clip.tokenize(truncate=True)``: 75 word pieces,
``CLIP_FULL_TOKENS``); ``with_max_tokens`` gives that encoder, sharing the loaded model.

The weights come from ``path=`` (a folder with config.json, weights, vocab.json and
merges.txt) or the Hugging Face cache. When they are absent this fails at once with a
``KinemicError`` that says how to provide them: it checks the cache without touching the
network, never tries to download under ``HF_HUB_OFFLINE=1``, and does not wait on retries
when the Hub's host does not resolve.
"""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from kinemic.errors import KinemicError
from kinemic.text.minilm import quiet_loading
from kinemic.text.protocol import check_texts

CLIP_MODEL_ID = "openai/clip-vit-base-patch32"
CLIP_NAME = "clip-vit-b32"
MDM_MAX_TOKENS = (
    20  # HumanML3D captions in MDM: clip.tokenize(context_length=20 + 2, truncate=True)
)
#: Word pieces of CLIP's whole 77-token context (start and end tokens aside): what
#: ``clip.tokenize(text, truncate=True)`` keeps, as the KineMIC reference embeds captions to
#: find soft positives.
CLIP_FULL_TOKENS = 75


def _offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(
        (f or "").strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags
    )


def _hub_unreachable() -> str | None:
    """Why a download cannot work (the Hub host does not resolve), or None when it may."""
    from huggingface_hub import constants

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # the proxy resolves names
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as e:
        return f"{host} does not resolve ({e})"
    return None


def _missing_message(where: str, why: str) -> str:
    return (
        f"the CLIP text encoder needs the weights of {CLIP_MODEL_ID}: {where} {why}. "
        f"Download them once on a machine with network: `hf download {CLIP_MODEL_ID}` "
        "(`huggingface-cli download ...` with huggingface_hub < 1.0; copy "
        "~/.cache/huggingface/hub across if needed, or point HF_HOME at a copy: the command "
        "line reads that cache), or in Python pass path=DIR with a folder holding config.json, "
        "model.safetensors or pytorch_model.bin, vocab.json and merges.txt. The default text "
        "encoder 'minilm' needs no download."
    )


def resolve_clip_weights(
    path: str | Path | None = None, *, model_id: str = CLIP_MODEL_ID
) -> tuple[str, bool]:
    """(what to pass to ``from_pretrained``, whether it may download). Raises ``KinemicError``
    at once when the weights are neither at ``path`` / in the cache nor downloadable."""
    if path is not None:
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            raise KinemicError(_missing_message(f"{folder}", "has no config.json"))
        return str(folder), False
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        return model_id, False  # in the cache; from_pretrained(local_files_only=True) reads it
    if _offline():
        raise KinemicError(
            _missing_message(
                f"they are not in the Hugging Face cache ({constants.HF_HUB_CACHE})",
                "and downloads are off (HF_HUB_OFFLINE is set)",
            )
        )
    why = _hub_unreachable()
    if why is not None:
        raise KinemicError(
            _missing_message(
                f"they are not in the Hugging Face cache ({constants.HF_HUB_CACHE})",
                f"and the Hub cannot be reached: {why}",
            )
        )
    return model_id, True


def _default_name(max_tokens: int) -> str:
    return CLIP_NAME if max_tokens == MDM_MAX_TOKENS else f"{CLIP_NAME}-t{max_tokens}"


class CLIPTextEncoder:
    """CLIP ViT-B/32 projected text embeddings, (N, 512) float32, as ``encode_text`` gives.

    ``max_tokens``: word pieces kept per caption (MDM: 20; CLIP's own limit is 75; see
    :meth:`with_max_tokens`).
    ``path``: a local folder with the weights (default: the HF cache, downloading once when
    online). ``name`` overrides the cache/checkpoint id (default ``clip-vit-b32``, with a
    ``-t{max_tokens}`` suffix when ``max_tokens`` is not 20).
    """

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        device: str | torch.device = "cpu",
        max_tokens: int = MDM_MAX_TOKENS,
        batch_size: int = 128,
        name: str | None = None,
        model_id: str = CLIP_MODEL_ID,
    ):
        if not 1 <= max_tokens <= CLIP_FULL_TOKENS:
            raise ValueError(
                f"max_tokens must be in 1..{CLIP_FULL_TOKENS} (CLIP's context is 77), got "
                f"{max_tokens}"
            )
        source, may_download = resolve_clip_weights(path, model_id=model_id)
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        local = not may_download
        try:
            with quiet_loading():
                self._tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
                model = CLIPTextModelWithProjection.from_pretrained(source, local_files_only=local)
        except (OSError, ValueError) as e:
            where = f"{source}" if path is not None else f"the Hugging Face cache ({source})"
            raise KinemicError(_missing_message(where, f"could not be loaded ({e})")) from None
        self._model = model.to(device).eval()
        self.device = torch.device(device)
        self.dim = int(model.config.projection_dim)
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self._given_name = name
        self.name = name or _default_name(max_tokens)

    def with_max_tokens(self, max_tokens: int) -> CLIPTextEncoder:
        """This encoder reading ``max_tokens`` word pieces per caption, sharing the loaded
        model: itself when it already does. Named by the same rule as the constructor's (a
        given ``name`` gets a ``-t{max_tokens}`` suffix), so a disk cache keeps them apart."""
        if not 1 <= max_tokens <= CLIP_FULL_TOKENS:
            raise ValueError(
                f"max_tokens must be in 1..{CLIP_FULL_TOKENS} (CLIP's context is 77), got "
                f"{max_tokens}"
            )
        if max_tokens == self.max_tokens:
            return self
        other = copy.copy(self)
        other.max_tokens = max_tokens
        given = self._given_name
        other.name = _default_name(max_tokens) if given is None else f"{given}-t{max_tokens}"
        return other

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """(N, dim) float32 CPU projected embeddings at each caption's end token."""
        texts = check_texts(texts)
        out = torch.zeros(len(texts), self.dim)
        for a in range(0, len(texts), self.batch_size):
            chunk = texts[a : a + self.batch_size]
            # Truncation keeps the start and end tokens around the first max_tokens pieces,
            # like clip.tokenize(truncate=True); causal attention makes padding irrelevant.
            batch = self._tokenizer(
                chunk,
                padding=True,
                truncation=True,
                max_length=self.max_tokens + 2,
                return_tensors="pt",
            ).to(self.device)
            emb = self._model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            out[a : a + len(chunk)] = emb.text_embeds.float().cpu()
        return out

    def spec(self) -> dict:
        return {"name": self.name, "dim": self.dim, "max_tokens": self.max_tokens}
