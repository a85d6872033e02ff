"""The NTU-VIBE layout: a HumanML3D layout of NTU RGB+D clips plus class names and splits.

::

    root/ntu_classes.txt                   line i (1-based) = name of class A{i:03d}
    root/ntu_metadata.json                 {"actions": [{"tag": "A001", "captions": [..]}, ..]}
    root/splits/default/{xsub,xset}/{train,val}.txt    ids; {train,val}_y.txt 0-based labels
    root/splits/fewshot/S0000/meta.json    {"class_list": [0-based..], "seed": .., "shots": ..}
    root/splits/fewshot/S0000/xsub/{train,train_y,val,val_y}.txt

Labels in files are 0-based class indices; a clip's own label is its action number minus one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinemic.errors import DataError
from kinemic.files import write_text
from kinemic.io.humanml3d import HumanML3DDataset
from kinemic.io.ntu_names import NTUName

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


def _read_labels(path: Path) -> list[int]:
    if not path.is_file():
        raise DataError(path, "missing file: expected 0-based class labels, one per line")
    labels = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            labels.append(int(line.strip()))
        except ValueError:
            found = line.strip()
            problem = f"label is not an integer: expected a 0-based class, found {found!r}"
            raise DataError(path, problem, line=n) from None
    return labels


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

    def _num_classes(self) -> int | None:
        return len(self.class_names()) if (self.root / "ntu_classes.txt").is_file() else None

    def _read_pair(
        self, ids_path: Path, labels_path: Path, *, allowed: Sequence[int] | None = None
    ) -> tuple[list[str], list[int]]:
        ids, labels = self.read_ids(ids_path), _read_labels(labels_path)
        if len(ids) != len(labels):
            raise DataError(
                labels_path,
                f"{len(labels)} labels in {labels_path.name} but {len(ids)} ids in "
                f"{ids_path} — one label per id expected",
            )
        n = self._num_classes()
        for k, label in enumerate(labels):
            if label < 0 or (n is not None and label >= n):
                classes = "0 or more" if n is None else f"0..{n - 1} (ntu_classes.txt has {n})"
                raise DataError(labels_path, f"label {label} outside {classes}", line=k + 1)
            if allowed is not None and label not in allowed:
                raise DataError(
                    labels_path,
                    f"label {label} is not in the split's class_list {sorted(allowed)}",
                    line=k + 1,
                )
        return ids, labels

    def default_split(
        self, protocol: str = "xsub", part: str = "train"
    ) -> tuple[list[str], list[int]]:
        """Ids and 0-based labels of ``splits/default/<protocol>/<part>.txt``."""
        _check_choice(protocol, PROTOCOLS, "protocol")
        _check_choice(part, PARTS, "split part")
        folder = self.root / "splits" / "default" / protocol
        return self._read_pair(folder / f"{part}.txt", folder / f"{part}_y.txt")

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
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            have = ", ".join(self.fewshot_split_names()) or "none"
            raise DataError(
                meta_path, f"missing file: no few-shot split {name!r} (present: {have})"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            class_list = [int(c) for c in meta["class_list"]]
            seed, shots = int(meta["seed"]), int(meta["shots"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise DataError(
                meta_path, f"expected JSON with integer 'class_list' list, 'seed', 'shots' ({e!r})"
            ) from None
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
        return FewShotSplit(
            name, class_list, seed, shots, train_ids, train_labels, val_ids, val_labels, extra
        )


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
    write_text(folder / f"{part}.txt", _lines(ids))
    write_text(folder / f"{part}_y.txt", _lines([int(y) for y in labels]))


def write_fewshot_split(root: str | Path, split: FewShotSplit, *, protocol: str = "xsub") -> Path:
    """Write ``splits/fewshot/<name>/`` (meta.json and ``<protocol>/`` lists); returns the folder.

    A new split is written into a hidden staging folder and renamed into place, so an
    interrupted write leaves no half split. Adding a protocol to an existing split rewrites its
    files one by one (each atomically), meta.json last.
    """
    _check_choice(protocol, PROTOCOLS, "protocol")
    for part in ("train", "val"):
        ids, labels = getattr(split, f"{part}_ids"), getattr(split, f"{part}_labels")
        if len(ids) != len(labels):
            raise ValueError(f"{part}: {len(ids)} ids but {len(labels)} labels")
    final = Path(root) / "splits" / "fewshot" / split.name
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


def _write_split_files(folder: Path, split: FewShotSplit, protocol: str) -> None:
    sub = folder / protocol
    write_text(sub / "train.txt", _lines(split.train_ids))
    write_text(sub / "train_y.txt", _lines(split.train_labels))
    if split.val_ids:
        write_text(sub / "val.txt", _lines(split.val_ids))
        write_text(sub / "val_y.txt", _lines(split.val_labels))
    write_text(folder / "meta.json", json.dumps(split.meta(), indent=2) + "\n")
