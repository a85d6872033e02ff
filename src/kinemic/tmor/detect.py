"""Frame-wise temporal action detection on untrimmed sequences (``kinemic tmor detect``).

Sliding windows (``window`` frames every ``stride``) of a sequence are embedded by the frozen
skeleton encoder and scored per class; a frame's class scores are the average of the scores of
the windows covering it, weighted by a triangle peaking at each window's centre (so a frame
listens most to the windows centred on it). Per-frame average precision per class, averaged
over the classes that occur, is the figure (:func:`kinemic.tmor.metrics.frame_map`), with the
trivial baseline beside it: every frame predicted as the most frequent training class (its
frame accuracy; with constant scores each class' AP is its prevalence).

Class scores come from a linear probe on window embeddings of training sequences, each window
labelled by the class of its centre frame (``method="probe"``), or zero-shot from text
(``method="zero-shot"``: the world's reserved evaluation paraphrases of each primitive, or
class-name prompts on a target domain).

Two test beds:

- :func:`detect_world`: held-out world source sequences (``test``) and their ground-truth
  segments (``segments/<id>.json``; 34 primitive classes, standing included); the probe is
  trained on windows of ``train`` sequences.
- :func:`detect_concat`: long sequences made by concatenating ``clips_per_sequence`` target
  validation clips (seeded order; each clip moved so that its pelvis starts where the previous
  clip's ended — the heading still jumps at the joins, as at a cut); every frame of a clip
  carries its class. The probe is trained on windows of the default-split training clips.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from kinemic.errors import DataError, KinemicError
from kinemic.io.humanml3d import HumanML3DDataset
from kinemic.io.ntu_vibe import NTUVibeDataset
from kinemic.tmor.encoder import window_starts
from kinemic.tmor.metrics import frame_map, linear_probe, probe_logits, trivial_frame_map

Method = Literal["probe", "zero-shot"]


@dataclass
class DetectionReport:
    """Per-frame detection figures (percent)."""

    name: str
    sequences: int
    frames: int
    classes: list[str]
    method: str
    map: float
    trivial_map: float
    frame_accuracy: float
    trivial_accuracy: float
    per_class_ap: dict[str, float]
    frames_per_second: float  # scoring throughput (embedding + head), test sequences only
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        return "\n".join(
            [
                "| measure | T-MOR | trivial (most frequent class) |",
                "|---|---:|---:|",
                f"| per-frame mAP | {self.map:.1f}% | {self.trivial_map:.1f}% |",
                f"| per-frame accuracy | {self.frame_accuracy:.1f}% "
                f"| {self.trivial_accuracy:.1f}% |",
            ]
        )


def _windows(sequences: Sequence[np.ndarray], window: int, stride: int):
    """All windows of all sequences: (clips, sequence index (W,), first frame (W,))."""
    clips, seq, first = [], [], []
    for n, joints in enumerate(sequences):
        for s in window_starts(len(joints), window, stride):
            clips.append(joints[s : s + window])
            seq.append(n)
            first.append(int(s))
    return clips, np.asarray(seq), np.asarray(first)


def frame_scores_from_windows(
    scores: np.ndarray, first: np.ndarray, length: int, window: int
) -> np.ndarray:
    """Per-frame scores (T, C) of one sequence from its windows' scores (W, C) starting at
    ``first`` (W,): a triangle-weighted average of the windows covering each frame."""
    out = np.zeros((length, scores.shape[1]))
    weight = np.zeros(length)
    for s, row in zip(first, scores, strict=True):
        n = min(window, length - s)
        t = np.arange(n) + 0.5
        w = 1.0 - np.abs(t - n / 2) / (n / 2) + 1e-3  # (n,)
        out[s : s + n] += w[:, None] * row[None]
        weight[s : s + n] += w
    return out / np.maximum(weight, 1e-9)[:, None]


def _score_sequences(
    enc, sequences, head, window, stride, progress
) -> tuple[list[np.ndarray], float]:
    """Per-frame class probabilities of each sequence, and frames scored per second."""
    start = time.perf_counter()
    clips, seq, first = _windows(sequences, window, stride)
    z = enc.embed_motions(clips, batch_size=128, progress=progress, desc="test windows")
    with torch.no_grad():
        probs = torch.softmax(head(z.clone()), dim=-1).numpy()
    out = []
    for n, joints in enumerate(sequences):
        sel = seq == n
        out.append(frame_scores_from_windows(probs[sel], first[sel], len(joints), window))
    frames = sum(len(s) for s in sequences)
    return out, frames / max(time.perf_counter() - start, 1e-9)


def _report(name, scores, labels, classes, train_labels, method, fps, settings) -> DetectionReport:
    scores_all = np.concatenate(scores)
    labels_all = np.concatenate(labels)
    c = len(classes)
    m, aps = frame_map(scores_all, labels_all, num_classes=c)
    frequent = int(np.bincount(train_labels, minlength=c).argmax())
    return DetectionReport(
        name=name,
        sequences=len(scores),
        frames=len(labels_all),
        classes=list(classes),
        method=method,
        map=100 * m,
        trivial_map=100 * trivial_frame_map(labels_all, c),
        frame_accuracy=float((scores_all.argmax(1) == labels_all).mean() * 100),
        trivial_accuracy=float((labels_all == frequent).mean() * 100),
        per_class_ap={classes[k]: float(100 * a) for k, a in enumerate(aps) if not np.isnan(a)},
        frames_per_second=fps,
        settings=settings,
    )


def _probe_head(enc, train_seqs, train_frame_labels, num_classes, window, stride, progress):
    clips, seq, first = _windows(train_seqs, window, stride)
    y = np.array(
        [
            train_frame_labels[n][min(f + window // 2, len(train_frame_labels[n]) - 1)]
            for n, f in zip(seq, first, strict=True)
        ]
    )
    z = enc.embed_motions(clips, batch_size=128, progress=progress, desc="training windows")
    head = linear_probe(z, torch.from_numpy(y), num_classes)
    return (lambda x: probe_logits(head, x)), y


def _text_head(enc, prompts: Sequence[Sequence[str]]):
    flat = [p for group in prompts for p in group]
    t = enc.embed_texts(flat)
    vecs, a = [], 0
    for group in prompts:
        vecs.append(torch.nn.functional.normalize(t[a : a + len(group)].mean(0), dim=0))
        a += len(group)
    w = torch.stack(vecs)  # (C, E)
    scale = float(enc.model.scale("text").detach())
    return lambda x: scale * (x @ w.T)


def world_sequences(source: Path, split: str, limit: int | None = None, seed: int = 0):
    """(joints, per-frame primitive names) of the world source sequences of ``split``."""
    ds = HumanML3DDataset(source)
    ids = ds.split(split)
    if limit is not None and len(ids) > limit:
        ids = sorted(np.random.default_rng(seed).choice(ids, limit, replace=False).tolist())
    seqs, labels = [], []
    for clip_id in ids:
        path = source / "segments" / f"{clip_id}.json"
        if not path.is_file():
            raise DataError(
                path,
                "missing segment sidecar: detection needs ground-truth segments "
                "(a world source folder written by 'kinemic world')",
            )
        sidecar = json.loads(path.read_text(encoding="utf-8"))
        joints = ds.joints(clip_id)
        names = np.empty(len(joints), dtype=object)
        for seg in sidecar["segments"]:
            names[seg["start"] : min(seg["end"], len(joints))] = seg["primitive"]
        if any(n is None for n in names):
            raise DataError(path, f"segments do not cover all {len(joints)} frames of the clip")
        seqs.append(joints)
        labels.append(names)
    return seqs, labels


def detect_world(
    source: str | Path,
    *,
    encoder=None,
    method: Method = "probe",
    train_split: str = "train",
    test_split: str = "test",
    window: int = 32,
    stride: int = 4,
    train_stride: int = 8,
    max_train_sequences: int | None = 1000,
    max_test_sequences: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> DetectionReport:
    """Per-frame detection of world primitives on held-out source sequences (module docs)."""
    from kinemic.tmor.encoder import TMOREncoder, load_tmor
    from kinemic.world.captions import eval_captions
    from kinemic.world.primitives import PRIMITIVES

    enc = encoder if isinstance(encoder, TMOREncoder) else load_tmor(encoder)
    source = Path(source)
    classes = sorted(PRIMITIVES)
    index = {n: i for i, n in enumerate(classes)}
    test, test_names = world_sequences(source, test_split, max_test_sequences, seed)
    test_labels = [np.array([index[n] for n in names]) for names in test_names]
    train, train_names = world_sequences(source, train_split, max_train_sequences, seed)
    train_labels = [np.array([index[n] for n in names]) for names in train_names]
    if method == "probe":
        head, _ = _probe_head(
            enc, train, train_labels, len(classes), window, train_stride, progress
        )
    elif method == "zero-shot":
        head = _text_head(enc, [eval_captions(c) for c in classes])
    else:
        raise KinemicError(f"unknown detection method {method!r}: probe or zero-shot")
    scores, fps = _score_sequences(enc, test, head, window, stride, progress)
    return _report(
        "world source, held-out sequences",
        scores,
        test_labels,
        classes,
        np.concatenate(train_labels),
        method,
        fps,
        {
            "encoder": str(enc.path),
            "source": str(source),
            "window": window,
            "stride": stride,
            "train_split": train_split,
            "test_split": test_split,
            "train_stride": train_stride,
            "max_train_sequences": max_train_sequences,
            "seed": seed,
        },
    )


def concat_clips(clips: Sequence[np.ndarray]) -> np.ndarray:
    """Clips (T_i, 22, 3) joined into one sequence, each moved on the floor plane so that its
    pelvis starts where the previous clip's pelvis ended."""
    out = [clips[0]]
    for c in clips[1:]:
        shift = out[-1][-1, 0] - c[0, 0]
        shift[1] = 0.0
        out.append(c + shift)
    return np.concatenate(out)


