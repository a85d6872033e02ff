"""The NTU-VIBE layout: a HumanML3D layout of NTU RGB+D clips plus class names and splits.

::

    root/ntu_classes.txt                   line i (1-based) = name of class A{i:03d}
    root/ntu_metadata.json                 {"actions": [{"tag": "A001", "captions": [..]}, ..]}
    root/splits/default/{xsub,xset}/{train,val}.txt    ids; {train,val}_y.txt 0-based labels
    root/splits/fewshot/S0000/meta.json    {"class_list": [0-based..], "seed": .., "shots": ..}
    root/splits/fewshot/S0000/xsub/{train,train_y,val,val_y}.txt

Labels in files are 0-based class indices; a clip's own label is its action number minus one.

The readers check what they read by the rules ``kinemic validate`` applies, through the same
functions (:func:`label_problems`, :func:`class_list_problem` and the list rules of
:mod:`kinemic.io.humanml3d`): one integer label per id, inside the class list and the split's
``class_list``, equal to an NTU-named id's action code minus one; train and val disjoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinemic.errors import DataError
from kinemic.files import name_problem, write_text
from kinemic.io.humanml3d import (
    HumanML3DDataset,
    ListProblem,
    clip_id_problem,
    overlap_problems,
    raise_first,
    read_list_file,
)
from kinemic.io.ntu_names import NUM_ACTIONS, NTUName

PROTOCOLS = ("xsub", "xset")
PARTS = ("train", "val")


@dataclass
class FewShotSplit:
    """A few-shot task: the chosen classes (0-based), their training shots and validation clips.

    ``extra`` holds any other keys of ``meta.json`` (e.g. ``protocol``, ``excluded``).
    """

    name: str
    class_list: list[int]
    seed: int
    shots: int
    train_ids: list[str]
    train_labels: list[int]
    val_ids: list[str] = field(default_factory=list)
    val_labels: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        """The ``meta.json`` contents."""
        meta = {"class_list": list(self.class_list), "seed": self.seed, "shots": self.shots}
        return {**meta, **self.extra}


def _check_choice(value: str, choices: Sequence[str], what: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}: expected one of {', '.join(choices)}")


# An NTU RGB+D clip name, perhaps mirrored (``M`` first); the group is the action code.
_NTU_NAMED = re.compile(r"M?S\d{3}C\d{3}P\d{3}R\d{3}A(\d{3})")


def name_label(clip_id: str) -> int | None:
    """The 0-based label an NTU-named id carries (its action code − 1); None for other ids."""
    m = _NTU_NAMED.fullmatch(clip_id)
    return None if m is None else int(m.group(1)) - 1


def label_problems(
    ids: Sequence[str],
    texts: Sequence[str],
    *,
    ids_file: str,
    num_classes: int | None,
    class_list: Sequence[int] | None = None,
) -> tuple[list[int | None], list[ListProblem]]:
    """Check the label list ``texts`` (line k + 1 = ``texts[k]``) of the ids of ``ids_file``.

    Returns (the label of each id, None where unusable; the problems): a count other than
    one label per id, a label that is not an integer, outside ``0..num_classes − 1`` or
    outside ``class_list``, and a label other than an NTU-named id's action code − 1.
    """
    problems: list[ListProblem] = []
    if len(texts) != len(ids):
        problem = f"{len(texts)} labels but {ids_file} lists {len(ids)} ids: expected one per id"
        problems.append((None, problem))
    labels: list[int | None] = [None] * len(ids)
    for n, (clip_id, text) in enumerate(zip(ids, texts, strict=False), start=1):
        try:
            y = int(text)
        except ValueError:
            if text:  # a blank line is list_lines' problem
                problem = f"label is not an integer: expected a 0-based class, found {text!r}"
                problems.append((n, problem))
            continue
        if y < 0 or (num_classes is not None and y >= num_classes):
            classes = "0.." if num_classes is None else f"0..{num_classes - 1}"
            problems.append((n, f"label {y} outside {classes} (0-based classes)"))
            continue
        if class_list is not None and y not in class_list:
            problem = f"label {y} is not in the split's class_list {sorted(class_list)}"
            problems.append((n, problem))
            continue
        labels[n - 1] = y
        own = name_label(clip_id)
        if own is not None and y != own:
            problem = f"label {y} for {clip_id}, expected {own} (action A{own + 1:03d} − 1)"
            problems.append((n, problem))
    return labels, problems


def class_list_problem(classes: object, num_classes: int | None = None) -> str | None:
    """Why a few-shot ``meta.json`` ``class_list`` is unusable (None when it is usable); with
    ``num_classes``, every class must be below it."""
    if not isinstance(classes, list) or not all(type(k) is int and k >= 0 for k in classes):
        return f"class_list must be a list of 0-based ints, found {classes!r}"
    if len(set(classes)) != len(classes):
        return f"class_list names a class twice: {classes}"
    if num_classes is not None and (bad := [k for k in classes if k >= num_classes]):
        return f"class_list names classes {bad} beyond the dataset's {num_classes} classes"
    return None


def read_labels(
    path: Path,
    ids: Sequence[str],
    *,
    ids_file: str | Path,
    num_classes: int | None = None,
    class_list: Sequence[int] | None = None,
) -> list[int]:
    """The labels of ``path`` for ``ids`` (listed in ``ids_file``), checked by
    :func:`label_problems`; the first problem is a DataError naming ``path`` and the line."""
    texts = read_list_file(path, "0-based class labels")
    labels, problems = label_problems(
        ids, texts, ids_file=str(ids_file), num_classes=num_classes, class_list=class_list
    )
    raise_first(path, problems)
    return labels  # type: ignore[return-value]  # every label is set when nothing is wrong


class NTUVibeDataset(HumanML3DDataset):
    """An NTU-VIBE folder: all that :class:`HumanML3DDataset` reads, plus classes and splits."""

    def class_names(self) -> list[str]:
        """Class names, index = 0-based class (``ntu_classes.txt`` line i+1 = A{i+1:03d})."""
        path = self.root / "ntu_classes.txt"
        if not path.is_file():
            raise DataError(path, "missing file: expected one class name per line (A001 first)")
        names = path.read_text(encoding="utf-8").splitlines()
        while names and not names[-1].strip():
            names.pop()
        for n, name in enumerate(names, start=1):
            if not name.strip():
                raise DataError(path, f"empty class name for class A{n:03d}", line=n)
        return [name.strip() for name in names]

    def class_captions(self) -> dict[int, str]:
        """One caption per class, keyed by 0-based class (``actions[i]["captions"][0]``)."""
        path = self.root / "ntu_metadata.json"
        if not path.is_file():
            raise DataError(path, "missing file: expected {'actions': [{'captions': [...]}, ...]}")
        try:
            actions = json.loads(path.read_text(encoding="utf-8"))["actions"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(path, f"expected JSON with an 'actions' list ({e!r})") from None
        out: dict[int, str] = {}
        for i, action in enumerate(actions):
            caps = action.get("captions") if isinstance(action, dict) else None
            if not caps or not isinstance(caps[0], str) or not caps[0].strip():
                raise DataError(path, f"actions[{i}] has no 'captions' list with a text first")
            tag = action.get("tag")
            key = int(tag[1:]) - 1 if isinstance(tag, str) and tag[1:].isdigit() else i
            out[key] = caps[0].strip()
        return out

    def label_of(self, clip_id: str) -> int:
        """0-based class of a clip from its NTU name (a mirror's leading ``M`` is ignored)."""
        name = clip_id[1:] if clip_id.startswith("M") else clip_id
        return NTUName.parse(name).label

    def _num_classes(self) -> int:
        """The classes of ``ntu_classes.txt``; NTU RGB+D 120's 120 without the file."""
        return len(self.class_names()) if (self.root / "ntu_classes.txt").is_file() else NUM_ACTIONS

    def _read_pair(
        self, ids_path: Path, labels_path: Path, *, allowed: Sequence[int] | None = None
    ) -> tuple[list[str], list[int]]:
        ids = self.read_ids(ids_path)
        labels = read_labels(
            labels_path, ids, ids_file=ids_path, num_classes=self._num_classes(), class_list=allowed
        )
        return ids, labels

    def default_split(
        self, protocol: str = "xsub", part: str = "train"
    ) -> tuple[list[str], list[int]]:
        """Ids and 0-based labels of ``splits/default/<protocol>/<part>.txt``; the other part
        beside it, when present, must not share an id with it."""
        _check_choice(protocol, PROTOCOLS, "protocol")
        _check_choice(part, PARTS, "split part")
        folder = self.root / "splits" / "default" / protocol
        ids, labels = self._read_pair(folder / f"{part}.txt", folder / f"{part}_y.txt")
        (other,) = (p for p in PARTS if p != part)
        if (folder / f"{other}.txt").is_file():
            parts = {part: ids, other: read_list_file(folder / f"{other}.txt", "clip ids")}
            _check_disjoint(folder, parts)
        return ids, labels

    def has_default_split(self, protocol: str = "xsub") -> bool:
        folder = self.root / "splits" / "default" / protocol
        return all((folder / f"{p}.txt").is_file() for p in PARTS)

    def fewshot_split_names(self) -> list[str]:
        """Names of the few-shot splits present (folders with a ``meta.json``), sorted."""
        folder = self.root / "splits" / "fewshot"
        return sorted(p.parent.name for p in folder.glob("*/meta.json")) if folder.is_dir() else []

    def fewshot_split(self, name: str = "S0000", *, protocol: str = "xsub") -> FewShotSplit:
        """Read ``splits/fewshot/<name>`` (val ids and labels are empty without val files)."""
        _check_choice(protocol, PROTOCOLS, "protocol")
        folder = self.root / "splits" / "fewshot" / name
        if (why := name_problem(name)) is not None:
            raise DataError(folder.parent, f"few-shot split name {name!r}: {why}")
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            have = ", ".join(self.fewshot_split_names()) or "none"
            raise DataError(
                meta_path, f"missing file: no few-shot split {name!r} (present: {have})"
            )
        expected = "expected JSON with a 'class_list' list of 0-based ints, integer 'seed', 'shots'"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(meta_path, f"{expected} ({e})") from None
        if not isinstance(meta, dict) or not all(
            k in meta for k in ("class_list", "seed", "shots")
        ):
            raise DataError(meta_path, f"{expected}, found {str(meta)[:200]}")
        class_list, seed, shots = meta["class_list"], meta["seed"], meta["shots"]
        if (why := class_list_problem(class_list, self._num_classes())) is not None:
            raise DataError(meta_path, why)
        if type(seed) is not int or type(shots) is not int or shots < 1:
            raise DataError(meta_path, f"{expected}; found seed {seed!r}, shots {shots!r}")
        extra = {k: v for k, v in meta.items() if k not in ("class_list", "seed", "shots")}
        sub = folder / protocol
        train_ids, train_labels = self._read_pair(
            sub / "train.txt", sub / "train_y.txt", allowed=class_list
        )
        val_ids: list[str] = []
        val_labels: list[int] = []
        has_val = [(sub / f).is_file() for f in ("val.txt", "val_y.txt")]
        if any(has_val) and not all(has_val):
            missing = "val_y.txt" if has_val[0] else "val.txt"
            raise DataError(sub / missing, "missing file: val.txt and val_y.txt come together")
        if all(has_val):
            val_ids, val_labels = self._read_pair(
                sub / "val.txt", sub / "val_y.txt", allowed=class_list
            )
            _check_disjoint(sub, {"train": train_ids, "val": val_ids})
        return FewShotSplit(
            name, class_list, seed, shots, train_ids, train_labels, val_ids, val_labels, extra
        )


def _check_disjoint(folder: Path, parts: dict[str, list[str]]) -> None:
    for part, problem in overlap_problems(parts):
        raise DataError(folder / f"{part}.txt", problem)


# ---------------------------------------------------------------------------------------------
# Writers (atomic)


def _lines(items: Sequence[object]) -> str:
    return "".join(f"{x}\n" for x in items)


def write_class_names(root: str | Path, names: Sequence[str]) -> None:
    """Write ``ntu_classes.txt`` (name of class A001 first; no trailing newline, as NTU-VIBE)."""
    for i, name in enumerate(names):
        if not name.strip() or "\n" in name:
            raise ValueError(f"class name {i} ({name!r}) must be one non-empty line")
    write_text(Path(root) / "ntu_classes.txt", "\n".join(n.strip() for n in names))


def write_metadata(
    root: str | Path,
    class_captions: dict[int, str] | Sequence[str],
    *,
    class_names: Sequence[str] | None = None,
) -> None:
    """Write ``ntu_metadata.json`` with one caption per class (keys/positions are 0-based)."""
    items = (
        class_captions.items() if isinstance(class_captions, dict) else enumerate(class_captions)
    )
    actions = []
    for c, caption in sorted(items):
        entry: dict[str, Any] = {"tag": f"A{c + 1:03d}", "captions": [caption]}
        if class_names is not None:
            entry = {"action": class_names[c], **entry}
        actions.append(entry)
    write_text(Path(root) / "ntu_metadata.json", json.dumps({"actions": actions}, indent=4) + "\n")


def write_default_split(
    root: str | Path, protocol: str, part: str, ids: Sequence[str], labels: Sequence[int]
) -> None:
    """Write ``splits/default/<protocol>/<part>.txt`` and ``<part>_y.txt``."""
    _check_choice(protocol, PROTOCOLS, "protocol")
    _check_choice(part, PARTS, "split part")
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
    folder = Path(root) / "splits" / "default" / protocol
    _check_ids(folder / f"{part}.txt", ids)
    write_text(folder / f"{part}.txt", _lines(ids))
    write_text(folder / f"{part}_y.txt", _lines([int(y) for y in labels]))


def write_fewshot_split(root: str | Path, split: FewShotSplit, *, protocol: str = "xsub") -> Path:
    """Write ``splits/fewshot/<name>/`` (meta.json and ``<protocol>/`` lists); returns the folder.

    A new split is written into a hidden staging folder and renamed into place, so an
    interrupted write leaves no half split. Adding a protocol to an existing split rewrites its
    files one by one (each atomically), meta.json last.
    """
    _check_choice(protocol, PROTOCOLS, "protocol")
    final = Path(root) / "splits" / "fewshot" / split.name
    if (why := name_problem(split.name)) is not None:
        raise DataError(final.parent, f"few-shot split name {split.name!r}: {why}")
    for part in ("train", "val"):
        ids, labels = getattr(split, f"{part}_ids"), getattr(split, f"{part}_labels")
        if len(ids) != len(labels):
            raise ValueError(f"{part}: {len(ids)} ids but {len(labels)} labels")
        _check_ids(final / protocol / f"{part}.txt", ids)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        _write_split_files(final, split, protocol)
        return final
    staging = final.parent / f".{split.name}.{os.getpid()}.partial"
    if staging.exists():  # left by an interrupted run of this process id
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        _write_split_files(staging, split, protocol)
        os.replace(staging, final)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise
    return final


def _check_ids(path: Path, ids: Sequence[str]) -> None:
    """Refuse to write an id no reader would accept."""
    for n, clip_id in enumerate(ids, start=1):
        if (why := clip_id_problem(clip_id)) is not None:
            raise DataError(path, why, line=n)


def _write_split_files(folder: Path, split: FewShotSplit, protocol: str) -> None:
    sub = folder / protocol
    write_text(sub / "train.txt", _lines(split.train_ids))
    write_text(sub / "train_y.txt", _lines(split.train_labels))
    if split.val_ids:
        write_text(sub / "val.txt", _lines(split.val_ids))
        write_text(sub / "val_y.txt", _lines(split.val_labels))
    write_text(folder / "meta.json", json.dumps(split.meta(), indent=2) + "\n")
