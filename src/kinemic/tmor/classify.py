"""Action classification with T-MOR embeddings (``kinemic tmor classify``) on an NTU-VIBE set.

Three regimes, all on the frozen skeleton encoder's unit clip embeddings:

- **zero-shot**: each class' name goes through a few prompt templates ("a person doing
  {name}", ...), the prompts' text embeddings are averaged into a class vector, and a clip
  takes the class of highest cosine. No target clip is used for training. On the world,
  "butt kicks" and "cross toe touch" are never named in any source caption (only described),
  so their share of correct answers is reported separately (``never_named``).
- **few-shot** (k = 1, 5, 10 shots per class from a few-shot split's training shots, several
  seeded draws for k below the split's shots): nearest class prototype (mean embedding) and a
  linear probe (L2-regularised logistic regression).
- **supervised**: a linear probe on every default-split training clip of the classes.

Validation clips: the few-shot split's ``val`` clips (zero-shot and few-shot), the default
split's (supervised) — for the world's S0001 they are the same xsub validation performers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from kinemic.errors import KinemicError
from kinemic.io.ntu_vibe import NTUVibeDataset
from kinemic.tmor.metrics import linear_probe, mean_ci, probe_logits, prototypes

TEMPLATES = (
    "{name}",
    "a person {name}",
    "a person doing {name}",
    "someone performing {name}",
    "a person does the action: {name}",
)
#: World target classes never named in source captions (kinemic.world.captions.NEVER_NAMED).
NEVER_NAMED_ACTIONS = (100, 101)


@dataclass
class ClassifyReport:
    """Top-1 accuracies in percent. ``fewshot[method][k] = [mean, 95% half-width]``."""

    target: str
    split: str
    classes: list[int]
    class_names: list[str]
    val_clips: int
    chance: float
    zero_shot: float | None = None
    zero_shot_per_class: dict[str, float] = field(default_factory=dict)
    never_named: float | None = None
    fewshot: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    supervised: float | None = None
    supervised_train_clips: int = 0
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        rows = ["| regime | top-1 |", "|---|---:|", f"| chance | {self.chance:.1f}% |"]
        if self.zero_shot is not None:
            rows.append(f"| zero-shot (class-name prompts) | {self.zero_shot:.1f}% |")
        if self.never_named is not None:
            rows.append(f"|   on the never-named classes' clips | {self.never_named:.1f}% |")
        for method, per_k in self.fewshot.items():
            for k, (m, ci) in sorted(per_k.items()):
                rows.append(f"| {k}-shot, {method} | {m:.1f} ± {ci:.1f}% |")
        if self.supervised is not None:
            rows.append(
                f"| supervised linear probe ({self.supervised_train_clips} clips) | "
                f"{self.supervised:.1f}% |"
            )
        return "\n".join(rows)


def class_prompts(name: str, templates: Sequence[str] = TEMPLATES) -> list[str]:
    return [t.format(name=name) for t in templates]


def zero_shot_classifier(
    encoder, names: Sequence[str], templates: Sequence[str] = TEMPLATES
) -> torch.Tensor:
    """Unit class vectors (C, E): the mean of each class' prompt embeddings, renormalised."""
    prompts = [p for n in names for p in class_prompts(n, templates)]
    z = encoder.embed_texts(prompts).view(len(names), len(templates), -1).mean(1)
    return torch.nn.functional.normalize(z, dim=-1)


def _accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).float().mean() * 100)


