"""The HumanML3D folder layout: features, joints, captions, split lists and Mean/Std.

::

    root/new_joint_vecs/<id>.npy   features (T, 263) float32
    root/new_joints/<id>.npy       joints (T, 22, 3) or (T, 66) float32
    root/texts/<id>.txt            one caption per line: ``caption#tok/POS tok/POS ...#start#end``
    root/{train,val,test}.txt      split lists, one id per line
    root/Mean.npy, root/Std.npy    (263,) normalisation statistics (optional)

Ids starting with ``M`` are left/right mirrors of the id without the ``M``. Every reader error is a
:class:`~kinemic.errors.DataError` that names the file (and the line, for text files).

An id ``<id>#<n>`` names a *cut clip*: the rows ``[int(start * 20), int(end * 20))`` of clip
``<id>`` that its n-th caption (1-based, in file order, blank lines aside) describes, as a clip
of its own whose one caption is that one (:func:`cut_clip_id`). The readers give its features,
joints and caption; soft positives use them to treat each sub-clip caption as its own clip, as
the KineMIC reference does.

A split list is checked by the rules :mod:`kinemic.validate` applies to it, through the same
functions (:func:`list_lines`, :func:`id_list_problems`, :func:`overlap_problems`): every id is
one plain file name (``kinemic.files.name_problem``, so no id reaches outside the dataset),
listed once, with a features file; no blank line inside the list; train, val and test share no
id. A reader raises the first problem; ``kinemic validate`` lists them all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kinemic.constants import FEATURE_DIM, FPS, NUM_JOINTS
from kinemic.errors import DataError
from kinemic.files import name_problem, read_npy, save_npy, write_text


def is_mirror(clip_id: str) -> bool:
    """True for the left/right mirrored copy of a clip (HumanML3D names it ``M<id>``)."""
    return clip_id.startswith("M")


#: Between a clip id and a caption number in the id of a cut clip.
CUT_MARK = "#"
_CUT_ID = re.compile(r"(.+)#([1-9][0-9]*)")


def cut_clip_id(clip_id: str, caption: int) -> str:
    """The id of the cut clip of ``clip_id``'s ``caption``-th caption (1-based): ``000021#2``."""
    return f"{clip_id}{CUT_MARK}{caption}"


def parse_cut_clip_id(clip_id: str) -> tuple[str, int] | None:
    """(clip id, caption number) of a cut clip's id; None for a plain id."""
    found = _CUT_ID.fullmatch(clip_id)
    return None if found is None else (found[1], int(found[2]))


def caption_rows(caption: Caption, rows: int) -> tuple[int, int]:
    """The rows [first, end) of a clip of ``rows`` rows that ``caption`` describes: all of them
    for a whole-clip caption, else ``[int(start * 20), min(int(end * 20), rows))`` as
    HumanML3D's loaders cut (``end`` may come out at or below ``first``: an empty span)."""
    if caption.whole_clip:
        return 0, rows
    return int(caption.start * FPS), min(int(caption.end * FPS), rows)


# ---------------------------------------------------------------------------------------------
# The rules for list files (split lists, label lists), shared with kinemic.validate

#: The split lists of one folder that must not share an id.
DISJOINT_PARTS = ("train", "val", "test")

#: A problem of a list file: (1-based line, or None for the whole file; what is wrong).
ListProblem = tuple[int | None, str]


def clip_id_problem(clip_id: str) -> str | None:
    """Why ``clip_id`` cannot be a clip id (None when it can): it must be one plain file name,
    so ``new_joint_vecs/<id>.npy`` stays inside the dataset (``kinemic.files.name_problem``)."""
    why = name_problem(clip_id)
    if why is None:
        return None
    return (
        f"{clip_id!r} is not a clip id: {why}; an id is one file name in new_joint_vecs/ "
        "without .npy (e.g. 000021, M000021, S001C001P001R001A001)"
    )


