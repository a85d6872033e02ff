"""MDM's ``args.json``: the arguments official MDM's ``train_mdm.py`` writes beside its
checkpoints, read for what tensor shapes cannot say (condition dropout, diffusion steps, text
encoder) and checked against the shapes where both say something.

MDM's code fixes what ``args.json`` lacks (``utils/model_util.get_model_args``: 4 heads,
dropout 0.1, feed-forward 1024; ``utils/parser_util``: its defaults), so a missing entry is
assumed at MDM's value, and :class:`MdmArgs` remembers which entries were read and which values
were assumed, for the importer to report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from kinemic.constants import FEATURE_DIM
from kinemic.errors import DataError

__all__ = ["ARGS_FILE", "MdmArgs", "MdmSizes", "read_mdm_args"]

ARGS_FILE = "args.json"
MDM_HEADS, MDM_DROPOUT, MDM_MAX_LEN, MDM_COND_MASK_PROB = 4, 0.1, 5000, 0.1
CLIP_DIM = 512  # CLIP ViT-B/32's text embedding, MDM's text encoder
# Without args.json: the steps of humanml_enc_512_50steps, the checkpoint KineMIC fine-tunes
# (MDM's own default, and the 2022 humanml_trans_enc_512, use 1000).
ASSUMED_STEPS = 50
_PE = "sequence_pos_encoder.pe"


@dataclass(frozen=True)
class MdmSizes:
    """What a checkpoint's tensor shapes say."""

    feature_dim: int
    latent_dim: int
    num_layers: int
    ff_dim: int
    text_dim: int | None
    num_actions: int
    pe_rows: int | None  # None when the checkpoint holds no positional table


def read_mdm_args(checkpoint: str | PathLike) -> dict[str, Any] | None:
    """The ``args.json`` beside ``checkpoint`` (where MDM writes it), or None when absent."""
    path = Path(checkpoint).parent / ARGS_FILE
    if not path.is_file():
        return None
    try:
        args = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(path, f"not readable as JSON ({err})") from None
    if not isinstance(args, dict):
        raise DataError(path, f"expected a JSON object of MDM's arguments, found {type(args)}")
    return args


class MdmArgs:
    """MDM's arguments (``where`` names them in errors), remembering which entries were read
    (``read``) and which values were assumed (``assumed``, one line each)."""

    def __init__(self, args: dict[str, Any], where: str) -> None:
        self.args, self.where = args, where
        self.read: dict[str, Any] = {}
        self.assumed: list[str] = []

    def get(self, key: str, alt: str | None = None) -> Any:
        """The entry ``key`` (or ``alt``), None when absent."""
        for k in (key, alt):
            if k is not None and k in self.args:
                self.read[k] = self.args[k]
                return self.args[k]
        return None

    def fail(self, key: str, problem: str) -> None:
        raise DataError(self.where, f"{key}: {problem}")

    def assume(self, key: str, value: Any, why: str) -> Any:
        self.assumed.append(f"{key}={value!r} ({why})")
        return value

    def setting(
        self,
        key: str,
        given: Any,
        default: Any,
        why: str,
        kind: type = int,
        alt: str | None = None,
    ) -> Any:
        """``given`` (which must agree with the entry ``key``), else the entry, else
        ``default`` (assumed, for the reason ``why``)."""
        found = self.get(key, alt)
        if found is not None:
            try:
                found = kind(found)
            except (TypeError, ValueError):
                self.fail(key, f"{found!r} is not {kind.__name__}")
        if given is not None:
            if found is not None and found != given:
                self.fail(key, f"{found!r}, but {given!r} was given")
            return given
        return found if found is not None else self.assume(key, default, why)

    def check(self, s: MdmSizes) -> None:
        """Refuse what kinemic cannot import, and entries the tensor shapes ``s`` contradict."""
        arch = self.get("arch")
        if arch not in (None, "trans_enc"):
            self.fail("arch", f"{arch!r}; kinemic imports MDM's transformer encoder only")
        dataset = self.get("dataset")
        if dataset not in (None, "humanml"):
            self.fail("dataset", f"{dataset!r}; kinemic imports HumanML3D ('humanml') models only")
        if dataset == "humanml" and s.feature_dim != FEATURE_DIM:
            self.fail(
                "dataset",
                f"'humanml' has {FEATURE_DIM} features per frame, but "
                f"input_process.poseEmbedding.weight takes {s.feature_dim}",
            )
        for key, found, what in (
            ("layers", s.num_layers, "transformer layers"),
            ("latent_dim", s.latent_dim, "rows of input_process.poseEmbedding.weight"),
            ("ff_size", s.ff_dim, "rows of seqTransEncoder.layers.0.linear1.weight"),
            ("pos_embed_max_len", s.pe_rows, f"rows of {_PE}"),
        ):
            value = self.get(key)
            if value is not None and found is not None and value != found:
                self.fail(key, f"{value!r}, but the checkpoint has {found} {what}")
        text_type = self.get("text_encoder_type")
        if text_type not in (None, "clip"):
            self.fail("text_encoder_type", f"{text_type!r}; kinemic imports CLIP-text models only")
        if text_type == "clip" and s.text_dim not in (None, CLIP_DIM):
            self.fail(
                "text_encoder_type",
                f"'clip' gives {CLIP_DIM}-d embeddings, but embed_text.weight takes {s.text_dim}",
            )
        # cond_mode: what 2022 args.json files hold instead of unconstrained
        unconstrained, cond_mode = self.get("unconstrained"), self.get("cond_mode")
        if unconstrained is not None or cond_mode is not None:
            key = "unconstrained" if unconstrained is not None else "cond_mode"
            with_text = not (unconstrained or cond_mode == "no_cond")
            if with_text != (s.text_dim is not None):
                has = "has" if s.text_dim is not None else "has no"
                self.fail(key, f"{self.read[key]!r}, but the checkpoint {has} embed_text")
        schedule = self.get("noise_schedule")
        if schedule not in (None, "cosine"):
            self.fail("noise_schedule", f"{schedule!r}; kinemic's noise schedule is cosine only")
        for key, plain in (("emb_policy", "add"), ("context_len", 0), ("multi_target_cond", False)):
            value = self.get(key)
            if value not in (None, plain):
                self.fail(key, f"{value!r}; kinemic imports the plain text-to-motion model")
        for key in ("use_ema", "mask_frames"):  # reported with the rest
            self.get(key)