def evaluate_classification(
    target: str | Path,
    *,
    encoder=None,
    split: str = "S0001",
    protocol: str = "xsub",
    regimes: Sequence[str] = ("zero-shot", "few-shot", "supervised"),
    shots: Sequence[int] = (1, 5, 10),
    seeds: int = 5,
    templates: Sequence[str] = TEMPLATES,
    progress: bool = True,
) -> ClassifyReport:
    """Zero-shot, few-shot and supervised top-1 of ``encoder`` (a ``TMOREncoder``, a path, or
    None: the shipped one) on the few-shot ``split`` of the NTU-VIBE folder ``target``."""
    from kinemic.tmor.encoder import TMOREncoder, load_tmor

    unknown = set(regimes) - {"zero-shot", "few-shot", "supervised"}
    if unknown:
        raise KinemicError(
            f"unknown regimes {sorted(unknown)}: use zero-shot, few-shot, supervised"
        )
    enc = encoder if isinstance(encoder, TMOREncoder) else load_tmor(encoder)
    ds = NTUVibeDataset(target)
    fs = ds.fewshot_split(split, protocol=protocol)
    if not fs.val_ids:
        raise KinemicError(
            f"{target}: few-shot split {split} has no validation clips to evaluate on"
        )
    classes = list(fs.class_list)
    names_all = ds.class_names()
    names = [names_all[c] for c in classes]
    col = {c: i for i, c in enumerate(classes)}
    val_y = torch.tensor([col[y] for y in fs.val_labels])
    val_x = enc.embed_motions(
        [ds.joints(i) for i in fs.val_ids], progress=progress, desc="val clips"
    )
    report = ClassifyReport(
        target=str(target),
        split=split,
        classes=classes,
        class_names=names,
        val_clips=len(fs.val_ids),
        chance=100.0 / len(classes),
        settings={
            "encoder": str(enc.path),
            "protocol": protocol,
            "seeds": seeds,
            "templates": list(templates),
        },
    )
    if "zero-shot" in regimes:
        w = zero_shot_classifier(enc, names, templates)
        pred = (val_x @ w.T).argmax(1)
        report.zero_shot = _accuracy(pred, val_y)
        report.zero_shot_per_class = {
            names[k]: _accuracy(pred[val_y == k], val_y[val_y == k]) for k in range(len(classes))
        }
        never = [col[a - 1] for a in NEVER_NAMED_ACTIONS if a - 1 in col]
        if never:
            sel = torch.isin(val_y, torch.tensor(never))
            report.never_named = _accuracy(pred[sel], val_y[sel])
    if "few-shot" in regimes:
        train_y_all = np.array([col[y] for y in fs.train_labels])
        train_x_all = enc.embed_motions([ds.joints(i) for i in fs.train_ids], desc="shots")
        per_method: dict[str, dict[int, list[float]]] = {"prototype": {}, "linear probe": {}}
        for k in shots:
            if k > fs.shots:
                raise KinemicError(f"{k} shots asked for, split {split} has {fs.shots} per class")
            accs: dict[str, list[float]] = {"prototype": [], "linear probe": []}
            for seed in range(seeds if k < fs.shots else 1):
                rng = np.random.default_rng([seed, k])
                pick = np.concatenate(
                    [
                        rng.permutation(np.nonzero(train_y_all == c)[0])[:k]
                        for c in range(len(classes))
                    ]
                )
                x, y = train_x_all[pick], torch.from_numpy(train_y_all[pick])
                p = prototypes(x, y, len(classes))
                accs["prototype"].append(_accuracy((val_x @ p.T).argmax(1), val_y))
                head = linear_probe(x, y, len(classes), seed=seed)
                accs["linear probe"].append(_accuracy(probe_logits(head, val_x).argmax(1), val_y))
            for method, values in accs.items():
                per_method[method][k] = list(mean_ci(values))
        report.fewshot = per_method
    if "supervised" in regimes:
        if not ds.has_default_split(protocol):
            raise KinemicError(f"{target}: no default {protocol} split for the supervised probe")
        ids, labels = ds.default_split(protocol, "train")
        keep = [(i, col[y]) for i, y in zip(ids, labels, strict=True) if y in col]
        x = enc.embed_motions(
            [ds.joints(i) for i, _ in keep], progress=progress, desc="train clips"
        )
        y = torch.tensor([c for _, c in keep])
        vids, vlabels = ds.default_split(protocol, "val")
        vkeep = [(i, col[v]) for i, v in zip(vids, vlabels, strict=True) if v in col]
        vx = enc.embed_motions(
            [ds.joints(i) for i, _ in vkeep], progress=progress, desc="val clips"
        )
        head = linear_probe(x, y, len(classes))
        report.supervised = _accuracy(
            probe_logits(head, vx).argmax(1), torch.tensor([c for _, c in vkeep])
        )
        report.supervised_train_clips = len(keep)
    return report
