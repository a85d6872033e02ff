"""Records of the protocol's runs: their keys, their record files and the claims on them.

One (mode, seed) run of :mod:`kinemic.har.protocol` that has finished is written to
``runs/<mode>-seed<s>.json`` (:func:`run_record_path`) with a key: the SHA-256 of everything
its figures depend on (the mode's training clips and labels, the validation clips, the model
and training settings, the seed and the thread count; :func:`run_keys`). A run is finished
when its record holds the key it would be trained with now (:func:`finished_run`); a record
whose key differs is trained again and overwritten.

Before a run trains it is claimed (``runs/<mode>-seed<s>.claim``, holding the process id and
the host name; :func:`claim_run`), so several processes evaluating into the same folder share
the runs: a run that another live process has claimed is left to it, and a claim whose process
is gone is taken over. The claim is released (:func:`release_run`) once the record is written,
or when the run does not finish.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from kinemic.har.config import ProtocolConfig
    from kinemic.har.data import ProtocolData

__all__ = ["claim_run", "finished_run", "release_run", "run_keys", "run_record_path", "write_run"]


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def run_keys(data: ProtocolData, config: ProtocolConfig, threads: int) -> dict[str, str]:
    """Per mode label, the SHA-256 of everything a run's figures depend on but its seed."""
    settings = {**asdict(config), "train": {**asdict(config.train), "progress": None}}
    for free in ("modes", "seeds", "jobs", "threads"):  # what picks runs, not what they compute
        settings.pop(free)
    from kinemic import __version__

    common = json.dumps(
        {
            "settings": settings,
            "threads": threads,
            "classes": data.num_classes,
            "val": _digest(data.val.x, data.val.y),
            "kinemic": __version__,
        },
        sort_keys=True,
    )
    return {
        label: hashlib.sha256(f"{common}\0{label}\0{_digest(s.x, s.y)}".encode()).hexdigest()
        for label, s in data.train.items()
    }


def run_record_path(runs_dir: Path, mode: str, seed: int) -> Path:
    """Where a run's record lives: ``runs/<mode as a file name>-seed<s>.json``."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", mode).strip("-").lower()
    return Path(runs_dir) / f"{slug}-seed{seed}.json"


def finished_run(runs_dir: Path, mode: str, seed: int, key: str) -> dict | None:
    """The record of the run if it has finished with this ``key``; None when it has not (no
    record, a damaged one, or one of other data or settings)."""
    path = run_record_path(runs_dir, mode, seed)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent or damaged: not finished
        return None
    if record.get("key") != key or record.get("mode") != mode or record.get("seed") != seed:
        return None
    return record


def write_run(runs_dir: Path, record: dict) -> None:
    """Write a finished run's record (with its ``key``) atomically."""
    from kinemic.files import write_text

    path = run_record_path(runs_dir, record["mode"], record["seed"])
    write_text(path, json.dumps(record, allow_nan=False) + "\n")


def _claim_path(runs_dir: Path, mode: str, seed: int) -> Path:
    return run_record_path(runs_dir, mode, seed).with_suffix(".claim")


def _claim_alive(path: Path) -> bool:
    """Whether the process that wrote a claim may still be training its run."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):  # being written now, or left empty by a killed process
        return time.time() - path.stat().st_mtime < 30
    if info.get("host") != socket.gethostname():
        return True  # another machine's process: trust it
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except (OSError, KeyError, ValueError):  # not ours to signal, or an odd claim: trust it
        return True
    return True


def claim_run(runs_dir: Path, mode: str, seed: int) -> bool:
    """Claim a run for this process (an exclusive ``.claim`` file beside its record); False
    when a live process holds it. A claim whose process is gone is taken over."""
    path = _claim_path(runs_dir, mode, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _claim_alive(path):
                return False
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        return True
    return False


def release_run(runs_dir: Path, mode: str, seed: int) -> None:
    """Drop this process's claim on a run (its record is written, or it will not finish)."""
    _claim_path(runs_dir, mode, seed).unlink(missing_ok=True)
