"""The Python API of ``kinemic``: the README's quick start runs verbatim, every public
function's docstring examples and docs/python.md's examples run, and ``import kinemic`` stays
cheap (no torch)."""

from __future__ import annotations

import doctest
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kinemic

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = [n for n in kinemic.__all__ if n not in ("__version__", "KinemicError")]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks(markdown: str) -> list[str]:
    """The ```python code blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


def run_doctests(tests: list[doctest.DocTest], globs: dict | None = None) -> int:
    """Run ``tests`` (each with ``globs`` added); fail with doctest's report. Returns the
    number of examples run."""
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    for test in tests:
        test.globs.update(globs or {})
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
    return result.attempted


@pytest.mark.slow  # MiniLM, 60-frame samples and a 60-frame GIF: ~15 s on 2 cores
def test_readme_python_quick_start_runs_verbatim(tmp_path, monkeypatch, capsys) -> None:
    code = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    promised = re.findall(r"print\(.*\)\s*#\s*(\([\d, ]+\))", code)  # the shapes it documents
    assert printed == promised == ["(2, 60, 263)", "(2, 60, 22, 3)"]
    assert (tmp_path / "jumps.gif").stat().st_size > 0


@pytest.mark.parametrize("name", ["kinemic", *ENTRY_POINTS])
def test_docstring_examples_run(name: str, tmp_path, monkeypatch) -> None:
    obj = kinemic if name == "kinemic" else getattr(kinemic, name)
    finder = doctest.DocTestFinder(recurse=False)
    tests = [t for t in finder.find(obj, name, globs={}) if t.examples]
    if not tests:
        pytest.skip(f"kinemic.{name} ({inspect.getmodule(obj).__name__}) has no docstring example")
    monkeypatch.chdir(tmp_path)  # examples may write files
    assert run_doctests(tests) > 0


@pytest.mark.slow  # fine-tunes the tiny generators (shared with test_finetune)
def test_python_md_examples_run(tmp_path, monkeypatch, tiny_generators) -> None:
    """docs/python.md's ``>>>`` examples, with ``run`` a fine-tuned generator run."""
    text = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    examples = re.sub(r"^```.*$", "", text, flags=re.MULTILINE)  # a fence ends an example
    test = doctest.DocTestParser().get_doctest(examples, {}, "docs/python.md", "python.md", 0)
    monkeypatch.chdir(tmp_path)
    assert run_doctests([test], {"run": str(tiny_generators["kinemic"])}) >= 10
    assert (
        {"load_prior", "load_generator", "sample", "render_clips", "load_tmor"}
        <= set(re.findall(r">>> .*kinemic\.(\w+)\(", text))
        and "features_to_joints" in text
        and "joints_to_features" in text
    )


def test_import_kinemic_imports_no_torch() -> None:
    code = (
        "import sys, kinemic\n"
        "assert 'torch' not in sys.modules, 'import kinemic imported torch'\n"
        "assert set(kinemic.__all__) <= set(dir(kinemic))\n"
        "print(len(kinemic.__all__))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_public_names_resolve_to_their_modules() -> None:
    from kinemic.errors import KinemicError
    from kinemic.features import features_to_joints, joints_to_features
    from kinemic.finetune.generator import load_generator
    from kinemic.prior.folder import load_prior
    from kinemic.prior.sample import Samples, sample
    from kinemic.render import render_clips
    from kinemic.tmor.encoder import load_tmor

    assert kinemic.load_prior is load_prior and kinemic.load_generator is load_generator
    assert kinemic.sample is sample and kinemic.Samples is Samples
    assert kinemic.features_to_joints is features_to_joints
    assert kinemic.joints_to_features is joints_to_features
    assert kinemic.load_tmor is load_tmor and kinemic.KinemicError is KinemicError
    assert kinemic.render_clips is render_clips
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        kinemic.nothing  # noqa: B018


def test_render_takes_arrays_and_files(tmp_path) -> None:
    import numpy as np

    from tests.synthetic import walking_clip

    walk = walking_clip(6, seed=0)  # (6, 22, 3)
    np.save(tmp_path / "walk.npy", walk)
    out = kinemic.render_clips([walk, tmp_path / "walk.npy"], tmp_path / "two.png", sheet_frames=2)
    assert out == tmp_path / "two.png" and out.stat().st_size > 0
    with pytest.raises(kinemic.KinemicError, match="unknown output format"):
        kinemic.render_clips([walk], tmp_path / "walk.avi")
