"""Fine-tuning: two streams on one copy of the weights, the generator folder, each loss term
logged, exact resume, and every bad input refused before training (tiny world, shipped prior)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kinemic.errors import KinemicError
from kinemic.finetune.config import FilterConfig, FinetuneConfig, LoraSettings
from kinemic.finetune.generator import TwoStreamDenoiser, load_generator, prior_timestep
from kinemic.finetune.run import FinetuneTask, finetune
from kinemic.prior.folder import SHIPPED_PRIOR, load_prior

pytestmark = pytest.mark.usefixtures("one_thread")

CKPT = "checkpoints/step-00000004"


def test_prior_timestep_maps_100_steps_onto_50() -> None:
    t = torch.tensor([0, 1, 2, 3, 50, 98, 99])
    mapped = prior_timestep(t, diffusion_steps=100, prior_diffusion_steps=50)
    assert mapped.tolist() == [0, 1, 1, 2, 25, 49, 49]
    same = prior_timestep(t, diffusion_steps=100, prior_diffusion_steps=100)
    assert same.tolist() == t.tolist()


def test_prior_stream_is_the_prior_bit_for_bit_on_one_copy_of_the_weights(
    tiny_generators: dict[str, Path],
) -> None:
    gen = load_generator(tiny_generators["kinemic"])
    original = load_prior("shipped").denoiser
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(3, 25, 263, generator=g), torch.randn(3, 384, generator=g)
    mask = torch.arange(25)[None] < torch.tensor([25, 18, 9])[:, None]
    t = torch.tensor([0, 57, 99])
    x0_p, lat_p = gen.denoiser.prior_stream(x, t, text=text, mask=mask, return_latents=True)
    with torch.no_grad():
        x0_o, lat_o = original(
            x, torch.tensor([0, 29, 49]), text=text, mask=mask, return_latents=True
        )
    assert torch.equal(x0_p, x0_o) and torch.equal(lat_p, lat_o)
    with torch.no_grad():  # the adapters are trained: the target stream is another model
        x0_g = gen.denoiser(x, t, text=text, action=torch.tensor([0, 1, 2]), mask=mask)
    assert not torch.allclose(x0_g[mask], x0_p[mask], atol=1e-4)
    # one copy of the prior's weights: base tensors are the prior's count, each stored once
    params = dict(gen.denoiser.named_parameters())
    base = {n: p for n, p in params.items() if "lora_" not in n and "embed_action" not in n}
    assert sum(p.numel() for p in base.values()) == original.num_parameters()
    assert len({p.data_ptr() for p in params.values()}) == len(params)
    lora = sum(p.numel() for n, p in params.items() if "lora_" in n)
    assert 0 < lora < original.num_parameters()
    # what fine-tuning trains: the LoRA matrices and the action table, nothing else
    fresh = TwoStreamDenoiser(
        load_prior("shipped").denoiser,
        num_actions=3,
        lora=LoraSettings(),
        diffusion_steps=100,
        prior_diffusion_steps=50,
    )
    trainable = [n for n, p in fresh.named_parameters() if p.requires_grad]
    assert all("lora_" in n or "embed_action" in n for n in trainable)
    assert sum("embed_action" in n for n in trainable) == 1
    assert not any("norm" in n or "embed_text" in n for n in trainable)
    assert {n.split(".lora_")[0].split(".")[-1] for n in trainable if "lora_" in n} == {
        "qkv",
        "out_proj",
        "linear1",
        "linear2",
        "input_proj",
        "output_proj",
        "0",
        "2",
    }


def test_generator_folder_holds_only_adapter_actions_mic_and_config(
    tiny_generators: dict[str, Path], tiny_world: Path
) -> None:
    run = tiny_generators["kinemic"]
    assert (run / "latest").read_text().strip() == CKPT
    folder = run / CKPT
    exported = {p.name for p in folder.iterdir()} - {"state", "trainer.json"}
    assert exported == {"config.json", "adapter", "actions.safetensors", "mic.safetensors"}
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "kinemic-generator" and config["method"] == "kinemic"
    assert config["prior"]["path"] == "shipped" and len(config["prior"]["sha256"]) == 64
    assert config["classes"] == [98, 101, 103] and config["split"] == "S0000"
    assert config["lora"]["rank"] == 16 and config["lora"]["alpha"] == 32
    assert config["schedule"] == {**config["schedule"], "num_steps": 100, "prior_steps": 50}
    assert set(config["class_lengths"]) == {"98", "101", "103"}
    assert all(len(v) == 10 for v in config["class_lengths"].values())
    assert config["target"] == str((tiny_world / "target").resolve())
    assert load_file(folder / "actions.safetensors")["weight"].shape == (3, 128)
    adapter = load_file(folder / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    # the adapter folder is a plain peft adapter
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(load_prior("shipped").denoiser, folder / "adapter")
    gen = load_generator(run)
    key = next(k for k in adapter if "lora_B" in k)
    ours = dict(gen.denoiser.peft.named_parameters())[key.replace(".weight", ".default.weight")]
    theirs = dict(peft_model.named_parameters())[key.replace(".weight", ".default.weight")]
    assert torch.equal(ours, theirs) and ours.abs().sum() > 0
    assert gen.classes == [98, 101, 103] and gen.class_names[1] == "side kick"
    assert gen.mic is not None and gen.schedule.num_steps == 100
    # mdm-ft: the same adapters, no MIC
    mdm = load_generator(tiny_generators["mdm-ft"])
    assert mdm.mic is None and not (tiny_generators["mdm-ft"] / CKPT / "mic.safetensors").exists()
    # a prior is refused with a hint; a changed prior is detected
    with pytest.raises(KinemicError, match="is a prior"):
        load_generator(SHIPPED_PRIOR)
    # kinemic sample's loader opens either kind once and dispatches on its format
    from kinemic.models import load_model

    either = load_model(run)
    assert type(either) is type(gen) and either.path == gen.path and either.classes == gen.classes
    assert load_model("shipped").path == load_model(SHIPPED_PRIOR).path == SHIPPED_PRIOR


def test_each_loss_term_is_logged(tiny_generators: dict[str, Path]) -> None:
    for method, names in (
        ("kinemic", {"rec", "con", "wrec", "window_weight", "logit_scale"}),
        ("mdm-ft", {"rec"}),
    ):
        trainer = json.loads((tiny_generators[method] / CKPT / "trainer.json").read_text())
        steps = [s for s, _ in trainer["terms"]]
        assert steps == [2, 4] and all(set(t) == names for _, t in trainer["terms"])
        assert all(v == v for _, t in trainer["terms"] for v in t.values())  # no NaN
        assert list((tiny_generators[method] / "logs").rglob("events.out.tfevents*"))
    trainer = json.loads((tiny_generators["kinemic"] / CKPT / "trainer.json").read_text())
    terms = dict(trainer["terms"])[4]
    assert 0 <= terms["window_weight"] <= 1 and 0 < terms["logit_scale"] <= 100


@pytest.mark.slow
def test_resume_after_a_kill_gives_identical_weights(
    tiny_world: Path, tmp_path: Path, monkeypatch
) -> None:
    config = FinetuneConfig(train_steps=5, batch_size=4, k=10, checkpoint_every=3, log_every=1)
    opts = dict(source=tiny_world / "source", config=config, progress=False)
    finetune(tiny_world / "target", tmp_path / "straight", **opts)
    original = FinetuneTask.batch

    def killed(self, step, **kw):
        if step == 4:
            raise KeyboardInterrupt  # killed after the checkpoint at 3
        return original(self, step, **kw)

    monkeypatch.setattr(FinetuneTask, "batch", killed)
    with pytest.raises(KeyboardInterrupt):
        finetune(tiny_world / "target", tmp_path / "killed", **opts)
    monkeypatch.setattr(FinetuneTask, "batch", original)
    finetune(tiny_world / "target", tmp_path / "killed", resume=tmp_path / "killed", **opts)
    for name in ("adapter/adapter_model.safetensors", "actions.safetensors", "mic.safetensors"):
        a = load_file(tmp_path / "straight" / "checkpoints/step-00000005" / name)
        b = load_file(tmp_path / "killed" / "checkpoints/step-00000005" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    mic = load_file(tmp_path / "killed" / "checkpoints/step-00000005" / "mic.safetensors")
    assert (mic["bank_labels"] >= 0).sum() == 20  # 5 steps of 4 prior embeddings in the bank


@pytest.fixture()
def broken_target(tiny_world: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny target (features linked, not copied)."""
    src, dst = tiny_world / "target", tmp_path / "target"
    dst.mkdir()
    (dst / "new_joint_vecs").symlink_to(src / "new_joint_vecs")
    for name in ("ntu_classes.txt", "ntu_metadata.json"):
        shutil.copy(src / name, dst / name)
    shutil.copytree(src / "splits", dst / "splits")
    return dst


