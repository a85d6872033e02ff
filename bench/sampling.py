"""Benchmark: diffusion sampling throughput (samples/s), ours vs the reference way.

Prints a table and appends it to bench/results.md. Run: ``python bench/sampling.py [--quick]``.

For the ``tiny`` and ``mdm`` presets, at 60 and 196 frames, 50-step DDPM and 10-step DDIM,
batch 1 / 32 / 256, every sample text-conditioned with classifier-free guidance s = 2.5:

- ``ours fp32`` / ``ours bf16``: ``kinemic.diffusion.sample`` (one batched forward for the
  conditional and unconditional halves, SDPA, clips at their own length, inference mode;
  bf16 = autocast around the denoiser);
- ``reference``: the way the official implementation samples, run on the same weights
  (exported with ``to_mdm_state_dict``): sequence-first ``nn.TransformerEncoder``, two separate
  forwards per step for guidance, fp32, every clip padded to 196 frames with a key padding mask,
  ``torch.no_grad``. Its output is checked against ours before timing.

``--profile`` adds a second table: one guided step at 196 frames and batch 32, profiled, with
the time in matrix products; the reference's time over ours bf16's matrix products alone is the
most any exact fp32-to-bf16 speed-up can give at that size on the machine.

A combination whose estimated time (from a timed single step) exceeds ``--budget`` seconds is
printed as "skipped (est. N s)". ``ratio`` = the faster of ours fp32 / bf16 over the reference
at equal steps. On CUDA, ``--peak-tflops`` (the device's dense bf16 peak) adds the fraction of
that limit reached by ours bf16 (FLOPs counted from the matmuls: ≈7.35 GFLOP per ``mdm``
forward at 196 frames).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from kinemic.diffusion import Denoiser, DenoiserConfig, NoiseSchedule, sample, to_mdm_state_dict

RESULTS = Path(__file__).with_name("results.md")
GUIDANCE = 2.5
PAD_TO = 196


class ReferenceMDM(nn.Module):
    """The official sequence-first computation, loaded from official-layout weights."""

    def __init__(self, state: dict[str, torch.Tensor], num_heads: int) -> None:
        super().__init__()
        D, F = state["input_process.poseEmbedding.weight"].shape
        E = state["embed_text.weight"].shape[1]
        ff = state["seqTransEncoder.layers.0.linear1.weight"].shape[0]
        n = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("seqTransEncoder."))
        self.input_process = nn.Module()
        self.input_process.poseEmbedding = nn.Linear(F, D)
        self.sequence_pos_encoder = nn.Module()
        self.sequence_pos_encoder.register_buffer(
            "pe", torch.zeros_like(state["sequence_pos_encoder.pe"])
        )
        self.embed_timestep = nn.Module()
        self.embed_timestep.sequence_pos_encoder = self.sequence_pos_encoder  # as MDM's
        self.embed_timestep.time_embed = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, D))
        self.embed_text = nn.Linear(E, D)
        layer = nn.TransformerEncoderLayer(D, num_heads, ff, dropout=0.1, activation="gelu")
        self.seqTransEncoder = nn.TransformerEncoder(layer, n, enable_nested_tensor=False)
        self.output_process = nn.Module()
        self.output_process.poseFinal = nn.Linear(D, F)
        self.load_state_dict(state)

    def forward(self, x, t, text, mask, *, uncond: bool):
        """x (B, T, F), t (B,), text (B, E), mask (B, T) -> x0 (B, T, F)."""
        pe = self.sequence_pos_encoder.pe
        emb = self.embed_timestep.time_embed(pe[t]).permute(1, 0, 2)  # (1, B, D)
        emb = emb + self.embed_text(torch.zeros_like(text) if uncond else text)
        seq = torch.cat([emb, self.input_process.poseEmbedding(x.permute(1, 0, 2))])  # (1+T, B, D)
        seq = seq + pe[: seq.shape[0]]
        pad = ~torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        out = self.seqTransEncoder(seq, src_key_padding_mask=pad)[1:]
        return self.output_process.poseFinal(out).permute(1, 0, 2)


@torch.no_grad()
def reference_sample(ref, schedule, frames, text, *, steps, generator):
    """Two forwards per step, fp32, padded to 196 frames (the reference's sampling loop)."""
    B, F = text.shape[0], ref.output_process.poseFinal.out_features
    mask = (torch.arange(PAD_TO)[None] < frames).expand(B, PAD_TO).to(text.device)
    x = torch.randn(B, PAD_TO, F, generator=generator).to(text.device)
    timesteps = (
        list(range(schedule.num_steps - 1, -1, -1))
        if steps is None
        else schedule.ddim_timesteps(steps)
    )
    for k, step in enumerate(timesteps):
        t = torch.full((B,), step, dtype=torch.long, device=text.device)
        x0_c = ref(x, t, text, mask, uncond=False)
        x0_u = ref(x, t, text, mask, uncond=True)
        x0 = x0_u + GUIDANCE * (x0_c - x0_u)
        if steps is None:
            noise = torch.randn(x.shape, generator=generator).to(x.device)
            x = schedule.ddpm_step(x0, x, t, noise) if step > 0 else x0
        else:
            t_prev = torch.full_like(t, timesteps[k + 1]) if k + 1 < len(timesteps) else None
            x = schedule.ddim_step(x0, x, t, t_prev)
    return x[:, :frames]


def forward_gflop(config: DenoiserConfig, frames: int) -> float:
    """Matmul FLOPs of one denoiser forward on one clip (1 + frames tokens)."""
    D, S, L = config.latent_dim, frames + 1, config.num_layers
    per_token = 2 * (config.feature_dim * D * 2 + L * (4 * D * D + 2 * D * config.ff_dim))
    attention = L * 4 * S * S * D
    return (S * per_token + attention) / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


WAYS = ("fp32", "bf16", "reference")


class Bench:
    """One preset on one device: cost probes (cached) and interleaved timed runs."""

    def __init__(self, model: Denoiser, ref: ReferenceMDM, schedule, device, budget: float) -> None:
        self.model, self.ref, self.schedule, self.device, self.budget = (
            model,
            ref,
            schedule,
            device,
            budget,
        )
        self._step: dict[tuple, float] = {}

    def run_fn(self, way: str, frames: int, B: int, steps: int | None):
        cfg = self.model.config
        text = torch.randn(B, cfg.text_dim, device=self.device)

        def run():
            g = torch.Generator().manual_seed(0)
            if way == "reference":
                return reference_sample(
                    self.ref, self.schedule, frames, text, steps=steps, generator=g
                )
            shape = (B, frames, cfg.feature_dim)
            return sample(
                self.model,
                self.schedule,
                shape,
                text=text,
                guidance=GUIDANCE,
                generator=g,
                ddim_steps=steps,
                bf16=way == "bf16",
            )

        return run

    def step_seconds(self, way: str, frames: int, B: int) -> float:
        """Seconds of one guided sampler step at batch B (batch 1 is warmed up first)."""
        key = (way, frames, B)
        if key not in self._step:
            one = self.run_fn(way, frames, B, steps=1)
            if B == 1:
                one()
            self._step[key] = min(seconds(one, self.device) for _ in range(2 if B == 1 else 1))
        return self._step[key]

    def estimate(self, way: str, frames: int, B: int, n_steps: int) -> float:
        """Estimated seconds of a whole run: from batch 1 scaled by B (conservative), refined by
        probing one step at batch B when that probe itself is affordable."""
        linear = self.step_seconds(way, frames, 1) * B * n_steps
        if linear <= self.budget or self.step_seconds(way, frames, 1) * B > self.budget / 4:
            return linear
        return self.step_seconds(way, frames, B) * n_steps

    def measure(self, frames: int, B: int, steps: int | None) -> dict[str, float | str]:
        """samples/s per way, best of up to 3 interleaved rounds (robust to a busy machine), or
        "skipped (est. N s)"."""
        n_steps = self.schedule.num_steps if steps is None else steps
        out: dict[str, float | str] = {}
        runs = {}
        for way in WAYS:
            est = self.estimate(way, frames, B, n_steps)
            if est > self.budget:
                out[way] = f"skipped (est. {est:.0f} s)"
            else:
                runs[way] = (self.run_fn(way, frames, B, steps), est)
        best = {way: math.inf for way in runs}
        rounds = 3 if sum(e for _, e in runs.values()) < self.budget else 1
        for _ in range(rounds):
            for way, (fn, _) in runs.items():
                best[way] = min(best[way], seconds(fn, self.device))
        out |= {way: B / s for way, s in best.items()}
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="5 s budget per measurement, batch 1 and 32"
    )
    ap.add_argument("--budget", type=float, default=None, help="skip runs estimated above this (s)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the GPU")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    ap.add_argument(
        "--profile", action="store_true", help="also profile one step at 196 frames (CPU)"
    )
    ap.add_argument("--no-append", action="store_true", help="print only; leave results.md alone")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    budget = args.budget if args.budget is not None else (5.0 if args.quick else 20.0)
    batches = (1, 32) if args.quick else (1, 32, 256)
    device = torch.device(args.device)
    schedule = NoiseSchedule(50)
    rows: list[list[str]] = []
    profiled: list[list[str]] = []

    for preset in ("tiny", "mdm"):
        torch.manual_seed(0)
        model = Denoiser(DenoiserConfig.preset(preset)).to(device).eval()
        cfg = model.config
        ref = ReferenceMDM(to_mdm_state_dict(model), cfg.num_heads).to(device).eval()
        check_equivalence(model, ref, device)
        bench = Bench(model, ref, schedule, device, budget)
        for frames in (60, 196):
            for steps, name in ((None, "DDPM 50"), (10, "DDIM 10")):
                n_steps = schedule.num_steps if steps is None else steps
                for B in batches:
                    rate = bench.measure(frames, B, steps)
                    cells = [
                        v if isinstance(v, str) else f"{v:.3g}" for v in (rate[w] for w in WAYS)
                    ]
                    ours = max(
                        (rate[w] for w in ("fp32", "bf16") if not isinstance(rate[w], str)),
                        default=None,
                    )
                    ref_rate = rate["reference"]
                    ratio = (
                        f"**{ours / ref_rate:.2f}×**"
                        if ours and not isinstance(ref_rate, str)
                        else "–"
                    )
                    row = [preset, str(frames), name, str(B), *cells, ratio]
                    if device.type == "cuda" and not isinstance(rate["bf16"], str):
                        flops = rate["bf16"] * n_steps * 2 * forward_gflop(cfg, frames) * 1e9
                        peak = (
                            f"{flops / (args.peak_tflops * 1e12):.1%}" if args.peak_tflops else "–"
                        )
                        row.append(f"{flops / 1e12:.2f} TFLOP/s ({peak})")
                    rows.append(row)
                    print(" | ".join(row), flush=True)
        if args.profile and device.type == "cpu":
            profiled.append([preset, *profile_step(model, ref, PAD_TO, 32)])
            print(" | ".join(profiled[-1]), flush=True)
        print(
            f"{preset}: {model.num_parameters() / 1e6:.2f} M parameters, "
            f"{forward_gflop(cfg, 196):.2f} GFLOP per forward at 196 frames",
            flush=True,
        )

    report = format_report(rows, device, budget, args)
    if profiled:
        report += "\n" + format_profile(profiled)
    print("\n" + report)
    if not args.no_append:
        with RESULTS.open("a") as f:  # append only
            f.write("\n" + report)


