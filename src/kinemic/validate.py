"""Check a HumanML3D- or NTU-VIBE-layout folder and report every problem found.

The checker never stops at the first problem and never crashes on a bad file: each problem is
collected as a `Problem` (file relative to the root, line where relevant, what was expected and
what was found) into a `ValidationReport`. Layouts (SPEC §3):

- HumanML3D: ``new_joint_vecs/<id>.npy`` (T, 263), ``new_joints/<id>.npy`` (T, 22, 3) or
  (T, 66), ``texts/<id>.txt`` (``caption#word/POS ...#start#end`` per line), split lists
  ``train.txt`` / ``val.txt`` / ``test.txt``, optional ``Mean.npy`` / ``Std.npy`` (263,).
- NTU-VIBE: the same plus ``ntu_classes.txt``, ``ntu_metadata.json``,
  ``splits/default/{xsub,xset}/{train,val}[_y].txt`` and
  ``splits/fewshot/S0000/{meta.json, <protocol>/{train,val}[_y].txt}``.

Files are opened here, not through `kinemic.io`'s readers: a validator must survive any input.
The rules for split and label lists are the loaders' own functions, which return problems
instead of raising (`kinemic.io.humanml3d.list_lines`, `id_list_problems`, `overlap_problems`;
`kinemic.io.ntu_vibe.label_problems`, `class_list_problem`): what validate calls wrong, no loader
reads.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from kinemic.constants import FPS, NUM_JOINTS
from kinemic.io.humanml3d import id_list_problems, list_lines, overlap_problems
from kinemic.io.ntu_names import XSUB_TRAIN_PERFORMERS
from kinemic.io.ntu_vibe import class_list_problem, label_problems

Severity = Literal["error", "warning"]

NUM_FEATURES = 263
ROOT_SPLIT_NAMES = ("train", "val", "test", "train_val", "all")
NTU_ID = re.compile(r"^M?S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset. ``path`` is relative to the dataset root."""

    path: str
    message: str
    line: int | None = None
    severity: Severity = "error"
    kind: str = "other"  # features, joints, texts, captions, splits, labels, fewshot, ...

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{self.severity}: {where}: {self.message}"


@dataclass
class ValidationReport:
    """Every problem found in a dataset folder; ``ok`` is True when there is no error."""

    root: Path
    layout: str  # "humanml3d", "ntu-vibe" or "unknown"
    problems: list[Problem] = field(default_factory=list)
    num_files_checked: int = 0
    # kind -> {"error": n, "warning": n}: problems counted but not kept (max_problems_per_kind)
    suppressed: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, severity: Severity) -> int:
        kept = sum(p.severity == severity for p in self.problems)
        return kept + sum(c.get(severity, 0) for c in self.suppressed.values())

    @property
    def ok(self) -> bool:
        return self.count("error") == 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def format(self) -> str:
        """A readable report grouped by kind, with counts; errors first within a kind."""
        n_err, n_warn = self.count("error"), self.count("warning")
        out = [
            f"{self.root} ({self.layout} layout): {self.num_files_checked} files checked, "
            f"{n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}"
        ]
        for kind in dict.fromkeys([p.kind for p in self.problems] + list(self.suppressed)):
            mine = sorted((p for p in self.problems if p.kind == kind), key=lambda p: p.severity)
            more = self.suppressed.get(kind, {})
            e = sum(p.severity == "error" for p in mine) + more.get("error", 0)
            w = sum(p.severity == "warning" for p in mine) + more.get("warning", 0)
            out.append(f"\n{kind}: {e} error(s), {w} warning(s)")
            out += [f"  {p}" for p in mine]
            if sum(more.values()):
                out.append(f"  ... and {sum(more.values())} more of this kind not shown")
        out.append("\nOK" if self.ok else "\nFAILED: fix the errors above")
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "layout": self.layout,
            "ok": self.ok,
            "num_files_checked": self.num_files_checked,
            "num_errors": self.count("error"),
            "num_warnings": self.count("warning"),
            "problems": [asdict(p) for p in self.problems],
            "suppressed": self.suppressed,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


