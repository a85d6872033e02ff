"""``--config FILE``: a verb's options read from a TOML, YAML or JSON file, and the record of
the options a run used (``OUT/run-config.json``), which ``--config`` reads back to re-run it.

Nothing here knows a verb's options: the keys a file may hold, their types and choices are
those of the verb's own argparse parser. A key is an option's name with dashes or underscores
(``train-steps``, ``train_steps``) or its ``dest``; a nested table joins its keys with ``_``
(``[lora] rank = 8`` is ``lora_rank``). Each value goes through the option's own type function
and choices, then becomes the parser's default for that option, so a flag given on the command
line wins over the file (and a flag of a mutually exclusive pair drops the file's other one).
An unknown key or a value of the wrong type is an error naming the file and the key.

This module reads argparse's private ``_actions``, ``_defaults`` and
``_mutually_exclusive_groups``: argparse offers no public way to list a parser's options, and
these attributes have not changed in over a decade.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

from kinemic.errors import DataError, KinemicError

#: The file a run of a ``--config`` verb writes into its OUT: every option it ran with.
RUN_CONFIG = "run-config.json"
#: Keys of a record that are not options: the verb it was written for (checked) and the
#: version that wrote it (for the reader).
META_KEYS = ("verb", "kinemic_version")
#: Options a record leaves out: acts on an earlier run, not settings of this one.
NOT_RECORDED = ("resume", "reclaim")
_FORMATS = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}
_SWITCHES = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)
_LISTS = (argparse._AppendAction, argparse._ExtendAction)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Declare ``--config FILE`` on a verb's parser (``parse_args`` reads it)."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="read options from this TOML, YAML or JSON file: keys are the option names "
        "(train_steps or train-steps), flags given here override the file. A run writes "
        f"OUT/{RUN_CONFIG}; pass it back to run again with the same options",
    )


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None):
    """``parser.parse_args(argv)`` with the ``--config`` file of the verb (``argv[0]``), when
    one is given, as the verb's defaults. A file that cannot be used raises ``KinemicError``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = _verb_parser(parser, argv[0]) if argv else None
    helped = any(a in ("-h", "--help") for a in argv)  # the help, with the parser's defaults
    if verb is not None and "config" in _options(verb) and not helped:
        given = _given(verb, argv[1:])
        if given.get("config") is not None:
            values = read_config(given["config"], verb, argv[0])
            _apply(verb, values, given, given["config"])
    return parser.parse_args(argv)


def read_config(path: str | Path, parser: argparse.ArgumentParser, verb: str) -> dict[str, Any]:
    """The options of ``parser`` a config file sets: ``dest -> value``, each value converted
    by the option's type and checked against its choices, as if given as a flag."""
    path = Path(path)
    options = _options(parser)
    values: dict[str, Any] = {}
    keys: dict[str, str] = {}  # dest -> the key that set it, for "given twice"
    doc = _load(path)
    for key, value in _flatten(doc):
        if key in META_KEYS:
            if key == "verb" and value != verb:
                raise KinemicError(
                    f"{path}: the settings of kinemic {value}, not of kinemic {verb}"
                )
            continue
        action = options.get(key.replace("-", "_").replace(".", "_"))
        if action is None:
            raise KinemicError(_unknown(path, key, doc, options, verb))
        if action.dest == "config":
            raise KinemicError(f"{path}: {key}: a config file cannot name another one")
        if action.dest in values:
            raise KinemicError(
                f"{path}: {key} and {keys[action.dest]} are the same option ({_flag(action)}); "
                "keep one"
            )
        values[action.dest] = _value(path, key, action, value)
        keys[action.dest] = key
    return values