MATMULS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm")


def profile_step(model: Denoiser, ref: ReferenceMDM, frames: int, B: int) -> list[str]:
    """One guided step (batch B, conditional + unconditional) each way, profiled: total and
    matrix-product milliseconds, and the reference over ours bf16's matrix products alone."""
    from torch.profiler import ProfilerActivity, profile

    cfg = model.config
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * B, frames, cfg.feature_dim, generator=g)
    t = torch.randint(0, 50, (2 * B,), generator=g)
    text = torch.randn(2 * B, cfg.text_dim, generator=g)
    uncond = torch.arange(2 * B) >= B
    mask = torch.ones(B, frames, dtype=torch.bool)

    def reference():
        ref(x[:B], t[:B], text[:B], mask, uncond=False)
        ref(x[B:], t[B:], text[B:], mask, uncond=True)

    def ours(bf16: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(x, t, text=text, uncond=uncond)

    ms = {}
    with torch.inference_mode():
        for way, fn in (
            ("reference", reference),
            ("fp32", lambda: ours(False)),
            ("bf16", lambda: ours(True)),
        ):
            fn()  # warm-up
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
            events = prof.key_averages()
            total = sum(e.self_cpu_time_total for e in events) / 1e3
            matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMULS) / 1e3
            ms[way] = (total, matmul)
    cells = [f"{ms[w][0]:.0f} ({ms[w][1]:.0f})" for w in ("reference", "fp32", "bf16")]
    bound = ms["reference"][0] / ms["bf16"][1]
    return [*cells, f"{ms['reference'][0] / ms['bf16'][0]:.2f}×", f"{bound:.2f}×"]


