"""Summarise a HumanML3D- or NTU-VIBE-layout folder: clips, captions, lengths, splits, classes.

`dataset_info` gathers plain numbers (JSON-serialisable) and never raises on bad or partial
data: what is absent goes into ``info["missing"]``, files it cannot read into
``info["unreadable"]`` (run `kinemic.validate.validate_dataset` to learn why). `format_info`
prints the summary. Lengths are feature rows (``new_joint_vecs``), or joint frames when a clip
has no features.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from kinemic.progress import progress_bar
from kinemic.validate import FPS, detect_layout, parse_ntu_id, split_list_files


def _rows(path: Path) -> int | None:
    """Rows of a .npy file read from its header (no data loaded), None if unreadable."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        return int(arr.shape[0]) if isinstance(arr, np.ndarray) and arr.ndim >= 1 else None
    except Exception:  # any corrupt file: counted as unreadable, validate says why
        return None


def _lines(path: Path) -> list[str] | None:
    try:
        return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError):
        return None


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {
        "min": float(a.min()),
        "median": float(np.median(a)),
        "mean": float(a.mean()),
        "max": float(a.max()),
    }


def _histogram(values: list[int], *, bins: int = 8) -> list[dict[str, int]]:
    """Equal-width integer bins [lo, hi] covering min..max with their counts."""
    lo, hi = min(values), max(values)
    edges = np.unique(np.linspace(lo, hi + 1, min(bins, hi - lo + 1) + 1).astype(int))
    counts, _ = np.histogram(values, bins=edges)
    return [
        {"lo": int(a), "hi": int(b) - 1, "count": int(n)}
        for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True)
    ]


def _class_counts(ids: list[str], labels: list[str] | None) -> dict[int, int] | None:
    """0-based class -> clips, from a label list when there is one, else from NTU names."""
    if labels is not None:
        ys = [int(y) for y in labels if y.lstrip("-").isdigit()]
    else:
        ys = [n[4] - 1 for n in map(parse_ntu_id, ids) if n is not None]
    return dict(sorted(Counter(ys).items())) if ys else None


def _is_sub_clip(line: str) -> bool:
    """A caption ``...#start#end`` with times other than 0.0#0.0 (the whole clip)."""
    parts = line.split("#")
    try:
        times = [float(t) for t in parts[2:4]] if len(parts) == 4 else []
    except ValueError:
        return False
    return any(t != 0 and not np.isnan(t) for t in times)  # nan reads as 0 in HumanML3D


def _captions(texts: dict[str, Path], unreadable: list[str], root: Path) -> dict | None:
    per_clip, sub_clip = [], 0
    for cid in sorted(texts):
        lines = _lines(texts[cid])
        if lines is None:
            unreadable.append(texts[cid].relative_to(root).as_posix())
            continue
        per_clip.append(len(lines))
        sub_clip += sum(map(_is_sub_clip, lines))
    if not per_clip:
        return None
    return {"total": sum(per_clip), "per_clip": _stats(per_clip), "sub_clip": sub_clip}


