"""T-MOR inputs and towers: invariances, shapes, masks, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kinemic.errors import KinemicError
from kinemic.tmor.inputs import (
    MOTION_DIM,
    keypoint_input,
    mirror_caption,
    mirror_joints_np,
    mirror_keypoints,
    motion_input,
)
from kinemic.tmor.model import TMOR, TMORConfig
from tests.synthetic import walking_clip

pytestmark = pytest.mark.usefixtures("one_thread")


def _rot_y(theta: float) -> torch.Tensor:
    c, s = np.cos(theta), np.sin(theta)
    return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float32)


def test_motion_input_ignores_where_and_which_way_a_clip_starts() -> None:
    j = torch.from_numpy(walking_clip(50, seed=1).astype(np.float32))[None]  # (1, T, 22, 3)
    mask = torch.ones(1, 50, dtype=torch.bool)
    x = motion_input(j, mask)
    assert x.shape == (1, 50, MOTION_DIM)
    moved = j @ _rot_y(2.1).T + torch.tensor([4.0, 0.0, -7.0])
    torch.testing.assert_close(motion_input(moved, mask), x, atol=1e-4, rtol=0)
    # but a different motion (the same clip played backwards) is not the same input
    assert (motion_input(j.flip(1), mask) - x).abs().max() > 0.1
    # heights are kept, and the velocities are in m/s
    assert 0.5 < float(x[0, :, 1].mean()) < 1.3  # pelvis height
    speed = x[0, 10, 66:69].norm()  # pelvis velocity of a walk
    assert 0.2 < float(speed) < 3.0


def test_motion_input_zeroes_padding_and_does_not_depend_on_it() -> None:
    a = torch.from_numpy(walking_clip(40, seed=2).astype(np.float32))
    batch = torch.zeros(2, 60, 22, 3)
    batch[0, :40] = a
    batch[1] = torch.from_numpy(walking_clip(60, seed=3).astype(np.float32))
    mask = torch.zeros(2, 60, dtype=torch.bool)
    mask[0, :40] = True
    mask[1] = True
    x = motion_input(batch, mask)
    assert x[0, 40:].abs().max() == 0
    alone = motion_input(a[None], torch.ones(1, 40, dtype=torch.bool))
    torch.testing.assert_close(x[0, :40], alone[0])
    with pytest.raises(ValueError, match=r"\(B, T, 22, 3\)"):
        motion_input(batch[..., :2], mask)


def test_mirroring_helpers() -> None:
    j = walking_clip(20, seed=4)
    m = mirror_joints_np(j)
    np.testing.assert_allclose(mirror_joints_np(m), j)
    np.testing.assert_allclose(m[:, 1, 0], -j[:, 2, 0])  # left hip = mirrored right hip
    kp = np.random.default_rng(0).uniform(0, 1000, size=(5, 22, 2))
    np.testing.assert_allclose(mirror_keypoints(mirror_keypoints(kp, 1920), 1920), kp)
    assert mirror_caption("A man turns Left, then walks in a counterclockwise circle") == (
        "A man turns Right, then walks in a clockwise circle"
    )
    assert mirror_caption("kicks with the right leg, then the left") == (
        "kicks with the left leg, then the right"
    )
    assert mirror_caption("jumps up") == "jumps up"
    feats = keypoint_input(kp)
    assert feats.shape == (5, 88) and feats.dtype == np.float32


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_towers_give_unit_embeddings_and_per_frame_features(stride: int) -> None:
    torch.manual_seed(0)
    cfg = TMORConfig.preset(
        "tiny", text_dim=16, frame_stride=stride, visual="frames", visual_dim=88
    )
    model = TMOR(cfg).eval()
    joints = torch.zeros(3, 45, 22, 3)
    lengths = [45, 30, 17]
    mask = torch.zeros(3, 45, dtype=torch.bool)
    for b, n in enumerate(lengths):
        joints[b, :n] = torch.from_numpy(walking_clip(n, seed=b).astype(np.float32))
        mask[b, :n] = True
    x = motion_input(joints, mask)
    z, frames = model.encode_motion(x, mask, frames=True)
    assert z.shape == (3, cfg.embed_dim) and frames.shape == (3, 45, cfg.dim)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(3))
    assert frames[2, 17:].abs().max() == 0
    # a padded clip embeds as it does alone
    alone = model.encode_motion(x[2:, :17], mask[2:, :17])
    torch.testing.assert_close(z[2:], alone, atol=1e-5, rtol=0)
    t = model.encode_text(torch.randn(3, 16))
    v = model.encode_visual(torch.randn(3, 45, 88), mask)
    assert t.shape == v.shape == (3, cfg.embed_dim)
    out = model(x, mask, torch.randn(3, 16), torch.randn(3, 45, 88), mask)
    assert set(out) == {"motion", "text", "visual", "scale_text", "scale_visual"}
    assert abs(float(out["scale_text"].detach()) - 1 / 0.07) < 1e-3


def test_clip_visual_tower_and_config_errors() -> None:
    model = TMOR(TMORConfig.preset("tiny", text_dim=8, visual="clip", visual_dim=12))
    assert model.encode_visual(torch.randn(4, 12)).shape == (4, 32)
    with pytest.raises(KinemicError, match="without a visual tower"):
        TMOR(TMORConfig.preset("tiny", text_dim=8)).encode_visual(torch.randn(2, 12))
    with pytest.raises(KinemicError, match="divisible by heads"):
        TMORConfig(dim=30, heads=4)
    with pytest.raises(KinemicError, match="visual_dim"):
        TMORConfig(visual="frames")
    with pytest.raises(KinemicError, match="unknown T-MOR preset"):
        TMORConfig.preset("huge")
    with pytest.raises(KinemicError, match="unknown settings"):
        TMORConfig.from_dict({"dim": 32, "colour": "red"})
    assert TMORConfig.from_dict(TMORConfig().to_dict()) == TMORConfig()
