"""ST-GCN: graph partitioning, shapes, masks, clip preparation, training and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kinemic.errors import KinemicError
from kinemic.har.data import prepare_clip, uniform_sample
from kinemic.har.graph import GRAPHS, Graph, get_graph
from kinemic.har.stgcn import STGCN, STGCNConfig, load_stgcn, save_stgcn
from kinemic.har.train import (
    HARTrainConfig,
    epoch_batches,
    eval_epochs,
    predict_logits,
    train_classifier,
)
from kinemic.skeleton import KINECT25, SMPL22

# small models train fastest, and least disturbed by other jobs, on one thread
pytestmark = pytest.mark.usefixtures("one_thread")

# ----------------------------------------------------------------------------------- graphs


@pytest.mark.parametrize("name", ["smpl22", "kinect25"])
def test_spatial_partitions_are_a_normalised_split_of_the_neighbourhood(name):
    g = get_graph(name)
    a = g.adjacency("spatial")
    v = g.num_joints
    assert a.shape == (3, v, v) and a.dtype == np.float32
    nb = g.neighbours()
    assert nb.sum() == 2 * (v - 1)  # a tree: one bone per non-root joint, both directions
    support = a > 0
    # the three partitions are disjoint and cover the joint itself and its bone neighbours
    assert (support.sum(0) <= 1).all()
    np.testing.assert_array_equal(support.any(0), nb | np.eye(v, dtype=bool))
    np.testing.assert_array_equal(support[0], np.eye(v, dtype=bool))
    # rows of the sum are averages: each joint's weights sum to 1, equal to 1 / (degree + 1)
    np.testing.assert_allclose(a.sum((0, 2)), 1.0, atol=1e-6)
    degree = nb.sum(1) + 1
    np.testing.assert_allclose(a.sum(0)[support.any(0)], np.repeat(1.0 / degree, degree))
    d = g.hops()[:, g.centre]
    for i, j in zip(*np.nonzero(support[1]), strict=True):
        assert d[j] <= d[i]  # centripetal: the sender is no farther from the centre
    for i, j in zip(*np.nonzero(support[2]), strict=True):
        assert d[j] > d[i]  # centrifugal
    # on a tree every bone is centripetal one way and centrifugal the other
    np.testing.assert_array_equal(support[1], support[2].T)


def test_smpl22_partitions_by_hand():
    g = GRAPHS["smpl22"]
    assert g.centre == SMPL22.index("spine3") and g.edges == tuple(SMPL22.bones())
    a = g.adjacency()
    pelvis, l_hip, spine1 = 0, 1, 3
    # the pelvis (3 hops below spine3) has 3 neighbours: weight 1/4 each, itself included
    assert a[0, pelvis, pelvis] == pytest.approx(0.25)
    assert a[1, pelvis, spine1] == pytest.approx(0.25)  # spine1 is nearer the centre
    assert a[2, pelvis, l_hip] == pytest.approx(0.25)  # the hip is farther
    assert a[1, l_hip, pelvis] == pytest.approx(1 / 3)  # l_hip: itself, pelvis, knee
    assert g.hops()[pelvis, SMPL22.index("l_wrist")] == 7


def test_kinect25_graph_and_other_strategies():
    g = GRAPHS["kinect25"]
    assert g.num_joints == 25 and g.centre == KINECT25.index("SpineShoulder") == 20
    hops = g.hops()
    np.testing.assert_array_equal(hops, hops.T)
    assert hops[3, 19] == 8  # Head-Neck-SpineShoulder-SpineMid-Base-HipR-KneeR-AnkleR-FootR
    uniform, distance = g.adjacency("uniform"), g.adjacency("distance")
    assert uniform.shape == (1, 25, 25) and distance.shape == (2, 25, 25)
    np.testing.assert_allclose(uniform[0], distance.sum(0), atol=1e-7)
    np.testing.assert_allclose(uniform[0], g.adjacency("spatial").sum(0), atol=1e-7)
    with pytest.raises(ValueError, match="unknown partitioning"):
        g.adjacency("nope")
    with pytest.raises(ValueError, match="not connected"):
        Graph("broken", 3, ((0, 1),), 0)
    with pytest.raises(ValueError, match="unknown graph"):
        get_graph("coco")


# ------------------------------------------------------------------------------ preparation


def test_uniform_sample_interpolates_linearly():
    x = np.arange(3, dtype=np.float32).reshape(3, 1, 1) * np.ones((1, 2, 3), np.float32)
    out = uniform_sample(x, 5)  # positions 0, .5, 1, 1.5, 2
    assert out.shape == (5, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [0, 0.5, 1, 1.5, 2])
    np.testing.assert_allclose(uniform_sample(x[:1], 4), np.repeat(x[:1], 4, 0))
    np.testing.assert_allclose(uniform_sample(x, 3), x)  # same length: unchanged
    with pytest.raises(ValueError):
        uniform_sample(np.zeros((0, 22, 3)))


def test_prepare_clip_centres_on_the_pelvis():
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(37, 22, 3)) + np.array([2.0, 1.0, -3.0])
    first = prepare_clip(joints, 100)
    assert first.shape == (100, 22, 3)
    np.testing.assert_allclose(first[0, 0], 0, atol=1e-6)
    assert np.abs(first[-1, 0]).max() > 0.1  # the root keeps its own trajectory
    per = prepare_clip(joints, 100, centre="per-frame")
    np.testing.assert_allclose(per[:, 0], 0, atol=1e-6)
    with pytest.raises(ValueError, match="centring"):
        prepare_clip(joints, centre="middle")


# ------------------------------------------------------------------------------------ model


def test_full_size_channels_and_parameters():
    cfg = STGCNConfig(num_classes=3)
    assert cfg.channels() == [64, 64, 64, 64, 128, 128, 128, 256, 256, 256]
    assert STGCNConfig(num_classes=3, width=0.25).channels()[::3] == [16, 16, 32, 64]
    model = STGCN(cfg)
    assert 3.0e6 < model.num_parameters() < 3.2e6
    assert model.blocks[0].residual is None and model.blocks[4].tcn[2].stride == (2, 1)
    with pytest.raises(KinemicError, match="width"):
        STGCNConfig(num_classes=3, width=0)
    with pytest.raises(KinemicError, match="temporal_kernel"):
        STGCNConfig(num_classes=3, temporal_kernel=4)


@pytest.mark.parametrize(("graph", "joints"), [("smpl22", 22), ("kinect25", 25)])
def test_forward_shapes(graph, joints):
    torch.manual_seed(0)
    model = STGCN(STGCNConfig(num_classes=5, graph=graph, width=0.125)).eval()
    for frames in (40, 7, 1):
        x = torch.randn(3, frames, joints, 3)
        assert model(x).shape == (3, 5)
        assert model.features(x).shape == (3, model.config.feature_dim) == (3, 32)
    with pytest.raises(KinemicError, match=f"expects joints \\(B, T, {joints}, 3\\)"):
        model(torch.randn(2, 10, joints + 1, 3))


def test_masked_frames_do_not_matter():
    torch.manual_seed(0)
    model = STGCN(STGCNConfig(num_classes=4, width=0.125)).eval()
    x = torch.randn(2, 30, 22, 3)
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[0, 17:] = False  # a short clip padded to 30 frames
    y = x.clone()
    y[0, 17:] = 100 * torch.randn(13, 22, 3)  # other garbage in the padding
    with torch.inference_mode():
        a, b = model(x, mask), model(y, mask)
        torch.testing.assert_close(a, b)
        assert not torch.allclose(model(x)[0], model(y)[0])  # without the mask it matters


def test_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = STGCN(STGCNConfig(num_classes=3, graph="kinect25", width=0.125)).eval()
    save_stgcn(tmp_path / "m", model, extra={"note": 1})
    loaded, info = load_stgcn(tmp_path / "m")
    assert info["note"] == 1 and loaded.config == model.config
    x = torch.randn(2, 12, 25, 3)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(KinemicError, match=r"config\.json"):
        load_stgcn(tmp_path)


# --------------------------------------------------------------------------------- training


def test_epoch_rules():
    assert [s.stop - s.start for s in epoch_batches(33, 16)] == [16, 17]  # 1 left over joins
    assert [s.stop - s.start for s in epoch_batches(30, 16)] == [16, 14]
    cfg = HARTrainConfig()
    assert [cfg.epochs_for(n) for n in (30, 120, 330, 1320)] == [300, 75, 29, 10]
    assert HARTrainConfig(epochs=7).epochs_for(1000) == 7
    assert eval_epochs(5, 10) == {1, 2, 3, 4, 5}
    assert eval_epochs(300, 10) == set(range(30, 301, 30))
    assert HARTrainConfig(lr=0.1).lr_at(0, 100) == pytest.approx(0.1)
    assert HARTrainConfig(lr=0.1).lr_at(50, 100) == pytest.approx(0.05)
    with pytest.raises(KinemicError, match="max_epochs"):
        HARTrainConfig(min_epochs=10, max_epochs=5)


def _toy(n: int, rng: np.random.Generator, frames: int = 20):
    """Two classes anyone can tell apart: standing still vs arms waving up and down."""
    y = np.arange(n) % 2
    t = np.linspace(0, 2 * np.pi, frames)
    x = rng.normal(scale=0.05, size=(n, frames, 22, 3)).astype(np.float32)
    x[..., 1] += np.linspace(0, 1.6, 22)  # a vertical body
    wave = np.sin(t * rng.uniform(1.5, 3, (n, 1)) + rng.uniform(0, 6, (n, 1)))  # (n, frames)
    x[y == 1, :, 16:, 1] += 0.4 * wave[y == 1][:, :, None]
    return x, y


def _fast(**kw) -> HARTrainConfig:
    return HARTrainConfig(
        **{"steps": 48, "min_epochs": 1, "batch_size": 8, "cpu": True, "progress": False, **kw}
    )


def test_training_learns_a_separable_toy_set(one_thread):
    rng = np.random.default_rng(0)
    (x, y), (vx, vy) = _toy(24, rng), _toy(40, rng)
    model_cfg = STGCNConfig(num_classes=2, width=0.125, dropout=0.0)
    res = train_classifier(x, y, model_config=model_cfg, config=_fast(), val_x=vx, val_y=vy)
    assert res.epochs == 16 and res.steps == 48 and len(res.losses) == 16
    assert res.losses[-1] < res.losses[0]
    assert res.final_top1 >= 90.0
    assert res.history[-1][0] == 16 and res.best[1] >= res.final_top1  # final and best recorded
    assert res.val_pred.shape == (40,)
    pred = predict_logits(res.model, vx).argmax(-1).numpy()
    assert (pred == vy).mean() * 100 == pytest.approx(res.final_top1)


def test_fitting_rule_anneals_as_long_again_after_the_first_fitted_epoch(one_thread):
    rng = np.random.default_rng(0)
    (x, y), (vx, vy) = _toy(24, rng), _toy(40, rng)
    model_cfg = STGCNConfig(num_classes=2, width=0.125, dropout=0.0)
    full = train_classifier(x, y, model_config=model_cfg, config=_fast(), val_x=vx, val_y=vy)
    # a threshold the full run crosses early: the same seed is fitted at that epoch
    cut = full.losses[3]
    first = next(e for e, loss in enumerate(full.losses, start=1) if loss <= cut)
    assert 2 * first < full.epochs
    res = train_classifier(
        x, y, model_config=model_cfg, config=_fast(fit_loss=cut), val_x=vx, val_y=vy
    )
    assert res.fitted_epoch == first and res.planned_epochs == full.epochs
    assert res.epochs == 2 * first and res.fitted_early
    assert res.steps == 2 * first * 3  # 24 clips in batches of 8
    assert res.losses[:first] == full.losses[:first]  # the same run until it was fitted
    assert len(res.losses) == res.epochs
    assert res.history[-1][0] == res.epochs  # validated on its last epoch
    assert res.val_pred.shape == (40,) and res.samples_per_second > 0
    # never fitted: every planned epoch, as without the rule
    never = train_classifier(x, y, model_config=model_cfg, config=_fast(fit_loss=1e-9))
    assert never.epochs == full.epochs and never.fitted_epoch is None
    assert never.losses == full.losses
    with pytest.raises(KinemicError, match="fit_loss"):
        _fast(fit_loss=0.0)


def test_training_is_deterministic_for_a_seed(one_thread):
    rng = np.random.default_rng(1)
    x, y = _toy(12, rng)
    cfg = STGCNConfig(num_classes=2, width=0.125)
    runs = [
        train_classifier(x, y, model_config=cfg, config=_fast(steps=4, seed=s), val_x=x, val_y=y)
        for s in (3, 3, 4)
    ]
    a, b, c = (dict(r.model.state_dict()) for r in runs)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert runs[0].losses == runs[1].losses and runs[0].history == runs[1].history
    assert any(not torch.equal(a[k], c[k]) for k in a)  # another seed, other weights


def test_training_refuses_bad_input():
    cfg = STGCNConfig(num_classes=2, width=0.125)
    with pytest.raises(KinemicError, match="at least 2"):
        train_classifier(np.zeros((1, 8, 22, 3)), [0], model_config=cfg, config=_fast())
    with pytest.raises(KinemicError, match=r"labels must be in 0\.\.1"):
        train_classifier(np.zeros((3, 8, 22, 3)), [0, 1, 2], model_config=cfg, config=_fast())


def test_bf16_autocast_trains(one_thread):
    x, y = _toy(6, np.random.default_rng(2), frames=8)
    cfg = STGCNConfig(num_classes=2, width=0.125)
    res = train_classifier(
        x, y, model_config=cfg, config=_fast(steps=2, mixed_precision="bf16"), val_x=x, val_y=y
    )
    assert np.isfinite(res.losses).all() and len(res.history) == res.epochs
    assert next(res.model.parameters()).dtype == torch.float32  # weights stay fp32


def test_the_graph_first_block_computes_the_textbook_block():
    """STGCNBlock.forward (graph product on the input, one matrix product for all partitions)
    against forward_convolution_first (1×1 convolution, then the product per partition): the
    same outputs and gradients, in float64, with edge importances and biases away from their
    initial values so that every term counts."""
    torch.manual_seed(0)
    model = STGCN(STGCNConfig(num_classes=3, width=0.25)).double().train()
    with torch.no_grad():
        for block in model.blocks:
            block.importance.uniform_(0.5, 1.5)
            block.gcn.bias.normal_()
    x = torch.randn(3, 20, 22, 3, dtype=torch.float64)
    weights = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    params = list(model.parameters())
    out = model(x)
    grads = torch.autograd.grad((out * weights).sum(), params)
    for block in model.blocks:
        block.forward = block.forward_convolution_first
    ref = model(x)
    ref_grads = torch.autograd.grad((ref * weights).sum(), params)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)
