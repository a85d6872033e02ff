"""The README's main job (`kinemic demo --quick`) runs end to end and leaves what it promises:
the figures, a report folder, and a report page that renders in a real browser."""

import json
from dataclasses import asdict

import pytest

from kinemic.cli import main
from kinemic.demo import MODES
from kinemic.errors import KinemicError

from .browser import chromium


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "out"
    figures = out.parent / "figures.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--quick", "--out", str(out), "--json", str(figures)]) == 0
    return out, json.loads(figures.read_text()), printed.getvalue()


@pytest.mark.slow  # the whole pipeline on the tiny world: ~3 minutes on the 2-core machine
def test_quick_demo_writes_figures_and_report(quick_demo):
    out, figures, printed = quick_demo
    assert figures == json.loads((out / "demo.json").read_text())
    assert list(figures["accuracy"]) == list(MODES)
    for mode in MODES:
        final = figures["accuracy"][mode]["final"]
        assert len(final["values"]) == figures["settings"]["seeds"] == len(figures["seeds"])
        assert 0 <= final["mean"] <= 100 and final["ci95"] is not None
    overall = figures["mining_precision"]["overall"]
    assert {"attention", "random", "whole", "retrieval"} <= set(overall)
    for stage in ("world", "fine-tuning", "synthesis", "evaluation", "report"):
        assert figures["timing_s"][stage] >= 0
    # the second process fine-tuned mdm-ft and trained runs ahead and in stage 6, which the
    # main process read instead of training them
    assert figures["timing_s"]["second process"]["mdm-ft fine-tune"] > 0
    results = json.loads((out / "eval" / "results.json").read_text())
    shared = figures["har_runs_ahead"] + figures["har_runs_shared"]
    assert results["timing"]["reused_runs"] == shared > 0
    assert not list((out / "eval" / "runs").glob("*.claim"))
    assert len(list((out / "eval" / "runs").glob("*.json"))) == 5 * figures["settings"]["seeds"]
    md = (out / "report.md").read_text()
    assert "| mode |" in md and "mixed (kinemic)" in md
    motion = figures["motion"]
    assert motion["classes"] == figures["classes"]
    assert list(motion["sets"]) == [
        "real (few-shot training)",
        "real (validation)",
        "synthetic (mdm-ft)",
        "synthetic (kinemic)",
    ]
    per_class = figures["settings"]["per_class"]
    assert all(c["clips"] == per_class for c in motion["sets"]["synthetic (kinemic)"])
    assert all(c["local_speed"] > 0 for rows in motion["sets"].values() for c in rows)
    assert "How much the clips move" in md
    assert (out / "assets" / "accuracy.png").is_file()
    assert len(list((out / "assets").glob("*.gif"))) == len(figures["classes"])
    # the report reads itself: the smoke-test banner, then the verdict computed from the figures
    assert md.index("> Smoke test (--quick)") < md.index("> " + figures["verdict"][0][:40])
    assert "| training clips | epochs | final training loss |" in md
    assert '"timing_s"' in md and '"fine-tuning"' in md  # stage timings in the settings
    last = printed.strip().splitlines()[-1]
    assert last.startswith("kinemic demo: done in ") and "Smoke test" in last
    assert last.endswith(str(out / "report.html"))


@pytest.mark.slow
def test_quick_demo_report_renders_in_chromium(quick_demo, tmp_path):
    out, figures, _ = quick_demo
    with chromium() as browser:
        browser.get((out / "report.html").as_uri())
        broken = browser.execute_script(
            "return Array.from(document.images)"
            ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)"
        )
        assert broken == []
        images = browser.execute_script("return document.images.length")
        assert images >= 3 + len(figures["classes"])  # charts + one GIF per class
        first_cells = browser.execute_script(
            "return Array.from(document.querySelectorAll('table')[0].querySelectorAll('tbody tr'))"
            ".map(r => r.cells[0].innerText)"
        )
        assert first_cells == list(MODES)
        shot = tmp_path / "report.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_a_failing_second_process_is_an_error_not_a_hang(tmp_path):
    """The second process ends without sending (here: no target dataset to fine-tune on): the
    main process's wait for it ends with an error naming its exit code."""
    import torch

    from kinemic.demo import DemoConfig, _SecondProcess
    from kinemic.errors import KinemicError

    threads = torch.get_num_threads()
    missing = tmp_path / "no-world"
    second = _SecondProcess.start(
        DemoConfig.quick(), missing / "target", missing / "source", tmp_path
    )
    try:
        with pytest.raises(KinemicError, match=r"second process .* failed with exit code 1"):
            second.ready()
    finally:
        second.close()
    assert torch.get_num_threads() == threads


def test_demo_help_explains_the_quick_mode(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    assert "--quick" in text and "report.html" in text


def test_the_default_demo_trains_every_classifier_to_the_fitting_rule(monkeypatch, capsys):
    import kinemic.demo
    from kinemic.demo import DemoConfig, _protocol, _second_modes
    from kinemic.report.demo import _har_cuts

    default = _protocol(DemoConfig())
    train = default.train
    assert (train.steps, train.min_epochs, train.fit_loss) == (480, 30, 0.05)
    assert default.frames == 50 and default.seeds == 3
    assert "synth (kinemic)" not in default.modes  # left out by default, and the report says so
    assert _second_modes(DemoConfig()) == ("real", "gt", "mixed (mdm-ft)")
    assert default.train.epochs_for(30) == 240 and default.train.epochs_for(330) == 30
    quick = _protocol(DemoConfig.quick())
    assert (quick.train.epochs, quick.train.fit_loss) == (8, None)  # the smoke test: fixed epochs
    assert quick.modes == MODES  # every path
    assert DemoConfig.quick().smoke_test and not DemoConfig().smoke_test
    cuts = _har_cuts({**asdict(DemoConfig()), "modes_left_out": ["synth (kinemic)"]})
    assert "fitting rule" in cuts and "Not trained in this run: synth (kinemic)" in cuts
    assert "3 seeds, not the protocol's 5" in cuts and "2 degrees of freedom" in cuts
    with pytest.raises(KinemicError, match="unknown 'synth'"):
        DemoConfig(modes=("real", "synth"))

    seen = {}
    monkeypatch.setattr(kinemic.demo, "run_demo", lambda config, **kw: seen.setdefault("c", config))
    assert main(["demo", "--modes", "real, synth (kinemic),gt", "--out", "x"]) == 0
    assert seen["c"].modes == ("real", "synth (kinemic)", "gt")
    assert seen["c"].har_fit_loss == 0.05
    assert main(["demo", "--modes", "real,nope"]) == 2
    assert "unknown 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--fitted-har"])  # now the default: the flag is gone