class _Collector:
    """Gathers problems (capped per kind) and counts the files it opened."""

    def __init__(self, root: Path, max_per_kind: int | None):
        self.root, self.max_per_kind = root, max_per_kind
        self.problems: list[Problem] = []
        self.kept: Counter[str] = Counter()
        self.suppressed: dict[str, dict[str, int]] = {}
        self.files = 0

    def rel(self, path: Path | str) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def add(self, kind, path, message, *, line=None, severity: Severity = "error") -> None:
        if self.max_per_kind is not None and self.kept[kind] >= self.max_per_kind:
            counts = self.suppressed.setdefault(kind, {})
            counts[severity] = counts.get(severity, 0) + 1
            return
        self.kept[kind] += 1
        self.problems.append(Problem(self.rel(path), message, line, severity, kind))

    def reporters(self, kind: str, path: Path):
        """(error, warning) functions bound to one kind and file: ``err(msg, line=3)``."""
        return partial(self.add, kind, path), partial(self.add, kind, path, severity="warning")

    def read_text(self, kind: str, path: Path) -> str | None:
        self.files += 1
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            self.add(kind, path, f"is not UTF-8 text ({e.reason} at byte {e.start})")
        except OSError as e:
            self.add(kind, path, f"cannot be read ({e.strerror or e})")
        return None

    def load_npy(self, kind: str, path: Path) -> np.ndarray | None:
        self.files += 1
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as e:
            why = (
                "holds pickled Python objects (refused: expected a plain numeric .npy array)"
                if "pickle" in str(e)
                else f"cannot be read as .npy ({e}); it is probably truncated or corrupt"
            )
            self.add(kind, path, why)
            return None
        except Exception as e:  # EOFError, OSError, zipfile errors...: unreadable in any way
            self.add(kind, path, f"cannot be read as .npy ({type(e).__name__}: {e})")
            return None
        if not isinstance(arr, np.ndarray):  # np.load opened an .npz archive
            arr.close()
            self.add(kind, path, "is an .npz archive, expected a single .npy array")
            return None
        return arr


def parse_ntu_id(clip_id: str) -> tuple[int, int, int, int, int] | None:
    """(setup, camera, performer, replication, action) of ``SsssCcccPpppRrrrAaaa`` (an ``M``
    mirror prefix is allowed), or None when the id is not an NTU name. Action is 1-based."""
    m = NTU_ID.match(clip_id)
    return None if m is None else tuple(int(g) for g in m.groups())  # type: ignore[return-value]


def split_list_files(root: Path) -> list[Path]:
    """Id lists (not ``*_y.txt``) at the root (train, val, test, ...) and under ``splits/``."""
    found = [root / f"{n}.txt" for n in ROOT_SPLIT_NAMES if (root / f"{n}.txt").is_file()]
    if (root / "splits").is_dir():
        found += sorted(p for p in (root / "splits").rglob("*.txt") if not p.stem.endswith("_y"))
    return found


def detect_layout(root: Path) -> str:
    """``"ntu-vibe"`` (has ``ntu_classes.txt`` or ``splits/``), ``"humanml3d"`` or ``"unknown"``."""
    if (root / "ntu_classes.txt").is_file() or (root / "splits").is_dir():
        return "ntu-vibe"
    if any((root / d).is_dir() for d in ("new_joint_vecs", "new_joints", "texts")):
        return "humanml3d"
    return "unknown"


def frames_text(bad: np.ndarray) -> str:
    """``'frames 3–7, 10 (6 of 120 frames)'`` for a (T,) bool mask with at least one True."""
    idx = np.flatnonzero(bad)
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts, ends = np.r_[idx[0], idx[breaks + 1]], np.r_[idx[breaks], idx[-1]]
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in zip(starts, ends, strict=True)]
    shown = ", ".join(parts[:6]) + (", …" if len(parts) > 6 else "")
    return f"frames {shown} ({idx.size} of {bad.size} frames)"


