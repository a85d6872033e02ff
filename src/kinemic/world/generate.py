"""Write a procedural world to disk: a source corpus and a shifted target HAR domain.

::

    out/source/   HumanML3D layout: new_joint_vecs/, new_joints/, texts/, train/val/test.txt,
                  Mean.npy, Std.npy, plus segments/<id>.json (ground-truth primitive segments)
                  and visual/<id>.npy (2-D keypoints (T, 22, 2)) with visual/cameras.json
    out/target/   NTU-VIBE layout: clips named SsssCcccPpppRrrrAaaa, ntu_classes.txt,
                  ntu_metadata.json, splits/default/{xsub,xset}/, splits/fewshot/S0000 (the
                  paper's three classes) and S0001 (every class), 10 shots each; visual/ as above

Everything follows from ``seed``: each sequence and clip draws from its own generator,
``np.random.default_rng([seed, stream, index, part])``, so the files do not depend on the order
of generation or on the number of worker processes, and the same seed gives byte-identical
files.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from kinemic.errors import KinemicError
from kinemic.files import save_npy, write_text
from kinemic.io.conversion import staged_dataset
from kinemic.io.humanml3d import Caption, write_clip, write_mean_std, write_split
from kinemic.io.ntu_names import xset_is_train
from kinemic.io.ntu_vibe import write_class_names, write_default_split, write_metadata
from kinemic.world import target as tgt
from kinemic.world.captions import sequence_captions
from kinemic.world.compose import Sequence
from kinemic.world.visual import visual_proxy

#: Bumped whenever the same seed and scale start giving different files (2: performers'
#: personal ways of doing each target class; 3: each class's repertoire of ways; 4: runs on
#: the spot and butt kicks stay in place), so that stored worlds are known to be stale.
WORLD_VERSION = 4
Scale = Literal["tiny", "small", "default"]
Write = Callable[[], None]  # one pending atomic file write
SOURCE_FPS = 20.0
MAX_SOURCE_SECONDS = 9.9
MIN_SOURCE_FRAMES, MAX_SOURCE_FRAMES = 40, 199  # HumanML3D keeps 40 <= T < 200
_SOURCE, _TARGET, _PERFORMER, _SPLIT, _PLAN, _GALLERY = range(1, 7)
_MOTION, _TEXT, _VISUAL = range(3)


@dataclass(frozen=True)
class ScaleConfig:
    """How much to generate: source sequences, target classes and clips per class."""

    sequences: int
    actions: tuple[int, ...]
    train_per_class: int
    val_per_class: int


SCALES: dict[str, ScaleConfig] = {
    "tiny": ScaleConfig(60, tgt.TINY_ACTIONS, 20, 10),
    "small": ScaleConfig(500, tuple(c.action for c in tgt.CLASSES), 44, 20),
    "default": ScaleConfig(5000, tuple(c.action for c in tgt.CLASSES), 110, 90),
}


@dataclass
class WorldSummary:
    """What ``generate_world`` wrote, and how long each stage took (seconds)."""

    out: Path
    seed: int
    scale: str
    sequences: int
    source_frames: int
    clips: int
    classes: list[str]
    fewshot: list[str]
    seconds: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        """A Markdown table of the stages: wall time and throughput."""
        rows = ["| stage | wall time (s) | items/s |", "|---|---:|---:|"]
        counts = {"source": self.sequences, "target": self.clips}
        for stage, s in self.seconds.items():
            rate = f"{counts[stage] / s:.1f}" if stage in counts and s > 0 else ""
            rows.append(f"| {stage} | {s:.2f} | {rate} |")
        rows.append(f"| total | {sum(self.seconds.values()):.2f} | |")
        return "\n".join(rows)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


# ---------------------------------------------------------------------------------------------
# Source corpus


def source_id(index: int) -> str:
    return f"{index:06d}"


def make_source_sequence(seed: int, index: int) -> Sequence:
    """The ``index``-th source sequence of the world ``seed`` (a compose.Sequence at 20 fps)."""
    from kinemic.world.body import sample_body
    from kinemic.world.compose import sample_sequence

    rng = _rng(seed, _SOURCE, index, _MOTION)
    body = sample_body(rng, domain="source")
    seq = sample_sequence(rng, body, max_seconds=MAX_SOURCE_SECONDS)
    return _fit_length(seq, MIN_SOURCE_FRAMES, MAX_SOURCE_FRAMES)


def _fit_length(seq: Sequence, lo: int, hi: int) -> Sequence:
    """Crop a sequence to at most ``hi`` frames, or hold its last pose up to ``lo`` frames;
    the segments are cut or extended to keep tiling it."""
    n = len(seq.joints)
    if lo <= n <= hi:
        return seq
    joints = (
        seq.joints[:hi] if n > hi else np.concatenate([seq.joints, seq.joints[[-1] * (lo - n)]])
    )
    kept = [s for s in seq.segments if s.start < len(joints)]
    kept[-1] = replace(kept[-1], end=len(joints))
    return replace(seq, joints=joints, segments=kept)


def _moments(features: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, mean, sum of squared deviations) of features (T, 263), float64."""
    x = features.astype(np.float64)
    mean = x.mean(axis=0)
    return len(x), mean, ((x - mean) ** 2).sum(axis=0)


