"""What every ``kinemic convert`` shares: a dataset folder that is complete or absent, clips
encoded only when their features are finite, and per-file problems reported as counted skips.

A converter writes into ``OUT.partial-<pid>`` beside ``OUT`` and renames it to ``OUT`` when
the last file is written, so a killed conversion leaves no folder under the name readers use.
The staging folder holds a lock for as long as its process lives (``fcntl.flock``, released
by the kernel even on ``kill -9``); the next conversion into ``OUT`` removes staging folders
whose lock is free and refuses to start beside one that is still held.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import secrets
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kinemic.errors import DataError, KinemicError

#: ``OUT`` is staged in ``OUT`` + this + the process id.
PARTIAL = ".partial-"
#: The lock file inside a staging folder; the writing process holds an exclusive flock on it.
LOCK_FILE = ".kinemic-writing"


def _abandoned(folder: Path) -> bool:
    """Whether no live process holds ``folder``'s lock (its conversion was killed)."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return True  # a folder gets its PARTIAL name only after its lock is taken
    except OSError:
        return False  # another user's, say: not ours to judge, so named in the error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise KinemicError(f"{out} is a file: the output must be a new (or empty) folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise KinemicError(
            f"{out} exists and is not empty: convert into a new folder, or pass --overwrite "
            "(overwrite=True) to replace it once the new dataset is complete"
        )


def _remove_leftovers(out: Path) -> None:
    """Remove what killed conversions into ``out`` left; refuse beside a live one."""
    for folder in sorted(out.parent.glob(glob.escape(out.name) + PARTIAL + "*")):
        if not _abandoned(folder):
            raise KinemicError(
                f"{folder} is being written by another conversion into {out}: wait for it to "
                "finish or stop it, or convert into another folder"
            )
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def staged_dataset(out: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging folder to write the dataset ``out`` into; it becomes ``out`` in one
    rename when the block ends without an exception, and is removed when it raises.

    ``out`` must not exist, or be an empty folder; a non-empty one is an error before anything
    is written, unless ``overwrite`` (then it is replaced only once the new one is complete).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> out = Path(tempfile.mkdtemp()) / "data"
        >>> with staged_dataset(out) as staging:
        ...     _ = (staging / "train.txt").write_text("a\\n")
        >>> sorted(p.name for p in out.iterdir())
        ['train.txt']
    """
    out = Path(os.path.abspath(out))  # "." or "x/.." has no name to put a suffix on
    _check_out(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KinemicError(f"{out.parent}: cannot create the output folder ({e})") from e
    _remove_leftovers(out)
    # Take the lock under a private name, then rename: a folder with the PARTIAL name is locked
    # from the moment it appears, so another conversion never mistakes it for a leftover.
    private = out.parent / f".{out.name}.{secrets.token_hex(4)}.new"
    try:
        private.mkdir()  # mode 0o777 less the umask, as for any new folder
        fd = os.open(private / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o666)
    except OSError as e:
        raise KinemicError(f"{out.parent}: cannot create a folder here ({e})") from e
    staging = out.parent / f"{out.name}{PARTIAL}{os.getpid()}"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(private, staging)
        yield staging
        _replace(staging, out)
        (out / LOCK_FILE).unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(fd)


def _replace(staging: Path, out: Path) -> None:
    """Put the finished ``staging`` folder at ``out``; an old ``out`` (overwrite) is moved
    aside first, and removed only once the new one is in place."""
    old = staging.with_name(staging.name + ".old")  # lock-free: a leftover if killed
    try:
        if out.is_dir() and any(out.iterdir()):  # overwrite was checked on entry
            os.rename(out, old)
        elif out.is_dir():
            out.rmdir()
        os.rename(staging, out)
    except OSError as e:
        if old.is_dir() and not out.exists():
            os.rename(old, out)
        raise KinemicError(
            f"{out}: cannot move the finished dataset here from {staging} ({e})"
        ) from e
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------ clip encoding


def encode_finite(
    joints: np.ndarray, *, path: str | Path, convention: str = "humanml3d"
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`kinemic.features.encode_clip` of joints (T, 22, 3) read from ``path``: features
    (T-1, 263) and joints recovered from them (T-1, 22, 3), or a :class:`DataError` naming
    ``path`` when either holds NaN or inf (checked before anything is written)."""
    from kinemic.features import encode_clip

    joints = np.asarray(joints)
    bad = ~np.isfinite(joints).all(axis=(1, 2))
    if bad.any():
        raise DataError(path, f"joints hold NaN or inf values in {bad.sum()} of {len(bad)} frames")
    with np.errstate(all="ignore"):  # degenerate joints divide by zero; reported below
        features, recovered = encode_clip(joints, convention=convention)
    bad = ~(np.isfinite(features).all(axis=1) & np.isfinite(recovered).all(axis=(1, 2)))
    if bad.any():
        raise DataError(
            path,
            f"degenerate joints: the 263-d features are NaN or inf in {bad.sum()} of "
            f"{len(bad)} frames (are the joints all zero, all at one point, or with hips or "
            "legs of zero length?)",
        )
    return features, recovered


# ----------------------------------------------------------------------------- counted skips


@dataclass
class SkippedFile:
    """An input file a conversion left out: ``kind`` says which rule (too-short, broken, ...),
    ``reason`` the problem found."""

    name: str
    kind: str
    reason: str


def file_error(error: KinemicError, path: Path) -> KinemicError:
    """``error`` as raised for input file ``path``: itself when its message names the file,
    else a :class:`DataError` naming it."""
    if path.name in str(error):
        return error
    return DataError(path, str(error))


def skip_reason(error: KinemicError, path: Path) -> str:
    """The problem in ``error`` without the file name that a skip line already shows."""
    if isinstance(error, DataError) and error.path is not None and error.path.name == path.name:
        return error.problem if error.line is None else f"line {error.line}: {error.problem}"
    return str(error)


def skip_lines(skipped: Sequence[SkippedFile], *, what: str = "files") -> list[str]:
    """A count by kind, then one line per skipped file."""
    if not skipped:
        return []
    counts = ", ".join(f"{kind} {n}" for kind, n in Counter(s.kind for s in skipped).items())
    return [f"skipped {len(skipped)} {what} ({counts})"] + [
        f"  skipped {s.name} ({s.kind}): {s.reason}" for s in skipped
    ]


def nothing_converted(src: Path, skipped: Sequence[SkippedFile], total: int) -> DataError:
    """The error when every input file was skipped: the counts and the first reasons."""
    counts = Counter(s.kind for s in skipped)
    first = "; ".join(f"{s.name} ({s.kind}): {s.reason}" for s in skipped[:3])
    return DataError(
        src,
        f"no clips written: all {total} files skipped "
        f"({', '.join(f'{kind} {n}' for kind, n in counts.items())}); first: {first}",
    )