def _check_motion(c: _Collector, kind: str, path: Path, *, features: bool) -> int | None:
    """One features (T, 263) or joints (T, 22, 3) | (T, 66) file; returns T when usable."""
    arr = c.load_npy(kind, path)
    if arr is None:
        return None
    err, warn = c.reporters(kind, path)
    if features:
        good, expected = arr.ndim == 2 and arr.shape[1] == NUM_FEATURES, "(T, 263)"
    else:
        good = arr.shape[1:] in ((NUM_JOINTS, 3), (NUM_JOINTS * 3,)) and arr.ndim in (2, 3)
        expected = "(T, 22, 3) or (T, 66)"
    if not good:
        return err(f"shape {arr.shape}, expected {expected}")
    if not np.issubdtype(arr.dtype, np.floating):
        return err(f"dtype {arr.dtype}, expected float32")
    if arr.shape[0] == 0:
        err(f"empty clip: shape {arr.shape}, expected at least 1 frame")
        return 0
    if arr.dtype != np.float32:
        warn(f"dtype {arr.dtype}, expected float32 (loaders cast it; the file is larger)")
    flat = arr.reshape(arr.shape[0], -1)
    for what, mask in (("NaN", np.isnan(flat)), ("inf", np.isinf(flat))):
        if mask.any():
            err(f"{what} in {frames_text(mask.any(axis=1))}")
    if features:
        contacts = flat[:, 259:263]
        odd = np.isfinite(contacts) & (contacts != 0) & (contacts != 1)
        if odd.any():
            warn(f"foot contacts (dims 259–262) are not 0/1 in {frames_text(odd.any(axis=1))}")
    return arr.shape[0]


def _check_captions(c: _Collector, path: Path, rows: int | None) -> None:
    """Each line: ``caption#word/POS ...#start#end`` or ``caption#word/POS ...``."""
    text = c.read_text("captions", path)
    if text is None:
        return
    err, warn = c.reporters("captions", path)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        err("no captions: expected one 'caption#tokens#start#end' per line")
    for no, raw in enumerate(lines, start=1):
        if not raw.strip():
            warn("blank line between captions", line=no)
            continue
        parts = raw.strip().split("#")
        if len(parts) not in (2, 4):
            err(
                "expected 'caption#tokens#start#end' (4 '#'-separated fields) or "
                f"'caption#tokens', found {len(parts)} field{'s' * (len(parts) != 1)}",
                line=no,
            )
            continue
        if not parts[0].strip():
            err("empty caption text before the first '#'", line=no)
        untagged = [t for t in parts[1].split() if "/" not in t]
        if not parts[1].split():
            warn("no tokens (expected word/POS ...)", line=no)
        elif untagged:
            warn(f"tokens must be word/POS, found {untagged[0]!r}", line=no)
        if len(parts) == 4:
            _check_times(err, warn, no, parts[2], parts[3], rows)


def _check_times(err, warn, no: int, start_text: str, end_text: str, rows: int | None) -> None:
    try:
        start, end = float(start_text), float(end_text)
    except ValueError:
        return err(f"start/end must be seconds, found {start_text!r}, {end_text!r}", line=no)
    if np.isnan(start) or np.isnan(end):
        warn("start/end is nan: HumanML3D loaders read it as 0.0", line=no)
        start, end = np.nan_to_num(start, nan=0.0), np.nan_to_num(end, nan=0.0)
    if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end < 0:
        err(f"start/end must be finite and ≥ 0 s, found {start}, {end}", line=no)
    elif start > end:
        err(f"start {start} > end {end}: expected start ≤ end (0.0#0.0 = whole clip)", line=no)
    elif rows and start > 0 and int(start * FPS) >= rows:
        warn(
            f"sub-clip starts at {start} s (frame {int(start * FPS)}) but the clip has only "
            f"{rows} frames ({rows / FPS:.2f} s at {FPS:g} fps)",
            line=no,
        )