def _source_item(seed: int, root: Path, index: int) -> tuple[list[Write], tuple, dict]:
    """The files of one source sequence (as pending writes), its feature moments, its camera."""
    from kinemic.features import encode_clip

    clip_id = source_id(index)
    seq = make_source_sequence(seed, index)
    features, joints = encode_clip(seq.joints)
    captions = sequence_captions(seq.segments, _rng(seed, _SOURCE, index, _TEXT), fps=SOURCE_FPS)
    segments = [
        {
            "primitive": s.primitive,
            "start": s.start,
            "end": s.end,
            "start_s": round(s.start / SOURCE_FPS, 3),
            "end_s": round(s.end / SOURCE_FPS, 3),
            "params": asdict(s.params),
        }
        for s in seq.segments
    ]
    sidecar = {"fps": SOURCE_FPS, "frames": len(seq.joints), "segments": segments}
    keypoints, camera = visual_proxy(seq.joints, _rng(seed, _SOURCE, index, _VISUAL))
    writes = [
        partial(write_clip, root, clip_id, features=features),
        partial(write_clip, root, clip_id, joints=joints),
        partial(write_clip, root, clip_id, captions=captions),
        partial(write_text, root / "segments" / f"{clip_id}.json", json.dumps(sidecar) + "\n"),
        partial(save_npy, root / "visual" / f"{clip_id}.npy", keypoints),
    ]
    return writes, _moments(features), camera.to_dict()


def _merge(a: tuple[int, np.ndarray, np.ndarray], b: tuple[int, np.ndarray, np.ndarray]):
    """Chan et al.'s pairwise merge of (count, mean, M2) moments."""
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * nb / n, sa + sb + delta**2 * na * nb / n


