"""The README's main job runs end to end and leaves what it promises."""

import pytest

from kinemic.demo import run_demo


@pytest.mark.slow  # the whole pipeline: ~40 s on the 2-core machine
def test_demo_end_to_end(tmp_path, cmu_bvh_dir):
    figures = run_demo(out=tmp_path / "demo", bvh=cmu_bvh_dir)
    assert figures["cmu"]["clips"] == 140
    assert figures["cmu"]["round_trip_max_error_m"] < 1e-4
    assert (tmp_path / "demo" / "world" / "target" / "splits" / "fewshot" / "S0000").is_dir()
    gif = tmp_path / "demo" / "prior_vs_world.gif"
    assert gif.is_file() and gif.stat().st_size > 10_000
    assert len(list((tmp_path / "demo" / "samples" / "joints").glob("*.npy"))) == 3
