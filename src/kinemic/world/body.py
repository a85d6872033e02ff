"""Bodies of the procedural world: bone lengths, proportions and forward kinematics.

A body is the SMPL-22 skeleton of HumanML3D with its bones scaled to a standing height and
jittered per segment (legs, torso, arms, shoulder and hip width), left/right symmetric.

Joint rotation convention used by ``forward_kinematics`` (the usual one for an animation
rig): ``local_rot[:, 0]`` is the pelvis' global orientation; ``local_rot[:, j]`` for j > 0
rotates joint j's *child* bones relative to joint j's parent frame, so the global frame of
joint j is ``G[j] = G[parent[j]] · local_rot[j]`` and its position is
``p[j] = p[parent[j]] + G[parent[j]] · offsets[j]``. Leaf joints (feet, head, wrists) carry
rotations that move nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from kinemic.geometry import quat_to_matrix
from kinemic.skeleton import (
    HUMANML3D_BONE_LENGTHS,
    SMPL22_MIRROR,
    SMPL22_PARENTS,
    SMPL22_RAW_OFFSETS,
)

#: Rest pitch of the foot bone (ankle -> toe joint), toe down, radians. With it the ankle
#: joint stands ``ANKLE_PITCH`` · foot length above the floor, as in real SMPL data.
ANKLE_PITCH = np.deg2rad(25.0)
#: Head top above the head joint, as a fraction of the head bone (neck -> head) length.
_HEAD_TOP = 1.0

_LEGS = (4, 5, 7, 8)  # thigh and shin bones (index = child joint)
_FEET = (10, 11)
_TORSO = (3, 6, 9, 12, 15)
_ARMS = (18, 19, 20, 21)
_SHOULDERS = (13, 14, 16, 17)  # collar and collar -> shoulder bones
_HIPS = (1, 2)


def _symmetric(lengths: np.ndarray) -> np.ndarray:
    """Average each bone with its mirror image."""
    return 0.5 * (lengths + lengths[list(SMPL22_MIRROR)])


_REFERENCE = _symmetric(HUMANML3D_BONE_LENGTHS)


def standing_height(bone_lengths: np.ndarray) -> float:
    """Height (metres) of a body standing straight: sole to head top."""
    b = bone_lengths
    ankle = b[10] * np.sin(ANKLE_PITCH)
    legs = b[4] + b[7]
    spine = b[3] + b[6] + b[9] + b[12]
    return float(ankle + legs + spine + (1.0 + _HEAD_TOP) * b[15])


@dataclass(frozen=True)
class Body:
    """A body: bone lengths (22,) in metres (index = child joint, 0 for the root) and height."""

    bone_lengths: np.ndarray
    height: float

    def offsets(self) -> np.ndarray:
        """Rest offsets (22, 3) = SMPL22_RAW_OFFSETS * bone_lengths."""
        return SMPL22_RAW_OFFSETS * self.bone_lengths[:, None]

    @property
    def ankle_height(self) -> float:
        """Height (m) of an ankle joint above the floor when its foot stands flat."""
        return float(self.bone_lengths[10] * np.sin(ANKLE_PITCH))

    @property
    def leg_length(self) -> float:
        """Hip joint to ankle joint, straight leg (m)."""
        return float(self.bone_lengths[4] + self.bone_lengths[7])


def make_body(
    height: float = 1.70,
    *,
    legs: float = 1.0,
    torso: float = 1.0,
    arms: float = 1.0,
    shoulders: float = 1.0,
    hips: float = 1.0,
) -> Body:
    """A body of the given standing height (m) and relative segment proportions."""
    b = _REFERENCE.copy()
    for idx, f in ((_LEGS, legs), (_FEET, legs), (_TORSO, torso), (_ARMS, arms)):
        b[list(idx)] *= f
    b[list(_SHOULDERS)] *= shoulders
    b[list(_HIPS)] *= hips
    b *= height / standing_height(b)
    return Body(bone_lengths=b, height=float(height))


def sample_body(
    rng: np.random.Generator, *, domain: Literal["source", "target"] = "source"
) -> Body:
    """A random body.

    - ``"source"`` (the HumanML3D-like corpus): height ~ N(1.72, 0.09) m clipped to
      [1.50, 1.95]; legs, torso, arms, shoulder and hip widths each jittered by ±8 % at most.
    - ``"target"`` (the HAR domain): shorter on average with heavier tails (Student t, 4 dof)
      clipped to [1.40, 2.05], longer torso and arms, shorter legs, wider shoulders and hips
      (the proportions a depth-camera skeleton gives), and more spread.
    """
    if domain == "source":
        height = float(np.clip(rng.normal(1.72, 0.09), 1.50, 1.95))
        j = np.clip(rng.normal(0.0, 0.04, size=5), -0.08, 0.08)
        shift = np.zeros(5)
    elif domain == "target":
        height = float(np.clip(1.67 + 0.08 * rng.standard_t(4), 1.40, 2.05))
        j = np.clip(rng.normal(0.0, 0.055, size=5), -0.12, 0.12)
        shift = np.array([-0.04, 0.05, 0.04, 0.12, 0.10])
    else:
        raise ValueError(f"domain must be 'source' or 'target', not {domain!r}")
    legs, torso, arms, shoulders, hips = 1.0 + shift + j
    return make_body(height, legs=legs, torso=torso, arms=arms, shoulders=shoulders, hips=hips)


def forward_kinematics(body: Body, local_rot: np.ndarray, root_pos: np.ndarray) -> np.ndarray:
    """Joint positions (T, 22, 3) from local rotations (T, 22, 4) and root positions (T, 3).

    ``local_rot`` are unit quaternions (w, x, y, z); joint 0's is the global pelvis orientation,
    the others are relative to the parent (see the module docstring). Vectorised over frames.
    """
    local_rot = np.asarray(local_rot, dtype=np.float64)
    root_pos = np.asarray(root_pos, dtype=np.float64)
    if local_rot.ndim != 3 or local_rot.shape[1:] != (22, 4):
        raise ValueError(f"local_rot: expected (T, 22, 4), found {local_rot.shape}")
    if root_pos.shape != (local_rot.shape[0], 3):
        raise ValueError(f"root_pos: expected ({local_rot.shape[0]}, 3), found {root_pos.shape}")
    return fk_matrices(body.offsets(), quat_to_matrix(local_rot), root_pos)


def fk_matrices(offsets: np.ndarray, local: np.ndarray, root_pos: np.ndarray) -> np.ndarray:
    """Forward kinematics on matrices: local (T, 22, 3, 3), root_pos (T, 3) -> joints (T, 22, 3)."""
    n = local.shape[0]
    glob = np.empty_like(local)
    pos = np.empty((n, 22, 3))
    glob[:, 0] = local[:, 0]
    pos[:, 0] = root_pos
    for j in range(1, 22):
        p = SMPL22_PARENTS[j]
        pos[:, j] = pos[:, p] + glob[:, p] @ offsets[j]
        glob[:, j] = glob[:, p] @ local[:, j]
    return pos
