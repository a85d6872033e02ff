"""Training with two processes (gloo on the CPU), as ``torchrun``/``accelerate launch`` start it.

Two spawned processes find ``WORLD_SIZE``, ``RANK``, ... in their environment, as under a
launcher, and run the public training functions; each process writes what its module holds
when ``train`` returns, so the test sees every rank's weights, not only the folder rank 0
writes. One spawn runs every training in turn (and so ``train`` several times in the same
processes): starting two Python processes costs more than the training itself.

What must hold for two processes to give one process's weights at equal global batch (the
``plain`` runs): the same global batch (each task draws it from ``(seed, step)`` and slices
it), gradients averaged over equal halves (each process's loss is the mean over its half; the
contrastive losses gather all embeddings and compute the whole batch's loss), and the same
dropout and condition masks — which differ by design (a seed per process), so those runs turn
dropout and condition dropping off. The rest is float rounding: each process pads its half to
its own longest clip, and sums in another order.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from torch import nn

from kinemic.errors import KinemicError

pytestmark = pytest.mark.usefixtures("one_thread")

CAPTURED = "weights"  # folder of the per-rank weights each training leaves in its module
PRIOR = dict(
    text_encoder="hash-64",
    batch_size=4,
    cpu=True,
    progress=False,
    log_every=2,
    checkpoint_every=2,
    max_frames=60,
    model_overrides=dict(latent_dim=32, num_layers=2, ff_dim=64, num_heads=2),
)
PLAIN = dict(dropout=0.0, cond_drop_prob=0.0)  # no per-process randomness in the model
TMOR = dict(
    preset="tiny",
    text_encoder="hash-64",
    batch_size=8,
    cpu=True,
    progress=False,
    log_every=1,
    checkpoint_every=3,
    warmup_steps=0,
    max_frames=48,
    visual=True,
    model_overrides=dict(dropout=0.0),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, port: int, world: int = 2) -> None:
    """This process's share of a launch, as torchrun sets it."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)


def _capture(patch: pytest.MonkeyPatch, root: Path, suffix: str) -> list[str]:
    """Make ``kinemic.training.train`` save the module's weights (buffers included) to
    ``root/weights/<name><suffix>.safetensors`` when it returns; the returned list holds the
    name, to set before each training."""
    import kinemic.training as training

    real, name = training.train, [""]

    def spy(model, *args, **kwargs):
        result = real(model, *args, **kwargs)
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        (root / CAPTURED).mkdir(exist_ok=True)
        save_file(weights, root / CAPTURED / f"{name[0]}{suffix}.safetensors")
        return result

    patch.setattr(training, "train", spy)
    return name


