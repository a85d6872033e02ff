"""Load a model folder whichever kind it is: the one dispatch on ``config.json``'s ``format``.

For callers that accept either a prior or a fine-tuned generator (``kinemic sample``): the
folder is opened once (``kinemic.files.open_model_folder``) and handed to its loader, which
does not resolve it again. Both loaded objects have the attributes sampling reads
(``denoiser``, ``schedule``, ``normalizer``, ``text_spec``, ``action_names``, ``max_frames``,
``path``, ``weights``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kinemic.files import open_model_folder

if TYPE_CHECKING:
    import torch

    from kinemic.finetune.generator import ActionGenerator
    from kinemic.prior.folder import Prior


def load_model(
    path: str | Path,
    *,
    weights: Literal["ema", "raw"] = "ema",
    device: str | torch.device = "cpu",
) -> Prior | ActionGenerator:
    """The prior or fine-tuned generator in ``path`` (its folder, a training run: its latest
    checkpoint, or "shipped": the prior in the package), on ``device``. ``weights`` ("ema" or
    "raw") applies to a prior; a generator's adapter has one set of weights."""
    from kinemic.finetune.generator import load_generator
    from kinemic.prior.folder import load_prior

    if str(path) == "shipped":
        return load_prior("shipped", weights=weights, device=device)
    folder = open_model_folder(path, expect={"prior", "generator"})
    if folder.kind == "generator":
        return load_generator(folder, device=device)
    return load_prior(folder, weights=weights, device=device)
