"""The ``kinemic`` command line: one verb, one typed function. Nothing else lives here.

Each area module (``data``, ``prior``, ``kinemic``, ``har``, ``tmor``) declares, per verb, an
``add_<verb>`` (its arguments and help) and a ``run_<verb>`` (the parsed arguments turned into
one typed call of the domain package); ``VERBS`` below gathers them. The verbs of
``CONFIG_VERBS`` also read ``--config FILE`` and record their options in ``OUT/run-config.json``
(``kinemic.cli.config_file``, derived from each verb's parser). Errors that a user can fix
(``KinemicError``) are printed without a traceback and exit with status 2; anything else is a
bug, printed with its traceback and a request to report it, exit status 70 (EX_SOFTWARE).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

from kinemic import __version__
from kinemic.cli import config_file, data, har, kinemic, prior, tmor
from kinemic.errors import KinemicError

#: Exit status of an unexpected exception (sysexits' EX_SOFTWARE); bad input exits with 2.
INTERNAL_ERROR = 70

#: verb -> (declare its arguments on the subparsers, run it with the parsed arguments)
VERBS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Callable[..., int]]] = {
    "demo": (kinemic.add_demo, kinemic.run_demo),
    "convert": (data.add_convert, data.run_convert),
    "validate": (data.add_validate, data.run_validate),
    "info": (data.add_info, data.run_info),
    "split": (data.add_split, data.run_split),
    "world": (data.add_world, data.run_world),
    "text-cache": (data.add_text_cache, data.run_text_cache),
    "pretrain": (prior.add_pretrain, prior.run_pretrain),
    "sample": (prior.add_sample, prior.run_sample),
    "import-mdm": (prior.add_import_mdm, prior.run_import_mdm),
    "render": (data.add_render, data.run_render),
    "mine": (kinemic.add_mine, kinemic.run_mine),
    "finetune": (kinemic.add_finetune, kinemic.run_finetune),
    "synthesize": (kinemic.add_synthesize, kinemic.run_synthesize),
    "tmor": (tmor.add_tmor, tmor.run_tmor),
    "evaluate": (har.add_evaluate, har.run_evaluate),
    "evaluator": (har.add_evaluator, har.run_evaluator),
    "metrics": (har.add_metrics, har.run_metrics),
    "export": (data.add_export, data.run_export),
}

#: Verbs that read ``--config FILE`` and record their options in ``OUT/run-config.json``
#: (``kinemic.cli.config_file``).
CONFIG_VERBS = ("pretrain", "finetune", "synthesize", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinemic",
        description=(
            "Few-shot skeleton action synthesis (KineMIC) and transferable motion "
            "representations (T-MOR). Run 'kinemic VERB --help' for a verb's options and examples."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kinemic {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add, _ in VERBS.values():
        add(sub)
    for verb in CONFIG_VERBS:
        config_file.add_config_option(sub.choices[verb])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = config_file.parse_args(parser, argv)
    except KinemicError as err:  # a --config file that cannot be used
        print(f"kinemic {argv[0]}: error: {err}", file=sys.stderr)
        return 2
    try:
        code = VERBS[args.verb][1](args)
        if code == 0:
            config_file.write_run_record(parser, args)
        return code
    except KinemicError as err:
        print(f"kinemic {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kinemic {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except Exception as err:  # a bug: bad input is a KinemicError raised where it is found
        traceback.print_exc()
        print(
            f"kinemic {args.verb}: internal error ({type(err).__name__}: {err}); this is a bug "
            "in kinemic, please report it with the traceback above and the command you ran",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