def _split_ids(seed: int, n: int) -> dict[str, list[str]]:
    """80/10/10 train/val/test by sequence."""
    order = _rng(seed, _SPLIT).permutation(n)
    n_val = n_test = max(1, n // 10)
    parts = {
        "val": order[:n_val],
        "test": order[n_val : n_val + n_test],
        "train": order[n_val + n_test :],
    }
    return {k: [source_id(i) for i in sorted(v)] for k, v in parts.items()}


def generate_source(
    root: Path, *, seed: int, sequences: int, progress: bool = True, workers: int = 1
) -> int:
    """Write the source corpus into ``root`` (HumanML3D layout); returns the frame count."""
    from kinemic.features import Normalizer

    splits = _split_ids(seed, sequences)
    train = set(splits["train"])
    work = partial(_source_item, seed, root)
    total = None
    frames = 0
    cameras = {}
    with _Writer() as writer:
        results = _map(work, range(sequences), workers, progress, "source sequences")
        for index, (writes, moments, camera) in enumerate(results):
            writer.submit(*writes)
            frames += moments[0] + 1
            cameras[source_id(index)] = camera
            if source_id(index) in train:
                total = moments if total is None else _merge(total, moments)
    for name, ids in splits.items():
        write_split(root, name, ids)
    assert total is not None
    std = Normalizer.group_std(np.sqrt(total[2] / total[0]))
    write_mean_std(root, total[1], np.maximum(std, 1e-8))
    write_text(root / "visual" / "cameras.json", json.dumps(cameras, indent=1) + "\n")
    return frames


# ---------------------------------------------------------------------------------------------
# Target domain


def make_target_clip(seed: int, plan: tgt.ClipPlan) -> tgt.TargetClip:
    """The clip ``plan`` of the world ``seed``; the performer is the same in every clip."""
    performer = tgt.make_performer(plan.name.performer, _rng(seed, _PERFORMER, plan.name.performer))
    return tgt.make_target_clip(_rng(seed, _TARGET, plan.index, _MOTION), plan.target, performer)


def _target_item(seed: int, root: Path, plan: tgt.ClipPlan) -> tuple[list[Write], dict]:
    """The files of one target clip (as pending writes) and its camera."""
    from kinemic.features import encode_clip

    clip = make_target_clip(seed, plan)
    caption = Caption.from_text(plan.target.caption.lower())
    features, joints = encode_clip(clip.joints)
    keypoints, camera = visual_proxy(clip.clean, _rng(seed, _TARGET, plan.index, _VISUAL))
    clip_id = str(plan.name)
    writes = [
        partial(write_clip, root, clip_id, features=features),
        partial(write_clip, root, clip_id, joints=joints),
        partial(write_clip, root, clip_id, captions=[caption]),
        partial(save_npy, root / "visual" / f"{clip_id}.npy", keypoints),
    ]
    return writes, {**camera.to_dict(), "action_span": list(clip.action_span)}


def generate_target(
    root: Path, *, seed: int, config: ScaleConfig, progress: bool = True, workers: int = 1
) -> list[tgt.ClipPlan]:
    """Write the target clips, class names, metadata and default splits into ``root``."""
    classes = tuple(tgt.class_of(a) for a in config.actions)
    plans = tgt.plan_clips(
        _rng(seed, _PLAN),
        classes,
        train_per_class=config.train_per_class,
        val_per_class=config.val_per_class,
    )
    work = partial(_target_item, seed, root)
    cameras = {}
    with _Writer() as writer:
        results = _map(work, plans, workers, progress, "target clips")
        for plan, (writes, camera) in zip(plans, results, strict=True):
            writer.submit(*writes)
            cameras[str(plan.name)] = camera
    write_text(root / "visual" / "cameras.json", json.dumps(cameras, indent=1) + "\n")
    write_class_names(root, tgt.NTU_CLASS_NAMES)
    captions = {i: f"A person does the action: {n}." for i, n in enumerate(tgt.NTU_CLASS_NAMES)}
    captions.update({c.label: c.caption for c in tgt.CLASSES})
    write_metadata(root, captions, class_names=tgt.NTU_CLASS_NAMES)
    ordered = sorted(plans, key=lambda p: str(p.name))
    rules: dict[str, Callable[[tgt.ClipPlan], bool]] = {
        "xsub": lambda p: p.xsub_train,
        "xset": lambda p: xset_is_train(p.name),
    }
    for protocol, is_train in rules.items():
        for part, want in (("train", True), ("val", False)):
            chosen = [p for p in ordered if is_train(p) == want]
            write_default_split(
                root,
                protocol,
                part,
                [str(p.name) for p in chosen],
                [p.target.label for p in chosen],
            )
    return plans


def _fewshot(root: Path, *, seed: int, actions: tuple[int, ...]) -> list[str]:
    from kinemic.splits import sample_fewshot_split

    paper = [a - 1 for a in tgt.S0000_ACTIONS if a in actions]
    sample_fewshot_split(root, shots=10, seed=seed, classes=paper, name="S0000")
    sample_fewshot_split(root, shots=10, seed=seed, classes=[a - 1 for a in actions], name="S0001")
    return ["S0000", "S0001"]


# ---------------------------------------------------------------------------------------------
# Driver


class _Writer:
    """Runs atomic writes on threads, so that their fsyncs (which wait on the disk, not on the
    CPU) overlap with generation; at most ``backlog`` writes are pending at a time. Leaving the
    ``with`` block waits for every write and raises the first error."""

    def __init__(self, *, threads: int = 8, backlog: int = 256):
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self.pending: deque[Future] = deque()
        self.backlog = backlog

    def submit(self, *writes: Write) -> None:
        self.pending.extend(self.pool.submit(w) for w in writes)
        while len(self.pending) > self.backlog:
            self.pending.popleft().result()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc) -> None:
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _map(fn, items: Iterable, workers: int, progress: bool, desc: str) -> Iterator:
    """``map`` in input order, over ``workers`` forked processes when > 1, with a progress bar."""
    items = list(items)
    bar = partial(
        tqdm, total=len(items), desc=desc, unit="clip", disable=None if progress else True
    )
    if workers <= 1:
        yield from bar(map(fn, items))
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from bar(pool.imap(fn, items, chunksize=8))


