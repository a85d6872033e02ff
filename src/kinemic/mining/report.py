"""``kinemic mine``: the soft positives of each target class, shown so a user can check them,
and — with a fine-tuned generator on the procedural world — how precisely its attention
windows find the target action (``kinemic.mining.precision``).

``mine(...)`` is the typed function; ``VERBS`` holds the verb for ``kinemic.cli``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kinemic.errors import KinemicError
from kinemic.io.humanml3d import HumanML3DDataset
from kinemic.io.ntu_vibe import NTUVibeDataset
from kinemic.mining import precision as prec
from kinemic.mining.config import DEFAULT_K, FilterConfig
from kinemic.mining.soft_positives import (
    SoftPositives,
    as_encoder,
    embed_texts,
    select_soft_positives,
)
from kinemic.world.truth import has_segments

if TYPE_CHECKING:
    import torch


@dataclass
class ClassSummary:
    """One target class: 0-based ``label``, name, caption, the lengths (feature rows) of its
    target clips, and its ``top`` soft positives: dicts of id, score and the motion's caption
    closest to the class caption (``caption``, ``caption_score``)."""

    label: int
    name: str
    caption: str
    lengths: list[int]
    top: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MineReport:
    """What ``mine`` found: per-class summaries, the soft positives, and (on a world source)
    the mining precision; ``windows`` the attention windows (with a model); ``seconds`` per
    stage."""

    source: Path
    target: Path
    split: str | None
    model: Path | None
    classes: list[ClassSummary]
    soft: SoftPositives
    precision: prec.MiningPrecision | None
    notes: list[str]
    seconds: dict[str, float]
    windows: np.ndarray | None = None  # (C, k, 2) mined [start, end) feature rows

    def text(self) -> str:
        """The report as printed by ``kinemic mine``."""
        k = self.soft.k
        split = f"split {self.split}" if self.split else "all classes"
        pool = f"the {self.soft.split!r} split" if self.soft.split else "all motions"
        how = self.soft.filter
        if how["name"] == "kinematic":
            tmor = how["encoder"] or "the shipped T-MOR encoder"
            w = how.get("weight", 1.0)
            key = (
                "best window cosine to the class's clips"
                if w == 1.0
                else f"{w:g} × motion + {1 - w:g} × caption, standardised"
            )
            how_text = (
                f"; kinematic filter: the caption top {how['pool']} re-ranked by "
                f"{tmor} (scores: {key})"
            )
        else:
            how_text = ""
        lines = [
            f"soft positives of {self.target} ({split}) among {len(self.soft.source_ids)} source "
            f"motions of {self.source} ({pool}); {self.soft.encoder}, top {k}{how_text}",
            *(f"note: {n}" for n in [*self.soft.notes, *self.notes]),
        ]
        for c, cls in enumerate(self.classes):
            lo, hi = min(cls.lengths), max(cls.lengths)
            lines += [
                "",
                f"A{cls.label + 1:03d} {cls.name} — “{cls.caption}”  "
                f"({len(cls.lengths)} target clips, {lo}–{hi} rows)",
            ]
            if cls.top:
                lines.append(
                    "  rank  score  source    closest caption of the source motion (its score)"
                )
            for r, top in enumerate(cls.top, start=1):
                cap = top["caption"]
                cap = cap if len(cap) <= 88 else cap[:85] + "..."
                lines.append(
                    f"  {r:>4}  {top['score']:.3f}  {top['id']:<8}  {cap} "
                    f"({top['caption_score']:.2f})"
                )
            scores = self.soft.scores[c]
            tail = f"  score at rank {k}: {scores[-1]:.3f}"
            if self.precision is not None:
                p = self.precision.classes[c]
                prim = ", ".join(p.primitives)
                tail += (
                    f"; soft positives containing {prim}: {p.containing}/{p.soft_positives} "
                    f"({100 * p.retrieval:.0f}%)"
                )
            lines.append(tail)
        if self.precision is not None:
            lines += ["", "mining precision (ground-truth segments of the world source):"]
            lines.append(self.precision.table())
        stages = ", ".join(f"{name} {s:.1f} s" for name, s in self.seconds.items())
        lines += ["", f"time: {stages}"]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        soft = self.soft.to_json()
        classes = [
            {
                "label": c.label,
                "action": f"A{c.label + 1:03d}",
                "name": c.name,
                "caption": c.caption,
                "target_lengths": c.lengths,
                "top": c.top,
                "soft_positives": soft["classes"][i]["ids"],
                "scores": soft["classes"][i]["scores"],
                "windows": None if self.windows is None else self.windows[i].tolist(),
            }
            for i, c in enumerate(self.classes)
        ]
        return {
            "format": "kinemic-mine",
            "version": 1,
            "source": str(self.source),
            "target": str(self.target),
            "split": self.split,
            "model": None if self.model is None else str(self.model),
            "encoder": self.soft.encoder,
            "source_split": self.soft.split,
            "k": self.soft.k,
            "filter": self.soft.filter,
            "notes": [*self.soft.notes, *self.notes],
            "classes": classes,
            "precision": None if self.precision is None else self.precision.to_json(),
            "seconds": self.seconds,
        }


def _clip_rows(ds: HumanML3DDataset, clip_id: str) -> int:
    """Feature rows of a clip, read from the .npy header only."""
    return int(np.load(ds.root / "new_joint_vecs" / f"{clip_id}.npy", mmap_mode="r").shape[0])


def class_clips(
    target: str | Path, split: str | None
) -> tuple[list[int], list[list[str]], str | None]:
    """The classes to mine for (0-based labels), each class's target clip ids, and the split
    read: the few-shot split's classes and training shots, or with no split every class that
    has clips (the default xsub training clips when present)."""
    ds = NTUVibeDataset(target)
    if split is not None:
        fs = ds.fewshot_split(split)
        ids, labels, classes = fs.train_ids, fs.train_labels, list(fs.class_list)
    else:
        if ds.has_default_split("xsub"):
            ids, labels = ds.default_split("xsub", "train")
        else:
            ids = ds.ids()
            labels = [ds.label_of(i) for i in ids]
        classes = sorted(set(labels))
    if not classes:
        raise KinemicError(f"{target}: no target classes with clips to mine for")
    per_class: dict[int, list[str]] = {c: [] for c in classes}
    for clip_id, label in zip(ids, labels, strict=True):
        per_class[label].append(clip_id)
    empty = [c for c in classes if not per_class[c]]
    if empty:
        raise KinemicError(f"{target}: classes {empty} of split {split!r} have no training clips")
    return classes, [per_class[c] for c in classes], split


def clip_lengths(ds: NTUVibeDataset, clip_ids: list[list[str]]) -> list[list[int]]:
    """Each clip's length (feature rows), per class."""
    return [[_clip_rows(ds, i) for i in ids] for ids in clip_ids]


