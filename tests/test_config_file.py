"""``--config FILE`` (kinemic.cli.config_file): TOML, YAML and JSON files as a verb's options,
flags over the file, errors naming the file and the key, and the round trip of the
``run-config.json`` a run writes: passed back, it runs the same command again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kinemic.cli import CONFIG_VERBS, build_parser, main
from kinemic.cli.config_file import RUN_CONFIG, parse_args, run_record
from kinemic.errors import KinemicError
from kinemic.features import encode_clip
from kinemic.io.humanml3d import write_clip, write_split
from tests.synthetic import walking_clip


def _parse(argv: list[str]):
    return parse_args(build_parser(), argv)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_keys_take_dashes_or_underscores_and_flags_override(tmp_path):
    cfg = _write(
        tmp_path / "p.toml",
        'source = ["a", "b"]\nout = "runs/p"\ntrain-steps = 7\nbatch_size = 2\nlr = 0.5\n'
        "bf16 = true\n",
    )
    args = _parse(["pretrain", "--config", str(cfg), "--lr", "0.25"])
    # --source and --out are required flags: the file gives them
    assert args.source == [Path("a"), Path("b")] and args.out == Path("runs/p")
    assert (args.train_steps, args.batch_size, args.lr, args.bf16) == (7, 2, 0.25, True)
    assert args.ema == 0.999  # what the file leaves out keeps the parser's default
    # a repeatable flag replaces the file's list, it does not add to it
    assert _parse(["pretrain", "--config", str(cfg), "--source", "c"]).source == [Path("c")]
    # argparse's abbreviations and old names reach the file too
    assert _parse(["pretrain", "--conf", str(cfg), "--steps", "3"]).train_steps == 3


def test_yaml_json_and_nested_tables_read_alike(tmp_path):
    yaml = _write(
        tmp_path / "f.yaml",
        "target: t\nout: o\nlr: 1e-4\nlora:\n  rank: 4\n  alpha: 8\nmethod: mdm-ft\n",
    )
    doc = {"target": "t", "out": "o", "lr": 1e-4, "lora": {"rank": 4, "alpha": 8}}
    js = _write(tmp_path / "f.json", json.dumps({**doc, "method": "mdm-ft"}))
    for cfg in (yaml, js):
        args = _parse(["finetune", "--config", str(cfg)])
        assert args.lr == 1e-4 and isinstance(args.lr, float)  # YAML 1.1 would read a string
        assert (args.lora_rank, args.lora_alpha, args.method) == (4, 8.0, "mdm-ft")
        assert args.target == Path("t")


def test_a_flag_of_an_exclusive_pair_drops_the_files_other(tmp_path):
    cfg = _write(tmp_path / "s.toml", 'model = "run"\nout = "syn"\nper-class = 5\n')
    args = _parse(["synthesize", "--config", str(cfg)])  # the required pair is in the file
    assert (args.per_class, args.oversample) == (5, None)
    args = _parse(["synthesize", "--config", str(cfg), "--oversample", "2"])
    assert (args.per_class, args.oversample) == (None, 2.0)
    both = _write(
        tmp_path / "b.toml", 'model = "run"\nout = "syn"\nper_class = 5\noversample = 2\n'
    )
    with pytest.raises(KinemicError, match="per_class and oversample exclude each other"):
        _parse(["synthesize", "--config", str(both)])


@pytest.mark.parametrize(
    ("line", "found"),
    [
        (
            "train_stpes = 3",
            "unknown option 'train_stpes' for kinemic finetune; did you mean 'train_steps'?",
        ),
        (
            'train_steps = "3"',
            "train_steps (--train-steps): expected a whole number, found a string '3'",
        ),
        ("train_steps = 3.5", "expected a whole number, found a number 3.5"),
        ("batch_size = true", "expected a whole number, found true"),
        ('lr = "fast"', "lr (--lr): expected a number, found a string 'fast'"),
        ("bf16 = 1", "bf16 (--bf16): expected true or false, found a whole number 1"),
        ('method = "lora"', "method: 'lora' is not one of 'kinemic'"),
        ('split = ["S0000"]', "split (--split): expected a string, found a list"),
        ('config = "other.toml"', "a config file cannot name another one"),
        (
            "[lora]\nrnak = 4",
            "unknown option 'lora.rnak' for kinemic finetune; did you mean 'lora_rank'?",
        ),
        ("steps = 3\ntrain_steps = 4", "train_steps and steps are the same option"),
    ],
)
def test_a_bad_key_or_value_names_the_file_and_the_key(tmp_path, capsys, line, found):
    cfg = _write(tmp_path / "bad.toml", f'target = "t"\nout = "o"\n{line}\n')
    assert main(["finetune", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kinemic finetune: error: {cfg}: ")
    assert found in err


def test_the_example_of_docs_cli_reads(tmp_path):
    """The TOML example of docs/cli.md is a valid finetune config."""
    text = (Path(__file__).parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = _write(tmp_path / "finetune.toml", example)
    args = _parse(["finetune", "--config", str(cfg), "--out", "o"])
    assert (args.train_steps, args.lora_rank, args.lr) == (600, 8, 1e-3)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("m.toml", 'target = "t"\nout = "o"\nlr = = 3\n'),
        ("m.yaml", "target: t\nout: o\nlr: [1, 2\n"),
        ("m.json", '{"target": "t",\n "out": "o",\n "lr": }\n'),
    ],
)
def test_a_malformed_file_is_an_error_naming_file_and_line(tmp_path, capsys, name, text):
    cfg = _write(tmp_path / name, text)
    assert main(["finetune", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}, line " in err and "not valid" in err


@pytest.mark.parametrize(
    ("name", "text", "found"),
    [
        ("none.toml", None, "no such config file"),
        ("f.ini", "[x]\n", "a config file ends in .toml, .yaml, .yml or .json"),
        ("l.yaml", "- 1\n- 2\n", "a YAML table of options expected, found a list"),
        ("twice.json", '{"lr": 1, "lr": 2}', "key 'lr' given twice"),
        ("twice.yaml", "lr: 1\nlr: 2\n", "key 'lr' given twice"),
        ("v.json", '{"verb": "evaluate", "seeds": 2}', "the settings of kinemic evaluate, not"),
        ("config.json", '{"format": "kinemic-prior", "version": 1}', "a model folder's config"),
    ],
)
def test_files_that_are_not_options_of_this_verb(tmp_path, capsys, name, text, found):
    cfg = tmp_path / name
    if text is not None:
        _write(cfg, text)
    assert main(["finetune", "--config", str(cfg)]) == 2
    assert found in capsys.readouterr().err


def test_every_option_of_every_config_verb_round_trips_through_a_record(tmp_path):
    """A record of non-default values of every option reads back to the same values: the
    mechanism knows no option by name, so options added later (a recipe) are covered too."""
    required = {
        "pretrain": ["--source", "s", "--out", "o"],
        "finetune": ["--target", "t", "--out", "o"],
        "synthesize": ["--model", "m", "--per-class", "3", "--out", "o"],
        "evaluate": ["--target", "t"],
    }
    assert set(required) == set(CONFIG_VERBS)
    for verb in CONFIG_VERBS:
        parser = build_parser()
        sub = parser._subparsers._group_actions[0].choices[verb]
        args = parser.parse_args([verb, *required[verb]])
        exclusive = {a.dest for g in sub._mutually_exclusive_groups for a in g._group_actions}
        for action in sub._actions:  # a value unlike the default, of the option's own kind
            value = getattr(args, action.dest, None)
            if action.dest in ("help", "config") or (action.dest in exclusive and value is None):
                continue
            if action.choices:
                setattr(args, action.dest, list(action.choices)[-1])
            elif isinstance(value, bool):
                setattr(args, action.dest, not value)
            elif action.type is int:
                setattr(args, action.dest, 11)
            elif action.type is float:
                setattr(args, action.dest, 0.375)
        record = run_record(sub, args, verb)
        assert record["verb"] == verb and "resume" not in record
        cfg = _write(tmp_path / f"{verb}.json", json.dumps(record))
        again = _parse([verb, "--config", str(cfg)])
        for key, value in record.items():
            if key not in ("verb", "kinemic_version"):
                assert getattr(again, key) == getattr(args, key), (verb, key, value)


# ------------------------------------------------------------------- runs, passed back


def _diff(a: Path, b: Path) -> dict:
    """Two run records' keys whose values differ."""
    ra, rb = (json.loads((p / RUN_CONFIG).read_text()) for p in (a, b))
    return {k: (ra.get(k), rb.get(k)) for k in ra.keys() | rb.keys() if ra.get(k) != rb.get(k)}


