"""How much real and synthetic clips move: local speed, root travel, per-class tables."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import make_synthetic, standing
from kinemic.har.motion import (
    class_motion,
    local_speed,
    motion_markdown,
    root_travel,
    split_motion,
)
from kinemic.io.ntu_vibe import NTUVibeDataset


def test_local_speed_measures_the_body_not_the_root():
    still = standing()
    assert local_speed(still) == 0.0
    carried = still + np.array([0.1, 0.0, 0.0]) * np.arange(len(still))[:, None, None]
    assert local_speed(carried) == pytest.approx(0.0, abs=1e-12)  # the whole body travels
    waving = still.copy()
    waving[:, 21, 1] += 0.05 * np.arange(len(still))  # one of 22 joints rises 5 cm per frame
    assert local_speed(waving) == pytest.approx(0.05 * 20 / 22)
    with pytest.raises(ValueError, match="1 frame"):
        local_speed(still[:1])


def test_root_travel_is_horizontal_start_to_end():
    clip = standing(10)
    clip[:, :, 0] += np.linspace(0.0, 3.0, 10)[:, None]  # 3 m along x
    clip[:, :, 1] += np.linspace(0.0, 1.0, 10)[:, None]  # rising does not count
    clip[:, :, 2] += np.linspace(0.0, 4.0, 10)[:, None]  # 4 m along z
    assert root_travel(clip) == pytest.approx(5.0)
    clip[5:, :, 0] -= 100.0  # a detour that comes back is not counted either
    clip[-1, :, 0] += 100.0
    assert root_travel(clip) == pytest.approx(5.0)


def test_class_motion_groups_by_class_in_the_given_order():
    still, moving = standing(), standing()
    moving[:, 21, 0] += 0.022 * np.arange(len(moving))
    rows = class_motion([moving, still, still[:20]], [7, 3, 3], [3, 7, 9])
    assert [r["clips"] for r in rows] == [2, 1, 0]
    assert rows[0]["local_speed"] == 0.0 and rows[0]["frames"] == 30.0
    assert rows[1]["local_speed"] == pytest.approx(0.02)
    assert np.isnan(rows[2]["local_speed"])
    with pytest.raises(ValueError, match="2 clips but 1 labels"):
        class_motion([still, still], [3], [3])


def test_split_motion_reads_real_and_synthetic_sets(tiny_world, tmp_path):
    synth = make_synthetic(tiny_world, tmp_path / "synth", method="copies", per_class=3)
    doc = split_motion(tiny_world / "target", "S0000", [synth])
    ds = NTUVibeDataset(tiny_world / "target")
    fs = ds.fewshot_split("S0000")
    assert doc["classes"] == [ds.class_names()[c] for c in fs.class_list]
    assert list(doc["sets"]) == [
        "real (few-shot training)",
        "real (validation)",
        "synthetic (copies)",
    ]
    train = doc["sets"]["real (few-shot training)"]
    assert [r["clips"] for r in train] == [fs.train_labels.count(c) for c in fs.class_list]
    first = [i for i, y in zip(fs.train_ids, fs.train_labels, strict=True) if y == fs.class_list[0]]
    expected = np.mean([local_speed(ds.joints(i)) for i in first])
    assert train[0]["local_speed"] == pytest.approx(expected)
    assert all(r["clips"] == 3 for r in doc["sets"]["synthetic (copies)"])
    table = motion_markdown(doc)
    assert table.count("\n") == 4 and "synthetic (copies)" in table