def check_equivalence(model: Denoiser, ref: ReferenceMDM, device: torch.device) -> None:
    """The reference computes what our denoiser computes (valid frames, both halves)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 50, model.config.feature_dim, generator=g).to(device)
    text = torch.randn(2, model.config.text_dim, generator=g).to(device)
    t = torch.tensor([3, 40], device=device)
    mask = torch.ones(2, 50, dtype=torch.bool, device=device)
    mask[1, 30:] = False
    with torch.no_grad():
        for uncond in (False, True):
            ours = model(x, t, text=text, mask=mask, uncond=torch.full((2,), uncond, device=device))
            theirs = ref(x, t, text, mask, uncond=uncond)
            err = float((ours - theirs)[mask].abs().max())
            if err > 1e-4:
                sys.exit(
                    f"reference and denoiser disagree by {err:.2e}: the comparison would be unfair"
                )


def format_report(rows, device, budget, args) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    threads, load = torch.get_num_threads(), os.getloadavg()[0]
    where = f"{os.cpu_count()} CPU cores, {threads} threads, load average {load:.1f}"
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    head = [
        "preset",
        "frames",
        "sampler",
        "batch",
        "ours fp32",
        "ours bf16",
        "reference",
        "ours/ref",
    ]
    if any(len(r) > len(head) for r in rows):
        head.append("bf16 FLOP/s (of peak)")
    lines = [
        f"### sampling — {now} — {platform.machine()}, {where}, torch {torch.__version__}"
        f"{' (--quick)' if args.quick else ''}",
        "",
        "samples/s, text-conditioned with CFG 2.5; reference = official way (2 forwards per "
        f"step, fp32, nn.TransformerEncoder, padded to {PAD_TO} frames); skipped when "
        f"estimated > {budget:.0f} s",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * 4 + ["---:"] * (len(head) - 4)) + "|",
    ]
    lines += ["| " + " | ".join(r + [""] * (len(head) - len(r))) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def format_profile(rows: list[list[str]]) -> str:
    head = [
        "preset",
        "reference ms (matmuls)",
        "ours fp32",
        "ours bf16",
        "ref / bf16",
        "ref / bf16 matmuls alone (bound)",
    ]
    lines = [
        f"one guided step at {PAD_TO} frames, batch 32 (a forward of 64 for ours, two of 32 for "
        "the reference), torch.profiler self CPU time; matmuls = addmm, mm, bmm, baddbmm. The "
        "bound: the speed-up if everything but ours bf16's matrix products took no time.",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
