"""Statistics and reporting of the HAR protocol: intervals over seeds, the results document,
its Markdown.

**Interval**: per mode, top-1 over seeds is given as mean ± the half-width of the 95%
confidence interval of the mean, Student t with n−1 degrees of freedom: ``t(0.975, n−1) · s /
√n``, ``s`` the sample standard deviation (ddof 1) of the n seeds' values; a single seed has no
interval (``null``). It is reported for the **final epoch** — the protocol's figure — and,
labelled as optimistic, for the best validation epoch; per-class accuracy (final epoch, mean ±
the same interval over seeds) and the confusion matrix (final epoch, counts summed over seeds;
rows = true class, columns = prediction).

``results.json`` (:func:`results_document`; ``kinemic evaluate`` also writes it to
``--json``)::

    {"format": "kinemic-har-evaluation", "version": 1, "target", "split", "protocol",
     "classes": [0-based NTU labels], "class_names", "validation": {"clips", "per_class"},
     "seeds": [...], "settings": {...}, "timing": {"seconds", "jobs", "threads",
     "reused_runs"},
     "modes": [{"mode": label, "kind", "method", "synthetic": path|null, "train_clips",
                "train_real", "train_synthetic", "train_per_class", "epochs", "steps",
                "final": {"mean", "ci95", "values"}, "best": {"mean", "ci95", "values",
                "epochs"}, "per_class": {"mean": [...], "ci95": [...]},
                "confusion": [[...]]}, ...],
     "runs": [{"mode", "seed", "final_top1", "best_top1", "best_epoch", "history",
               "per_class", "confusion", "seconds", "samples_per_second", ...}, ...]}

Accuracies are percentages. ``results.md`` (:func:`results_markdown`): the settings, the main
table (:func:`results_table`), per-class accuracy and the confusion matrices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from kinemic.har.config import ProtocolConfig
    from kinemic.har.data import ProtocolData

__all__ = ["FORMAT", "mean_ci95", "results_document", "results_markdown", "results_table"]

FORMAT = "kinemic-har-evaluation"


def mean_ci95(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and half-width of the 95% Student-t interval of the mean, ``t(0.975, n−1) · s /
    √n`` (module docstring); the half-width is None for fewer than 2 values."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), None
    if len(v) < 2:
        return float(v.mean()), None
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(half)


def results_document(
    data: ProtocolData,
    config: ProtocolConfig,
    runs: list[dict],
    *,
    seconds: float,
    threads: int,
    reused: int = 0,
) -> dict[str, Any]:
    """The results document (module docstring) of the finished ``runs``, in protocol order;
    a mode without runs (a stopped :func:`~kinemic.har.protocol.prerun`) is left out."""
    k = data.num_classes
    modes = []
    for spec in data.modes:
        rs = [r for r in runs if r["mode"] == spec.label]
        if not rs:  # a stopped prerun: the mode was not reached
            continue
        ts = data.train[spec.label]
        final = [r["final_top1"] for r in rs]
        best = [r["best_top1"] for r in rs]
        per_class = np.array([r["per_class"] for r in rs])  # (seeds, K)
        cis = [mean_ci95(per_class[:, c]) for c in range(k)]
        syn = spec.synthetic
        modes.append(
            {
                "mode": spec.label,
                "kind": spec.kind,
                "method": None if syn is None else syn.method,
                "synthetic": None if syn is None else str(syn.path),
                "train_clips": len(ts),
                "train_real": int((~ts.synthetic).sum()),
                "train_synthetic": int(ts.synthetic.sum()),
                "train_per_class": ts.counts(k),
                "epochs": rs[0]["epochs"],
                "steps": rs[0]["steps"],
                "epochs_per_seed": [r["epochs"] for r in rs],
                # seeds that ended at the planned epochs without meeting the fitting rule
                "unfitted_seeds": None
                if config.train.fit_loss is None or config.train.epochs is not None
                else sum(r.get("fitted_epoch") is None for r in rs),
                "final_loss": _mean_of(r.get("final_loss") for r in rs),
                "final": _summary(final),
                "best": {**_summary(best), "epochs": [r["best_epoch"] for r in rs]},
                "per_class": {"mean": [c[0] for c in cis], "ci95": [c[1] for c in cis]},
                "confusion": np.sum([r["confusion"] for r in rs], axis=0).tolist(),
            }
        )
    from kinemic import __version__

    return {
        "format": FORMAT,
        "version": 1,
        "kinemic": __version__,
        "target": str(data.target),
        "split": data.split.name,
        "protocol": str(data.split.extra.get("protocol", "xsub")),
        "classes": list(data.split.class_list),
        "class_names": list(data.class_names),
        "validation": {"clips": len(data.val), "per_class": data.val.counts(k)},
        "seeds": list(range(config.seeds)),
        "settings": {**asdict(config), "model": "ST-GCN", "graph": "smpl22"},
        "timing": {
            "seconds": seconds,
            "jobs": config.jobs,
            "threads": threads,
            "reused_runs": reused,
        },
        "modes": modes,
        "runs": runs,
    }


def _mean_of(values) -> float | None:
    """Mean of the values that are there (records from before a field existed lack it)."""
    got = [float(v) for v in values if v is not None]
    return float(np.mean(got)) if got else None


def epochs_text(mode: dict[str, Any]) -> str:
    """A mode's epochs: one number, or the range over seeds when the fitting rule stopped the
    seeds at different epochs."""
    per_seed = mode.get("epochs_per_seed") or [mode["epochs"]]
    lo, hi = min(per_seed), max(per_seed)
    text = str(lo) if lo == hi else f"{lo}–{hi}"
    unfitted = mode.get("unfitted_seeds")
    if unfitted:
        text += f" ({unfitted} of {len(per_seed)} not fitted)"
    return text


def loss_text(mode: dict[str, Any]) -> str:
    """A mode's final training loss (mean over seeds), or a dash when not recorded."""
    loss = mode.get("final_loss")
    return "–" if loss is None else f"{loss:.3f}"


