"""Packed corpora on disk: every clip's rows in one file, memory-mapped, written once per machine.

A training corpus of HumanML3D's size is ~23k ``.npy`` files and ~3.5 GB of float32 rows. Read
into each process's memory, every rank holds its own copy (and twice that while concatenating).
A *pack* holds the rows of all clips in one raw file, ``rows.bin``, that every process maps
read-only (``numpy.memmap``): the operating system keeps one copy in its page cache, shared by
all processes of the machine, and reads only the pages a batch touches.

Layout of a pack folder ``<cache>/<key>/``::

    rows.bin       the rows of every clip, back to back (C-order, the dtype and row shape of
                   meta.json); clip i is rows[offsets[i]:offsets[i + 1]]
    index.npz      the integer tables of the corpus (offsets, caption tables, ...)
    meta.json      format, row dtype and shape, row count, and the corpus's other fields

``key`` is a hash of what the pack was built from: the reading settings and, per source
folder, the name, size and modification time of every file read (:func:`folder_signature`),
so a changed folder gives another key and a new pack. A pack is built in a temp folder beside
its place and renamed into place when complete; processes that open the same key at once
take a file lock, so one builds while the others wait and then open what it wrote (without
``fcntl``, e.g. on Windows, each may build; the first rename wins and the others use it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinemic.errors import KinemicError
from kinemic.files import make_folder

PACK_FORMAT = "kinemic-pack/1"
ROWS_FILE = "rows.bin"
INDEX_FILE = "index.npz"
META_FILE = "meta.json"


def default_pack_dir() -> Path:
    """Where packs go when no folder is given: ``corpus/`` beside the text-embedding cache
    (``$KINEMIC_CACHE/corpus``, else ``~/.cache/kinemic/corpus``)."""
    from kinemic.text.protocol import default_cache_dir

    return default_cache_dir().parent / "corpus"


def folder_signature(root: Path, parts: Sequence[str]) -> list:
    """(name, size, mtime in ns) of every file directly in ``root``'s subfolders ``parts``
    (``""``: ``root`` itself), sorted: what a pack of ``root`` depends on."""
    out: list = []
    for part in parts:
        folder = root / part if part else root
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            for e in entries:
                if e.is_file():
                    st = e.stat()
                    out.append([f"{part}/{e.name}", st.st_size, st.st_mtime_ns])
    return sorted(out)


def pack_key(what: dict[str, Any]) -> str:
    """A short hash of ``what`` (JSON-able): the name of a pack folder."""
    text = json.dumps({"format": PACK_FORMAT, **what}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class RowWriter:
    """Appends arrays of one row shape to ``rows.bin`` of a pack being built; counts rows."""

    def __init__(self, folder: Path, row_shape: tuple[int, ...], dtype=np.float32):
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._file = open(folder / ROWS_FILE, "wb")  # noqa: SIM115 (closed by close())

    def add(self, array: np.ndarray) -> tuple[int, int]:
        """Write ``array`` (T, *row_shape); returns its (first row, end row)."""
        if array.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {array.shape[1:]}, expected {self.row_shape}")
        self._file.write(np.ascontiguousarray(array, dtype=self.dtype).tobytes())
        first = self.rows
        self.rows += len(array)
        return first, self.rows

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


@dataclass
class Pack:
    """An opened pack: ``rows`` (N, *row_shape) read-only memmap, ``index`` its integer tables,
    ``meta`` the rest, ``folder`` where it lies."""

    folder: Path
    rows: np.ndarray
    index: dict[str, np.ndarray]
    meta: dict[str, Any]


def write_pack(
    folder: Path, writer: RowWriter, index: dict[str, np.ndarray], meta: dict[str, Any]
) -> None:
    """Finish a pack being built in ``folder``: close the rows, write the index and meta."""
    writer.close()
    np.savez(folder / INDEX_FILE, **index)
    info = {
        "format": PACK_FORMAT,
        "dtype": writer.dtype.str,
        "row_shape": list(writer.row_shape),
        "rows": writer.rows,
        **meta,
    }
    (folder / META_FILE).write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")


def read_pack(folder: Path) -> Pack:
    """Open a complete pack; ValueError when it is damaged (sizes or format do not match)."""
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != PACK_FORMAT:
        raise ValueError(f"format {meta.get('format')!r}, expected {PACK_FORMAT!r}")
    dtype, shape = np.dtype(meta["dtype"]), (int(meta["rows"]), *meta["row_shape"])
    path = folder / ROWS_FILE
    expected = int(np.prod(shape)) * dtype.itemsize
    if path.stat().st_size != expected:
        raise ValueError(f"{ROWS_FILE} holds {path.stat().st_size} bytes, expected {expected}")
    # an empty file cannot be mapped; no clips is an error before a pack is written
    rows = np.memmap(path, dtype=dtype, mode="r", shape=shape)
    with np.load(folder / INDEX_FILE, allow_pickle=False) as z:
        index = {k: z[k] for k in z.files}
    return Pack(folder, rows, index, meta)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (made if missing) while the block runs; none without
    ``fcntl``."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone keeps packs whole
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_or_build(cache: Path, key: str, build: Callable[[Path], None]) -> Pack:
    """The pack ``cache/key``: opened when it exists, else built by ``build(temp folder)``
    (which writes it with :class:`RowWriter` and :func:`write_pack`) and renamed into place.

    Several processes (the ranks of one machine) may call this at once: one builds, the others
    wait on ``cache/key.lock`` and open the result. A damaged pack is rebuilt, with a warning.
    """
    make_folder(cache)
    final = cache / key
    with _lock(cache / f"{key}.lock"):
        if final.is_dir():
            try:
                return read_pack(final)
            except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
                warnings.warn(
                    f"{final}: damaged corpus pack ({type(e).__name__}: {e}); building it again",
                    RuntimeWarning,
                    stacklevel=3,
                )
                shutil.rmtree(final, ignore_errors=True)
        tmp = cache / f".{key}.{secrets.token_hex(6)}.tmp"
        tmp.mkdir(mode=0o777)  # the umask decides, as for every file kinemic writes (not 0o700)
        try:
            build(tmp)
            try:
                os.rename(tmp, final)
            except OSError:  # another process (without a lock) renamed its pack first
                if not final.is_dir():
                    raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            return read_pack(final)
        except (OSError, ValueError, KeyError) as e:
            raise KinemicError(f"{final}: the corpus pack just written cannot be read: {e}") from e