def _spawn(worker, *args, timeout: float = 600) -> None:
    """Run ``worker(rank, port, *args)`` in two processes; fail (not hang) past ``timeout``."""
    context = mp.start_processes(
        worker, args=(_free_port(), *args), nprocs=2, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + timeout
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail(f"two-process run still going after {timeout} s")


def _weights(root: Path, name: str, rank: int | None = None) -> dict[str, torch.Tensor]:
    if rank is None:  # the one-process run, made in the test's own process
        return load_file(root / CAPTURED / f"{name}.safetensors")
    return load_file(root / CAPTURED / f"{name}-{rank}.safetensors")


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest difference of two sets of weights, leaving out the biases added to every
    logit of a softmax: the key biases of ``nn.MultiheadAttention`` (the middle third of
    ``in_proj_bias``) and the last bias of MIC's frame scores. Softmax does not change when
    one constant is added to a row of logits, so their gradient is 0 but for rounding, which
    AdamW's first steps scale up to about the learning rate, whatever the rounding."""
    assert a.keys() == b.keys()
    worst = 0.0
    for k in a:
        x, y = a[k].double(), b[k].double()
        if k == "mic.score.2.bias":
            continue
        if k.endswith("in_proj_bias"):
            third = len(x) // 3
            x, y = torch.cat([x[:third], x[2 * third :]]), torch.cat([y[:third], y[2 * third :]])
        if x.numel():
            worst = max(worst, float((x - y).abs().max()))
    return worst


# ------------------------------------------------------------------------------ the runs


def _finetune_config(steps: int):
    from kinemic.finetune.config import FinetuneConfig, LoraSettings

    return FinetuneConfig(
        train_steps=steps,
        batch_size=4,
        k=10,
        checkpoint_every=2,
        log_every=1,
        cpu=True,
        lora=LoraSettings(dropout=0.0),
    )


def _runs_worker(rank: int, port: int, world: Path, root: Path) -> None:
    _join(rank, port)
    from kinemic.finetune.run import finetune
    from kinemic.prior.pretrain import pretrain
    from kinemic.tmor.pretrain import pretrain_tmor

    name = _capture(pytest.MonkeyPatch(), root, f"-{rank}")  # undone when the process ends
    source, target = world / "source", world / "target"
    name[0] = "straight"
    pretrain([source], root / "straight", train_steps=4, **PRIOR)
    name[0] = "stopped"  # stops at step 2, goes on to 4 from its checkpoint
    pretrain([source], root / "stopped", train_steps=2, **PRIOR)
    pretrain([source], root / "stopped", train_steps=4, resume=root / "stopped", **PRIOR)
    name[0] = "plain"
    plain = {**PRIOR, "model_overrides": {**PRIOR["model_overrides"], **PLAIN}}
    pretrain([source], root / "plain", train_steps=3, **plain)
    name[0] = "tmor"
    pretrain_tmor([source], root / "tmor", train_steps=3, **TMOR)
    prior = root / "plain" / "checkpoints" / "step-00000003"  # no dropout anywhere
    opts = dict(prior=prior, source=source, progress=False)
    name[0] = "ft-straight"
    finetune(target, root / "ft-straight", config=_finetune_config(4), **opts)
    name[0] = "ft-stopped"
    finetune(target, root / "ft-stopped", config=_finetune_config(2), **opts)
    finetune(
        target, root / "ft-stopped", config=_finetune_config(4), resume=root / "ft-stopped", **opts
    )


@pytest.fixture(scope="module")
def runs(tiny_world: Path, tmp_path_factory) -> Path:
    """Every two-process run of this module, and the one-process runs to compare with."""
    from kinemic.finetune.run import finetune
    from kinemic.prior.pretrain import pretrain
    from kinemic.tmor.pretrain import pretrain_tmor

    root = tmp_path_factory.mktemp("two-processes")
    _spawn(_runs_worker, tiny_world, root)
    with pytest.MonkeyPatch.context() as patch:
        name = _capture(patch, root, "")
        source = tiny_world / "source"
        plain = {**PRIOR, "model_overrides": {**PRIOR["model_overrides"], **PLAIN}}
        name[0] = "one-plain"
        pretrain([source], root / "one-plain", train_steps=3, **plain)
        name[0] = "one-tmor"
        pretrain_tmor([source], root / "one-tmor", train_steps=3, **TMOR)
        name[0] = "one-ft"
        finetune(
            tiny_world / "target",
            root / "one-ft",
            prior=root / "plain" / "checkpoints" / "step-00000003",
            source=source,
            config=_finetune_config(4),
            progress=False,
        )
    return root


def _checkpoint(root: Path, run: str) -> Path:
    return root / run / (root / run / "latest").read_text().strip()


@pytest.mark.slow
def test_both_processes_hold_the_same_weights(runs: Path) -> None:
    for name in ("straight", "stopped", "plain", "tmor", "ft-straight", "ft-stopped"):
        assert _equal(_weights(runs, name, 0), _weights(runs, name, 1)), name
    # the MIC memory bank: equal on both processes, with both processes' keys (4 steps of 4)
    bank = _weights(runs, "ft-straight", 1)
    assert int((bank["mic.bank_labels"] >= 0).sum()) == 16


@pytest.mark.slow
def test_only_the_first_process_writes_and_the_checkpoint_records_both(runs: Path) -> None:
    ckpt = _checkpoint(runs, "straight")
    assert ckpt.name == "step-00000004"
    info = json.loads((ckpt / "trainer.json").read_text())
    assert info["world_size"] == 2
    assert {"rng-0.json", "rng-1.json"} <= set(info["state"]["files"])
    saved = load_file(ckpt / "state" / "model.safetensors")
    assert _equal(saved, {k: v for k, v in _weights(runs, "straight", 0).items() if k in saved})
    # each process draws its own dropout: their random states differ
    rng = [json.loads((ckpt / "state" / f"rng-{r}.json").read_text())["torch"] for r in (0, 1)]
    assert rng[0] != rng[1]
    assert not list(runs.glob("*/checkpoints/.tmp-*"))


@pytest.mark.slow
def test_two_processes_resume_exactly(runs: Path) -> None:
    for straight, stopped in (("straight", "stopped"), ("ft-straight", "ft-stopped")):
        for rank in (0, 1):
            assert _equal(_weights(runs, straight, rank), _weights(runs, stopped, rank))
        a = load_file(_checkpoint(runs, straight) / "state" / "optimizer.safetensors")
        b = load_file(_checkpoint(runs, stopped) / "state" / "optimizer.safetensors")
        assert _equal(a, b), straight
    a = load_file(_checkpoint(runs, "straight") / "state" / "ema.safetensors")
    b = load_file(_checkpoint(runs, "stopped") / "state" / "ema.safetensors")
    assert _equal(a, b)


@pytest.mark.slow
def test_two_processes_train_what_one_process_trains(runs: Path) -> None:
    """Equal global batch, no dropout: the same weights within float rounding (module doc),
    here 5% of one step of the learning rate; for T-MOR and KineMIC only if the contrastive
    losses see every process's embeddings (T-MOR differs by 1.7e-3 after these 3 steps when
    each process contrasts its own half), and for KineMIC's memory bank only if it takes
    every process's keys."""
    runs_lr = (
        ("plain", "one-plain", 1e-4),
        ("tmor", "one-tmor", 3e-4),
        ("ft-straight", "one-ft", 1e-3),
    )
    for two, one, lr in runs_lr:
        a, b = _weights(runs, two, 0), _weights(runs, one)
        assert _max_diff(a, b) < 0.05 * lr, (two, _max_diff(a, b))
    bank = "mic.bank"
    one, two = _weights(runs, "one-ft"), _weights(runs, "ft-straight", 0)
    assert torch.equal(one[f"{bank}_labels"], two[f"{bank}_labels"])
    assert torch.allclose(one[bank], two[bank], atol=1e-5)


@pytest.mark.slow
def test_resume_with_another_process_count_is_refused(runs: Path, tiny_world: Path) -> None:
    from kinemic.prior.pretrain import pretrain

    run = runs / "straight-copy"
    shutil.copytree(runs / "straight", run)
    with pytest.raises(
        KinemicError, match=r"step-00000004: written by 2 processes, this run has 1"
    ):
        pretrain([tiny_world / "source"], run, train_steps=6, resume=run, **PRIOR)


# ------------------------------------------------------------------------------ failures


class PoisonTask:
    """y = x @ W on a linear model; process ``rank`` gets a NaN loss from step ``step`` on."""

    def __init__(self, rank: int | None = None, step: int = 0):
        self.poison = (rank, step)
        self.w = torch.randn(4, 1, generator=torch.Generator().manual_seed(0))

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1):
        x = torch.randn(8, 4, generator=torch.Generator().manual_seed(step))
        rows = slice(rank * 8 // world_size, (rank + 1) * 8 // world_size)
        bad = rank == self.poison[0] and step >= self.poison[1]
        return {"x": x[rows], "y": (x @ self.w)[rows], "bad": torch.tensor(bad)}

    def loss(self, model, batch):
        loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
        return torch.where(batch["bad"], torch.full_like(loss, float("nan")), loss)

    def export(self, folder: Path, model, ema, *, step: int) -> None:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "w.st")


