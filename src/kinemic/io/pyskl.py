"""The pyskl / mmaction2 skeleton pickle: export kinemic datasets so other classifiers can train.

pyskl (``PoseDataset``) and mmaction2 (``PoseDataset``) read one pickle holding a dict with two
keys (pyskl ``tools/data/README.md``):

- ``split``: ``{split name: [frame_dir, ...]}``; a config picks one name per phase
  (``split='train'`` / ``'val'`` here; ``'xsub_train'`` etc. for a whole dataset);
- ``annotations``: a list of dicts, one per clip. kinemic writes

  ====================  ==================================================================
  ``frame_dir`` (str)   the clip id (unique; synthetic ids are prefixed ``<method>/`` when
                        several synthetic folders are exported together)
  ``label`` (int)       the class (see below)
  ``total_frames`` (int)  T, the clip's frame count at 20 fps
  ``keypoint``          float32 array (M, T, V, C) = (1, T, 22, 3): one person, the SMPL-22
                        joints of ``new_joints`` in metres (Y up), unnormalised
  ====================  ==================================================================

  ``img_shape``, ``original_shape`` and ``keypoint_score`` are only required for 2-D skeletons
  and are not written (pyskl's own NTU RGB+D 3-D pickles have none of them either).

Labels: exporting a whole dataset keeps the 0-based NTU label (action − 1), as pyskl's NTU
pickles do; exporting a few-shot split (with or without synthetic clips) numbers the split's
classes 0..K−1 in ``class_list`` order, so a K-way classifier config works unchanged. A third
top-level key ``kinemic`` (ignored by pyskl and mmaction2, which read only ``split`` and
``annotations``) records the class mapping, class names and the SMPL-22 joint names and parents:
pyskl has no SMPL-22 graph layout, so a config needs one built from those parents.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kinemic.errors import DataError, KinemicError
from kinemic.files import write_bytes
from kinemic.io.ntu_vibe import PROTOCOLS, NTUVibeDataset
from kinemic.skeleton import SMPL22


@dataclass
class PysklData:
    """The contents of a pyskl pickle."""

    split: dict[str, list[str]]
    annotations: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)  # the "kinemic" key, when present

    def by_name(self) -> dict[str, dict[str, Any]]:
        return {a["frame_dir"]: a for a in self.annotations}


def keypoint_problem(keypoint: np.ndarray) -> str | None:
    """Why a clip's ``keypoint`` (M, T, V, C) cannot go into a pyskl pickle (None when it can):
    no frame, or NaN or infinite values, which a classifier would train on without a word."""
    if keypoint.shape[1] == 0:
        return f"no frames (keypoint of shape {keypoint.shape})"
    bad = ~np.isfinite(keypoint).all(axis=(0, 2, 3))  # (T,)
    if bad.any():
        frames = np.flatnonzero(bad)
        return (
            f"NaN or infinite keypoints in {len(frames)} of {len(bad)} frames (first: frame "
            f"{frames[0]})"
        )
    return None


def annotation(frame_dir: str, label: int, joints: np.ndarray) -> dict[str, Any]:
    """One clip's annotation from joints (T, V, C)."""
    kp = np.asarray(joints, dtype=np.float32)[None]  # (1, T, V, C)
    return {
        "frame_dir": frame_dir,
        "label": int(label),
        "total_frames": int(kp.shape[1]),
        "keypoint": kp,
    }


def write_pyskl(path: str | Path, data: PysklData) -> Path:
    """Check and write ``data`` as a pyskl pickle (atomically)."""
    check_pyskl(data, where=path)
    obj: dict[str, Any] = {"split": data.split, "annotations": data.annotations}
    if data.meta:
        obj["kinemic"] = data.meta
    write_bytes(path, pickle.dumps(obj, protocol=4))
    return Path(path)


class _SafeUnpickler(pickle.Unpickler):
    """Only builtins containers and NumPy arrays: a pickle from elsewhere cannot run code."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "tuple"),
        ("builtins", "list"),
        ("builtins", "dict"),
        ("builtins", "set"),
        ("builtins", "slice"),
        ("numpy.dtypes", "Float32DType"),
        ("numpy.dtypes", "Float64DType"),
        ("numpy.dtypes", "Int64DType"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_pyskl(path: str | Path) -> PysklData:
    """Read and check a pyskl pickle (only plain containers and NumPy arrays are accepted)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "missing file: expected a pyskl annotation pickle")
    try:
        obj = _SafeUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataError(path, f"cannot read as a pyskl pickle ({e})") from None
    if not isinstance(obj, dict) or "split" not in obj or "annotations" not in obj:
        raise DataError(path, "expected a dict with 'split' and 'annotations'")
    data = PysklData(obj["split"], obj["annotations"], obj.get("kinemic") or {})
    check_pyskl(data, where=path)
    return data