def _split(root: Path, name: str, *, ids: list[str], labels: list[int], shots: int) -> None:
    folder = root / "splits" / "fewshot" / name
    (folder / "xsub").mkdir(parents=True)
    classes = sorted(set(labels))
    (folder / "meta.json").write_text(
        json.dumps({"class_list": classes, "seed": 0, "shots": shots})
    )
    (folder / "xsub" / "train.txt").write_text("".join(f"{i}\n" for i in ids))
    (folder / "xsub" / "train_y.txt").write_text("".join(f"{y}\n" for y in labels))


def test_bad_inputs_fail_before_training(broken_target: Path, tiny_world: Path, tmp_path: Path):
    root = broken_target
    split = (root / "splits/fewshot/S0000/xsub/train.txt").read_text().split()
    labels = [int(y) for y in (root / "splits/fewshot/S0000/xsub/train_y.txt").read_text().split()]
    _split(root, "S0100", ids=[*split[:-1], "S001C001P001R001A099"], labels=labels, shots=10)
    _split(root, "S0101", ids=split, labels=labels, shots=11)
    out = tmp_path / "run"
    opts = dict(source=tiny_world / "source", progress=False)
    cases = [
        (dict(split="S0999"), r"no few-shot split 'S0999' \(present: S0000, S0001, S0100"),
        (dict(split="S0100"), r"S0100/xsub/train.txt.*S001C001P001R001A099.*does not exist"),
        (dict(split="S0101"), r"fewer clips than the split's 11 shots: 98 \(run on the spot\): 10"),
    ]
    incomplete = tmp_path / "prior"
    shutil.copytree(SHIPPED_PRIOR, incomplete)
    (incomplete / "normalizer.npz").unlink()
    cases.append((dict(prior=incomplete), r"incomplete prior folder, missing normalizer.npz"))
    cases.append((dict(source=None), r"needs source motions.*--source"))
    cases.append((dict(source=tmp_path), r"not a HumanML3D-layout folder"))
    for kwargs, message in cases:
        with pytest.raises(KinemicError, match=message):
            finetune(root, out, **{**opts, **kwargs})
        assert not out.exists()
    meta = json.loads((root / "ntu_metadata.json").read_text())
    meta["actions"][98]["captions"] = ["  "]
    (root / "ntu_metadata.json").write_text(json.dumps(meta))
    with pytest.raises(KinemicError, match=r"ntu_metadata.json.*actions\[98\] has no 'captions'"):
        finetune(root, out, **opts)
    with pytest.raises(KinemicError, match="batch_size must be >= 1"):
        FinetuneConfig(batch_size=0)
    assert not out.exists()


