"""Benchmark: one KineMIC fine-tuning step of a recipe (default: ``paper`` at the ``mdm``
preset, batch 30), with the prior stream on kinemic's one copy of the weights against the
reference implementation's way, a second, frozen full copy of the denoiser; and the recipe's
``mdm-ft`` baseline step.

Prints a table and appends it to bench/results.md. Run: ``python bench/finetune.py``
(``--no-append`` to only print; ``--recipe cpu --preset tiny`` for the CPU-sized settings;
``--threads N``; ``--cuda`` on a GPU when one is visible).

Each row runs in a fresh process (so peak memory is that row's alone) the real objective of
``kinemic.finetune.objective.FinetuneModel`` with AdamW on the trainable tensors and the
recipe's gradient clipping, for a randomly initialised denoiser of the preset (``tiny`` 0.68 M,
``mdm`` 17.9 M parameters) with the recipe's LoRA layout and MIC and a 10-class action table:
a batch of B target clips of 60 frames (3 s) each paired with a source clip of 120 frames,
random features and text embeddings (60 and 120 are multiples of the paper recipe's crop unit).
Rows:

- ``kinemic``: two streams on one copy of the weights (peft ``disable_adapter`` for the prior);
- ``kinemic, 2 copies``: the same objective, the prior stream run by a second, frozen full
  copy of the denoiser, as the reference implementation holds it;
- ``mdm-ft``: the reconstruction loss alone, as the recipe's ``mdm_ft`` trains it (``paper``:
  the whole denoiser but LayerNorms and the text projection; ``cpu``: the LoRA adapters).

The first step is left out of the timing. Peak memory: the process's peak resident set size
(CPU), or ``torch.cuda.max_memory_allocated`` (GPU); "over set-up" subtracts what the process
held after imports and before building the model.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import time

import torch

ROWS = [("kinemic", False), ("kinemic", True), ("mdm-ft", False)]
CLASSES = 10


def child(
    recipe: str, preset: str, method: str, two_copies: bool, batch: int, steps: int, cuda: bool
) -> dict:
    import peft  # noqa: F401  (imported before measuring: it pulls in transformers)

    from kinemic.diffusion import Denoiser, DenoiserConfig, NoiseSchedule
    from kinemic.finetune.config import FinetuneConfig
    from kinemic.finetune.generator import TwoStreamDenoiser
    from kinemic.finetune.objective import FinetuneModel
    from kinemic.mining.mic import MIC

    device = torch.device("cuda" if cuda else "cpu")
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB (Linux: KB)
    torch.manual_seed(0)
    config = FinetuneConfig.from_recipe(recipe, method=method)
    dcfg = DenoiserConfig.preset(preset)
    denoiser = Denoiser(dcfg)
    frozen = copy.deepcopy(denoiser).eval().requires_grad_(False) if two_copies else None
    model = TwoStreamDenoiser(
        denoiser,
        num_actions=CLASSES,
        lora=None if config.full_finetune else config.lora.resolved(),
        diffusion_steps=config.diffusion_steps,
        prior_diffusion_steps=50,
    )
    if frozen is not None:  # the reference's way: the prior stream is a second full model

        def prior_stream(x, t, *, text=None, mask=None, uncond=None, return_latents=False):
            with torch.no_grad():
                return frozen(
                    x,
                    model.model_timestep(t),
                    text=text,
                    mask=mask,
                    uncond=uncond,
                    return_latents=return_latents,
                )

        model.prior_stream = prior_stream  # type: ignore[method-assign]
        frozen.to(device)
    mic = MIC(config.mic_config(dcfg.latent_dim)) if method == "kinemic" else None
    schedule = NoiseSchedule(config.diffusion_steps)
    objective = FinetuneModel(model, mic, schedule, config).to(device).train()
    params = [p for p in objective.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    g = torch.Generator().manual_seed(0)
    B, Tg, Tp, E = batch, 60, 120, dcfg.text_dim
    batch_ = {
        "x0": torch.randn(B, Tg, 263, generator=g),
        "mask": torch.ones(B, Tg, dtype=torch.bool),
        "t": torch.randint(0, config.diffusion_steps, (B,), generator=g),
        "noise": torch.randn(B, Tp, 263, generator=g),
        "text": torch.randn(B, E, generator=g),
        "action": torch.randint(0, CLASSES, (B,), generator=g),
        "src_x0": torch.randn(B, Tp, 263, generator=g),
        "src_mask": torch.ones(B, Tp, dtype=torch.bool),
        "src_text": torch.randn(B, E, generator=g),
    }
    batch_ = {k: v.to(device) for k, v in batch_.items()}

    def step() -> None:
        loss, _ = objective(batch_)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()

    step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    weights = sum(p.numel() * p.element_size() for p in objective.parameters())
    if frozen is not None:
        weights += sum(p.numel() * p.element_size() for p in frozen.parameters())
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "steps_per_second": steps / dt,
        "peak_mb": peak,
        "over_setup_mb": peak if cuda else peak - base_rss,
        "weights_mb": weights / 2**20,
        "trainable": sum(p.numel() for p in params),
        "mdm_ft": config.mdm_ft,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="paper", help="fine-tuning recipe (paper)")
    parser.add_argument("--preset", default="mdm", help="denoiser preset (mdm)")
    parser.add_argument("--batch", type=int, default=30, help="target clips per step (30)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument("--cuda", action="store_true", help="use the GPU when one is visible")
    parser.add_argument("--no-append", action="store_true", help="print only")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "COPIES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cuda = args.cuda and torch.cuda.is_available()
    if args.child:
        method, copies = args.child
        result = child(
            args.recipe, args.preset, method, copies == "2", args.batch, args.steps, cuda
        )
        print(json.dumps(result))
        return

    from results_log import append, heading

    where = torch.cuda.get_device_name() if cuda else f"CPU, {args.threads} thread(s)"
    memory = "peak GPU memory allocated" if cuda else "peak RSS"
    load = "" if cuda else f"; load average {os.getloadavg()[0]:.2f} at the start"
    lines = [
        heading(f"KineMIC fine-tuning step, recipe {args.recipe}: one weight copy vs two"),
        "",
        f"{where}{load}; preset {args.preset}; batch {args.batch} target clips of 60 frames + "
        f"source clips of 120 frames; {CLASSES} classes; random weights and data; "
        f"{args.steps} timed steps after one untimed; each row its own process.",
        "",
        f"| objective | steps/s | clips/s | {memory} (MB) | over set-up (MB) | weights (MB) "
        "| trainable |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method, two in ROWS:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            method,
            "2" if two else "1",
            *("--recipe", args.recipe, "--preset", args.preset),
            *("--batch", str(args.batch), "--steps", str(args.steps)),
            *("--threads", str(args.threads)),
        ]
        if cuda:
            cmd.append("--cuda")
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        name = method + (", 2 copies" if two else "")
        if method == "mdm-ft":
            name += f" (mdm_ft {r['mdm_ft']})"
        lines.append(
            f"| {name} | {r['steps_per_second']:.3f} | {r['steps_per_second'] * args.batch:.2f} "
            f"| {r['peak_mb']:.0f} | {r['over_setup_mb']:.0f} | {r['weights_mb']:.1f} "
            f"| {r['trainable']:,} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.no_append:
        print(text)
    else:
        append(text)


if __name__ == "__main__":
    main()