def list_lines(text: str) -> tuple[list[str], list[ListProblem]]:
    """The stripped lines of a list file (entry k is line k + 1) and its blank-line problems.

    Trailing blank lines are dropped; a blank line before the last entry is a problem: it
    would shift the line-by-line pairing of ids and labels.
    """
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    blank = [
        (n, "blank line: expected one entry per line") for n, x in enumerate(lines, 1) if not x
    ]
    return lines, blank


def id_list_problems(ids: Sequence[str], has_clip: Callable[[str], bool]) -> list[ListProblem]:
    """The problems of a split list's ids (``ids[k]`` is line k + 1; blank entries are left to
    :func:`list_lines`): an id that is not a plain file name, an id listed twice, an id
    without features (``has_clip`` is asked only about plain ids)."""
    problems: list[ListProblem] = []
    first: dict[str, int] = {}
    for n, clip_id in enumerate(ids, start=1):
        if not clip_id:
            continue
        if (why := clip_id_problem(clip_id)) is not None:
            problems.append((n, why))
        elif clip_id in first:
            problems.append((n, f"duplicate id {clip_id} (first on line {first[clip_id]})"))
        else:
            first[clip_id] = n
            if not has_clip(clip_id):
                hint = " (write ids without .npy)" if clip_id.endswith(".npy") else ""
                problem = f"lists {clip_id} but new_joint_vecs/{clip_id}.npy does not exist{hint}"
                problems.append((n, problem))
    return problems