def _list_folder(c: _Collector, folder: Path, suffix: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError as e:
        c.add("layout", folder, f"cannot be listed ({e.strerror or e})")
        return found
    for p in entries:
        if p.suffix == suffix and p.is_file():
            found[p.stem] = p
        elif not p.name.startswith("."):
            msg = f"unexpected entry in {folder.name}/ (expected <id>{suffix}); ignored"
            c.add("layout", p, msg, severity="warning")
    return found


def _check_clips(c: _Collector, root: Path, progress: bool) -> dict[str, int | None]:
    """Features, joints, texts of every clip; returns id -> feature rows (None if unusable)
    for every clip that has a features file."""
    fdir, jdir, tdir = root / "new_joint_vecs", root / "new_joints", root / "texts"
    feats, joints = _list_folder(c, fdir, ".npy"), _list_folder(c, jdir, ".npy")
    texts = _list_folder(c, tdir, ".txt")
    ids = sorted(set(feats) | set(joints))
    if not fdir.is_dir():
        c.add("layout", fdir, "folder missing: every clip needs (T, 263) features")
    elif not ids:
        c.add("layout", fdir, "no clips: expected <id>.npy files")
    for d, why in (
        (jdir, "joints are needed to render and evaluate clips"),
        (tdir, "the clips have no captions for text-conditioned models"),
    ):
        if not d.is_dir():
            c.add("layout", d, f"folder missing: {why}", severity="warning")
    rows: dict[str, int | None] = {}
    for cid in tqdm(ids, desc="validate", unit="clip", disable=None if progress else True):
        if cid in feats:
            rows[cid] = _check_motion(c, "features", feats[cid], features=True)
        elif fdir.is_dir():
            c.add("features", fdir / f"{cid}.npy", f"missing (new_joints/{cid}.npy exists)")
        j_rows = _check_motion(c, "joints", joints[cid], features=False) if cid in joints else None
        if cid not in joints and jdir.is_dir():
            msg = f"missing (new_joint_vecs/{cid}.npy exists)"
            c.add("joints", jdir / f"{cid}.npy", msg, severity="warning")
        f_rows = rows.get(cid)
        if f_rows and j_rows and j_rows not in (f_rows, f_rows + 1):
            msg = (
                f"{j_rows} frames but new_joint_vecs/{cid}.npy has {f_rows} rows: expected "
                f"{f_rows} (as stored in HumanML3D) or {f_rows + 1}"
            )
            c.add("joints", joints[cid], msg)
        if cid in texts:
            _check_captions(c, texts[cid], f_rows)
        elif tdir.is_dir():
            c.add("texts", tdir / f"{cid}.txt", "missing: every clip needs a captions file")
    for cid in sorted(set(texts) - set(ids)):
        c.add("texts", texts[cid], "captions of a clip with no motion files", severity="warning")
    return rows


def _read_list(c: _Collector, kind: str, path: Path) -> list[str] | None:
    """Stripped lines of a list file (``list_lines``: inner blank lines are errors)."""
    text = c.read_text(kind, path)
    if text is None:
        return None
    lines, problems = list_lines(text)
    for no, message in problems:
        c.add(kind, path, message, line=no)
    return lines


def _check_split(
    c: _Collector, path: Path, rows: dict[str, int | None], num_classes: int | None
) -> tuple[list[str], list[int | None]] | None:
    """One id list and its ``*_y.txt`` labels (required under ``splits/``); (ids, labels)."""
    ids = _read_list(c, "splits", path)
    if ids is None:
        return None
    for no, message in id_list_problems(ids, rows.__contains__):
        c.add("splits", path, message, line=no)
    labels: list[int | None] = [None] * len(ids)
    label_path = path.with_name(f"{path.stem}_y.txt")
    err, _ = c.reporters("labels", label_path)
    if not label_path.is_file():
        if c.rel(path).startswith("splits/"):
            err(f"missing: expected one 0-based label per id of {path.name}")
        return ids, labels
    raw = _read_list(c, "labels", label_path)
    if raw is None:
        return ids, labels
    labels, problems = label_problems(ids, raw, ids_file=c.rel(path), num_classes=num_classes)
    for no, message in problems:
        err(message, line=no)
    return ids, labels


def _check_protocol(c: _Collector, path: Path, ids: list[str]) -> None:
    """Warn when an xsub/xset list holds clips of the other side of the official split."""
    protocol = next((p for p in reversed(path.parent.parts) if p in ("xsub", "xset")), None)
    names = [n for n in map(parse_ntu_id, ids) if n is not None]
    if protocol is None or path.stem not in ("train", "val", "test") or not names:
        return
    train = path.stem == "train"
    if protocol == "xsub":
        rule = "NTU-120 cross-subject training performers"
        side = [(n[2] in XSUB_TRAIN_PERFORMERS, n[0] in XSUB_TRAIN_PERFORMERS) for n in names]
    else:
        rule = "even setups (NTU-120 cross-setup training side)"
        side = [(n[0] % 2 == 0, n[2] % 2 == 0) for n in names]
    wrong = [n for n, (ok, _) in zip(names, side, strict=True) if ok != train]
    if not wrong:
        return
    swapped = all(alt == train for _, alt in side)
    performers = sorted({f"P{n[2]:03d}" if protocol == "xsub" else f"S{n[0]:03d}" for n in wrong})
    c.add(
        "protocol",
        path,
        f"{len(wrong)} of {len(names)} clips {'are not' if train else 'are'} from the {rule} "
        f"({', '.join(performers[:8])}{', …' * (len(performers) > 8)})"
        + ("; setup and performer ids look swapped, as in the reference code" if swapped else ""),
        severity="warning",
    )


def _check_overlap(c: _Collector, lists: dict[Path, list[str]]) -> None:
    """Train, val and test lists in one folder must not share ids (``overlap_problems``)."""
    by_dir: dict[Path, dict[str, list[str]]] = {}
    for path, ids in lists.items():
        by_dir.setdefault(path.parent, {})[path.stem] = ids
    for folder, parts in by_dir.items():
        for part, message in overlap_problems(parts):
            c.add("splits", folder / f"{part}.txt", message)


def _check_fewshot(c: _Collector, task: Path, labelled: dict[Path, list[int | None]]) -> None:
    """``meta.json`` of one few-shot task folder against the labels its lists use."""
    meta_path = task / "meta.json"
    err, _ = c.reporters("fewshot", meta_path)
    if not meta_path.is_file():
        return err('missing: expected {"class_list": [0-based ints], "seed": .., "shots": ..}')
    if (meta := _load_json(c, "fewshot", meta_path)) is None:
        return None
    classes = meta.get("class_list") if isinstance(meta, dict) else None
    if (problem := class_list_problem(classes)) is not None:
        return err(problem)
    shots = meta.get("shots")
    for path, labels in labelled.items():
        if task not in path.parents:
            continue
        used = Counter(y for y in labels if y is not None)
        if outside := sorted(set(used) - set(classes)):
            msg = f"labels {outside} are not in {c.rel(meta_path)} class_list {classes}"
            c.add("fewshot", path.with_name(f"{path.stem}_y.txt"), msg)
        off = {k: used.get(k, 0) for k in classes if used.get(k, 0) != shots}
        if path.stem == "train" and type(shots) is int and off:
            msg = f"expected {shots} clips per class (meta.json shots), found {off} (class: n)"
            c.add("fewshot", path, msg, severity="warning")


def _load_json(c: _Collector, kind: str, path: Path):
    text = c.read_text(kind, path)
    try:
        return None if text is None else json.loads(text)
    except json.JSONDecodeError as e:
        c.add(kind, path, f"invalid JSON: {e.msg} (column {e.colno})", line=e.lineno)
        return None


def _check_classes(c: _Collector, root: Path, layout: str) -> int | None:
    """``ntu_classes.txt`` and ``ntu_metadata.json``; returns the number of classes if known."""
    path = root / "ntu_classes.txt"
    names: list[str] | None = None
    if path.is_file():
        names = _read_list(c, "classes", path)
        if names is not None and len(names) != 120:
            c.add("classes", path, f"{len(names)} names, NTU RGB+D 120 has 120", severity="warning")
    elif layout == "ntu-vibe":
        msg = "missing: class names unknown (line i = class A00i)"
        c.add("classes", path, msg, severity="warning")
    meta_path = root / "ntu_metadata.json"
    meta = _load_json(c, "metadata", meta_path) if meta_path.is_file() else None
    err, warn = c.reporters("metadata", meta_path)
    actions = meta.get("actions") if isinstance(meta, dict) else None
    if meta is not None and not isinstance(actions, list):
        err('expected {"actions": [{"tag": "A001", "action": ..., "captions": [...]}, ...]}')
    for i, a in enumerate(actions or []):
        tag = f"A{i + 1:03d}"
        caps = a.get("captions") if isinstance(a, dict) else None
        if not (isinstance(caps, list) and caps and all(isinstance(s, str) for s in caps)):
            err(f"actions[{i}] ({tag}) needs a non-empty list of caption strings")
        elif a.get("tag") != tag:
            warn(f"actions[{i}] has tag {a.get('tag')!r}, expected {tag!r}")
        elif names and i < len(names) and a.get("action") != names[i]:
            warn(
                f"actions[{i}] is {a.get('action')!r}, line {i + 1} of ntu_classes.txt "
                f"is {names[i]!r}"
            )
    if names is not None and isinstance(actions, list) and len(actions) != len(names):
        warn(f"{len(actions)} actions but ntu_classes.txt has {len(names)} classes")
    if names is not None:
        return len(names)
    return 120 if layout == "ntu-vibe" else None


def _check_stats(c: _Collector, root: Path) -> None:
    """``Mean.npy`` / ``Std.npy``: (263,) finite floats, std > 0, both or neither."""
    present = {n: root / n for n in ("Mean.npy", "Std.npy") if (root / n).is_file()}
    if len(present) == 1:
        (have,) = present
        other = root / ("Std.npy" if have == "Mean.npy" else "Mean.npy")
        c.add("stats", other, f"missing while {have} exists: normalisation needs both")
    for name, path in present.items():
        arr = c.load_npy("stats", path)
        err, _ = c.reporters("stats", path)
        if arr is None:
            continue
        if arr.shape != (NUM_FEATURES,) or not np.issubdtype(arr.dtype, np.floating):
            err(f"shape {arr.shape} {arr.dtype}, expected ({NUM_FEATURES},) float32")
            continue
        if (bad := np.flatnonzero(~np.isfinite(arr))).size:
            err(f"{bad.size} non-finite values (dims {bad[:8].tolist()})")
        if name == "Std.npy" and (low := np.flatnonzero(arr <= 0)).size:
            err(f"{low.size} values ≤ 0 (dims {low[:8].tolist()}): std must be > 0")


def validate_dataset(
    root: str | Path, *, max_problems_per_kind: int | None = 200, progress: bool = True
) -> ValidationReport:
    """Check every file of a HumanML3D- or NTU-VIBE-layout folder; never raises on bad data.

    Args:
        root: the dataset folder (holds ``new_joint_vecs/`` etc.).
        max_problems_per_kind: keep at most this many problems of each kind (features, joints,
            texts, captions, splits, labels, ...); the rest are only counted. None keeps all.
        progress: show a tqdm bar over the clips (hidden when stderr is not a terminal).

    Returns:
        a `ValidationReport`; ``report.ok`` is False when any error was found.
    """
    root = Path(root)
    c = _Collector(root, max_problems_per_kind)
    layout = detect_layout(root) if root.is_dir() else "unknown"
    if not root.is_dir():
        c.add("layout", root, "is not a folder" if root.exists() else "does not exist")
    elif layout == "unknown":
        c.add(
            "layout",
            root,
            "not a HumanML3D or NTU-VIBE folder: expected new_joint_vecs/, "
            "new_joints/, texts/ (and ntu_classes.txt, splits/ for NTU-VIBE)",
        )
    if layout == "unknown":
        return ValidationReport(root, layout, c.problems, 0, c.suppressed)
    rows = _check_clips(c, root, progress)
    num_classes = _check_classes(c, root, layout)
    lists: dict[Path, list[str]] = {}
    labelled: dict[Path, list[int | None]] = {}
    for path in split_list_files(root):
        if (checked := _check_split(c, path, rows, num_classes)) is not None:
            lists[path], labelled[path] = checked
            _check_protocol(c, path, checked[0])
    splits = root / "splits"
    for label_path in sorted(splits.rglob("*_y.txt")) if splits.is_dir() else []:
        if not label_path.with_name(label_path.name.removesuffix("_y.txt") + ".txt").is_file():
            c.add("labels", label_path, "labels without an id list beside them")
    _check_overlap(c, lists)
    fewshot = splits / "fewshot"
    for task in sorted(p for p in fewshot.iterdir() if p.is_dir()) if fewshot.is_dir() else []:
        _check_fewshot(c, task, labelled)
    _check_stats(c, root)
    return ValidationReport(root, layout, c.problems, c.files, c.suppressed)