def _same_weights(a: Path, b: Path, name: str) -> bool:
    """The tensors of ``name`` in two runs' latest checkpoints are equal."""
    from safetensors.torch import load_file

    ta, tb = (load_file(run / (run / "latest").read_text().strip() / name) for run in (a, b))
    return ta.keys() == tb.keys() and all(ta[k].equal(tb[k]) for k in ta)


@pytest.mark.slow  # two pretraining runs: 10 s on 2 shared cores
@pytest.mark.usefixtures("one_thread")
def test_pretrain_run_config_reruns_the_run(tmp_path):
    corpus = tmp_path / "corpus"
    for i in range(4):
        features, joints = encode_clip(walking_clip(60 + 10 * i, seed=i))
        write_clip(corpus, f"{i:06d}", features=features, joints=joints, captions=["a walk"])
    write_split(corpus, "train", [f"{i:06d}" for i in range(4)])
    first = tmp_path / "first"
    flags = ["--train-steps", "2", "--batch-size", "2", "--text-encoder", "hash-64"]
    flags += ["--max-frames", "40", "--checkpoint-every", "2", "--lr", "3e-3", "--seed", "5"]
    assert main(["pretrain", "--source", str(corpus), *flags, "--out", str(first)]) == 0
    again = tmp_path / "again"
    assert main(["pretrain", "--config", str(first / RUN_CONFIG), "--out", str(again)]) == 0
    assert _diff(first, again) == {"out": (str(first), str(again))}
    assert _same_weights(first, again, "model.safetensors")


