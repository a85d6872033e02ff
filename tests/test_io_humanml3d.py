"""HumanML3D layout: caption lines, tokenizer, writer/reader round trips, errors, conversion."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from kinemic.errors import DataError
from kinemic.io.humanml3d import (
    Caption,
    HumanML3DDataset,
    format_caption_line,
    is_mirror,
    parse_caption_line,
    tokenize,
    write_clip,
    write_mean_std,
    write_split,
)

UNIVERSAL_TAGS = {
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "VERB",
}


# --------------------------------------------------------------------------- caption lines


@pytest.mark.parametrize(
    "caption",
    [
        Caption("a person walks.", ["a/DET", "person/NOUN", "walk/VERB"]),
        Caption("then jumps", ["then/ADV", "jump/VERB"], start=1.5, end=3.25),
        Caption("x", [], 0.0, 0.0),
    ],
)
def test_caption_line_round_trip(caption):
    line = format_caption_line(caption)
    assert "\n" not in line
    assert parse_caption_line(line) == caption


def test_parse_real_line_and_short_form():
    line = "a person runs in place.#a/DET person/NOUN run/VERB in/ADP place/NOUN#0.0#0.0"
    cap = parse_caption_line(line)
    assert cap.text == "a person runs in place."
    assert cap.tokens == ["a/DET", "person/NOUN", "run/VERB", "in/ADP", "place/NOUN"]
    assert cap.whole_clip
    short = parse_caption_line("a man waves#a/DET man/NOUN wave/VERB\n")
    assert (short.start, short.end, short.tokens[-1]) == (0.0, 0.0, "wave/VERB")
    assert parse_caption_line("a#a/DET#nan#nan").whole_clip  # HumanML3D loaders read nan as 0


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("a person walks#a/DET#0.0", "expected 4 '#'-separated fields"),
        ("only text", "found 1"),
        ("a person#a/DET#zero#1.0", "must be numbers"),
        ("a person#a/DET#3.0#1.0", "start <= end"),
        ("a person#a/DET#-1.0#1.0", "start <= end"),
        ("   #a/DET#0.0#0.0", "caption text is empty"),
    ],
)
def test_malformed_caption_line_names_file_and_line(line, needle):
    with pytest.raises(DataError) as err:
        parse_caption_line(line, path="texts/000001.txt", line_no=7)
    assert str(err.value).startswith("texts/000001.txt, line 7: ")
    assert needle in str(err.value)
    assert err.value.line == 7


def test_caption_rejects_hash_in_text():
    with pytest.raises(ValueError, match="'#'"):
        Caption("a # b")


# --------------------------------------------------------------------------- tokenizer


def test_tokenize_reproduces_real_ntu_vibe_tokens(ntu_vibe_fixture):
    lines = {
        line
        for p in (ntu_vibe_fixture / "texts").glob("*.txt")
        for line in p.read_text().splitlines()
    }
    assert len(lines) == 2
    for line in lines:
        cap = parse_caption_line(line)
        assert tokenize(cap.text) == cap.tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A man is walking forward.", "a/DET man/NOUN is/AUX walk/VERB forward/ADV"),
        ("someone stepped back", "someone/PRON step/VERB back/ADV"),
        ("he carries two boxes", "he/PRON carry/VERB two/NUM box/NOUN"),
        ("she starts to dance", "she/PRON start/VERB to/PART dance/VERB"),
        ("they walk to the door", "they/PRON walk/VERB to/ADP the/DET door/NOUN"),
        ("raises both hands", "raise/VERB both/DET hand/NOUN"),
        ("a person runs in circles", "a/DET person/NOUN run/VERB in/ADP circle/NOUN"),
        ("a side-kick!", "a/DET sidekick/NOUN"),
        (
            "the person kicks with his left leg",
            "the/DET person/NOUN kick/VERB with/ADP his/DET left/ADJ leg/NOUN",
        ),
    ],
)
def test_tokenize_tags_and_lemmas(text, expected):
    assert " ".join(tokenize(text)) == expected


def test_tokenize_uses_universal_tags_only():
    text = "Slowly, the 2 people quickly dance and then sit down while waving at someone"
    toks = tokenize(text)
    assert toks and all(re.fullmatch(r"[a-z]+/[A-Z]+", t) for t in toks)
    assert {t.split("/")[1] for t in toks} <= UNIVERSAL_TAGS
    assert "people/NOUN" not in toks and "person/NOUN" in toks


def test_caption_from_text_tokenises():
    cap = Caption.from_text("  a person jumps. ", start=1.0, end=2.0)
    assert cap == Caption("a person jumps.", ["a/DET", "person/NOUN", "jump/VERB"], 1.0, 2.0)


# --------------------------------------------------------------------------- write / read


def _clip(t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(t, 263)).astype(np.float32), rng.normal(size=(t, 22, 3))


def test_round_trip(tmp_path):
    feats, joints = _clip(30)
    captions = ["a person walks.", Caption("then stops", ["then/ADV"], 1.0, 1.5)]
    write_clip(tmp_path, "000001", features=feats, joints=joints, captions=captions)
    write_clip(tmp_path, "M000001", features=feats[::-1], joints=joints.reshape(30, 66))
    write_split(tmp_path, "train", ["000001", "M000001"])
    mean, std = np.arange(263.0), np.full(263, 2.0)
    write_mean_std(tmp_path, mean, std)

    ds = HumanML3DDataset(tmp_path)
    assert ds.ids() == ["000001", "M000001"]
    assert ds.split("train") == ["000001", "M000001"]
    np.testing.assert_array_equal(ds.features("000001"), feats)
    assert ds.joints("M000001").shape == (30, 22, 3)
    assert ds.joints("000001").dtype == np.float32
    np.testing.assert_allclose(ds.joints("M000001"), joints.astype(np.float32))
    caps = ds.captions("000001")
    assert [c.text for c in caps] == ["a person walks.", "then stops"]
    assert caps[0].tokens == ["a/DET", "person/NOUN", "walk/VERB"]
    assert (caps[1].start, caps[1].end) == (1.0, 1.5)
    m, s = ds.mean_std()
    np.testing.assert_array_equal(m, mean.astype(np.float32))
    assert s.dtype == np.float32
    assert is_mirror("M000001") and not is_mirror("000001")
    assert not list(tmp_path.rglob("*.tmp"))


def test_reads_real_humanml3d_clip(humanml3d_fixture):
    ds = HumanML3DDataset(humanml3d_fixture)
    assert ds.ids() == ["012314"]
    assert ds.features("012314").shape == (170, 263)
    assert ds.joints("012314").shape == (170, 22, 3)
    mean, std = ds.mean_std()
    assert mean.shape == std.shape == (263,) and (std > 0).all()


def _dataset_with_clip(tmp_path: Path) -> HumanML3DDataset:
    feats, joints = _clip(10)
    write_clip(tmp_path, "a", features=feats, joints=joints, captions=["a person walks"])
    return HumanML3DDataset(tmp_path)


def test_missing_files_are_named(tmp_path):
    ds = _dataset_with_clip(tmp_path)
    for call, rel in [
        (lambda: ds.features("b"), "new_joint_vecs/b.npy"),
        (lambda: ds.joints("b"), "new_joints/b.npy"),
        (lambda: ds.captions("b"), "texts/b.txt"),
        (lambda: ds.split("val"), "val.txt"),
        (ds.mean_std, "Mean.npy"),
    ]:
        with pytest.raises(DataError, match="missing file") as err:
            call()
        assert str(err.value).startswith(str(tmp_path / rel))


def test_wrong_shapes_say_expected_and_found(tmp_path):
    ds = _dataset_with_clip(tmp_path)
    np.save(tmp_path / "new_joint_vecs" / "bad.npy", np.zeros((5, 10), np.float32))
    np.save(tmp_path / "new_joints" / "bad.npy", np.zeros((5, 21, 3), np.float32))
    np.save(tmp_path / "Mean.npy", np.zeros(262, np.float32))
    with pytest.raises(DataError, match=re.escape("expected (T, 263), found (5, 10)")) as err:
        ds.features("bad")
    assert err.value.path == tmp_path / "new_joint_vecs" / "bad.npy"
    with pytest.raises(DataError, match=re.escape("expected (T, 22, 3) or (T, 66), found (5, 21")):
        ds.joints("bad")
    with pytest.raises(DataError, match=re.escape("Mean.npy: wrong shape: expected (263,)")):
        ds.mean_std()


def test_corrupt_npy_and_bad_caption_file(tmp_path):
    ds = _dataset_with_clip(tmp_path)
    (tmp_path / "new_joint_vecs" / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(DataError, match=r"junk\.npy: cannot read"):
        ds.features("junk")
    (tmp_path / "texts" / "a.txt").write_text("fine#a/DET#0.0#0.0\nbroken#a/DET#1.0\n")
    with pytest.raises(DataError) as err:
        ds.captions("a")
    assert str(err.value).startswith(f"{tmp_path / 'texts' / 'a.txt'}, line 2: malformed")
    (tmp_path / "texts" / "a.txt").write_text("\n")
    with pytest.raises(DataError, match="no caption lines"):
        ds.captions("a")


def test_split_listing_unknown_id_names_split_and_line(tmp_path):
    ds = _dataset_with_clip(tmp_path)
    (tmp_path / "test.txt").write_text("a\n\nghost\n")
    with pytest.raises(DataError) as err:  # as kinemic validate: a blank line inside a list
        ds.split("test")
    assert str(err.value).startswith(f"{tmp_path / 'test.txt'}, line 2: blank line")
    (tmp_path / "test.txt").write_text("a\nb\nghost\n\n")  # trailing blank lines are fine
    write_clip(tmp_path, "b", features=np.zeros((4, 263)))
    with pytest.raises(DataError) as err:
        ds.split("test")
    assert str(err.value).startswith(f"{tmp_path / 'test.txt'}, line 3: ")
    assert "ghost but new_joint_vecs/ghost.npy does not exist" in str(err.value)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        HumanML3DDataset(tmp_path / "nope")
    with pytest.raises(DataError, match="new_joint_vecs"):
        HumanML3DDataset(tmp_path).ids()


def test_writers_reject_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="expected"):
        write_clip(tmp_path, "x", features=np.zeros((4, 262)))
    with pytest.raises(ValueError, match=re.escape("(263,)")):
        write_mean_std(tmp_path, np.zeros(263), np.zeros(5))
    assert not list(tmp_path.rglob("*.npy"))


# --------------------------------------------------------------------------- conversion


def test_convert_joints_folder(tmp_path, humanml3d_fixture):
    pytest.importorskip("kinemic.features")
    from kinemic.features import features_to_joints
    from kinemic.io.joints import convert_joints_folder

    src = tmp_path / "src"
    src.mkdir()
    joints = np.load(humanml3d_fixture / "new_joints" / "012314.npy")  # (170, 22, 3)
    np.save(src / "walk.npy", joints)
    np.save(src / "walk66.npy", joints[:60].reshape(60, 66))
    caps = tmp_path / "caps"
    caps.mkdir()
    (caps / "walk.txt").write_text("a person walks forward\nwalks#walk/VERB#0.0#2.0\n")
    ids = convert_joints_folder(src, tmp_path / "out", captions=caps).converted

    ds = HumanML3DDataset(tmp_path / "out")
    assert ids == ds.ids() == ds.split("train") == ["walk", "walk66"]
    f = ds.features("walk")
    assert f.shape == (169, 263) and ds.features("walk66").shape == (59, 263)
    np.testing.assert_allclose(ds.joints("walk"), features_to_joints(f), atol=1e-5)
    # the stored clip is already canonical HumanML3D: its features come back (away from the end,
    # which the facing smoothing reaches)
    stored = np.load(humanml3d_fixture / "new_joint_vecs" / "012314.npy")
    np.testing.assert_allclose(f[:120, :67], stored[:120, :67], atol=1e-3)
    assert [c.tokens for c in ds.captions("walk")] == [
        ["a/DET", "person/NOUN", "walk/VERB", "forward/ADV"],
        ["walk/VERB"],
    ]
    with pytest.raises(DataError, match="missing file"):
        ds.captions("walk66")
    mean, std = ds.mean_std()
    assert mean.shape == (263,) and (std > 0).all()


def test_convert_resamples_and_rejects_bad_files(tmp_path):
    pytest.importorskip("kinemic.features")
    from kinemic.io.joints import convert_joints_folder

    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "bad.npy", np.zeros((10, 20, 3)))
    with pytest.raises(DataError, match=re.escape("bad.npy: wrong shape")):
        convert_joints_folder(src, tmp_path / "out")
    with pytest.raises(DataError, match=r"no \.npy joint files"):
        convert_joints_folder(tmp_path / "empty", tmp_path / "out")
