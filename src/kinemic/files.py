"""Atomic writes, and the one way to open a model folder.

Writes go to a temp file in the destination folder, fsync, then ``os.replace``: an interrupted
write never leaves a half-written file under the final name. The written file gets the mode
the user's umask gives any new file (``0o666 & ~umask``), as ``open(path, "w")`` would.

:func:`name_problem` is the one rule for a name that is joined to a folder (a clip id, a split
name): one plain file name, never a path out of the folder.

A model folder holds ``config.json`` whose ``format`` names its kind (:data:`MODEL_FORMATS`):
a prior, a fine-tuned generator or a T-MOR encoder. :func:`open_model_folder` resolves a folder
(or a training run: its latest checkpoint), reads and checks that file once, and says which
kind it is; the loaders (``load_prior``, ``load_generator``, ``load_tmor``) take what it
returns, and ``kinemic.models.load_model`` dispatches on the kind.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from kinemic.errors import DataError, KinemicError


def new_temp_file(path: str | Path, *, suffix: str = ".tmp") -> tuple[int, Path]:
    """Create a new, empty hidden file beside ``path``; returns (an fd open for writing, its path).

    Created with mode 0o666 so the umask (and a folder's default ACL) decides its permissions,
    as for any new file: ``tempfile.mkstemp`` would create it 0o600, unreadable to colleagues.
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary file name beside {path.name}")


def make_folder(path: str | Path) -> Path:
    """``path`` as a folder, made with its parents where missing; a KinemicError naming it when
    it, or a folder above it, is a file (an ``--out`` that names a file, not a folder)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        file = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise KinemicError(
            f"{path}: cannot make this folder: {file} is a file, not a folder; choose another "
            "output path"
        ) from None
    except OSError as e:
        raise KinemicError(f"{path}: cannot make this folder ({e.strerror or e})") from None
    return path


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temp file beside ``path``; on clean exit it replaces ``path`` in one rename.

    On an exception the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    if path.is_dir():
        raise KinemicError(f"{path} is a folder; expected the name of a file to write")
    make_folder(path.parent)
    fd, tmp = new_temp_file(path)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` to ``path`` atomically (the name is used as given: no ``.npy`` is added)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    write_bytes(path, buf.getvalue())


def read_npy(path: str | Path, *, mmap: bool = False) -> np.ndarray:
    """The array of a ``.npy`` file of real numbers (bool, integer or float), without pickles;
    ``mmap`` maps it read-only instead of reading it.

    The header is checked against the file's size before anything is allocated, so a header
    declaring billions of rows is an error, not a memory error. A missing, truncated or damaged
    file, or one of strings, objects or complex numbers, is a DataError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found: expected a NumPy .npy array")
    try:
        with open(path, "rb") as f:
            _check_npy_header(f, path.stat().st_size, path)
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(path, f"cannot read as a .npy array ({e})") from None


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive by name, each checked as :func:`read_npy` checks a
    file; a missing, truncated or damaged archive is a DataError naming it."""
    import zipfile
    import zlib

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found: expected a NumPy .npz archive")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                data = archive.read(member)
                f = io.BytesIO(data)
                _check_npy_header(f, len(data), path, member=member)
                f.seek(0)
                arrays[member.removesuffix(".npy")] = np.lib.format.read_array(f)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(path, f"cannot read as a .npz archive ({e})") from None
    return arrays


def _check_npy_header(f: IO[bytes], size: int, path: Path, member: str | None = None) -> None:
    """Read the ``.npy`` header at the start of ``f`` (``size`` bytes in all) and raise unless
    it declares real numbers filling exactly the bytes after it."""
    from numpy.lib import format as npy_format

    where = "" if member is None else f"{member}: "
    version = npy_format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise DataError(path, f"{where}unsupported .npy format version {version}")
    if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(f)
    else:
        shape, _, dtype = npy_format.read_array_header_2_0(f)
    if dtype.kind not in "biuf":
        raise DataError(path, f"{where}holds {dtype} values; expected real numbers")
    declared, found = math.prod(shape) * dtype.itemsize, size - f.tell()
    if declared != found or min(shape, default=0) < 0:
        raise DataError(
            path,
            f"{where}the header declares a {dtype} array of shape {shape} ({declared} bytes) "
            f"but {found} bytes follow it: the file is truncated or damaged",
        )


def read_safetensors(path: str | Path) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file as CPU torch tensors; a missing, truncated or
    damaged file is a KinemicError naming it (never safetensors' own error)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        return load_file(path)
    except FileNotFoundError:
        raise KinemicError(f"{path}: missing file: expected safetensors weights") from None
    except (SafetensorError, OSError) as e:
        raise KinemicError(
            f"{path}: cannot read as a safetensors file ({e}): it is truncated or damaged; "
            "write it again (or copy it again)"
        ) from None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an entry of a folder it is joined to (None when it can).

    The rule for every clip id read from a split list and every split name: one plain file
    name of printable characters (spaces inside allowed), at most 200 bytes, without a path
    separator, ``:`` or a leading dot (so no ``.``, ``..`` or hidden file) and without space
    around it. Every real id passes: ``000021``, ``M000021``, ``S001C001P001R001A001``,
    ``02_01_000``, ``synth_A099_00001``.
    """
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return f"{name!r} names a folder, not a file in it"
    if any(sep in name for sep in "/\\"):
        return "it holds a path separator ('/' or '\\')"
    if ":" in name:
        return "it holds ':' (a drive or stream on Windows)"
    if not name.isprintable():
        bad = next(ch for ch in name if not ch.isprintable())
        return f"it holds the unprintable character {bad!r}"
    if name.startswith("."):
        return "it starts with '.' (a hidden file)"
    if name != name.strip():
        return "it starts or ends with white space"
    if len(name.encode("utf-8")) > 200:
        return f"it is {len(name.encode('utf-8'))} bytes long (at most 200)"
    return None


# ------------------------------------------------------------------------------ model folders

ModelKind = Literal["prior", "generator", "tmor"]
CONFIG_FILE = "config.json"
#: A training run folder names its latest complete checkpoint in this file.
LATEST = "latest"
#: A checkpoint folder is complete when it holds this file (written last).
TRAINER_FILE = "trainer.json"
#: kind -> (the ``format`` its config.json names, the version this kinemic writes and reads).
MODEL_FORMATS: dict[str, tuple[str, int]] = {
    "prior": ("kinemic-prior", 1),
    "generator": ("kinemic-generator", 1),
    "tmor": ("kinemic-tmor", 1),
}
_NOUN = {"prior": "prior", "generator": "fine-tuned generator", "tmor": "T-MOR encoder"}
_WRITER = {
    "prior": "kinemic pretrain or kinemic import-mdm",
    "generator": "kinemic finetune",
    "tmor": "kinemic tmor pretrain",
}


@dataclass(frozen=True)
class ModelFolder:
    """An opened model folder: its ``kind``, the folder itself (a training run resolved to its
    latest checkpoint) and its parsed ``config.json``."""

    kind: ModelKind
    path: Path
    config: dict[str, Any]

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _expected(kinds: list[str]) -> str:
    """What to pass: a prior or a fine-tuned generator folder (written by ...), or a run."""
    nouns = _either([f"a {_NOUN[k]}" for k in kinds])
    writers = _either([_WRITER[k] for k in kinds])
    return f"{nouns} folder (written by {writers}), or a training run folder"


def _kind_mismatch(given: Path, folder: ModelFolder, expect: list[str]) -> KinemicError:
    found = folder.kind
    if found == "prior" and expect == ["generator"]:
        return KinemicError(
            f"{given} is a prior, not a fine-tuned generator: fine-tune it first (kinemic "
            f"finetune --prior {given} ...), or pass it where a prior is expected (--prior)"
        )
    if found == "generator" and expect == ["prior"]:
        prior = folder.config.get("prior", {}).get("path", "?")
        return KinemicError(
            f"{given} is a fine-tuned generator, not a prior; pass the prior it came from ({prior})"
        )
    formats = _either([repr(MODEL_FORMATS[k][0]) for k in expect])
    return KinemicError(
        f"{folder.config_file}: format {folder.config.get('format')!r}, expected {formats} "
        f"({given} is a {_NOUN[found]}; pass {_expected(expect)})"
    )


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from itself or from a run folder (through its ``latest`` file)."""
    path = Path(path)
    if (path / TRAINER_FILE).is_file():
        return path
    if (path / LATEST).is_file():
        target = path / (path / LATEST).read_text(encoding="utf-8").strip()
        if not (target / TRAINER_FILE).is_file():
            raise KinemicError(
                f"{path / LATEST} points to {target}, which is not a complete checkpoint "
                f"(no {TRAINER_FILE}); pass one of the folders in {path / 'checkpoints'} instead"
            )
        return target
    raise KinemicError(
        f"{path}: not a training run or checkpoint (expected a '{LATEST}' file or "
        f"'{TRAINER_FILE}'); --resume takes the folder that --out wrote"
    )


def open_model_folder(
    path: str | Path | ModelFolder, *, expect: set[str] | None = None
) -> ModelFolder:
    """Open a model folder, or a training run folder (``kinemic.training``: its latest
    checkpoint): read its ``config.json`` once and check ``format`` and ``version``.

    ``expect``: the kinds the caller can use (None: any); a folder of another kind is refused
    with a message saying what it is and what to pass instead. An already opened
    :class:`ModelFolder` is returned as it is (after the same check of its kind). Raises
    ``KinemicError`` naming the folder for a missing folder, a folder without ``config.json``,
    invalid JSON, an unknown format or an unsupported version.
    """
    kinds = [k for k in MODEL_FORMATS if expect is None or k in expect]
    if expect is not None and (not kinds or set(expect) - set(MODEL_FORMATS)):
        raise ValueError(f"expect must hold kinds of {sorted(MODEL_FORMATS)}, found {expect}")
    if isinstance(path, ModelFolder):
        if path.kind not in kinds:
            raise _kind_mismatch(path.path, path, kinds)
        return path
    given = Path(path)
    if not given.exists():
        raise KinemicError(f"{given}: no such folder; expected {_expected(kinds)}")
    folder = given
    if not (given / CONFIG_FILE).is_file():
        if not (given / LATEST).is_file():
            nouns = _either([f"a {_NOUN[k]}" for k in kinds])
            raise KinemicError(
                f"{given}: not {nouns} folder (no {CONFIG_FILE}) nor a training run (no 'latest'); "
                f"pass {_expected(kinds)}"
            )
        folder = resolve_checkpoint(given)
        if not (folder / CONFIG_FILE).is_file():
            raise KinemicError(
                f"{folder}: the latest checkpoint of {given} has no {CONFIG_FILE}; pass "
                f"{_expected(kinds)}"
            )
    file = folder / CONFIG_FILE
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise KinemicError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise KinemicError(f"{file}: expected a JSON object, found {type(config).__name__}")
    fmt = config.get("format")
    kind = next((k for k, (f, _) in MODEL_FORMATS.items() if f == fmt), None)
    if kind is None:
        formats = _either([repr(MODEL_FORMATS[k][0]) for k in kinds])
        raise KinemicError(
            f"{file}: not a kinemic {_either([_NOUN[k] for k in kinds])} config "
            f"(format {fmt!r}, expected {formats})"
        )
    version = MODEL_FORMATS[kind][1]
    if config.get("version") != version:
        raise KinemicError(
            f"{file}: {fmt} version {config.get('version')!r}; this kinemic reads version "
            f"{version} (a folder written by another kinemic version: use that version, or "
            "write the folder again with this one)"
        )
    opened = ModelFolder(kind=kind, path=folder, config=config)  # type: ignore[arg-type]
    if kind not in kinds:
        raise _kind_mismatch(given, opened, kinds)
    return opened
