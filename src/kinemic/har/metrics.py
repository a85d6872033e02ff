"""Generative metrics in the feature space of a separately trained evaluator (SPEC §6).

**The evaluator** (:func:`train_evaluator`) is an ST-GCN trained on *all* real training clips
of the split's classes (``splits/default/<protocol>/train``: what ``gt`` trains on), saved as a
folder (``config.json`` + ``model.safetensors``) and reused by every later call; its features
are the pooled penultimate layer (256-d at width 1). Its final-epoch top-1 on the split's
validation clips is stored for reference (nothing is selected with it).

**The figures**, for each candidate set (a synthetic folder, and the real validation clips as
the reference row), against the *reference distribution* = the evaluator's own training clips:

- FID, pooled over classes (per-class FID on a few clips is meaningless);
- KID: the unbiased MMD² estimate with the polynomial kernel ``(x·y/d + 1)³``, averaged over
  ``kid_subsets`` random subsets of ``min(1000, n)`` clips per side;
- diversity: mean feature distance of 300 random pairs of the candidate's clips;
- multimodality: per class, the mean distance of 10 random pairs among (up to) 30 of its clips,
  averaged over classes (fewer pairs when a class has fewer clips; classes under 2 are skipped);
- accuracy: the evaluator's top-1 on the candidate clips (labels = the classes asked for).

Every row uses the same number of clips ``n`` (``sample_size``, by default the smallest
candidate set), drawn anew without replacement in each of ``repeats`` repetitions (FID depends
on n, so rows are only comparable at equal n). Each figure is reported as mean ± 1.96·σ/√R
over the R repetitions (σ the population standard deviation, as MDM reports); the interval
reflects the subsampling and pair draws, not a re-generation of the synthetic set. Because the
evaluator was trained on the reference clips, even real validation clips sit at a non-zero FID:
read the synthetic rows against the real row.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kinemic.errors import DataError, KinemicError
from kinemic.har.data import FRAMES, Centre, load_protocol_data
from kinemic.har.stgcn import STGCN, STGCNConfig, load_stgcn, save_stgcn
from kinemic.har.train import HARTrainConfig, predict_logits, train_classifier

FORMAT = "kinemic-generative-metrics"

# ------------------------------------------------------------------------------ the figures


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to features a (N, D) and b (M, D)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # fewer clips than dimensions: singular, handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(ca @ cb)
        if not np.isfinite(covmean).all():  # regularise (as pytorch-fid does)
            eps = np.eye(len(ca)) * 1e-6
            covmean = linalg.sqrtm((ca + eps) @ (cb + eps))
    covmean = np.real(covmean)
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.trace(covmean)
    return float(max(value, 0.0))


def kid(
    a: np.ndarray,
    b: np.ndarray,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    rng: np.random.Generator,
) -> float:
    """Kernel inception distance: unbiased MMD² with the kernel (x·y/d + 1)³, averaged over
    random subsets of ``min(subset_size, N, M)`` rows of each side."""
    d = a.shape[1]
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise KinemicError(f"KID needs at least 2 clips per side, found {len(a)} and {len(b)}")
    total = 0.0
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)].astype(np.float64)
        y = b[rng.choice(len(b), m, replace=False)].astype(np.float64)
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off = m * (m - 1)
        total += (kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off
        total -= 2 * kxy.mean()
    return float(total / subsets)


def _pairs(n: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    i = rng.integers(0, n, count)
    j = (i + rng.integers(1, n, count)) % n  # uniform over j != i
    return i, j


def diversity(f: np.ndarray, *, pairs: int = 300, rng: np.random.Generator) -> float:
    """Mean distance of ``pairs`` random pairs of distinct clips."""
    if len(f) < 2:
        return float("nan")
    i, j = _pairs(len(f), pairs, rng)
    return float(np.linalg.norm(f[i] - f[j], axis=1).mean())


def multimodality(
    f: np.ndarray,
    labels: np.ndarray,
    *,
    per_class: int = 30,
    pairs: int = 10,
    rng: np.random.Generator,
) -> float:
    """Per class, mean distance of ``pairs`` random pairs among up to ``per_class`` of its
    clips; averaged over the classes with at least 2 clips."""
    values = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            continue
        idx = rng.choice(idx, min(per_class, len(idx)), replace=False)
        n_pairs = min(pairs, len(idx) * (len(idx) - 1) // 2)
        i, j = _pairs(len(idx), n_pairs, rng)
        values.append(np.linalg.norm(f[idx[i]] - f[idx[j]], axis=1).mean())
    return float(np.mean(values)) if values else float("nan")


# ------------------------------------------------------------------------------ the evaluator


@dataclass
class Evaluator:
    """A trained evaluator ST-GCN and what it was trained for."""

    model: STGCN
    classes: list[int]  # 0-based NTU labels; output i = classes[i]
    class_names: list[str]
    frames: int
    centre: Centre
    info: dict[str, Any]

    def features(self, x: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Penultimate features (N, D) of prepared clips x (N, frames, 22, 3)."""
        xt = torch.as_tensor(x, dtype=torch.float32)
        device = next(self.model.parameters()).device
        self.model.eval()
        with torch.inference_mode():
            out = [
                self.model.features(xt[a : a + batch_size].to(device)).float().cpu()
                for a in range(0, len(xt), batch_size)
            ]
        return torch.cat(out).numpy() if out else np.zeros((0, self.model.config.feature_dim))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices (into ``classes``) of prepared clips."""
        return predict_logits(self.model, x).argmax(-1).numpy()


def train_evaluator(
    target: str | Path,
    split: str,
    out: str | Path,
    *,
    width: float = 1.0,
    frames: int = FRAMES,
    centre: Centre = "first-frame",
    train: HARTrainConfig | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> Path:
    """Train the evaluator on every default-split training clip of ``split``'s classes and save
    it to ``out`` (refused when ``out`` already holds one: reuse it, or choose another folder).
    ``device``: where it trains (``kinemic.har.train.train_classifier``)."""
    out = Path(out)
    if (out / "config.json").exists():
        raise KinemicError(f"{out} already holds an evaluator: reuse it or choose another --out")
    train = train or HARTrainConfig()
    data = load_protocol_data(
        target, split, modes=("gt",), frames=frames, centre=centre, progress=progress
    )
    gt = data.train["gt"]
    model_cfg = STGCNConfig(num_classes=data.num_classes, width=width, dropout=0.0)
    res = train_classifier(
        gt.x,
        gt.y,
        model_config=model_cfg,
        config=train,
        val_x=data.val.x,
        val_y=data.val.y,
        device=device,
    )
    extra = {
        "evaluator": {
            "target": str(data.target),
            "split": data.split.name,
            "protocol": str(data.split.extra.get("protocol", "xsub")),
            "classes": list(data.split.class_list),
            "class_names": data.class_names,
            "frames": frames,
            "centre": centre,
            "train_clips": len(gt),
            "train": asdict(train),
            "epochs": res.epochs,
            "val_clips": len(data.val),
            "val_top1_final": res.final_top1,
        }
    }
    return save_stgcn(out, res.model, extra=extra)


def load_evaluator(path: str | Path) -> Evaluator:
    """An evaluator folder written by :func:`train_evaluator`."""
    model, info = load_stgcn(path)
    ev = info.get("evaluator")
    if not isinstance(ev, dict):
        raise DataError(Path(path) / "config.json", "an ST-GCN folder but not an evaluator")
    return Evaluator(
        model, list(ev["classes"]), list(ev["class_names"]), int(ev["frames"]), ev["centre"], ev
    )


# ------------------------------------------------------------------------------ the report


def _stat(values: Sequence[float]) -> dict[str, Any]:
    v = np.asarray(values, dtype=float)
    half = 1.96 * v.std() / math.sqrt(len(v)) if len(v) else float("nan")
    return {"mean": float(v.mean()), "ci95": float(half), "values": v.tolist()}


def generative_metrics(
    evaluator: str | Path | Evaluator,
    target: str | Path,
    split: str,
    *,
    synthetic: Sequence[str | Path] = (),
    repeats: int = 10,
    sample_size: int | None = None,
    kid_subsets: int = 100,
    seed: int = 0,
    out: str | Path | None = None,
    json_path: str | Path | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Compute every figure for the real validation clips and each synthetic folder; write
    ``out/metrics.json`` and ``out/metrics.md`` (and ``json_path``); returns the document.
    The evaluator runs on ``device`` (a loaded one: where it is)."""
    from kinemic.files import write_text

    if isinstance(evaluator, Evaluator):
        ev = evaluator
    else:
        ev = load_evaluator(evaluator)
        ev.model.to(device)
    modes = ("gt", *(["synth"] if synthetic else []))
    data = load_protocol_data(
        target,
        split,
        synthetic=synthetic,
        modes=modes,
        frames=ev.frames,
        centre=ev.centre,
        progress=progress,
    )
    if list(data.split.class_list) != ev.classes:
        raise KinemicError(
            f"the evaluator was trained for classes {ev.classes}, split {split} has "
            f"{data.split.class_list}: train an evaluator for this split (kinemic evaluator)"
        )
    if repeats < 1:
        raise KinemicError(f"repeats must be >= 1, found {repeats}")
    ref = ev.features(data.train["gt"].x)
    rows_in = [("real (validation)", "validation clips of " + split, data.val)]
    rows_in += [
        (
            m.label.removeprefix("synth (").removesuffix(")"),
            str(m.synthetic.path),
            data.train[m.label],
        )
        for m in data.modes
        if m.kind == "synth"
    ]
    n = sample_size or min(len(s) for _, _, s in rows_in)
    rows = []
    for name, source, clips in rows_in:
        feats, pred = ev.features(clips.x), ev.predict(clips.x)
        vals: dict[str, list[float]] = {
            k: [] for k in ("fid", "kid", "diversity", "multimodality", "accuracy")
        }
        for r in range(repeats):
            rng = np.random.default_rng([seed, r])
            pick = rng.choice(len(clips), min(n, len(clips)), replace=False)
            f, y = feats[pick], clips.y[pick]
            vals["fid"].append(fid(f, ref))
            vals["kid"].append(kid(f, ref, subsets=kid_subsets, rng=rng))
            vals["diversity"].append(diversity(f, rng=rng))
            vals["multimodality"].append(multimodality(f, y, rng=rng))
            vals["accuracy"].append(float((pred[pick] == y).mean() * 100))
        rows.append(
            {
                "name": name,
                "source": source,
                "clips": len(clips),
                **{k: _stat(v) for k, v in vals.items()},
            }
        )
    doc = {
        "format": FORMAT,
        "version": 1,
        "evaluator": ev.info,
        "target": str(data.target),
        "split": data.split.name,
        "class_names": data.class_names,
        "reference": {
            "clips": len(ref),
            "what": "the evaluator's training clips (all "
            "default-split training clips of the split's classes)",
        },
        "repeats": repeats,
        "sample_size": n,
        "kid_subsets": kid_subsets,
        "seed": seed,
        "rows": rows,
    }
    text = json.dumps(doc, indent=2) + "\n"
    if out is not None:
        write_text(Path(out) / "metrics.json", text)
        write_text(Path(out) / "metrics.md", metrics_markdown(doc))
    if json_path is not None:
        write_text(json_path, text)
    return doc


def metrics_markdown(doc: dict[str, Any]) -> str:
    """The metrics table in Markdown (mean ± 1.96σ/√R)."""

    def pm(s: dict, digits: int = 2) -> str:
        return f"{s['mean']:.{digits}f} ± {s['ci95']:.{digits}f}"

    ev = doc["evaluator"]
    lines = [
        f"# Generative metrics — split {doc['split']}",
        "",
        f"Evaluator: ST-GCN trained on {ev['train_clips']} real training clips of "
        f"{', '.join(doc['class_names'])} (top-1 {ev['val_top1_final']:.1f}% on the "
        f"{ev['val_clips']} validation clips). Reference: {doc['reference']['clips']} clips "
        f"({doc['reference']['what']}). {doc['sample_size']} clips per row and repetition, "
        f"{doc['repeats']} repetitions, mean ± 1.96σ/√R.",
        "",
        "| set | clips | FID ↓ | KID ↓ | diversity | multimodality | evaluator top-1 % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['name']} | {r['clips']} | {pm(r['fid'])} | {pm(r['kid'], 3)} | "
            f"{pm(r['diversity'])} | {pm(r['multimodality'])} | {pm(r['accuracy'], 1)} |"
        )
    return "\n".join(lines) + "\n"
