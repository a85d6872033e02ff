"""kinemic.files.open_model_folder: every model folder is opened, checked and named one way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kinemic.errors import KinemicError
from kinemic.files import MODEL_FORMATS, ModelFolder, open_model_folder
from kinemic.prior.folder import SHIPPED_PRIOR, open_prior
from kinemic.tmor.encoder import SHIPPED_TMOR


def _folder(path: Path, config: dict | str) -> Path:
    path.mkdir(parents=True)
    text = config if isinstance(config, str) else json.dumps(config)
    (path / "config.json").write_text(text)
    return path


def _model(path: Path, kind: str, **extra) -> Path:
    fmt, version = MODEL_FORMATS[kind]
    return _folder(path, {"format": fmt, "version": version, **extra})


def _run(path: Path, kind: str, steps: tuple[int, ...] = (2, 4)) -> Path:
    """A training run folder: checkpoints/step-N (each a model folder) and ``latest``."""
    for step in steps:
        ckpt = _model(path / "checkpoints" / f"step-{step:08d}", kind)
        (ckpt / "trainer.json").write_text(json.dumps({"step": step}))
    (path / "latest").write_text(f"checkpoints/step-{steps[-1]:08d}\n")
    return path


@pytest.mark.parametrize("kind", ["prior", "generator", "tmor"])
def test_each_kind_is_named_by_its_format(tmp_path: Path, kind: str) -> None:
    folder = _model(tmp_path / "m", kind, extra_setting=3)
    opened = open_model_folder(folder)
    assert opened == ModelFolder(kind=kind, path=folder, config=opened.config)
    assert opened.config["extra_setting"] == 3 and opened.config_file == folder / "config.json"
    assert open_model_folder(folder, expect={kind}).kind == kind


def test_the_shipped_models_open() -> None:
    assert open_model_folder(SHIPPED_PRIOR).kind == "prior"
    assert open_prior("shipped").path == SHIPPED_PRIOR
    assert open_model_folder(SHIPPED_TMOR, expect={"tmor"}).kind == "tmor"


def test_a_run_folder_opens_its_latest_checkpoint(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", "generator")
    opened = open_model_folder(run, expect={"prior", "generator"})
    assert opened.kind == "generator"
    assert opened.path == run / "checkpoints" / "step-00000004"
    # a checkpoint folder is a model folder itself
    assert open_model_folder(run / "checkpoints" / "step-00000002").path.name == "step-00000002"
    (run / "latest").write_text("checkpoints/step-00000009\n")
    with pytest.raises(KinemicError, match=r"step-00000009, which is not a complete checkpoint"):
        open_model_folder(run)


def test_an_opened_folder_is_not_resolved_again(tmp_path: Path) -> None:
    opened = open_model_folder(_model(tmp_path / "p", "prior"))
    (opened.path / "config.json").unlink()
    assert open_model_folder(opened, expect={"prior"}) is opened
    with pytest.raises(KinemicError, match="is a prior, not a fine-tuned generator"):
        open_model_folder(opened, expect={"generator"})


def test_missing_folders_and_configs_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(KinemicError, match=rf"{tmp_path / 'nowhere'}: no such folder; expected a"):
        open_model_folder(tmp_path / "nowhere", expect={"prior"})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        KinemicError,
        match=rf"{empty}: not a T-MOR encoder folder \(no config\.json\) nor a training run",
    ):
        open_model_folder(empty, expect={"tmor"})
    with pytest.raises(KinemicError, match=r"not a prior or a fine-tuned generator folder"):
        open_model_folder(empty, expect={"prior", "generator"})
    run = tmp_path / "run"
    _run(run, "prior")
    (run / "checkpoints" / "step-00000004" / "config.json").unlink()
    with pytest.raises(KinemicError, match=r"step-00000004: the latest checkpoint of .*run has no"):
        open_model_folder(run)


def test_bad_configs_are_refused_with_the_file(tmp_path: Path) -> None:
    broken = _folder(tmp_path / "broken", "{not json")
    with pytest.raises(KinemicError, match=r"broken/config\.json: not valid JSON"):
        open_model_folder(broken)
    listed = _folder(tmp_path / "listed", "[1, 2]")
    with pytest.raises(KinemicError, match=r"listed/config\.json: expected a JSON object"):
        open_model_folder(listed)
    other = _folder(tmp_path / "other", {"format": "kinemic-stgcn", "version": 1})
    with pytest.raises(
        KinemicError,
        match=r"other/config\.json: not a kinemic prior config "
        r"\(format 'kinemic-stgcn', expected 'kinemic-prior'\)",
    ):
        open_model_folder(other, expect={"prior"})
    with pytest.raises(KinemicError, match=r"expected 'kinemic-prior', 'kinemic-generator' or"):
        open_model_folder(other)
    newer = _folder(tmp_path / "newer", {"format": "kinemic-tmor", "version": 2})
    with pytest.raises(KinemicError, match=r"newer/config\.json: kinemic-tmor version 2; this"):
        open_model_folder(newer)


def test_a_folder_of_another_kind_is_refused_with_what_to_pass(tmp_path: Path) -> None:
    prior = _model(tmp_path / "prior", "prior")
    generator = _model(tmp_path / "gen", "generator", prior={"path": "shipped"})
    with pytest.raises(
        KinemicError, match=r"gen is a fine-tuned generator, not a prior; pass the "
    ):
        open_model_folder(generator, expect={"prior"})
    with pytest.raises(KinemicError, match=r"prior is a prior, not a fine-tuned generator"):
        open_model_folder(prior, expect={"generator"})
    with pytest.raises(
        KinemicError, match=r"prior/config\.json: format 'kinemic-prior', expected 'kinemic-tmor'"
    ):
        open_model_folder(prior, expect={"tmor"})
    with pytest.raises(ValueError, match="expect must hold kinds"):
        open_model_folder(prior, expect={"priors"})
