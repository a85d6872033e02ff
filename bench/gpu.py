"""Benchmark and checks on one CUDA GPU: CPU/GPU agreement, speed and model FLOPs utilisation
at the ``mdm`` preset, and two training processes on the one GPU with an exact resume.

Run: ``python bench/gpu.py`` (``--no-append`` to only print). About 3 to 5 minutes on one
H100, at most 8. Prints three tables and appends them to bench/results.md. Without a CUDA
device it prints "no CUDA device: nothing measured" and exits with status 2, appending nothing.

1. **Agreement** of the GPU with the CPU, in fp32 with TF32 off on the GPU (so that the
   comparison is of the same arithmetic): the ``mdm`` denoiser's forward (batch 4, 196 frames,
   clips of different lengths); the sampler (DDIM over 10 steps and ancestral DDPM over 50,
   guidance 2.5), fed the same CPU generator on both devices so that their noise is the same;
   the sampler with its noise drawn on the GPU (``kinemic.devices.device_generator``): the same
   seed twice gives the same samples, and their spread matches the CPU-noise samples'; one
   KineMIC step (the two-stream objective's forward and backward with LoRA and MIC on the
   ``mdm`` denoiser, window mining included): its loss terms, gradients and mined windows.
2. **Speed** at the ``mdm`` preset (17.9 M parameters), every clip 196 frames, in fp32 (TF32
   off), TF32 and bf16 autocast: sampling samples/s (ancestral DDPM over 50 steps, guidance
   2.5 in one batched forward: two forwards' worth per step) and training samples/s (the
   pretraining step through ``kinemic.training.train``: fused AdamW, gradient clipping, EMA,
   loader workers; the first step untimed). Model FLOPs utilisation = model FLOPs/s over the
   GPU's peak, the FLOPs counted from the matrix products (``forward_gflop`` of
   bench/sampling.py: 7.35 GFLOP per forward at 196 frames), training = 3 forwards' worth
   (forward and backward). Peaks: the NVIDIA H100 Tensor Core GPU Architecture whitepaper
   (2022), H100 SXM5 column, dense (the halves of its "with sparsity" figures): FP32 66.9,
   TF32 494.7, BF16 989.4 TFLOPS; the H200 has the same compute. For another GPU, give
   ``--peak-fp32 --peak-tf32 --peak-bf16`` (TFLOPS), else no MFU is printed.
3. **Two processes on the one GPU** (``torchrun --nproc_per_node 2 -m kinemic pretrain``;
   they share the GPU, so they use gloo): the ``tiny`` preset for 6 steps, twice, and 3 steps
   then ``--resume`` to 6; the final checkpoints' weights compared. Equal bit for bit: the
   resume is exact; when the two uninterrupted runs already differ (a nondeterministic GPU
   kernel), the resumed one is judged against that difference.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

GUIDANCE = 2.5
FRAMES = 196
#: Dense peaks (FLOP/s) of the H100 SXM5 (NVIDIA H100 Tensor Core GPU Architecture whitepaper,
#: 2022, the table comparing data-centre GPUs; its TF32/BF16 "with sparsity" figures halved).
#: The H200 has the same compute (NVIDIA H200 datasheet).
H100_SXM_PEAKS = {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12}
PRECISIONS = ("fp32", "tf32", "bf16")


# ------------------------------------------------------------------------------ arithmetic


@contextlib.contextmanager
def precision(kind: str) -> Iterator[None]:
    """fp32 matrix products in full fp32 ("fp32", "bf16": autocast is the caller's) or in
    TF32 ("tf32"), restored afterwards."""
    before = torch.get_float32_matmul_precision()
    cudnn = torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if kind == "tf32" else "highest")
    torch.backends.cudnn.allow_tf32 = kind == "tf32"
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)
        torch.backends.cudnn.allow_tf32 = cudnn


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| / max |b| (b the CPU reference), on the CPU in float64."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------ 1. agreement


def _inputs(config, batch: int, frames: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random CPU inputs of the denoiser: x (B, T, F), t (B,), text (B, E), mask (B, T)."""
    from kinemic.diffusion import lengths_to_mask

    g = torch.Generator().manual_seed(seed)
    lengths = [frames - (frames // (2 * batch)) * i for i in range(batch)]
    return {
        "x": torch.randn(batch, frames, config.feature_dim, generator=g),
        "t": torch.randint(0, 50, (batch,), generator=g),
        "text": torch.randn(batch, config.text_dim, generator=g),
        "mask": lengths_to_mask(lengths, frames),
    }


def check_denoiser(model, device: torch.device, *, batch: int = 4, frames: int = FRAMES):
    """(measure, value) of the denoiser's forward on ``device`` against the CPU."""
    inp = _inputs(model.config, batch, frames)
    other = copy.deepcopy(model).to(device).eval()
    model.eval()
    with torch.inference_mode(), precision("fp32"):
        ref = model(inp["x"], inp["t"], text=inp["text"], mask=inp["mask"])
        got = other(*(inp[k].to(device) for k in ("x", "t")), **_on(inp, device, "text", "mask"))
    return relative(got * inp["mask"][..., None].to(device), ref * inp["mask"][..., None])


def _on(inp: dict, device: torch.device, *keys: str) -> dict[str, torch.Tensor]:
    return {k: inp[k].to(device) for k in keys}


def check_sampler(
    model, device: torch.device, *, batch: int = 2, frames: int = 120, steps: int = 50
) -> dict[str, float]:
    """Sampler agreement (module doc): DDIM-10 and DDPM with one CPU generator on both
    devices; the device generator's reproducibility and spread."""
    from kinemic.devices import device_generator
    from kinemic.diffusion import NoiseSchedule, sample

    schedule = NoiseSchedule(steps)
    inp = _inputs(model.config, batch, frames, seed=1)
    other = copy.deepcopy(model).to(device)
    shape = (batch, frames, model.config.feature_dim)
    out = {}
    with precision("fp32"):
        for name, ddim in (("DDIM-10", 10), (f"DDPM-{steps}", None)):
            runs = []
            for m in (model, other):
                gen = torch.Generator().manual_seed(7)  # the same CPU noise on both
                x = sample(
                    m,
                    schedule,
                    shape,
                    text=inp["text"],
                    mask=inp["mask"],
                    guidance=GUIDANCE,
                    generator=gen,
                    ddim_steps=ddim,
                )
                runs.append(x.cpu())
            out[name] = relative(runs[1], runs[0])
        cpu_noise = runs[0]
        on_device = [
            sample(
                other,
                schedule,
                shape,
                text=inp["text"],
                mask=inp["mask"],
                guidance=GUIDANCE,
                generator=device_generator(7, device),
            ).cpu()
            for _ in range(2)
        ]
    out["device noise, same seed twice"] = float((on_device[0] - on_device[1]).abs().max())
    valid = inp["mask"][..., None].expand(shape)
    spread = on_device[0][valid].std() / cpu_noise[valid].std()
    out["device noise: spread / CPU-noise spread − 1"] = float(abs(spread - 1))
    return out


def kinemic_objective(prior, num_actions: int = 4):
    """The KineMIC two-stream objective (LoRA adapters, action table, MIC) on ``prior``."""
    from kinemic.diffusion import NoiseSchedule
    from kinemic.finetune.config import FinetuneConfig
    from kinemic.finetune.generator import TwoStreamDenoiser
    from kinemic.finetune.objective import FinetuneModel
    from kinemic.mining.mic import MIC

    config = FinetuneConfig(method="kinemic")
    config = replace(config, lora=config.lora.resolved())
    torch.manual_seed(0)
    model = TwoStreamDenoiser(
        copy.deepcopy(prior),
        num_actions=num_actions,
        lora=config.lora,
        diffusion_steps=config.diffusion_steps,
        prior_diffusion_steps=50,
    )
    mic = MIC(config.mic_config(prior.config.latent_dim))
    return FinetuneModel(model, mic, NoiseSchedule(config.diffusion_steps), config)


def kinemic_batch(config, *, batch: int = 4, frames: int = FRAMES, num_actions: int = 4):
    """One random KineMIC batch (CPU): targets shorter than their sources, so that windows
    are mined."""
    from kinemic.diffusion import lengths_to_mask

    g = torch.Generator().manual_seed(2)
    F, E = config.feature_dim, config.text_dim
    step = frames // 16
    target_len = [frames // 2 - step * i for i in range(batch)]
    source_len = [frames - step * i for i in range(batch)]
    return {
        "x0": torch.randn(batch, max(target_len), F, generator=g),
        "mask": lengths_to_mask(target_len),
        "t": torch.randint(0, 100, (batch,), generator=g),
        "noise": torch.randn(batch, frames, F, generator=g),
        "text": torch.randn(batch, E, generator=g),
        "action": torch.arange(batch) % num_actions,
        "src_x0": torch.randn(batch, frames, F, generator=g),
        "src_mask": lengths_to_mask(source_len, frames),
        "src_text": torch.randn(batch, E, generator=g),
    }


def check_kinemic_step(prior, device: torch.device, *, frames: int = FRAMES) -> dict[str, float]:
    """One KineMIC step's forward and backward on ``device`` against the CPU (eval mode: no
    dropout): the largest relative difference of the loss terms and of the gradients, and
    the share of mined windows that differ."""
    import kinemic.finetune.objective as objective_module

    cpu = kinemic_objective(prior).eval()
    other = copy.deepcopy(cpu).to(device)
    batch = kinemic_batch(prior.config, frames=frames)
    mined: list[torch.Tensor] = []
    real = objective_module.best_window

    def spy(*args, **kwargs):
        start = real(*args, **kwargs)
        mined.append(start.cpu())
        return start

    objective_module.best_window = spy
    results = []
    try:
        with precision("fp32"):
            for model in (cpu, other):
                model.zero_grad(set_to_none=True)
                loss, terms = model(
                    {k: v.to(next(model.parameters()).device) for k, v in batch.items()}
                )
                loss.backward()
                grads = {
                    n: p.grad.detach().double().cpu()
                    for n, p in model.named_parameters()
                    if p.grad is not None
                }
                results.append(({k: v.detach().double().cpu() for k, v in terms.items()}, grads))
    finally:
        objective_module.best_window = real
    (terms_c, grads_c), (terms_g, grads_g) = results
    common = [k for k in terms_c if terms_c[k].abs() > 0]
    flat_c = torch.cat([grads_c[n].flatten() for n in sorted(grads_c)])
    flat_g = torch.cat([grads_g[n].flatten() for n in sorted(grads_c)])
    return {
        "loss terms": max(relative(terms_g[k], terms_c[k]) for k in common),
        "gradients ‖g_gpu − g_cpu‖ / ‖g_cpu‖": float((flat_g - flat_c).norm() / flat_c.norm()),
        "mined windows that differ": float((mined[0] != mined[1]).float().mean()),
    }


def agreement(device: torch.device, preset: str = "mdm") -> list[tuple[str, float, float]]:
    """(check, value, tolerance) of every agreement check (module doc)."""
    from kinemic.diffusion import Denoiser, DenoiserConfig

    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig.preset(preset))
    rows = [
        (
            f"denoiser forward ({preset}, batch 4 × {FRAMES} frames)",
            check_denoiser(model, device),
            1e-4,
        )
    ]
    tolerances = {"DDIM-10": 1e-3, "DDPM-50": 1e-3, "device noise, same seed twice": 0.0}
    for name, value in check_sampler(model, device).items():
        rows.append((f"sampler, {name}", value, tolerances.get(name, 0.05)))
    step = check_kinemic_step(model, device)
    tolerances = {"loss terms": 1e-4, "mined windows that differ": 0.0}
    for name, value in step.items():
        rows.append((f"KineMIC step, {name}", value, tolerances.get(name, 1e-3)))
    return rows


# ------------------------------------------------------------------------------ 2. speed


def forward_gflop(config, frames: int) -> float:
    """bench/sampling.py's count: matrix-product GFLOP of one forward on one clip."""
    from sampling import forward_gflop as count  # bench/ is on the path of a bench script

    return count(config, frames)


def timed(fn: Callable[[], object], device: torch.device, *, repeats: int) -> float:
    """Seconds per call of ``fn`` (after one untimed call)."""
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def sampling_speed(device: torch.device, *, batch: int, steps: int = 50, repeats: int = 2):
    """Samples/s of the ``mdm`` denoiser, DDPM over ``steps`` steps, per precision."""
    from kinemic.devices import device_generator
    from kinemic.diffusion import Denoiser, DenoiserConfig, NoiseSchedule, sample

    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig.preset("mdm")).to(device)
    schedule = NoiseSchedule(steps)
    text = torch.randn(batch, model.config.text_dim, device=device)
    shape = (batch, FRAMES, model.config.feature_dim)
    rates = {}
    for kind in PRECISIONS:
        with precision(kind):

            def run(kind=kind) -> object:
                gen = device_generator(0, device)
                return sample(
                    model,
                    schedule,
                    shape,
                    text=text,
                    guidance=GUIDANCE,
                    generator=gen,
                    bf16=kind == "bf16",
                )

            rates[kind] = batch / timed(run, device, repeats=repeats)
    return rates, 2 * steps * forward_gflop(model.config, FRAMES) * 1e9  # FLOPs per sample


def training_speed(device: torch.device, workdir: Path, *, batch: int, steps: int):
    """Training samples/s of the ``mdm`` preset (pretraining through ``kinemic.training``) per
    precision, on clips of 200 frames whole-clip captioned, so every crop is 196 rows."""
    from kinemic.corpus import MotionCorpus
    from kinemic.diffusion import Denoiser, DenoiserConfig, NoiseSchedule
    from kinemic.io.humanml3d import write_clip
    from kinemic.prior.pretrain import PretrainTask
    from kinemic.training import TrainConfig, train

    rng = np.random.default_rng(0)
    root = workdir / "corpus"
    for i in range(2 * batch):
        write_clip(root, f"{i:06d}", features=rng.normal(size=(200, 263)), captions=[f"clip {i}"])
    corpus = MotionCorpus.load([root], progress=False)
    config = DenoiserConfig.preset("mdm")
    rates = {}
    for kind in PRECISIONS:
        torch.manual_seed(0)
        model = Denoiser(config)
        task = PretrainTask(
            corpus=corpus,
            normalizer=corpus.fit_normalizer(),
            text_embeddings=torch.randn(len(corpus.captions), config.text_dim),
            schedule=NoiseSchedule(50),
            batch_size=batch,
            prior_info=dict(num_steps=50, text_encoder={"name": "random", "dim": config.text_dim}),
            loader_workers=2,
            pin_memory=True,
        )
        cfg = TrainConfig(
            steps=steps + 1,
            mixed_precision="bf16" if kind == "bf16" else "no",
            tf32=kind == "tf32",
            checkpoint_every=steps + 1,
            log_every=steps + 1,
            progress=False,
        )
        with precision("tf32" if kind == "tf32" else "fp32"):
            result = train(model, task, workdir / f"train-{kind}", cfg, fingerprint={})
        rates[kind] = result.steps_per_second * batch
    return rates, 3 * forward_gflop(config, FRAMES) * 1e9  # FLOPs per training sample


# ---------------------------------------------------------------------- 3. two processes


def _pretrain(corpus: Path, run: Path, steps: int, *, resume: bool = False) -> float:
    """``kinemic pretrain`` (tiny) under torchrun with 2 processes on the one GPU; seconds."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "kinemic", "pretrain", "--source", str(corpus), "--out", str(run)]
    cmd += ["--preset", "tiny", "--text-encoder", "hash-64", "--batch-size", "8"]
    cmd += ["--train-steps", str(steps), "--checkpoint-every", "3", "--max-frames", "64"]
    cmd += ["--resume", str(run)] if resume else []
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "OMP_NUM_THREADS": "2"}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from kinemic.files import resolve_checkpoint

    ckpt = resolve_checkpoint(run)
    out = {}
    for f in sorted(ckpt.rglob("*.safetensors")):
        out.update({f"{f.relative_to(ckpt)}:{k}": v for k, v in load_file(f).items()})
    return out


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    if a.keys() != b.keys():
        return math.inf
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


def two_processes(workdir: Path) -> list[tuple[str, str]]:
    """Rows of the two-process check (module doc)."""
    from kinemic.io.humanml3d import write_clip

    rng = np.random.default_rng(1)
    corpus = workdir / "tiny-corpus"
    for i in range(32):
        write_clip(corpus, f"{i:06d}", features=rng.normal(size=(80, 263)), captions=[f"clip {i}"])
    a, a2, b = workdir / "a", workdir / "a2", workdir / "b"
    seconds = _pretrain(corpus, a, 6)
    _pretrain(corpus, a2, 6)
    _pretrain(corpus, b, 3)
    _pretrain(corpus, b, 6, resume=True)
    noise = _max_diff(_weights(a), _weights(a2))
    resumed = _max_diff(_weights(a), _weights(b))
    verdict = (
        "exact (bit for bit)"
        if resumed == 0
        else f"within the run-to-run difference {noise:.2e}"
        if resumed <= noise
        else "FAIL: the resumed run differs more than two uninterrupted runs"
    )
    return [
        ("2 processes on 1 GPU (gloo), tiny, batch 8, 6 steps", f"ran in {seconds:.1f} s"),
        ("two uninterrupted runs: largest weight difference", f"{noise:.3g}"),
        ("3 steps, then --resume to 6, against uninterrupted", f"{resumed:.3g}: {verdict}"),
    ]


# ---------------------------------------------------------------------------------- main


def peaks(args: argparse.Namespace, name: str) -> dict[str, float] | None:
    given = {"fp32": args.peak_fp32, "tf32": args.peak_tf32, "bf16": args.peak_bf16}
    if all(v is not None for v in given.values()):
        return {k: v * 1e12 for k, v in given.items()}
    if ("H100" in name and "PCIe" not in name and "NVL" not in name) or "H200" in name:
        return H100_SXM_PEAKS
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-append", action="store_true", help="print only")
    parser.add_argument("--sample-batch", type=int, default=64, help="samples per batch (64)")
    parser.add_argument("--train-batch", type=int, default=64, help="clips per step (64)")
    parser.add_argument("--train-steps", type=int, default=30, help="timed steps per row (30)")
    for kind in PRECISIONS:
        parser.add_argument(f"--peak-{kind}", type=float, help=f"the GPU's dense {kind} TFLOPS")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing measured", file=sys.stderr)
        return 2
    from results_log import append, heading

    device = torch.device("cuda", 0)
    name = torch.cuda.get_device_name(device)
    peak = peaks(args, name)
    start = time.perf_counter()
    checks = agreement(device)
    print(f"agreement done at {time.perf_counter() - start:.0f} s", file=sys.stderr)
    sampled, sample_flop = sampling_speed(device, batch=args.sample_batch)
    print(f"sampling done at {time.perf_counter() - start:.0f} s", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        trained, train_flop = training_speed(
            device, Path(tmp), batch=args.train_batch, steps=args.train_steps
        )
        print(f"training done at {time.perf_counter() - start:.0f} s", file=sys.stderr)
        launched = two_processes(Path(tmp))
    total = time.perf_counter() - start

    def mfu(rate: float, flop: float, kind: str) -> str:
        achieved = rate * flop
        share = "–" if peak is None else f"{achieved / peak[kind]:.1%}"
        return f"{achieved / 1e12:.1f} | {share}"

    lines = [
        heading(f"gpu — {name}") + f", torch {torch.__version__}, CUDA {torch.version.cuda}",
        "",
        f"bench/gpu.py, {total:.0f} s. Agreement in fp32 (TF32 off); value = largest relative "
        "difference GPU vs CPU unless named otherwise",
        "",
        "| check | value | tolerance | result |",
        "|---|---:|---:|---|",
        *[f"| {c} | {v:.2e} | {t:g} | {'pass' if v <= t else 'FAIL'} |" for c, v, t in checks],
        "",
        f"mdm preset, {FRAMES} frames; sampling: DDPM over 50 steps, guidance {GUIDANCE}, "
        f"batch {args.sample_batch}; training: pretraining step, batch {args.train_batch}, "
        f"{args.train_steps} timed steps; MFU against "
        + (
            "no peak (unknown GPU)"
            if peak is None
            else "dense peaks "
            + ", ".join(f"{k} {v / 1e12:.1f}" for k, v in peak.items())
            + " TFLOPS"
        ),
        "",
        "| what | precision | samples/s | model TFLOP/s | MFU |",
        "|---|---|---:|---:|---:|",
        *[
            f"| sampling | {k} | {sampled[k]:.1f} | {mfu(sampled[k], sample_flop, k)} |"
            for k in PRECISIONS
        ],
        *[
            f"| training | {k} | {trained[k]:.1f} | {mfu(trained[k], train_flop, k)} |"
            for k in PRECISIONS
        ],
        "",
        "| two processes | result |",
        "|---|---|",
        *[f"| {what} | {result} |" for what, result in launched],
        "",
    ]
    text = "\n".join(lines)
    if args.no_append:
        print(text)
    else:
        append(text)
    failed = [c for c, v, t in checks if v > t] + [w for w, r in launched if "FAIL" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
