"""What the T-MOR encoders see: joints made invariant to where and which way a clip starts.

**Skeleton input** (:func:`motion_input`, torch, batched, masked). Joints (B, T, 22, 3) in
metres at 20 fps become per-frame vectors (B, T, 132):

1. *Heading normalisation*: each clip is rotated about +Y so that its body faces +Z at the
   start (the facing is HumanML3D's ``up × across`` of hips and shoulders, averaged over the
   first ``HEADING_FRAMES`` valid frames, which steadies it against tracker noise), and moved so
   that the pelvis starts at the origin of the floor plane. A clip then means the same motion
   wherever, and facing whichever way, it was recorded — the absolute heading and position are
   arbitrary in every corpus (mocap room, Kinect camera, world generator), while turning and
   travelling *within* the clip are kept.
2. *Root-relative positions* (66): every joint minus the pelvis' floor-plane position of its
   own frame (heights kept): the pose, independent of where the body has walked to.
3. *Velocities* (66): per-frame displacements of the heading-normalised joints times the
   frame rate (m/s): how the pose moves, including the root's travel. Velocities separate
   motions with similar poses (run on the spot vs. stand with bent knees) and are what a
   depth-camera's constant fitting offsets cancel out of.

Unlike the 263-d HumanML3D features this needs no retargeting and no smoothed per-frame facing,
so the target domain's noisy Kinect-like joints go through exactly the same function.

**Keypoint input** (:func:`keypoint_input`, NumPy): 2-D keypoints (T, 22, 2) in pixels (the
world's ``visual/`` proxy, or a 2-D pose estimator's output in SMPL-22 order) centred on the
clip's mean pelvis and scaled by its median pelvis-to-neck length, plus their velocities:
(T, 88). Other visual features (any video model's per-frame (T, F) or per-clip (F,) vectors)
are used as given.
"""

from __future__ import annotations

import numpy as np
import torch

from kinemic.constants import FPS, NUM_JOINTS
from kinemic.skeleton import SMPL22

MOTION_DIM = 2 * NUM_JOINTS * 3  # positions + velocities
KEYPOINT_DIM = 2 * NUM_JOINTS * 2
HEADING_FRAMES = 5
_R_HIP, _L_HIP, _R_SHOULDER, _L_SHOULDER = 2, 1, 17, 16
_NECK = 12
_MIRROR = list(SMPL22.mirror)


