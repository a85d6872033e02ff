"""Records of the protocol's runs: their keys, their record files and the claims on them.

One (mode, seed) run of :mod:`kinemic.har.protocol` that has finished is written to
``runs/<mode>-seed<s>.json`` (:func:`run_record_path`) with a key: the SHA-256 of everything
its figures depend on (the mode's training clips and labels, the validation clips, the model
and training settings, the seed and the thread count; :func:`run_keys`). A run is finished
when its record holds the key it would be trained with now (:func:`finished_run`); a record
whose key differs is trained again and overwritten.

Before a run trains it is claimed (``runs/<mode>-seed<s>.claim``; :func:`claim_run`), so
several processes evaluating into the same folder share the runs: a run that another live
process has claimed is left to it and waited for. A claim names its process by host, pid and
start time (from ``/proc``, where there is one), and its file's modification time is its
heartbeat, refreshed every :data:`HEARTBEAT_SECONDS` while the claiming process lives
(:class:`ClaimHeartbeat`). A claim has expired, and is taken over, when its process is gone,
when its pid now belongs to a process started at another time (the pid was reused), or when
its heartbeat is older than :data:`EXPIRY_SECONDS` (a hung process, or one on another machine
that is gone). ``reclaim=True`` (``kinemic evaluate --reclaim``) takes over live claims too.
A waiting process says what it waits for (:func:`claim_note`). The claim is released
(:func:`release_run`) once the record is written, or when the run does not finish; a process
releases only its own claims.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from kinemic.har.config import ProtocolConfig
    from kinemic.har.data import ProtocolData

__all__ = [
    "ClaimHeartbeat",
    "claim_note",
    "claim_run",
    "finished_run",
    "release_run",
    "run_keys",
    "run_record_path",
    "write_run",
]

#: A claiming process refreshes its claims' heartbeat this often, in seconds.
HEARTBEAT_SECONDS = 30.0
#: A claim whose heartbeat is older than this many seconds has expired.
EXPIRY_SECONDS = 300.0
#: An unreadable claim (being written now, or left empty by a killed process) expires sooner.
_UNREADABLE_SECONDS = 30.0


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
    # what picks runs and where they train, not what they compute ("cpu" is train.cpu)
    for free in ("modes", "seeds", "jobs", "threads", "device"):
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


def process_start(pid: int) -> str | None:
    """When process ``pid`` started: this boot's id and the clock tick since boot it started
    at (``/proc``); None where there is no ``/proc`` or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    # the fields after the command name (which may hold spaces and parentheses): field 3 on;
    # field 22 is the start time
    return f"{boot}:{stat.rpartition(')')[2].split()[19]}"


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": process_start(os.getpid())}


def _read_claim(path: Path) -> tuple[bytes, dict, float] | None:
    """A claim's bytes, its fields ({} when unreadable) and heartbeat; None when absent."""
    try:
        raw, beat = path.read_bytes(), path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        info = json.loads(raw)
        int(info["pid"])
    except (ValueError, TypeError, KeyError):  # being written now, or left by a killed process
        info = {}
    return raw, info, beat


def _expired(info: dict, beat: float, now: float) -> str | None:
    """Why a claim has expired; None while its process may still be training the run."""
    if not info:
        return None if now - beat < _UNREADABLE_SECONDS else "its claim file is unreadable"
    if now - beat > EXPIRY_SECONDS:
        return f"its heartbeat stopped {now - beat:.0f} s ago"
    if info.get("host") != socket.gethostname():
        return None  # another machine's process: its heartbeat tells
    pid = int(info["pid"])
    if Path("/proc/self/stat").exists():
        started = process_start(pid)
        if started is None:
            return f"its process {pid} is gone"
        if info.get("started") not in (None, started):
            return f"pid {pid} now belongs to another process"
        return None
    try:  # no /proc: whether the pid exists is all there is to know
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"its process {pid} is gone"
    except OSError:  # not ours to signal: it exists
        pass
    return None


def claim_run(runs_dir: Path, mode: str, seed: int, *, reclaim: bool = False) -> bool:
    """Claim a run for this process (an exclusive ``.claim`` file beside its record); False
    when a live process holds it. An expired claim is taken over, and with ``reclaim`` a live
    one too (its process, if it still trains the run, writes the same record)."""
    path = _claim_path(runs_dir, mode, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            found = _read_claim(path)
            if found is None:
                continue
            raw, info, beat = found
            if not reclaim and _expired(info, beat, time.time()) is None:
                return False
            again = _read_claim(path)
            if again is not None and again[0] == raw:  # not claimed anew meanwhile
                path.unlink(missing_ok=True)
            continue
        now = time.time()
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps({**_me(), "mode": mode, "seed": seed, "since": now}))
        return True
    return False


def claim_note(runs_dir: Path, mode: str, seed: int, *, now: float | None = None) -> str:
    """What a process waiting for a run another process holds says about it."""
    now = time.time() if now is None else now
    found = _read_claim(_claim_path(runs_dir, mode, seed))
    what = f"waiting for run {mode!r} seed {seed}"
    if found is None:
        return f"{what}: its claim was just released"
    _, info, beat = found
    if not info:
        return f"{what}: its claim {_claim_path(runs_dir, mode, seed)} is being written"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", beat)))
    return (
        f"{what}, claimed by pid {info['pid']} on {info.get('host', '?')} since {since} "
        f"(heartbeat {max(now - beat, 0):.0f} s ago; it expires after {EXPIRY_SECONDS:.0f} s "
        "without one); --reclaim (reclaim=True) takes it over"
    )


def release_run(runs_dir: Path, mode: str, seed: int) -> None:
    """Drop this process's claim on a run (its record is written, or it will not finish); a
    claim another process has taken over (``reclaim``) is left to it."""
    path = _claim_path(runs_dir, mode, seed)
    found = _read_claim(path)
    if found is not None and {k: found[1].get(k) for k in ("host", "pid", "started")} == _me():
        path.unlink(missing_ok=True)


class ClaimHeartbeat:
    """Keeps this process's claims alive: a daemon thread touches each held claim's file
    every ``every`` seconds while the runs train (in this process or in its workers).

    :meth:`start` and :meth:`stop` (or ``with``); :meth:`hold` and :meth:`drop` say which runs
    are held."""

    def __init__(self, runs_dir: Path, *, every: float = HEARTBEAT_SECONDS):
        self.runs_dir, self.every = Path(runs_dir), every
        self._held: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="claim heartbeat", daemon=True)

    def hold(self, mode: str, seed: int) -> None:
        with self._lock:
            self._held.add((mode, seed))

    def drop(self, mode: str, seed: int) -> None:
        with self._lock:
            self._held.discard((mode, seed))

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                held = list(self._held)
            for mode, seed in held:
                with contextlib.suppress(OSError):  # released meanwhile, or the folder is gone
                    os.utime(_claim_path(self.runs_dir, mode, seed))

    def start(self) -> ClaimHeartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> ClaimHeartbeat:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