def _poison_worker(rank: int, port: int, root: Path) -> None:
    _join(rank, port)
    from kinemic.training import TrainConfig, train

    config = TrainConfig(steps=4, lr=1e-2, checkpoint_every=2, progress=False, cpu=True)
    train(nn.Linear(4, 1), PoisonTask(), root / "fine", config, fingerprint={})
    try:  # a second training in the same processes: process 1's loss is NaN at step 3
        train(nn.Linear(4, 1), PoisonTask(rank=1, step=2), root / "nan", config, fingerprint={})
    except KinemicError as e:
        (root / f"error-{rank}.txt").write_text(str(e))


@pytest.mark.slow
def test_a_nan_on_one_process_stops_both_and_train_runs_twice(tmp_path: Path) -> None:
    _spawn(_poison_worker, tmp_path, timeout=300)
    assert (tmp_path / "fine" / "checkpoints" / "step-00000004").is_dir()
    first, second = ((tmp_path / f"error-{r}.txt").read_text() for r in (0, 1))
    assert "the loss became non-finite on process 1 at step 3" in first
    assert "the loss became nan on process 1 at step 3" in second
    assert (tmp_path / "nan" / "latest").read_text().strip() == "checkpoints/step-00000002"


def test_compile_is_refused_on_the_cpu(tmp_path: Path) -> None:
    from kinemic.training import TrainConfig, train

    config = TrainConfig(steps=1, cpu=True, torch_compile=True, progress=False)
    with pytest.raises(
        KinemicError, match=r"compile \(--compile\) is for CUDA devices; this run is on cpu"
    ):
        train(nn.Linear(4, 1), PoisonTask(), tmp_path / "run", config, fingerprint={})
    assert not (tmp_path / "run").exists()


def test_process_seeds_differ_per_rank_and_repeat() -> None:
    from kinemic.distributed import process_seed

    seeds = [process_seed(0, r) for r in range(4)] + [process_seed(1, 0)]
    assert len(set(seeds)) == 5 and seeds[1] == process_seed(0, 1)
    assert all(0 <= s < 2**63 for s in seeds)