def check_pyskl(data: PysklData, *, where: str | Path) -> None:
    """Raise a DataError naming ``where`` unless ``data`` is a well-formed 3-D skeleton set."""
    if not isinstance(data.split, dict) or not isinstance(data.annotations, list):
        raise DataError(where, "'split' must be a dict and 'annotations' a list")
    names = set()
    for k, a in enumerate(data.annotations):
        missing = {"frame_dir", "label", "total_frames", "keypoint"} - set(a)
        if missing:
            raise DataError(where, f"annotation {k} lacks {sorted(missing)}")
        kp = a["keypoint"]
        if not isinstance(kp, np.ndarray) or kp.ndim != 4 or kp.shape[1] != a["total_frames"]:
            shape = getattr(kp, "shape", None)
            raise DataError(
                where,
                f"annotation {k} ({a['frame_dir']}): keypoint must be (M, T, V, C) with T = "
                f"total_frames {a['total_frames']}, found {shape}",
            )
        if (problem := keypoint_problem(kp)) is not None:
            raise DataError(where, f"annotation {k} ({a['frame_dir']}): {problem}")
        if a["frame_dir"] in names:
            raise DataError(where, f"frame_dir {a['frame_dir']!r} appears twice")
        names.add(a["frame_dir"])
    for split, ids in data.split.items():
        unknown = [i for i in ids if i not in names]
        if unknown:
            raise DataError(
                where,
                f"split {split!r} lists {len(unknown)} clips without an annotation, "
                f"e.g. {unknown[0]!r}",
            )


# ------------------------------------------------------------------------------ export


def export_pyskl(
    root: str | Path,
    out: str | Path,
    *,
    split: str | None = None,
    synthetic: Sequence[str | Path] = (),
    mixed: bool = False,
    progress: bool = True,
) -> PysklData:
    """``kinemic export pyskl``: write ``out`` from the NTU-VIBE dataset ``root``.

    - no options: every clip of the default splits (``xsub_train``, ``xsub_val``, ``xset_*``
      where present), 0-based NTU labels;
    - ``split``: the few-shot split: ``train`` = its few-shot clips, ``val`` = its validation
      clips; labels 0..K−1;
    - ``synthetic`` (one or more folders): ``train`` = the synthetic clips (the split is the
      folders' ``info.json`` split unless ``split`` is given), ``val`` as above;
    - ``mixed`` with ``synthetic``: ``train`` = few-shot clips + synthetic clips.
    """
    from tqdm.auto import tqdm

    from kinemic.io.synthetic import read_synthetic

    ds = NTUVibeDataset(root)
    names = ds.class_names()
    skeleton = {
        "name": "smpl22",
        "joints": list(SMPL22.joint_names),
        "parents": list(SMPL22.parents),
    }
    jobs: list[tuple[NTUVibeDataset, str, str, int]] = []  # (dataset, clip id, frame_dir, label)
    parts: dict[str, list[str]] = {}
    if mixed and not synthetic:
        raise KinemicError("--mixed adds synthetic clips to the few-shot ones: pass --synthetic")
    if split is None and not synthetic:
        for protocol in PROTOCOLS:
            if not ds.has_default_split(protocol):
                continue
            for part in ("train", "val"):
                ids, labels = ds.default_split(protocol, part)
                parts[f"{protocol}_{part}"] = list(ids)
                jobs += [(ds, i, i, y) for i, y in zip(ids, labels, strict=True)]
        if not parts:
            raise DataError(ds.root / "splits" / "default", "no default split to export")
        meta = {"labels": "0-based NTU class (action - 1)", "class_names": names}
    else:
        if split is None:
            found = {read_info_split(Path(s)) for s in synthetic}
            if len(found) != 1 or None in found:
                raise KinemicError(
                    "cannot tell the split of the synthetic folders from their info.json "
                    f"(found {sorted(map(str, found))}): pass --split"
                )
            split = found.pop()
        fs = ds.fewshot_split(split)
        index = {c: i for i, c in enumerate(fs.class_list)}
        train: list[str] = []
        if not synthetic or mixed:
            jobs += [
                (ds, i, i, index[y]) for i, y in zip(fs.train_ids, fs.train_labels, strict=True)
            ]
            train += fs.train_ids
        sets = [read_synthetic(s, fs) for s in synthetic]
        for s in sets:
            sds = NTUVibeDataset(s.path)
            for i, y in zip(s.ids, s.labels, strict=True):
                name = f"{s.method}/{i}" if len(sets) > 1 else i
                jobs.append((sds, i, name, index[y]))
                train.append(name)
        parts = {"train": train, "val": list(fs.val_ids)}
        jobs += [(ds, i, i, index[y]) for i, y in zip(fs.val_ids, fs.val_labels, strict=True)]
        meta = {
            "labels": "index into classes",
            "classes": list(fs.class_list),
            "class_names": [names[c] for c in fs.class_list],
            "split": split,
            "synthetic": [
                {"path": str(s.path), "method": s.method, "clips": len(s.ids)} for s in sets
            ],
        }
    seen: dict[str, dict[str, Any]] = {}
    for sds, clip_id, frame_dir, label in tqdm(
        jobs, desc="exporting", unit="clip", disable=not progress or None
    ):
        if frame_dir not in seen:
            seen[frame_dir] = annotation(frame_dir, label, sds.joints(clip_id))
            if (problem := keypoint_problem(seen[frame_dir]["keypoint"])) is not None:
                joints_file = sds.root / "new_joints" / f"{clip_id}.npy"
                raise DataError(
                    joints_file,
                    f"clip {clip_id}: {problem}; fix or remove the clip (kinemic validate "
                    f"{sds.root} lists every such clip) before exporting",
                )
    data = PysklData(
        parts,
        list(seen.values()),
        {
            "format": "kinemic-pyskl",
            "version": 1,
            "source": str(ds.root),
            "skeleton": skeleton,
            **meta,
        },
    )
    write_pyskl(out, data)
    return data


def read_info_split(folder: Path) -> str | None:
    """The ``split`` of a synthetic folder's ``info.json`` (None when absent)."""
    import json

    path = folder / "info.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("split")
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON ({e})") from None