@pytest.mark.slow  # two fine-tunes from the shipped prior: 36 s on 2 shared cores
@pytest.mark.usefixtures("one_thread")
def test_finetune_run_config_reruns_the_run(tiny_world, tmp_path):
    first = tmp_path / "first"
    flags = ["--target", str(tiny_world / "target"), "--source", str(tiny_world / "source")]
    flags += ["--train-steps", "2", "--batch-size", "6", "--k", "20", "--checkpoint-every", "2"]
    assert main(["finetune", *flags, "--lora-rank", "4", "--out", str(first)]) == 0
    record = json.loads((first / RUN_CONFIG).read_text())
    assert record["lora_rank"] == 4 and record["method"] == "kinemic"
    again = tmp_path / "again"
    assert main(["finetune", "--config", str(first / RUN_CONFIG), "--out", str(again)]) == 0
    assert _diff(first, again) == {"out": (str(first), str(again))}
    assert _same_weights(first, again, "adapter/adapter_model.safetensors")
    assert _same_weights(first, again, "mic.safetensors")


def test_evaluate_run_config_reruns_the_evaluation(tiny_world, tmp_path):
    first = tmp_path / "first"
    flags = ["--target", str(tiny_world / "target"), "--modes", "real", "--seeds", "1"]
    flags += ["--width", "0.125", "--frames", "12", "--train-steps", "2", "--epochs", "1"]
    assert main(["evaluate", *flags, "--cpu", "--threads", "1", "--out", str(first)]) == 0
    again = tmp_path / "again"
    assert main(["evaluate", "--config", str(first / RUN_CONFIG), "--out", str(again)]) == 0
    assert _diff(first, again) == {"out": (str(first), str(again))}
    a, b = (json.loads((p / "results.json").read_text()) for p in (first, again))
    assert a["settings"] == b["settings"]
    assert [r["final_top1"] for r in a["runs"]] == [r["final_top1"] for r in b["runs"]]


def test_synthesize_run_config_reruns_the_synthesis(tiny_generators, tmp_path):
    first = tmp_path / "first"
    model = str(tiny_generators["mdm-ft"])
    flags = ["--model", model, "--per-class", "1", "--ddim", "2", "--seed", "3"]
    assert main(["synthesize", *flags, "--out", str(first)]) == 0
    again = tmp_path / "again"
    assert main(["synthesize", "--config", str(first / RUN_CONFIG), "--out", str(again)]) == 0
    assert _diff(first, again) == {"out": (str(first), str(again))}
    ids = (first / "synth.txt").read_text().split()
    assert ids and ids == (again / "synth.txt").read_text().split()
    for i in ids:
        path = f"new_joint_vecs/{i}.npy"
        assert (first / path).read_bytes() == (again / path).read_bytes()
