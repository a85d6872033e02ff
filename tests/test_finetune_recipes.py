"""Fine-tuning recipes (paper, cpu) and the reference implementation's choices they select:
every shot once per step with crops of a multiple of 4 frames, LoRA on q, k, v separately,
the mdm-ft baseline fine-tuned whole but LayerNorms and embed_text, and the parameter counts
the command prints (975,072 LoRA and 4,730,369 MIC parameters at MDM-512)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kinemic.errors import KinemicError
from kinemic.finetune.config import FilterConfig, FinetuneConfig, LoraSettings, default_recipe
from kinemic.finetune.data import TargetClips
from kinemic.finetune.run import FinetuneTask, _fingerprint_settings, unit_crop

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------ recipes


def test_the_cpu_recipe_is_the_dataclass_defaults_and_the_paper_recipe_the_reference() -> None:
    assert FinetuneConfig.from_recipe("cpu") == FinetuneConfig()
    paper = FinetuneConfig.from_recipe("paper")
    expected = dict(
        recipe="paper",
        method="kinemic",
        train_steps=10000,
        batch_size=30,
        batching="all-shots",
        crop_unit=4,
        lr=2e-5,
        weight_decay=1e-5,
        warmup_steps=0,
        grad_clip=1.0,
        k=250,
        diffusion_steps=100,
        contrastive_weight=1.0,
        window_weight=1.0,
        distill_weight=0.0,
        mic_arch="reference",
        contrastive_loss="soft-nn",
        min_logit_scale=1.0,
        logit_scale_clamp="parameter",
        bank_size=60,
        temperature=0.07,
        mdm_ft="full",
    )
    assert {k: getattr(paper, k) for k in expected} == expected
    assert paper.lora == LoraSettings(rank=16, alpha=32.0, dropout=0.1, layout="separate")
    # soft positives: sub-clip captions as cut clips of 40-199 rows, CLIP's whole context
    assert paper.filter == FilterConfig.reference()
    assert (paper.filter.subclips, paper.filter.min_frames, paper.filter.max_frames) == (
        "cut",
        40,
        199,
    )
    assert paper.filter.text_tokens == 75 and paper.filter.kind == "none"
    mic = paper.mic_config(512)
    assert (mic.arch, mic.hidden_dim, mic.embed_dim, mic.loss) == ("reference", 512, 512, "soft-nn")


def test_overrides_win_and_nested_tables_merge() -> None:
    config = FinetuneConfig.from_recipe(
        "paper", train_steps=7, lora={"rank": 8}, filter={"kind": "kinematic"}
    )
    assert (config.recipe, config.train_steps, config.batch_size) == ("paper", 7, 30)
    assert (config.lora.rank, config.lora.layout, config.lora.alpha) == (8, "separate", 32.0)
    assert config.filter.kind == "kinematic" and config.filter.weight == 0.5
    whole = FinetuneConfig.from_recipe("paper", lora=LoraSettings(rank=4))
    assert whole.lora == LoraSettings(rank=4)  # an instance replaces the table
    # a recorded config reads back whole, recipe name included
    assert FinetuneConfig.from_dict(config.to_dict()) == config


def test_unknown_keys_and_bad_values_name_the_recipe_file(tmp_path: Path) -> None:
    recipe = tmp_path / "mine.toml"
    recipe.write_text('lr = 1e-4\nbatchsize = 3\n[lora]\nrank = 4\nlayuot = "separate"\n')
    with pytest.raises(KinemicError, match=r"mine.toml: unknown settings.*batchsize, lora.layuot"):
        FinetuneConfig.from_recipe(recipe)
    recipe.write_text('batching = "some"\n')
    with pytest.raises(KinemicError, match=r"mine.toml: .*batching must be one of"):
        FinetuneConfig.from_recipe(recipe)
    recipe.write_text("lr = \n")
    with pytest.raises(KinemicError, match=r"mine.toml: not a valid TOML file"):
        FinetuneConfig.from_recipe(recipe)
    recipe.write_text('lr = 1e-4\n[lora]\nlayout = "separate"\n')
    config = FinetuneConfig.from_recipe(recipe, seed=3)
    assert (config.recipe, config.lr, config.lora.layout, config.seed) == (
        str(recipe),
        1e-4,
        "separate",
        3,
    )
    with pytest.raises(KinemicError, match=r"paper.toml: unknown settings in overrides.*epochs"):
        FinetuneConfig.from_recipe("paper", epochs=3)
    with pytest.raises(KinemicError, match=r"unknown recipe 'fast': choose one of paper, cpu"):
        FinetuneConfig.from_recipe("fast")
    with pytest.raises(KinemicError, match=r"target_modules \['qkv'\] do not exist in layout"):
        LoraSettings(layout="separate", target_modules=["qkv", "out_proj"])


def test_the_default_recipe_is_paper_for_an_imported_mdm_only(tmp_path: Path, capsys) -> None:
    from kinemic.cli import main
    from kinemic.prior.folder import SHIPPED_PRIOR

    shipped = json.loads((SHIPPED_PRIOR / "config.json").read_text())
    assert default_recipe(shipped) == "cpu"
    imported = tmp_path / "imported"
    shutil.copytree(SHIPPED_PRIOR, imported)
    config = {**shipped, "training": {"imported_from": "/x/model000750000.pt", "format": "mdm"}}
    (imported / "config.json").write_text(json.dumps(config))
    assert default_recipe(config) == "paper"
    # the command picks the default from the --prior's folder, a named recipe wins
    for argv, recipe in (
        (["--prior", str(imported)], "paper"),
        (["--prior", str(imported), "--recipe", "cpu"], "cpu"),
        ([], "cpu"),
    ):
        assert main(["finetune", "--count-params", *argv]) == 0
        assert f"parameters of recipe {recipe} at " in capsys.readouterr().out


def test_the_cli_options_override_the_recipe_and_the_run_records_what_it_used() -> None:
    from kinemic.cli import build_parser
    from kinemic.cli.kinemic import _record, finetune_config

    base = ["finetune", "--target", "t", "--out", "o"]
    args = build_parser().parse_args(base)
    assert finetune_config(args, "cpu") == FinetuneConfig()
    assert finetune_config(args, "paper") == FinetuneConfig.from_recipe("paper")
    argv = [*base, "--lora-rank", "4", "--batching", "sampled", "--filter", "kinematic", "--bf16"]
    args = build_parser().parse_args(argv)
    config = finetune_config(args, "paper")
    assert config == FinetuneConfig.from_recipe(
        "paper",
        lora={"rank": 4},
        batching="sampled",
        filter={"kind": "kinematic"},
        mixed_precision="bf16",
    )
    assert build_parser().parse_args([*base, "--steps", "7"]).train_steps == 7  # the old name
    _record(args, "paper", config)
    assert (args.recipe, args.lora_rank, args.lora_layout, args.lr) == (
        "paper",
        4,
        "separate",
        2e-5,
    )
    assert (args.filter, args.filter_weight, args.train_steps) == ("kinematic", 0.5, 10000)
    assert (args.filter_subclips, args.filter_max_frames) == ("cut", 199)
    args = build_parser().parse_args([*base, "--filter-subclips", "include"])
    assert finetune_config(args, "paper").filter == FilterConfig.reference(subclips="include")


def test_runs_from_before_the_recipes_keep_their_resume_fingerprint() -> None:
    """The fingerprint of the cpu defaults has the keys runs recorded before the new settings
    (which only enter it at a value other than the old behaviour's)."""
    old_keys = {
        "method",
        "batch_size",
        "lr",
        "weight_decay",
        "warmup_steps",
        "grad_clip",
        "lora",
        "k",
        "diffusion_steps",
        "contrastive_weight",
        "window_weight",
        "distill_weight",
        "mic_hidden",
        "mic_embed",
        "bank_size",
        "temperature",
        "max_source_frames",
        "max_target_frames",
        "seed",
        "mixed_precision",
        "cpu",
    }
    settings = _fingerprint_settings(FinetuneConfig())
    assert set(settings) == old_keys
    assert set(settings["lora"]) == {"rank", "alpha", "dropout", "target_modules"}
    paper = _fingerprint_settings(FinetuneConfig.from_recipe("paper", method="mdm-ft"))
    assert paper["batching"] == "all-shots" and paper["crop_unit"] == 4
    assert paper["mdm_ft"] == "full" and paper["lora"]["layout"] == "separate"


# ------------------------------------------------------------------------------ batches


def _task(lengths: list[int], **settings) -> FinetuneTask:
    """A fine-tuning task over shots whose features are their index (no data folder)."""
    from kinemic.diffusion import NoiseSchedule

    n = len(lengths)
    targets = TargetClips(
        ids=[f"shot{i}" for i in range(n)],
        features=[np.full((L, 263), i, dtype=np.float32) for i, L in enumerate(lengths)],
        labels=np.arange(n) % 2,
        classes=[0, 1],
        class_names=["a", "b"],
        class_captions=["a", "b"],
        class_lengths={},
    )
    return FinetuneTask(
        targets=targets,
        sources=None,
        positives=None,
        class_text=torch.zeros(2, 4),
        schedule=NoiseSchedule(10),
        config=FinetuneConfig(method="mdm-ft", **settings),
        max_target_frames=60,
        max_source_frames=60,
        generator_config={},
    )


def _shots(batch: dict) -> list[int]:
    return batch["x0"][:, 0, 0].long().tolist()


def test_all_shots_batching_uses_every_shot_once_per_step_in_a_shuffled_order() -> None:
    lengths = [20, 23, 30, 41, 57, 64, 70]
    task = _task(lengths, batching="all-shots", batch_size=30, crop_unit=4)
    orders = [_shots(task.batch(step)) for step in range(4)]
    assert all(sorted(order) == list(range(7)) for order in orders)  # batch 30 > 7 shots: 7
    assert len({tuple(order) for order in orders}) > 1  # shuffled anew each step
    assert _shots(task.batch(2)) == orders[2]  # a pure function of (seed, step)
    # a batch smaller than the shots: each epoch of ceil(7/3) = 3 steps covers every shot,
    # the short last batch repeated up to 3 (the reference's collate)
    task = _task(lengths, batching="all-shots", batch_size=3)
    for epoch in range(2):
        batches = [_shots(task.batch(3 * epoch + i)) for i in range(3)]
        assert [len(b) for b in batches] == [3, 3, 3]
        assert sorted(batches[0] + batches[1] + batches[2][:1]) == list(range(7))
        assert batches[2] == [batches[2][0]] * 3
    sampled = _task(lengths, batching="sampled", batch_size=16)
    assert len(_shots(sampled.batch(0))) == 16  # drawn with replacement


def test_crops_are_random_windows_of_a_multiple_of_4_frames() -> None:
    task = _task([20, 23, 30, 41, 57, 64, 70], batching="all-shots", batch_size=7, crop_unit=4)
    for step in range(20):
        batch = task.batch(step)
        kept = batch["mask"].sum(1)
        assert all(n % 4 == 0 for n in kept.tolist())
        full = np.minimum([20, 23, 30, 41, 57, 64, 70], 60)[_shots(batch)]  # max frames 60
        assert all(
            k in (f // 4 * 4, f // 4 * 4 - 4) for k, f in zip(kept.tolist(), full, strict=True)
        )
    rng = np.random.default_rng(0)
    clip = np.arange(50)[:, None]
    windows = [unit_crop(clip, 4, 196, rng) for _ in range(3000)]
    assert {len(w) for w in windows} == {48, 44}
    shorter = np.mean([len(w) == 44 for w in windows])
    assert abs(shorter - 1 / 3) < 0.04  # the reference's coin: one unit shorter 1 time in 3
    starts = [int(w[0, 0]) for w in windows if len(w) == 48]
    assert set(starts) == {0, 1, 2}  # every start of a window that fits, clip-wide
    assert {len(unit_crop(clip, 4, 20, rng)) for _ in range(200)} == {20, 16}  # max frames
    assert len(unit_crop(clip[:3], 4, 196, rng)) == 3  # never below min(T, unit)
    assert {len(unit_crop(clip[:5], 4, 196, rng)) for _ in range(100)} == {4}
    assert {len(unit_crop(clip, 12, 196, rng)) for _ in range(100)} == {48}  # unit >= 10: no coin


# ------------------------------------------------------------------------------ LoRA, full FT


def _small_denoiser():
    from kinemic.diffusion import Denoiser, DenoiserConfig

    cfg = DenoiserConfig(latent_dim=32, num_layers=2, num_heads=2, ff_dim=48, text_dim=16)
    return Denoiser(cfg)


def _lora_counts(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, p in model.named_parameters():
        if "lora_" in name:
            module = name.split(".lora_")[0].split("base_model.model.")[-1]
            key = module if module.startswith("time_mlp") else module.split(".")[-1]
            counts[key] = counts.get(key, 0) + p.numel()
    return counts


def test_lora_layouts_adapt_packed_or_separate_projections() -> None:
    from kinemic.finetune.generator import TwoStreamDenoiser

    r, D, F, ff, L = 4, 32, 263, 48, 2
    both = {"out_proj": L * r * 2 * D, "linear1": L * r * (D + ff), "linear2": L * r * (ff + D)}
    both |= {"input_proj": r * (F + D), "output_proj": r * (D + F)}
    both |= {"time_mlp.0": r * 2 * D, "time_mlp.2": r * 2 * D}
    expected = {
        "packed": {**both, "qkv": L * r * (D + 3 * D)},
        "separate": {**both, "q": L * r * 2 * D, "k": L * r * 2 * D, "v": L * r * 2 * D},
    }
    for layout, counts in expected.items():
        torch.manual_seed(0)
        model = TwoStreamDenoiser(
            _small_denoiser(),
            num_actions=3,
            lora=LoraSettings(rank=r, layout=layout),
            diffusion_steps=10,
            prior_diffusion_steps=10,
        )
        assert _lora_counts(model) == counts, layout
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert all("lora_" in n or "embed_action" in n for n in trainable)


def test_the_separate_layout_keeps_the_prior_stream_the_prior() -> None:
    from kinemic.finetune.generator import TwoStreamDenoiser

    torch.manual_seed(0)
    original = _small_denoiser().eval()
    copy = _small_denoiser()
    copy.load_state_dict(original.state_dict())
    model = TwoStreamDenoiser(
        copy,
        num_actions=2,
        lora=LoraSettings(rank=4, layout="separate"),
        diffusion_steps=10,
        prior_diffusion_steps=10,
    )
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(2, 9, 263, generator=g), torch.randn(2, 16, generator=g)
    t = torch.tensor([1, 7])
    with torch.no_grad():
        want = original(x, t, text=text)
    assert torch.allclose(model.prior_stream(x, t, text=text), want, atol=1e-5)
    # the adapters start at zero (B = 0): the target stream starts as the prior too
    with torch.no_grad():
        assert torch.allclose(model.eval()(x, t, text=text), want, atol=1e-5)


def test_full_finetuning_trains_all_but_layernorms_and_embed_text() -> None:
    from kinemic.finetune.generator import TwoStreamDenoiser, full_finetune_names

    model = TwoStreamDenoiser(
        _small_denoiser(), num_actions=3, lora=None, diffusion_steps=10, prior_diffusion_steps=10
    )
    names = {n: p.requires_grad for n, p in model.full.named_parameters()}
    frozen = {n for n, trained in names.items() if not trained}
    assert frozen == {
        *(f"layers.{i}.norm{j}.{w}" for i in range(2) for j in (1, 2) for w in ("weight", "bias")),
        "embed_text.weight",
        "embed_text.bias",
    }
    assert (
        names["embed_action.weight"] and names["time_mlp.0.weight"] and names["layers.1.qkv.weight"]
    )
    assert set(full_finetune_names(model.full)) == set(names) - frozen - {"embed_action.weight"}
    assert model.peft is None and not any("lora_" in n for n in names)
    with pytest.raises(ValueError, match="keeps no frozen prior"):
        model.prior_stream(torch.zeros(1, 4, 263), torch.tensor([0]))


def test_the_count_command_prints_the_reference_counts_at_mdm_512(capsys) -> None:
    from kinemic.cli import main

    assert main(["finetune", "--recipe", "paper", "--count-params", "--preset", "mdm"]) == 0
    out = capsys.readouterr().out
    rows = {line[:52].strip(): line[52:].split() for line in out.splitlines()[1:]}
    assert rows["LoRA adapters (layout separate, rank 16)"][0] == "975,072"
    assert rows["MIC (arch reference)"][0] == "4,730,369"  # ≈ 4.73 M, + 1 logit scale
    assert rows["trained by mdm-ft, mdm_ft full, this recipe's"][0] == "17,601,287"
    assert rows["prior denoiser (frozen by LoRA)"][0] == "17,880,327"
    assert main(["finetune", "--recipe", "cpu", "--count-params", "--preset", "mdm"]) == 0
    out = capsys.readouterr().out
    assert "LoRA adapters (layout packed, rank 16)" in out and " 844,000" in out


# ------------------------------------------------------------------------------ runs


@pytest.mark.slow
def test_a_paper_recipe_run_and_a_full_mdm_ft_run_write_and_reload(
    tiny_world: Path, tmp_path: Path
) -> None:
    """Two steps of each on the tiny world (30 shots: every shot in each step) with the
    shipped prior; MIC made small for speed."""
    from safetensors.torch import load_file

    from kinemic.finetune.generator import load_generator
    from kinemic.finetune.run import finetune
    from kinemic.prior.folder import load_prior

    fast = dict(train_steps=2, k=20, checkpoint_every=2, log_every=1)
    paper = FinetuneConfig.from_recipe(
        "paper",
        mic_hidden=16,
        mic_embed=16,
        filter={"text_tokens": None},  # the prior's MiniLM has no CLIP context to set
        **fast,
    )
    finetune(
        tiny_world / "target",
        tmp_path / "kinemic",
        source=tiny_world / "source",
        config=paper,
        progress=False,
    )
    folder = tmp_path / "kinemic" / "checkpoints" / "step-00000002"
    config = json.loads((folder / "config.json").read_text())
    assert config["finetune"]["recipe"] == "paper" and config["adapter"] == "lora"
    assert config["finetune"]["batching"] == "all-shots" and config["mic"]["loss"] == "soft-nn"
    assert config["finetune"]["filter"] == FilterConfig.reference(text_tokens=None).to_dict()
    adapter = load_file(folder / "adapter" / "adapter_model.safetensors")
    assert any(".qkv.q.lora_A" in k for k in adapter) and not any(
        ".qkv.lora_" in k for k in adapter
    )
    gen = load_generator(tmp_path / "kinemic")
    assert gen.denoiser.lora.layout == "separate" and gen.mic.config.arch == "reference"

    full = FinetuneConfig.from_recipe("paper", method="mdm-ft", **fast)
    finetune(tiny_world / "target", tmp_path / "mdm-ft", config=full, progress=False)
    folder = tmp_path / "mdm-ft" / "checkpoints" / "step-00000002"
    assert {p.name for p in folder.iterdir()} == {
        "config.json",
        "target.safetensors",
        "actions.safetensors",
        "state",
        "trainer.json",
    }
    config = json.loads((folder / "config.json").read_text())
    assert config["adapter"] == "full" and config["lora"] is None and config["mic"] is None
    gen = load_generator(tmp_path / "mdm-ft")
    prior = load_prior("shipped").denoiser
    trained, base = dict(gen.denoiser.full.named_parameters()), dict(prior.named_parameters())
    assert gen.weights == "full"
    assert torch.equal(trained["layers.0.norm1.weight"], base["layers.0.norm1.weight"])
    assert torch.equal(trained["embed_text.weight"], base["embed_text.weight"])
    assert not torch.equal(trained["layers.0.linear1.weight"], base["layers.0.linear1.weight"])
    stored = load_file(folder / "target.safetensors")
    assert torch.equal(stored["layers.0.linear1.weight"], trained["layers.0.linear1.weight"])