def dataset_info(root: str | Path, *, fps: float = FPS, progress: bool = True) -> dict:
    """Counts and statistics of a dataset folder (see the module docstring).

    Returns a dict with keys ``root``, ``layout``, ``clips`` (features, joints, texts, complete,
    mirrors), ``captions``, ``lengths`` (frames and seconds at ``fps``: min/median/mean/max,
    total, histogram), ``splits`` (name -> size and per-class counts), ``fewshot`` (task ->
    meta.json), ``classes`` (NTU-VIBE: names and clips per class present), ``stats`` (Mean/Std
    shapes), ``missing`` and ``unreadable``. Absent parts are None or empty, never an error.
    """
    root = Path(root)
    info: dict = {"root": str(root), "layout": "unknown", "fps": fps, "missing": []}
    info["unreadable"] = unreadable = []
    if not root.is_dir():
        info["missing"].append(f"{root} (the folder itself)")
        return info
    info["layout"] = detect_layout(root)
    folders = {"new_joint_vecs": ".npy", "new_joints": ".npy", "texts": ".txt"}
    files: dict[str, dict[str, Path]] = {}
    for name, suffix in folders.items():
        folder = root / name
        files[name] = {p.stem: p for p in folder.glob(f"*{suffix}")} if folder.is_dir() else {}
        if not folder.is_dir():
            info["missing"].append(f"{name}/")
    feats, joints, texts = files["new_joint_vecs"], files["new_joints"], files["texts"]
    ids = sorted(set(feats) | set(joints))
    info["clips"] = {
        "features": len(feats),
        "joints": len(joints),
        "texts": len(texts),
        "complete": len(set(feats) & set(joints) & set(texts)),
        "mirrors": sum(cid.startswith("M") for cid in ids),
    }
    lengths: dict[str, int] = {}
    for cid in progress_bar(ids, desc="info", unit="clip", enabled=progress):
        path = feats.get(cid) or joints[cid]
        if (rows := _rows(path)) is None:
            unreadable.append(path.relative_to(root).as_posix())
        else:
            lengths[cid] = rows
    frames = [n for n in lengths.values() if n > 0]
    info["lengths"] = (
        None
        if not frames
        else {
            "frames": _stats(frames),
            "seconds": {k: v / fps for k, v in _stats(frames).items()},
            "total_seconds": sum(frames) / fps,
            "histogram": _histogram(frames),
            "empty_clips": len(lengths) - len(frames),
        }
    )
    info["captions"] = _captions(texts, unreadable, root)

    info["splits"] = {}
    for path in split_list_files(root):
        name = path.relative_to(root).with_suffix("").as_posix().removeprefix("splits/")
        ids_in = _lines(path)
        if ids_in is None:
            unreadable.append(path.relative_to(root).as_posix())
            continue
        label_path = path.with_name(f"{path.stem}_y.txt")
        labels = _lines(label_path) if label_path.is_file() else None
        info["splits"][name] = {
            "size": len(ids_in),
            "missing_clips": sum(i not in feats for i in ids_in),
            "per_class": _class_counts(ids_in, labels),
        }
    if not info["splits"]:
        info["missing"].append("split lists (train.txt / val.txt / test.txt or splits/)")
    info["fewshot"] = {}
    fewshot = root / "splits" / "fewshot"
    for task in sorted(p for p in fewshot.glob("*") if p.is_dir()) if fewshot.is_dir() else []:
        try:
            info["fewshot"][task.name] = json.loads((task / "meta.json").read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            unreadable.append(f"splits/fewshot/{task.name}/meta.json")

    names = _lines(root / "ntu_classes.txt") if (root / "ntu_classes.txt").is_file() else None
    present = _class_counts(ids, None)
    if names is None and info["layout"] == "ntu-vibe":
        info["missing"].append("ntu_classes.txt")
    info["classes"] = (
        None
        if names is None and not present
        else {
            "num_names": None if names is None else len(names),
            "num_present": len(present or {}),
            "present": {
                y: {"name": names[y] if names and 0 <= y < len(names) else None, "clips": n}
                for y, n in (present or {}).items()
            },
        }
    )
    info["stats"] = {}
    for name in ("Mean.npy", "Std.npy"):
        path = root / name
        shape = None
        if path.is_file():
            try:
                shape = list(np.load(path, mmap_mode="r", allow_pickle=False).shape)
            except Exception:  # corrupt: reported as unreadable
                unreadable.append(name)
        else:
            info["missing"].append(name)
        info["stats"][name] = shape
    return info


def _class_name(y: int, info: dict) -> str:
    entry = ((info.get("classes") or {}).get("present") or {}).get(y)
    name = f" {entry['name']}" if entry and entry["name"] else ""
    return f"A{y + 1:03d}{name}"


def _row(d: dict, decimals: int | None) -> str:
    """'min 16, median 34, mean 36.6, max 64' (decimals=None: whole numbers stay whole)."""
    return ", ".join(
        f"{k} {v:.0f}" if decimals is None and v == int(v) else f"{k} {v:.{decimals or 1}f}"
        for k, v in d.items()
    )


def format_info(info: dict) -> str:
    """A readable multi-line summary of `dataset_info`'s dict."""
    out = [f"{info['root']} ({info['layout']} layout)"]
    if "clips" not in info:
        return "\n".join([*out, "missing: " + ", ".join(info["missing"])])
    c = info["clips"]
    out.append(
        f"clips: {c['features']} features, {c['joints']} joints, {c['texts']} texts "
        f"({c['complete']} with all three), {c['mirrors']} mirrors (ids starting with M)"
    )
    if cap := info["captions"]:
        per = cap["per_clip"]
        out.append(
            f"captions: {cap['total']} ({per['min']:g}–{per['max']:g} per clip, mean "
            f"{per['mean']:.2f}), {cap['sub_clip']} describe a sub-clip"
        )
    if lengths := info["lengths"]:
        fps, total = info["fps"], lengths["total_seconds"]
        out.append(
            f"lengths (feature rows) at {fps:g} fps: total {total:.1f} s ({total / 3600:.2f} h)"
        )
        out.append(f"  frames:  {_row(lengths['frames'], None)}")
        out.append(f"  seconds: {_row(lengths['seconds'], 2)}")
        if lengths["empty_clips"]:
            out.append(f"  {lengths['empty_clips']} empty clips (0 frames)")
        top = max(b["count"] for b in lengths["histogram"])
        for b in lengths["histogram"]:
            bar = "#" * round(30 * b["count"] / top)
            out.append(f"  {b['lo']:>5}–{b['hi']:<5} {bar:<30} {b['count']}")
    if info["splits"]:
        out.append("splits:")
    for name, s in info["splits"].items():
        miss = f" ({s['missing_clips']} without features)" if s["missing_clips"] else ""
        per = s["per_class"] or {}
        classes = ", ".join(f"{_class_name(y, info)}: {n}" for y, n in list(per.items())[:6])
        more = f", … {len(per) - 6} more classes" if len(per) > 6 else ""
        out.append(f"  {name}: {s['size']} clips{miss}" + (f" — {classes}{more}" if per else ""))
    for task, meta in info["fewshot"].items():
        out.append(f"few-shot {task}: {json.dumps(meta)}")
    if cls := info["classes"]:
        names = "no class names" if cls["num_names"] is None else f"{cls['num_names']} names"
        out.append(f"classes: {cls['num_present']} present ({names})")
        for y, entry in list(cls["present"].items())[:20]:
            out.append(f"  {_class_name(y, info)} (label {y}): {entry['clips']} clips")
        if len(cls["present"]) > 20:
            out.append(f"  … {len(cls['present']) - 20} more")
    stats = ", ".join(f"{k} {tuple(v) if v else 'absent'}" for k, v in info["stats"].items())
    out.append(f"normalisation: {stats}")
    if info["missing"]:
        out.append("missing: " + ", ".join(info["missing"]))
    if info["unreadable"]:
        shown = ", ".join(info["unreadable"][:5]) + (", …" if len(info["unreadable"]) > 5 else "")
        out.append(f"unreadable ({len(info['unreadable'])}, run `kinemic validate`): {shown}")
    return "\n".join(out)