def overlap_problems(parts: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """(part, problem) for each pair of the train, val and test lists of one folder
    (``parts``: name -> ids) that share ids; the problem is put on the later name."""
    found = {k: set(v) - {""} for k, v in parts.items() if k in DISJOINT_PARTS}
    names = sorted(found)
    problems = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if both := sorted(found[a] & found[b]):
                problem = (
                    f"{len(both)} ids also in {a}.txt (e.g. {both[0]}): splits must not overlap"
                )
                problems.append((b, problem))
    return problems


def raise_first(path: Path, problems: Sequence[ListProblem]) -> None:
    """Raise the first of ``problems`` of list file ``path`` as a DataError (if any)."""
    if problems:
        line, problem = problems[0]
        if len(problems) > 1:
            more = len(problems) - 1
            problem += f" (and {more} more problem{'s' * (more > 1)} in this file)"
        raise DataError(path, problem, line=line)


def read_list_file(path: Path, what: str) -> list[str]:
    """The entries of a list file (:func:`list_lines`); a missing or unreadable file, or a blank
    line inside the list, is a DataError naming the file."""
    if not path.is_file():
        raise DataError(path, f"missing file: expected {what}, one per line")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(path, f"cannot be read ({e.strerror or e})") from None
    lines, problems = list_lines(text)
    raise_first(path, problems)
    return lines


# ---------------------------------------------------------------------------------------------
# Captions


@dataclass
class Caption:
    """One caption line. ``start == end == 0`` means the caption describes the whole clip;
    otherwise it describes only the sub-clip [start, end] (seconds)."""

    text: str
    tokens: list[str] = field(default_factory=list)  # each "word/POS"
    start: float = 0.0
    end: float = 0.0

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a caption's text is empty")
        if "#" in self.text or "\n" in self.text:
            raise ValueError(f"a caption's text may not contain '#' or a newline: {self.text!r}")
        if self.start < 0 or self.start > self.end:
            raise ValueError(
                f"caption span needs 0 <= start <= end, found {self.start}..{self.end}"
            )

    @classmethod
    def from_text(cls, text: str, *, start: float = 0.0, end: float = 0.0) -> Caption:
        """A caption whose tokens come from :func:`tokenize`."""
        return cls(text.strip(), tokenize(text), start, end)

    @property
    def whole_clip(self) -> bool:
        return self.start == 0.0 and self.end == 0.0


def parse_caption_line(
    line: str, *, path: str | Path | None = None, line_no: int | None = None
) -> Caption:
    """Parse ``caption#tokens#start#end`` (or the short ``caption#tokens``, start=end=0).

    A ``nan`` start or end reads as 0.0, as the HumanML3D loaders do.
    """
    fields = line.rstrip("\r\n").split("#")
    if len(fields) not in (2, 4):
        raise DataError(
            path,
            f"malformed caption line: expected 4 '#'-separated fields "
            f"(caption#tokens#start#end), found {len(fields)}",
            line=line_no,
        )
    text, tokens = fields[0].strip(), fields[1].split()
    if not text:
        raise DataError(path, "malformed caption line: the caption text is empty", line=line_no)
    start = end = 0.0
    if len(fields) == 4:
        try:
            start, end = float(fields[2]), float(fields[3])
        except ValueError:
            raise DataError(
                path,
                f"malformed caption line: start/end must be numbers (seconds), "
                f"found {fields[2]!r} and {fields[3]!r}",
                line=line_no,
            ) from None
        start = 0.0 if math.isnan(start) else start
        end = 0.0 if math.isnan(end) else end
        if start < 0 or start > end or math.isinf(end):
            raise DataError(
                path,
                f"malformed caption line: expected 0 <= start <= end, found start={start} "
                f"end={end}",
                line=line_no,
            )
    return Caption(text, tokens, start, end)


def format_caption_line(caption: Caption) -> str:
    """The line (without newline) that :func:`parse_caption_line` reads back as ``caption``."""
    return f"{caption.text}#{' '.join(caption.tokens)}#{float(caption.start)}#{float(caption.end)}"


# ---------------------------------------------------------------------------------------------
# A tiny rule-based tagger. HumanML3D tokenised its captions with spaCy (``en_core_web_sm``):
# hyphens removed, non-alphabetic tokens dropped, nouns and verbs lemmatised (except "left").
# spaCy is not a dependency here, so this approximates it with word lists and suffix rules; it
# reproduces HumanML3D's tokens for short action captions, not for arbitrary English.

_CLOSED = {
    "DET": "a an the this that these those his her their its my your our each every some any "
    "another both all no either neither",
    "PRON": "he she it they them him i you we me us someone something somebody anyone anything "
    "everyone everything nothing himself herself itself themselves yourself oneself who what",
    "ADP": "in on at with from into onto over under across around through toward towards behind "
    "above below between by of for about along against off out like near beside upon within "
    "without inside outside underneath after before since past",
    "CCONJ": "and or but nor",
    "SCONJ": "while as if because until when though although whether than",
    "NUM": "one two three four five six seven eight nine ten eleven twelve twenty hundred",
    "AUX": "is are was were be been being am has have had will would can could should may might "
    "must ca",
    "PART": "not",
    "ADV": "then again back forward forwards backward backwards away up down very also too still "
    "just once twice slightly quickly slowly here there sideways together apart upward upwards "
    "downward downwards repeatedly continuously briefly fast",
    "ADJ": "left right other big small large high low quick slow heavy light little long short "
    "straight same few several first second third last next whole",
}
_TAG = {w: tag for tag, words in _CLOSED.items() for w in words.split()}
_VERB_WORDS = (
    "walk run jump kick turn move raise lift wave stand sit bend squat step hop skip dance "
    "throw catch punch swing stretch reach pick put place hold carry push pull climb crawl lie "
    "fall rotate spin shake clap bow lean kneel look touch grab take give make do go come start "
    "stop begin continue get use play swim drink eat brush comb drop wear sneeze cough point "
    "salute hug jog sprint stomp march shuffle slide balance flap rub scratch tap cross extend "
    "lower bring return repeat perform pace pause wipe write read type open close tie fold "
    "stumble trip limp stagger shrug nod cheer hit slap bounce apply rise tilt twist roll lunge "
    "kiss text call check put sweep mop stir pour cut flip lay want try keep need"
)
_VERBS = frozenset(_VERB_WORDS.split())
_IRREGULAR = {
    "ran": "run",
    "sat": "sit",
    "stood": "stand",
    "threw": "throw",
    "thrown": "throw",
    "took": "take",
    "taken": "take",
    "fell": "fall",
    "fallen": "fall",
    "went": "go",
    "gone": "go",
    "made": "make",
    "did": "do",
    "done": "do",
    "does": "do",
    "goes": "go",
    "caught": "catch",
    "held": "hold",
    "brought": "bring",
    "got": "get",
    "gave": "give",
    "given": "give",
    "came": "come",
    "began": "begin",
    "begun": "begin",
    "swung": "swing",
    "lies": "lie",
    "lying": "lie",
    "rose": "rise",
    "wore": "wear",
    "knelt": "kneel",
}
_IRREGULAR_NOUNS = {"feet": "foot", "people": "person", "men": "man", "women": "woman"}


def _verb_lemma(word: str) -> str | None:
    """The base form if ``word`` is an inflection of a known verb, else None."""
    if word in _VERBS:
        return word
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            stem = word[: -len(suffix)]
            candidates = [stem, stem + "e"]
            if len(stem) > 2 and stem[-1] == stem[-2]:
                candidates.append(stem[:-1])  # running -> run, stepped -> step
            if suffix in ("es", "ed") and stem.endswith("i"):
                candidates.append(stem[:-1] + "y")  # carries -> carry
            for c in candidates:
                if c in _VERBS:
                    return c
    return None


def _noun_lemma(word: str) -> str:
    if word in _IRREGULAR_NOUNS:
        return _IRREGULAR_NOUNS[word]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lowercase ``word/POS`` tokens in HumanML3D's style (spaCy universal tags).

    An approximation of spaCy: closed-class words come from lists, verbs are recognised from a
    list of motion verbs and lemmatised (``runs`` → ``run``, ``walking`` → ``walk``), plural
    nouns are singularised, everything else is a NOUN. Non-alphabetic tokens are dropped and
    hyphens removed, as in HumanML3D (so PUNCT and digits never appear).
    """
    text = re.sub(r"n't\b", " ", text.lower().replace("-", ""))
    words = re.findall(r"[a-z]+", re.sub(r"'[a-z]*", " ", text))
    out: list[tuple[str, str]] = []
    for i, word in enumerate(words):
        prev = out[-1][1] if out else None
        nxt = words[i + 1] if i + 1 < len(words) else None
        tag, lemma = _TAG.get(word), word
        verb = _verb_lemma(word)
        if word == "to":
            tag = "PART" if nxt is not None and nxt in _VERBS else "ADP"
        elif word in ("do", "does", "did") and nxt is not None and (nxt == "not" or nxt in _VERBS):
            tag = "AUX"
        elif word in ("left", "right") and prev == "DET" and (nxt is None or nxt in _TAG):
            tag = "NOUN"  # "to the left"
        elif tag is None and verb is not None:
            after_noun_phrase = prev in ("DET", "ADJ", "NUM", "ADP") or (
                prev == "NOUN" and verb == word
            )
            tag = "NOUN" if after_noun_phrase and prev != "PART" else "VERB"
            lemma = _noun_lemma(word) if tag == "NOUN" else verb
        elif tag is None:
            tag = "ADV" if word.endswith("ly") and len(word) > 4 else "NOUN"
            lemma = _noun_lemma(word) if tag == "NOUN" else word
        out.append((lemma, tag))
    return [f"{w}/{t}" for w, t in out]


# ---------------------------------------------------------------------------------------------
# Writers (all atomic)


def write_clip(
    root: str | Path,
    clip_id: str,
    *,
    features: np.ndarray | None = None,
    joints: np.ndarray | None = None,
    captions: Iterable[Caption | str] | None = None,
) -> None:
    """Write any of a clip's files: features (T, 263), joints (T, 22, 3) or (T, 66), captions
    (Caption objects or plain texts, which are tokenised)."""
    root = Path(root)
    if (why := clip_id_problem(clip_id)) is not None:  # check everything before writing anything
        raise DataError(root / "new_joint_vecs", why)
    if features is not None:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
            raise ValueError(f"features of {clip_id}: expected (T, 263), found {features.shape}")
    if joints is not None:
        joints = as_joints(joints, where=clip_id)
    caps = None
    if captions is not None:
        caps = [c if isinstance(c, Caption) else Caption.from_text(c) for c in captions]
    if features is not None:
        save_npy(root / "new_joint_vecs" / f"{clip_id}.npy", features)
    if joints is not None:
        save_npy(root / "new_joints" / f"{clip_id}.npy", joints)
    if caps is not None:
        lines = "".join(format_caption_line(c) + "\n" for c in caps)
        write_text(root / "texts" / f"{clip_id}.txt", lines)


def write_split(root: str | Path, name: str, ids: Sequence[str]) -> None:
    """Write ``root/<name>.txt`` with one id per line."""
    path = Path(root) / f"{name}.txt"
    if (why := name_problem(name)) is not None:
        raise DataError(path, f"split name {name!r}: {why}")
    for n, clip_id in enumerate(ids, start=1):
        if (why := clip_id_problem(clip_id)) is not None:
            raise DataError(path, why, line=n)
    write_text(path, "".join(f"{i}\n" for i in ids))


def write_mean_std(root: str | Path, mean: np.ndarray, std: np.ndarray) -> None:
    """Write ``Mean.npy`` and ``Std.npy`` (263,) float32."""
    arrays = {"Mean": np.asarray(mean, dtype=np.float32), "Std": np.asarray(std, dtype=np.float32)}
    for name, arr in arrays.items():
        if arr.shape != (FEATURE_DIM,):
            raise ValueError(f"{name}: expected shape (263,), found {arr.shape}")
    for name, arr in arrays.items():
        save_npy(Path(root) / f"{name}.npy", arr)


def as_joints(arr: np.ndarray, *, where: str | Path) -> np.ndarray:
    """Joints (T, 22, 3) or (T, 66) → (T, 22, 3) float32, or a DataError naming ``where``."""
    arr = np.asarray(arr)
    if arr.ndim == 2 and arr.shape[1] == NUM_JOINTS * 3:
        arr = arr.reshape(len(arr), NUM_JOINTS, 3)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3):
        raise DataError(where, f"wrong shape: expected (T, 22, 3) or (T, 66), found {arr.shape}")
    return arr.astype(np.float32, copy=False)


def load_npy(path: Path, what: str) -> np.ndarray:
    """``kinemic.files.read_npy``: real numbers, no pickles, the header checked against the
    file's size; a missing, truncated or damaged file is a DataError naming it."""
    if not path.is_file():
        raise DataError(path, f"missing file: no {what} here")
    return read_npy(path)


# ---------------------------------------------------------------------------------------------
# Reader


class HumanML3DDataset:
    """Read a HumanML3D-layout folder. Arrays come back as float32 numpy arrays."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "not a folder: expected a HumanML3D-layout dataset root")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    def ids(self) -> list[str]:
        """Sorted ids of every clip that has a features file."""
        folder = self.root / "new_joint_vecs"
        if not folder.is_dir():
            raise DataError(folder, "missing folder: a HumanML3D layout keeps features here")
        return sorted(p.stem for p in folder.glob("*.npy"))

    def has_clip(self, clip_id: str) -> bool:
        return (self.root / "new_joint_vecs" / f"{clip_id}.npy").is_file()

    def read_ids(self, path: str | Path) -> list[str]:
        """Ids of a list file, one per line, checked as ``kinemic validate`` checks them: each a
        plain file name, listed once, with features; no blank line inside the list."""
        path = Path(path)
        ids = read_list_file(path, "a list of clip ids")
        raise_first(path, id_list_problems(ids, self.has_clip))
        return ids

    def split(self, name: str) -> list[str]:
        """Ids of ``root/<name>.txt`` (e.g. ``"train"``), in file order. The train, val and
        test lists beside it must not share an id with it."""
        path = self.root / f"{name}.txt"
        if (why := name_problem(name)) is not None:
            raise DataError(path, f"split name {name!r}: {why}")
        ids = self.read_ids(path)
        if name in DISJOINT_PARTS:
            parts = {name: ids}
            for other in DISJOINT_PARTS:
                if other != name and (self.root / f"{other}.txt").is_file():
                    parts[other] = read_list_file(self.root / f"{other}.txt", "clip ids")
            for part, problem in overlap_problems(parts):
                raise DataError(self.root / f"{part}.txt", problem)
        return ids

    def _cut(self, clip_id: str, read: Callable[[str], np.ndarray]) -> np.ndarray | None:
        """The rows of a cut clip's array (``read`` reads the whole clip's); None for a plain
        id."""
        cut = parse_cut_clip_id(clip_id)
        if cut is None:
            return None
        parent, n = cut
        caption = self._cut_caption(parent, n)
        array = read(parent)
        first, end = caption_rows(caption, len(array))
        if end <= first:
            raise DataError(
                self.root / "texts" / f"{parent}.txt",
                f"cut clip {clip_id!r}: caption {n} spans {caption.start}..{caption.end} s, "
                f"outside the clip's {len(array)} rows",
            )
        return array[first:end]

    def _cut_caption(self, parent: str, n: int) -> Caption:
        caps = self.captions(parent)
        path = self.root / "texts" / f"{parent}.txt"
        if n > len(caps):
            raise DataError(path, f"cut clip {parent}#{n}: the clip has {len(caps)} captions")
        if caps[n - 1].whole_clip:
            raise DataError(path, f"cut clip {parent}#{n}: caption {n} has no span to cut")
        return caps[n - 1]

    def features(self, clip_id: str) -> np.ndarray:
        """Features (T, 263) float32 (of a cut clip ``<id>#<n>``: its rows)."""
        if (cut := self._cut(clip_id, self.features)) is not None:
            return cut
        path = self.root / "new_joint_vecs" / f"{clip_id}.npy"
        arr = load_npy(path, f"features for clip {clip_id!r}")
        if arr.ndim != 2 or arr.shape[1] != FEATURE_DIM or len(arr) == 0:
            raise DataError(path, f"wrong shape: expected (T, 263), found {arr.shape}")
        return arr.astype(np.float32, copy=False)

    def joints(self, clip_id: str) -> np.ndarray:
        """Joint positions (T, 22, 3) float32 (stored as (T, 22, 3) or (T, 66); of a cut clip
        ``<id>#<n>``: its rows)."""
        if (cut := self._cut(clip_id, self.joints)) is not None:
            return cut
        path = self.root / "new_joints" / f"{clip_id}.npy"
        return as_joints(load_npy(path, f"joints for clip {clip_id!r}"), where=path)

    def captions(self, clip_id: str) -> list[Caption]:
        """The clip's captions, in file order (of a cut clip ``<id>#<n>``: the n-th caption of
        ``<id>``, which describes the whole cut clip)."""
        if (cut := parse_cut_clip_id(clip_id)) is not None:
            caption = self._cut_caption(*cut)
            return [Caption(caption.text, list(caption.tokens))]
        path = self.root / "texts" / f"{clip_id}.txt"
        if not path.is_file():
            raise DataError(path, f"missing file: no captions for clip {clip_id!r}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise DataError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
        caps = [
            parse_caption_line(line, path=path, line_no=n)
            for n, line in enumerate(text.splitlines(), start=1)
            if line.strip()
        ]
        if not caps:
            raise DataError(path, "no caption lines: expected caption#tokens#start#end lines")
        return caps

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """``Mean.npy`` and ``Std.npy``, each (263,) float32."""
        out = []
        for name in ("Mean", "Std"):
            path = self.root / f"{name}.npy"
            arr = load_npy(path, "normalisation statistics")
            if arr.shape != (FEATURE_DIM,):
                raise DataError(path, f"wrong shape: expected (263,), found {arr.shape}")
            out.append(arr.astype(np.float32, copy=False))
        return out[0], out[1]