def generate_world(
    out: str | Path,
    *,
    seed: int = 0,
    scale: Scale = "default",
    progress: bool = True,
    workers: int | None = None,
    overwrite: bool = False,
) -> WorldSummary:
    """Generate the world ``seed`` at ``scale`` into ``out/source`` and ``out/target``.

    ``scale``: ``"tiny"`` (60 sequences, 6 classes × 30 clips; seconds, for tests),
    ``"small"`` (500 sequences, 12 classes × 64 clips), ``"default"`` (5,000 sequences,
    12 classes × 200 clips: 110 training and 90 validation clips per class). ``workers``:
    processes (default: up to 2); the output does not depend on it. An existing
    ``out/source`` or ``out/target`` is an error unless ``overwrite`` (then both are replaced).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: expected one of {', '.join(SCALES)}")
    config = SCALES[scale]
    out = Path(out)
    existing = [p for p in (out / "source", out / "target") if p.exists()]
    if existing and not overwrite:
        raise KinemicError(
            f"{existing[0]} exists already: generate into another folder, delete it, or pass "
            "overwrite=True (--overwrite) to replace the world there"
        )
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if scale != "tiny" else 1
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    # Each dataset is written beside its final name and renamed when complete (an old one is
    # replaced only then): a killed run leaves no half dataset under source/ or target/.
    with staged_dataset(out / "source", overwrite=overwrite) as root:
        frames = generate_source(
            root, seed=seed, sequences=config.sequences, progress=progress, workers=workers
        )
    seconds["source"] = time.perf_counter() - t
    t = time.perf_counter()
    with staged_dataset(out / "target", overwrite=overwrite) as root:
        plans = generate_target(root, seed=seed, config=config, progress=progress, workers=workers)
        seconds["target"] = time.perf_counter() - t
        t = time.perf_counter()
        fewshot = _fewshot(root, seed=seed, actions=config.actions)
    seconds["few-shot splits"] = time.perf_counter() - t
    names = [f"A{a:03d} {tgt.NTU_CLASS_NAMES[a - 1]}" for a in config.actions]
    return WorldSummary(
        out, seed, scale, config.sequences, frames, len(plans), names, fewshot, seconds
    )


def render_gallery(
    out: str | Path, *, seed: int = 0, primitives: list[str] | None = None
) -> list[Path]:
    """Render each primitive (default: all, sorted) once on a random source body to
    ``out/<primitive>.gif``, titled with its parameters; returns the paths."""
    from kinemic.render import render_clips
    from kinemic.world.body import sample_body
    from kinemic.world.compose import compose_sequence
    from kinemic.world.primitives import PRIMITIVES

    out = Path(out)
    names = sorted(PRIMITIVES) if primitives is None else list(primitives)
    paths = []
    for name in tqdm(names, desc="gallery", unit="gif", disable=None):
        rng = _rng(seed, _GALLERY, sorted(PRIMITIVES).index(name))
        params = PRIMITIVES[name].sample_params(rng)
        seq = compose_sequence(rng, sample_body(rng), [(name, params)], fps=SOURCE_FPS)
        side = f", {params.side}" if params.side else ""
        title = f"{name}{side} ×{params.repetitions}"
        paths.append(render_clips([seq.joints], out / f"{name}.gif", titles=[title]))
    return paths