def facing_yaw(joints: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Yaw (B,) in radians of each clip's facing over its first valid frames.

    joints (B, T, 22, 3), mask (B, T) bool with the valid frames first. The facing is
    ``up × across`` with across = (r_hip − l_hip) + (r_shoulder − l_shoulder), as HumanML3D
    defines it; yaw = atan2(forward_x, forward_z), so rotating by −yaw makes it face +Z.
    """
    k = min(HEADING_FRAMES, joints.shape[1])
    head = joints[:, :k]  # (B, k, 22, 3)
    across = (head[:, :, _R_HIP] - head[:, :, _L_HIP]) + (
        head[:, :, _R_SHOULDER] - head[:, :, _L_SHOULDER]
    )  # (B, k, 3)
    w = mask[:, :k, None].to(joints.dtype)  # (B, k, 1)
    across = (across * w).sum(1)  # (B, 3)
    # forward = up × across = (across_z, 0, -across_x)
    return torch.atan2(across[:, 2], -across[:, 0])


def canonicalize(joints: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Joints (B, T, 22, 3) rotated about +Y to face +Z at the start and moved so the pelvis
    starts at x = z = 0 (heights unchanged)."""
    yaw = facing_yaw(joints, mask)  # (B,)
    c, s = torch.cos(yaw)[:, None, None], torch.sin(yaw)[:, None, None]  # (B, 1, 1)
    start = joints[:, :1, :1].clone()  # (B, 1, 1, 3)
    start[..., 1] = 0.0
    x, y, z = (joints - start).unbind(-1)
    # rotation by -yaw about +Y: x' = cos·x − sin·z, z' = sin·x + cos·z
    return torch.stack([c * x - s * z, y, s * x + c * z], dim=-1)


def motion_input(joints: torch.Tensor, mask: torch.Tensor, *, fps: float = FPS) -> torch.Tensor:
    """Per-frame skeleton input (B, T, 132): root-relative positions and velocities of the
    heading-normalised joints (see the module docstring). Padded frames are zero.

    joints (B, T, 22, 3) metres; mask (B, T) bool, True = valid, valid frames first.
    """
    if joints.ndim != 4 or joints.shape[2:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints: expected (B, T, 22, 3), found {tuple(joints.shape)}")
    if mask.shape != joints.shape[:2]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match joints {tuple(joints.shape)}")
    joints = canonicalize(joints.float(), mask)
    root = joints[:, :, :1].clone()  # (B, T, 1, 3)
    root[..., 1] = 0.0
    local = joints - root  # (B, T, 22, 3)
    vel = torch.zeros_like(joints)
    if joints.shape[1] > 1:
        vel[:, 1:] = (joints[:, 1:] - joints[:, :-1]) * fps
        vel[:, 0] = vel[:, 1]
        valid_pair = mask[:, 1:] & mask[:, :-1]  # (B, T-1)
        vel[:, 1:] = vel[:, 1:] * valid_pair[..., None, None]
    out = torch.cat([local.flatten(2), vel.flatten(2)], dim=-1)  # (B, T, 132)
    return out * mask[..., None]


def mirror_joints_np(joints: np.ndarray) -> np.ndarray:
    """Left/right mirror of joints (..., 22, 3): negate X, swap left and right joints."""
    out = joints[..., _MIRROR, :].copy()
    out[..., 0] *= -1.0
    return out


def mirror_keypoints(keypoints: np.ndarray, width: float) -> np.ndarray:
    """Left/right mirror of 2-D keypoints (..., 22, 2) in an image ``width`` pixels wide: the
    image of the mirrored scene seen by the mirrored camera."""
    out = keypoints[..., _MIRROR, :].copy()
    out[..., 0] = width - out[..., 0]
    return out


def keypoint_input(keypoints: np.ndarray, *, fps: float = FPS) -> np.ndarray:
    """(T, 22, 2) pixel keypoints → (T, 88) float32: positions centred on the mean pelvis and
    divided by the median pelvis-to-neck length, then their velocities (per second)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2):
        raise ValueError(f"keypoints: expected (T, 22, 2), found {kp.shape}")
    centre = kp[:, 0].mean(0)
    torso = np.median(np.linalg.norm(kp[:, _NECK] - kp[:, 0], axis=-1))
    pos = (kp - centre) / max(float(torso), 1e-6)
    vel = np.zeros_like(pos)
    if len(pos) > 1:
        vel[1:] = (pos[1:] - pos[:-1]) * fps / 10.0  # ~unit scale
        vel[0] = vel[1]
    return np.concatenate([pos.reshape(len(kp), -1), vel.reshape(len(kp), -1)], -1).astype(
        np.float32
    )


_SWAPS = (
    ("left", "right"),
    ("counterclockwise", "clockwise"),
    ("anticlockwise", "clockwise"),
)


def mirror_caption(text: str) -> str:
    """The caption of the mirrored motion: left ↔ right, (counter)clockwise swapped."""
    import re

    table = {}
    for a, b in _SWAPS:
        table.setdefault(a, b)
        table.setdefault(b, a)
    pattern = re.compile(r"\b(" + "|".join(sorted(table, key=len, reverse=True)) + r")\b", re.I)

    def swap(m: re.Match[str]) -> str:
        word = m[0]
        new = table[word.lower()]
        return new.capitalize() if word[0].isupper() else new

    return pattern.sub(swap, text)