def test_a_generator_is_refused_as_prior_and_a_run_is_not_overwritten(
    tiny_generators: dict[str, Path], tiny_world: Path
) -> None:
    from kinemic.cli import main

    run = tiny_generators["mdm-ft"]
    with pytest.raises(KinemicError, match="is a fine-tuned generator"):
        finetune(tiny_world / "target", run.parent / "x", prior=run, progress=False)
    args = [
        "finetune",
        "--target",
        str(tiny_world / "target"),
        "--method",
        "mdm-ft",
        "--out",
        str(run),
    ]
    assert main(args) == 2  # already holds a run: --resume or another folder


def test_the_config_and_the_parser_import_no_torch() -> None:
    """The CLI reads its defaults from ``kinemic.finetune.config``, which imports no torch, and
    building the whole parser imports none either (``kinemic --help`` stays fast)."""
    code = (
        "import sys, kinemic.finetune.config, kinemic.mining.config\n"
        "assert 'torch' not in sys.modules, 'the configs import torch'\n"
        "from kinemic.cli import build_parser\n"
        "build_parser()\n"
        "assert 'torch' not in sys.modules, 'building the parser imports torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_settings_recorded_by_earlier_versions_still_load() -> None:
    """A run's ``config.json`` records ``FinetuneConfig.to_dict()``; earlier versions wrote
    ``steps`` and the four flat ``filter*`` keys."""
    old = {
        **{k: v for k, v in FinetuneConfig(k=4).to_dict().items() if k != "filter"},
        "steps": 9,
        "filter": "kinematic",
        "filter_pool": 12,
        "filter_encoder": None,
        "filter_weight": 1.0,
    }
    del old["train_steps"]
    config = FinetuneConfig.from_dict(old)
    assert config.train_steps == 9
    assert config.filter == FilterConfig(kind="kinematic", pool=12, weight=1.0)
    assert FinetuneConfig.from_dict(config.to_dict()) == config
    assert config.flat()["filter"] == "kinematic" and config.flat()["filter_pool"] == 12
    assert FinetuneConfig.from_dict(FinetuneConfig().flat()) == FinetuneConfig()


def test_objective_terms_and_what_gets_gradients() -> None:
    """The objective on a small random denoiser: every configured term, gradients only into the
    adapters, the action table and MIC, and the bank filled with the prior embeddings."""
    from kinemic.diffusion import Denoiser, DenoiserConfig, NoiseSchedule
    from kinemic.finetune.objective import FinetuneModel
    from kinemic.mining.mic import MIC

    torch.manual_seed(0)
    dcfg = DenoiserConfig(latent_dim=32, num_layers=2, num_heads=2, ff_dim=64, text_dim=16)
    g = torch.Generator().manual_seed(0)
    B = 4
    batch = {
        "x0": torch.randn(B, 12, 263, generator=g),
        "t": torch.tensor([0, 30, 60, 99]),
        "mask": torch.arange(12)[None] < torch.tensor([12, 10, 8, 12])[:, None],
        "noise": torch.randn(B, 20, 263, generator=g),
        "text": torch.randn(B, 16, generator=g),
        "action": torch.tensor([0, 1, 0, 1]),
        "src_x0": torch.randn(B, 20, 263, generator=g),
        "src_mask": torch.arange(20)[None] < torch.tensor([20, 15, 6, 20])[:, None],
        "src_text": torch.randn(B, 16, generator=g),
    }
    for weights, names in (
        (dict(distill_weight=0.5), {"rec", "con", "wrec", "window_weight", "logit_scale", "dist"}),
        (dict(window_weight=0.0), {"rec", "con", "logit_scale"}),
    ):
        config = FinetuneConfig(**weights, mic_hidden=8, mic_embed=8, bank_size=6)
        model = TwoStreamDenoiser(
            Denoiser(dcfg),
            num_actions=2,
            lora=LoraSettings(rank=4),
            diffusion_steps=100,
            prior_diffusion_steps=50,
        )
        mic = MIC(config.mic_config(32))
        objective = FinetuneModel(model, mic, NoiseSchedule(100), config).train()
        loss, terms = objective(batch)
        assert set(terms) == names and torch.isfinite(loss)
        loss.backward()
        for name, p in objective.named_parameters():
            trained = "lora_" in name or "embed_action" in name or name.startswith("mic.")
            assert (p.grad is not None) == trained, name
        assert mic.bank_labels.tolist() == [0, 1, 0, 1, -1, -1]