def _summary(values: list[float]) -> dict[str, Any]:
    mean, half = mean_ci95(values)
    return {"mean": mean, "ci95": half, "values": list(values)}


def _pm(summary: dict[str, Any]) -> str:
    half = summary.get("ci95")
    return f"{summary['mean']:.1f}" + ("" if half is None else f" ± {half:.1f}")


def results_table(doc: dict[str, Any]) -> str:
    """The main table (Markdown): per mode, training clips and top-1 at the final and at the
    best validation epoch."""
    lines = [
        "| mode | training clips | epochs | final training loss | top-1 %, final epoch "
        "| top-1 %, best val. epoch (optimistic) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in doc["modes"]:
        clips = str(m["train_clips"])
        if m["train_synthetic"] and m["train_real"]:
            clips += f" ({m['train_real']} real + {m['train_synthetic']} synthetic)"
        lines.append(
            f"| {m['mode']} | {clips} | {epochs_text(m)} | {loss_text(m)} "
            f"| **{_pm(m['final'])}** | {_pm(m['best'])} |"
        )
    return "\n".join(lines) + "\n"


def results_markdown(doc: dict[str, Any]) -> str:
    """``results.md``: settings, the main table, per-class accuracy and confusion matrices."""
    s, names = doc["settings"], doc["class_names"]
    t = s["train"]
    epochs = t["epochs"] or (
        f"from the training set's size: ceil({t['steps']} steps / batches per epoch) within "
        f"[{t['min_epochs']}, {t['max_epochs']}]"
    )
    if t.get("fit_loss") is not None:
        epochs = (
            f"to the fitting rule: the first epoch with a mean training loss ≤ {t['fit_loss']} "
            f"finds the set fitted, then as many epochs again with the learning rate annealed "
            f"to 0; at most {epochs}"
        )
    out = [
        f"# HAR evaluation — split {doc['split']}",
        "",
        f"Target `{doc['target']}`, split {doc['split']} ({doc['protocol']}): "
        f"{len(names)} classes ({', '.join(names)}), {doc['validation']['clips']} validation "
        f"clips. ST-GCN on SMPL-22 (width {s['width']}, spatial partitioning, {s['frames']} "
        f"frames, centred on the first frame's pelvis: `{s['centre']}`), SGD lr {t['lr']} "
        f"Nesterov momentum {t['momentum']}, weight decay {t['weight_decay']}, cosine schedule, "
        f"batch {t['batch_size']}, epochs {epochs}. Seeds {doc['seeds']}; mean ± 95% CI "
        "(Student t over seeds).",
        "",
        "The **final epoch** is the protocol's figure. The best validation epoch (best of at most "
        f"{t['evaluations']} evaluated epochs) is chosen on the validation clips themselves and "
        "is shown only for comparison with work that reports it.",
        "",
        results_table(doc),
        "## Per-class top-1 % (final epoch, mean ± 95% CI over seeds)",
        "",
        "| mode | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for m in doc["modes"]:
        pc = m["per_class"]
        cells = [_pm({"mean": a, "ci95": h}) for a, h in zip(pc["mean"], pc["ci95"], strict=True)]
        out.append(f"| {m['mode']} | " + " | ".join(cells) + " |")
    out += [
        "",
        "## Confusion matrices (final epoch, summed over seeds)",
        "",
        "Rows: true class; columns: predicted class.",
        "",
    ]
    for m in doc["modes"]:
        out += [
            f"### {m['mode']}",
            "",
            "| true \\ predicted | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        out += [
            f"| {n} | " + " | ".join(str(v) for v in row) + " |"
            for n, row in zip(names, m["confusion"], strict=True)
        ]
        out.append("")
    tm = doc["timing"]
    reused = tm.get("reused_runs", 0)
    out.append(
        f"{len(doc['runs'])} runs ({reused} of them reused from `runs/`) in {tm['seconds']:.0f} s "
        f"({tm['jobs']} job(s), {tm['threads']} torch thread(s) each)."
    )
    return "\n".join(out) + "\n"
