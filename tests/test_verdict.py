"""The demo report's verdict: sentences computed from the modes' figures."""

from __future__ import annotations

from kinemic.report.verdict import motion_reasons, verdict


def _mode(name: str, mean: float, ci: float | None = 2.0) -> dict:
    return {"mode": name, "final": {"mean": mean, "ci95": ci}}


def _modes(real, mdm, kin, gt) -> list[dict]:
    return [
        _mode("real", *real),
        _mode("mixed (mdm-ft)", *mdm),
        _mode("mixed (kinemic)", *kin),
        _mode("synth (kinemic)", 50.0),
        _mode("gt", *gt),
    ]


def _motion(speed: float, travel: float) -> dict:
    real = [{"local_speed": 0.6, "travel": 0.5}, {"local_speed": 0.7, "travel": 0.4}]
    synth = [{"local_speed": 0.6 * speed, "travel": 0.5 * travel}, dict(real[1])]
    return {
        "classes": ["run on the spot", "side kick"],
        "sets": {
            "real (few-shot training)": real,
            "real (validation)": real,
            "synthetic (kinemic)": synth,
        },
    }


def test_helped_with_separate_intervals():
    lines = verdict(_modes((70, 2), (75, 4), (82, 2), (93, 1)), num_classes=3)
    assert lines[0].startswith("Synthetic data helped")
    assert "`mixed (kinemic)` 82.0% ± 2.0 (+12.0 points; the 95% intervals separate)" in lines[0]
    assert "`mixed (mdm-ft)` 75.0% ± 4.0 (+5.0 points; the 95% intervals overlap" in lines[0]
    assert lines[1].startswith("KineMIC beat the mdm-ft baseline")
    assert "+7.0 points; the 95% intervals separate" in lines[1]
    assert lines[2].startswith("Calibration") and "chance is 33.3%" in lines[2]


def test_did_not_help_names_the_motion_reason():
    lines = verdict(
        _modes((70, 2), (64, 3), (66, 5), (93, 1)),
        num_classes=3,
        motion=_motion(speed=0.3, travel=6.0),
    )
    assert lines[0].startswith("Synthetic data did not help")
    assert "`mixed (kinemic)` at 66.0% ± 5.0" in lines[0]
    assert "30% of the real clips' local speed" in lines[0]
    assert "travel 6.0× as far" in lines[0]
    # 66 > 64 with overlapping intervals: above, but not "beat"
    assert lines[1].startswith("KineMIC scored above the mdm-ft baseline, within seed noise")
    assert "overlap" in lines[1]


def test_a_rise_within_seed_noise_is_not_called_help():
    lines = verdict(_modes((68.6, 23.6), (76.5, 5.3), (82.0, 2.8), (93.5, 2.8)), num_classes=3)
    assert lines[0].startswith("Synthetic data raised the mean, but within seed noise: ")
    assert "(+13.4 points; the 95% intervals overlap" in lines[0]
    assert lines[1].startswith("KineMIC scored above the mdm-ft baseline, within seed noise")


def test_no_motion_defect_says_so():
    lines = verdict(
        _modes((70, 2), (64, 3), (66, 5), (93, 1)), num_classes=3, motion=_motion(1.0, 1.0)
    )
    assert "no obvious defect" in lines[0]
    assert motion_reasons(_motion(1.0, 1.0)) == []


def test_failed_calibration_comes_first():
    lines = verdict(_modes((70, 2), (64, 3), (66, 5), (65, 18)), num_classes=3)
    assert lines[0].startswith("Inconclusive")
    assert not any(line.startswith("Calibration") for line in lines)


def test_single_seed_has_no_interval():
    lines = verdict(_modes((70, None), (75, None), (80, None), (95, None)), num_classes=3)
    assert "`mixed (kinemic)` 80.0% (+10.0 points; one seed, so no interval)" in lines[0]