def target_classes(
    target: str | Path, split: str | None
) -> tuple[list[int], list[list[int]], str | None]:
    """``class_clips`` with each clip's length (feature rows) in place of its id."""
    classes, ids, split = class_clips(target, split)
    return classes, clip_lengths(NTUVibeDataset(target), ids), split


def _closest_captions(source: Path, soft: SoftPositives, encoder, show: int) -> list[list[dict]]:
    """For each class, its first ``show`` soft positives with the caption closest to the
    class caption."""
    ds = HumanML3DDataset(source)
    queries = embed_texts(encoder, soft.captions)  # (C, E)
    out = []
    for c in range(len(soft.captions)):
        rows = []
        for j in range(min(show, soft.k)):
            clip_id = soft.source_ids[soft.indices[c, j]]
            texts = list(dict.fromkeys(cap.text for cap in ds.captions(clip_id)))
            sims = embed_texts(encoder, texts) @ queries[c]  # (n,)
            best = int(np.argmax(sims))
            rows.append(
                {
                    "id": clip_id,
                    "score": round(float(soft.scores[c, j]), 4),
                    "caption": texts[best],
                    "caption_score": round(float(sims[best]), 4),
                }
            )
        out.append(rows)
    return out


def mine(
    source: str | Path,
    target: str | Path,
    *,
    split: str | None = None,
    k: int | None = None,
    show: int = 5,
    model: str | Path | None = None,
    encoder: str | None = None,
    source_split: str | None = "train",
    variants: bool = False,
    seed: int = 0,
    random_draws: int | None = None,
    mine_t: int | None = None,
    filter_config: FilterConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> MineReport:
    """Soft positives of the target classes among the source motions, their best captions and,
    when ``source`` carries ground-truth segments (a world), retrieval and mining precision.

    ``split``: a few-shot split of ``target`` (its classes; default every class with clips).
    ``model``: a fine-tuned generator run; its attention windows are mined in the soft positives
    (``kinemic.mining.windows``) and scored; ``split``, ``k`` and ``encoder`` then default to
    the ones it was fine-tuned with (else: all classes, 250, "minilm"). Without it, only the
    random-window and whole-clip figures are computed, with the target clips' lengths. See
    ``kinemic.mining.precision``. ``filter_config``: the soft-positive selection
    (``kinemic.mining.soft_positives.select_soft_positives``; the kinematic filter compares
    with the target clips of each class); None: a ``model``'s own, else the caption ranking.
    With a ``model`` fine-tuned with the kinematic filter, a kinematic ``filter_config`` takes
    the model's pool, encoder and weight where it leaves them None. ``device``: where the
    generator and the kinematic filter's T-MOR encoder run.
    """
    if show < 0:
        raise KinemicError(f"--show must be 0 or more, got {show}")
    source, target = Path(source), Path(target)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    finetuned = None  # the loaded generator of ``model``
    if model is not None:
        finetuned, split = load_for_mining(model, split, device=device)
    text_encoder = None
    if finetuned is not None:
        used = finetuned.config.get("soft_positives") or {}
        k = int(used.get("k", DEFAULT_K)) if k is None else k
        filter_config = _with_own(filter_config, used.get("filter") or {"name": "none"})
        if encoder is None and finetuned.text_spec is not None:
            from kinemic.text import encoder_from_spec

            text_encoder = encoder_from_spec(finetuned.text_spec)
    k = DEFAULT_K if k is None else k
    text_encoder = text_encoder or as_encoder(encoder or "minilm")
    labels, clip_ids, split = class_clips(target, split)
    ntu = NTUVibeDataset(target)
    lengths = clip_lengths(ntu, clip_ids)
    names, captions = ntu.class_names(), ntu.class_captions()
    class_captions = [captions.get(c, f"A person does the action: {names[c]}.") for c in labels]
    uncaptioned = [names[c] for c in labels if c not in captions]
    soft = select_soft_positives(
        source,
        class_captions,
        target=target,
        fewshot_ids=clip_ids,
        encoder=text_encoder,
        k=k,
        filter_config=filter_config,
        cache_dir=cache_dir,
        split=source_split,
        progress=progress,
        device=device,
    )
    tops = _closest_captions(source, soft, text_encoder, show)
    summaries = [
        ClassSummary(label, names[label], cap, lens, top)
        for label, cap, lens, top in zip(labels, class_captions, lengths, tops, strict=True)
    ]
    seconds["soft positives"] = time.perf_counter() - t0

    notes: list[str] = []
    if uncaptioned:
        notes.append(
            f"ntu_metadata.json has no caption for {', '.join(uncaptioned)}: used "
            "'A person does the action: <name>.'"
        )
    window_len = prec.window_lengths(soft, lengths)  # (C, k) the target length of each window
    windows = precision = None
    if finetuned is not None:
        t1 = time.perf_counter()
        windows = attention_windows(
            finetuned, source, soft, labels, window_len, seed=seed, t=mine_t, progress=progress
        )
        seconds["attention windows"] = time.perf_counter() - t1
    primitives = None
    if not has_segments(source):
        notes.append(f"{source} has no segments/ sidecars: no ground truth, no mining precision")
    else:
        try:
            primitives = prec.class_primitives(labels, variants=variants)
        except KinemicError as e:
            notes.append(f"no mining precision: {e}")
    if primitives is not None:
        t1 = time.perf_counter()
        precision = prec.mining_precision(
            source,
            soft,
            primitives,
            windows,
            lengths=window_len,
            random_draws=random_draws,
            seed=seed,
            names=[names[c] for c in labels],
        )
        seconds["precision"] = time.perf_counter() - t1
    return MineReport(
        source,
        target,
        split,
        None if model is None else Path(model),
        summaries,
        soft,
        precision,
        notes,
        seconds,
        windows,
    )


def _with_own(how: FilterConfig | None, own: dict[str, Any]) -> FilterConfig:
    """The selection ``how`` (None: the model's own) with the options it leaves None taken from
    the model's record ``own`` (``SoftPositives.filter``) when both are kinematic, and the
    source options it leaves at their defaults taken from the record whatever the kinds."""
    kind = own["name"] if how is None else how.kind
    how = (FilterConfig(kind=kind) if how is None else how).with_recorded_source(own)
    if not kind == own["name"] == "kinematic":
        return how
    return replace(
        how,
        pool=own.get("pool") if how.pool is None else how.pool,
        encoder=own.get("encoder") if how.encoder is None else how.encoder,
        # a record from before the weight option ranked by motion alone
        weight=own.get("weight", 1.0) if how.weight is None else how.weight,
    )


# ------------------------------------------------------------------------- attention windows


def load_for_mining(
    model: str | Path, split: str | None, *, device: str | torch.device = "cpu"
) -> tuple[Any, str | None]:
    """The fine-tuned generator of ``model`` (``kinemic.finetune.generator.load_generator``:
    a generator folder or run; a prior is refused with a hint), loaded on ``device``, and the
    split to mine: ``split``, or the generator's own when None (they must agree)."""
    from kinemic.finetune.generator import load_generator

    generator = load_generator(model, device=device)
    if generator.mic is None:
        raise KinemicError(
            f"{model}: this generator (method {generator.method!r}) has no MIC module, so it "
            "has no attention windows to mine; use a model fine-tuned with --method kinemic"
        )
    own = generator.config.get("split")
    if split is None:
        split = own
    elif own is not None and own != split:
        raise KinemicError(f"{model} was fine-tuned on split {own!r}, not {split!r}")
    return generator, split


def attention_windows(
    model: Any,
    source: str | Path,
    soft: SoftPositives,
    labels: list[int],
    lengths: np.ndarray,
    *,
    seed: int = 0,
    t: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """(C, k, 2) int64 [start, end) feature rows: the window ``kinemic.mining.windows.
    mine_windows`` picks, with the fine-tuned generator ``model``, in each soft positive of
    each class (``labels[c]``, 0-based) for a target of ``lengths[c, j]`` rows (the whole clip
    when shorter).

    As in training, the prior stream sees the noised source clip under one of its own
    whole-clip captions (drawn with ``seed``), at step ``t`` of the generator's schedule: by
    default drawn uniformly, as training draws it, once per batch of ``batch_size`` windows
    (shuffled across classes). The noise is drawn on the generator's device."""
    import torch

    from kinemic.devices import device_generator
    from kinemic.mining.windows import mine_windows
    from kinemic.progress import progress_bar
    from kinemic.text import encoder_from_spec

    classes = [int(c) for c in model.classes]
    missing = [c for c in labels if c not in classes]
    if missing:
        raise KinemicError(
            f"the generator was not fine-tuned on classes {missing} (it has "
            f"{classes}); pick its split"
        )
    diffusion_steps = int(model.schedule.num_steps)
    if t is not None and not 0 <= t < diffusion_steps:
        raise KinemicError(f"--t must be in 0..{diffusion_steps - 1}, got {t}")
    rng = np.random.default_rng(seed)
    ds = HumanML3DDataset(source)
    pairs = [(c, j) for c in range(len(labels)) for j in range(soft.k)]
    ids = [soft.source_ids[soft.indices[c, j]] for c, j in pairs]
    captions = []
    for clip_id in ids:  # a whole-clip caption, as fine-tuning conditions the prior stream
        caps = ds.captions(clip_id)
        texts = [c.text for c in caps if c.whole_clip] or [c.text for c in caps]
        captions.append(texts[int(rng.integers(len(texts)))])
    encoder = encoder_from_spec(model.text_spec)
    text = encoder.encode(captions).float()  # (P, E) the prior stream's condition
    # One forward per batch, so one t per batch (``mine_windows`` takes one step): the windows
    # are shuffled into batches and each batch draws its t, uniform over the schedule.
    # (Grouping windows by a t drawn per window made ~100 small batches: 3x slower on a CPU.)
    order = rng.permutation(len(pairs))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    steps_of = [t if t is not None else int(rng.integers(diffusion_steps)) for _ in batches]
    generator = device_generator(seed, next(model.denoiser.parameters()).device)
    out = np.zeros((*soft.indices.shape, 2), dtype=np.int64)
    bar = progress_bar(batches, desc="mining windows", unit="batch", enabled=progress)
    for batch, step in zip(bar, steps_of, strict=True):
        clips = [model.normalizer.normalize(ds.features(ids[p])) for p in batch]
        rows = torch.tensor([len(x) for x in clips])  # (B,)
        x0 = torch.zeros(len(batch), int(rows.max()), clips[0].shape[1])  # (B, T, F)
        for i, x in enumerate(clips):
            x0[i, : len(x)] = torch.as_tensor(x, dtype=torch.float32)
        mask = torch.arange(x0.shape[1])[None] < rows[:, None]  # (B, T)
        length = torch.tensor([int(lengths[pairs[p]]) for p in batch]).clamp(min=1)
        length = torch.minimum(length, rows)  # (B,)
        action = torch.tensor([classes.index(labels[pairs[p][0]]) for p in batch])  # (B,)
        starts = mine_windows(
            model, x0, mask, length, text=text[batch], action=action, t=step, generator=generator
        )
        for i, p in enumerate(batch):
            out[pairs[p]] = (int(starts[i]), int(starts[i] + length[i]))
    return out