def detect_concat(
    target: str | Path,
    *,
    encoder=None,
    method: Method = "probe",
    protocol: str = "xsub",
    clips_per_sequence: int = 8,
    window: int = 32,
    stride: int = 4,
    train_stride: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> DetectionReport:
    """Per-frame detection of target classes on concatenated validation clips (module docs)."""
    from kinemic.tmor.classify import TEMPLATES, class_prompts
    from kinemic.tmor.encoder import TMOREncoder, load_tmor

    enc = encoder if isinstance(encoder, TMOREncoder) else load_tmor(encoder)
    ds = NTUVibeDataset(target)
    if not ds.has_default_split(protocol):
        raise KinemicError(f"{target}: no default {protocol} split (train/val) to detect on")
    tr_ids, tr_y = ds.default_split(protocol, "train")
    va_ids, va_y = ds.default_split(protocol, "val")
    present = sorted(set(tr_y) | set(va_y))
    col = {c: i for i, c in enumerate(present)}
    names_all = ds.class_names()
    classes = [names_all[c] for c in present]
    order = np.random.default_rng(seed).permutation(len(va_ids))
    test, test_labels = [], []
    for a in range(0, len(order), clips_per_sequence):
        group = order[a : a + clips_per_sequence]
        clips = [ds.joints(va_ids[i]) for i in group]
        test.append(concat_clips(clips))
        test_labels.append(
            np.concatenate(
                [np.full(len(c), col[va_y[i]]) for c, i in zip(clips, group, strict=True)]
            )
        )
    train = [ds.joints(i) for i in tr_ids]
    train_labels = [np.full(len(j), col[y]) for j, y in zip(train, tr_y, strict=True)]
    if method == "probe":
        head, _ = _probe_head(
            enc, train, train_labels, len(classes), window, train_stride, progress
        )
    elif method == "zero-shot":
        head = _text_head(enc, [class_prompts(n, TEMPLATES) for n in classes])
    else:
        raise KinemicError(f"unknown detection method {method!r}: probe or zero-shot")
    scores, fps = _score_sequences(enc, test, head, window, stride, progress)
    return _report(
        f"target clips concatenated by {clips_per_sequence}",
        scores,
        test_labels,
        classes,
        np.concatenate(train_labels),
        method,
        fps,
        {
            "encoder": str(enc.path),
            "target": str(target),
            "protocol": protocol,
            "window": window,
            "stride": stride,
            "train_stride": train_stride,
            "seed": seed,
            "clips_per_sequence": clips_per_sequence,
        },
    )