def run_record(parser: argparse.ArgumentParser, args: argparse.Namespace, verb: str) -> dict:
    """Every option of ``parser`` as ``args`` hold it (but :data:`NOT_RECORDED`), in the
    layout ``--config`` reads."""
    from kinemic import __version__

    record: dict[str, Any] = {"verb": verb, "kinemic_version": __version__}
    for action in dict.fromkeys(_options(parser).values()):
        if action.dest not in ("config", *NOT_RECORDED):
            record[action.dest] = _plain(getattr(args, action.dest, None))
    return record


def write_run_record(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path | None:
    """Write ``OUT/run-config.json`` for a finished run of a verb with ``--config`` and an
    ``--out``, when the run left OUT: a shard of a sharded synthesis that ends before the
    others leaves none (the last one assembles OUT, and a record written first would make it
    refuse a non-empty folder). Under ``accelerate launch`` or ``torchrun`` every process that
    finds OUT writes the same record, atomically. Returns the file, or None when there is none
    to write."""
    verb = _verb_parser(parser, args.verb)
    out = getattr(args, "out", None)
    if verb is None or "config" not in _options(verb) or out is None:
        return None
    if not Path(out).is_dir():
        return None
    from kinemic.files import write_text

    path = Path(out) / RUN_CONFIG
    write_text(path, json.dumps(run_record(verb, args, args.verb), indent=2) + "\n")
    return path


# ------------------------------------------------------------------------------ the parser


def _verb_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """name -> option: every option's dest and long names (``--train-steps`` as
    ``train_steps``), help excluded."""
    names: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        names[action.dest] = action
        for flag in action.option_strings:
            if flag.startswith("--"):
                names.setdefault(flag[2:].replace("-", "_"), action)
    return names


def _flag(action: argparse.Action) -> str:
    return max(action.option_strings, key=len)


def _given(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, Any]:
    """The options ``argv`` gives, parsed by the verb's parser itself (with its abbreviations
    and aliases): every default suppressed and nothing required, so that only what is on the
    command line comes back. Bad flags fail here as they would in the real parse."""
    actions = [(a, a.default, a.required) for a in parser._actions]
    groups = [(g, g.required) for g in parser._mutually_exclusive_groups]
    defaults = parser._defaults
    try:
        for action, _, _ in actions:
            action.default, action.required = argparse.SUPPRESS, False
        for group, _ in groups:
            group.required = False
        parser._defaults = {}
        given, _ = parser.parse_known_args(argv)
    finally:
        for action, default, required in actions:
            action.default, action.required = default, required
        for group, required in groups:
            group.required = required
        parser._defaults = defaults
    return vars(given)


def _apply(parser: argparse.ArgumentParser, values: dict, given: dict, path: Path) -> None:
    """Make the file's values the parser's defaults, but for options given on the command line
    and the other members of their mutually exclusive groups; an option the file sets is no
    longer required on the command line."""
    skip = set(given)
    for group in parser._mutually_exclusive_groups:
        members = {a.dest for a in group._group_actions}
        if members & skip:
            skip |= members
    values = {dest: v for dest, v in values.items() if dest not in skip}
    for group in parser._mutually_exclusive_groups:
        set_here = [a for a in group._group_actions if values.get(a.dest) not in (None, False)]
        if len(set_here) > 1:
            names = " and ".join(a.dest for a in set_here)
            raise KinemicError(f"{path}: {names} exclude each other; set one of them")
        if set_here:
            group.required = False
    parser.set_defaults(**values)
    for action in parser._actions:
        if values.get(action.dest) is not None:
            action.required = False


# ------------------------------------------------------------------------------- the file


def _load(path: Path) -> dict[str, Any]:
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise KinemicError(
            f"{path}: a config file ends in .toml, .yaml, .yml or .json (it says which format "
            "it is written in)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KinemicError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KinemicError(f"{path}: cannot read this config file ({e})") from None
    doc = {"TOML": _toml, "YAML": _yaml, "JSON": _json}[kind](path, text)
    if not isinstance(doc, dict):
        raise DataError(path, f"a {kind} table of options expected, found {_shown(doc)}")
    return doc


def _toml(path: Path, text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the Python 3.10 backport, a dependency there
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        found = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = int(found.group(1)) if found else None
        raise DataError(path, f"not valid TOML: {e}", line=line) from None


def _yaml(path: Path, text: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader: plain data only
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        line = None if mark is None else mark.line + 1
        raise DataError(path, f"not valid YAML: {problem}", line=line) from None


def _yaml_loader() -> type:
    """PyYAML's SafeLoader with two fixes: a float without a dot (``1e-4``) is a float, not
    the string YAML 1.1 makes it, and a key given twice is an error, not silently the last."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, Hashable):  # SafeLoader's own error says so
                    continue
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader


def _json(path: Path, text: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise DataError(path, f"key {key!r} given twice")
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON: {e.msg}", line=e.lineno) from None


def _flatten(doc: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _unknown(path: Path, key: str, doc: dict, options: dict, verb: str) -> str:
    if "format" in doc:  # a model folder's config.json
        return (
            f"{path}: a model folder's config.json, not the options of a command; a run's "
            f"options are in its {RUN_CONFIG}"
        )
    name = key.replace("-", "_").replace(".", "_")
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"{path}: unknown option {key!r} for kinemic {verb}{hint} (known: "
        f"{', '.join(sorted({a.dest for a in options.values()} - {'config'}))})"
    )


# ------------------------------------------------------------------------------ the values


def _value(path: Path, key: str, action: argparse.Action, value: Any) -> Any:
    """``value`` as the option would hold it after its flag: the type function applied, the
    choices checked; a list for a repeatable option (one item may be given alone)."""
    if value is None:
        if action.default is None and not isinstance(action, _SWITCHES):
            return None  # the option's "not given"
        raise _wrong(path, key, action, value, "a value (this option has no empty setting)")
    if isinstance(action, _SWITCHES):
        if isinstance(value, bool):
            return value
        raise _wrong(path, key, action, value, "true or false")
    if action.nargs == 0:
        raise KinemicError(f"{path}: {key}: {_flag(action)} takes no value; give it as a flag")
    if isinstance(action, _LISTS) or action.nargs in ("*", "+") or isinstance(action.nargs, int):
        items = value if isinstance(value, list) else [value]
        return [_item(path, key, action, item) for item in items]
    return _item(path, key, action, value)


def _item(path: Path, key: str, action: argparse.Action, value: Any) -> Any:
    kind: Callable[[Any], Any] | None = action.type  # type: ignore[assignment]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        if not (number and isinstance(value, int)):
            raise _wrong(path, key, action, value, "a whole number")
        converted: Any = value
    elif kind is float:
        if not number:
            raise _wrong(path, key, action, value, "a number")
        converted = float(value)
    elif kind is None or kind is str or isinstance(kind, type):  # str, Path: text
        if not isinstance(value, str):
            raise _wrong(path, key, action, value, "a string")
        converted = value if kind is None else kind(value)
    else:  # a parse function of the command line's text
        if not (isinstance(value, str) or number):
            raise _wrong(path, key, action, value, "a string")
        try:
            converted = kind(str(value))
        except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
            raise KinemicError(f"{path}: {key}: {e}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(repr(c) for c in action.choices)
        raise KinemicError(f"{path}: {key}: {converted!r} is not one of {choices}")
    return converted


def _wrong(path: Path, key: str, action: argparse.Action, value: Any, expected: str):
    return KinemicError(
        f"{path}: {key} ({_flag(action)}): expected {expected}, found {_shown(value)}"
    )


def _shown(value: Any) -> str:
    kind = {int: "a whole number", float: "a number", str: "a string"}
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return f"a list {value!r}"
    if isinstance(value, dict):
        return "a table"
    return f"{kind.get(type(value), type(value).__name__)} {value!r}"


def _plain(value: Any) -> Any:
    """A parsed option's value as JSON: paths as text, tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
