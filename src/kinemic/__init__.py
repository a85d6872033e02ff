"""kinemic: few-shot skeleton action synthesis (KineMIC) and transferable motion representations.

The few entry points a user needs, importable from here (docs/python.md shows each with an
example)::

    load_prior(folder | "shipped")      a text-to-motion diffusion prior
    load_generator(run)                 a generator fine-tuned by ``kinemic finetune``
    sample(model, texts=..., ...)       motions in memory: Samples(features, joints, ...)
    features_to_joints(features)        HumanML3D features (..., T, 263) -> joints (..., T, 22, 3)
    joints_to_features(joints)          joints (..., T, 22, 3) -> features (..., T-1, 263)
    render_clips(clips, "out.gif")      stick figures as GIF, MP4 or a PNG contact sheet
    load_tmor(folder | None)            the T-MOR motion/text encoder (None: the shipped one)
    KinemicError                        the error raised for bad input, with what to do

They are imported on first use, so ``import kinemic`` is cheap and imports no torch. The
package is organised one concept per module; see docs/architecture.md.

Example:
    >>> import kinemic
    >>> motion = kinemic.sample("shipped", n=1, length=10, ddim=2)
    >>> kinemic.joints_to_features(motion.joints).shape  # one frame fewer: velocities
    (1, 9, 263)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> "module:attribute" it is imported from on first use.
_API = {
    "KinemicError": "kinemic.errors:KinemicError",
    "Samples": "kinemic.prior.sample:Samples",
    "features_to_joints": "kinemic.features:features_to_joints",
    "joints_to_features": "kinemic.features:joints_to_features",
    "load_generator": "kinemic.finetune.generator:load_generator",
    "load_prior": "kinemic.prior.folder:load_prior",
    "load_tmor": "kinemic.tmor.encoder:load_tmor",
    "render_clips": "kinemic.render:render_clips",
    "sample": "kinemic.prior.sample:sample",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'kinemic' has no attribute {name!r}")
    module, attr = _API[name].split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
