"""The HumanML3D motion representation: joints (T, 22, 3) <-> features (T-1, 263).

Bit-compatible with the published HumanML3D processing (``../shared/SPEC.md`` §2), including its
quirks, which every HumanML3D-format dataset carries:

- the per-frame root rotation comes from a facing direction whose hip term is reversed
  (across = (l_hip − r_hip) + (r_sho − l_sho)), smoothed over time with a Gaussian of σ = 20
  frames, and the first frame's root rotation is forced to the identity;
- the root linear velocity is rotated by the heading of the *next* frame, the joint velocities
  by the heading of the *current* frame;
- the local rotations of the arm chains are relative to the root rotation, not to spine3;
- a foot is in contact when its squared frame-to-frame displacement is below 0.002 m².

Feature layout (dims): root yaw velocity [0], root XZ velocity [1:3], root height [3],
ric (joints 1..21 in the heading frame) [4:67], 6-D local rotations [67:193], joint velocities
[193:259], foot contacts [259:263].

Forward processing runs in float64 and is vectorised over frames and over any leading batch
dimensions; recovery (``features_to_joints``) works on NumPy arrays and on (masked, batched,
differentiable) torch tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from kinemic.constants import FEATURE_DIM, NUM_JOINTS
from kinemic.errors import DataError
from kinemic.geometry import qbetween, qinv, qmul, qrot, quat_to_cont6d
from kinemic.skeleton import (
    FACE_JOINTS,
    FOOT_LEFT,
    FOOT_RIGHT,
    SMPL22,
    SMPL22_RAW_OFFSETS,
    humanml3d_offsets,
)

Array = TypeVar("Array", np.ndarray, torch.Tensor)
Convention = Literal["humanml3d", "ntu-vibe"]

#: Feature groups (name, start, stop) of the table in the module docstring.
FEATURE_GROUPS: tuple[tuple[str, int, int], ...] = (
    ("root_yaw_velocity", 0, 1),
    ("root_xz_velocity", 1, 3),
    ("root_height", 3, 4),
    ("ric", 4, 67),
    ("rotation_6d", 67, 193),
    ("joint_velocity", 193, 259),
    ("foot_contact", 259, 263),
)
FEET_THRESHOLD = 0.002
FACING_SIGMA = 20.0
#: HumanML3D measures the leg by the right hip→knee and knee→ankle bones to scale the root.
_LEG_BONES = (5, 8)
_UP = np.array([0.0, 1.0, 0.0])
_FORWARD = np.array([0.0, 0.0, 1.0])


def _check_joints(joints: np.ndarray, what: str = "joints") -> np.ndarray:
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim == 2 and joints.shape[-1] == NUM_JOINTS * 3:
        joints = joints.reshape(joints.shape[0], NUM_JOINTS, 3)
    if joints.ndim < 3 or joints.shape[-2:] != (NUM_JOINTS, 3):
        raise DataError(None, f"{what}: expected shape (T, 22, 3) or (T, 66), found {joints.shape}")
    if joints.shape[-3] < 2:
        raise DataError(None, f"{what}: need at least 2 frames, found {joints.shape[-3]}")
    if not np.isfinite(joints).all():
        bad = np.unique(np.nonzero(~np.isfinite(joints))[-3])
        raise DataError(None, f"{what}: NaN or inf in {len(bad)} frame(s), first at frame {bad[0]}")
    return joints


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.sqrt((v * v).sum(-1, keepdims=True))


# ------------------------------------------------------------------------- forward processing


def retarget(joints: np.ndarray, target_offsets: np.ndarray) -> np.ndarray:
    """HumanML3D's ``uniform_skeleton``: keep every bone's direction, give it the target length.

    joints (..., T, 22, 3); target_offsets (22, 3) or (..., 22, 3). The root trajectory is
    scaled by the ratio of target to source leg length (right thigh + shin, frame 0). The
    published code does this by inverse then forward kinematics, whose composition reduces
    exactly to rescaling each bone along its current direction.
    """
    target_len = np.linalg.norm(target_offsets, axis=-1)  # (..., 22)
    parents = SMPL22.parents
    src_len = np.linalg.norm(joints[..., 0, 1:, :] - joints[..., 0, list(parents[1:]), :], axis=-1)
    src_leg = src_len[..., _LEG_BONES[0] - 1] + src_len[..., _LEG_BONES[1] - 1]
    tgt_leg = target_len[..., _LEG_BONES[0]] + target_len[..., _LEG_BONES[1]]
    scale = (tgt_leg / src_leg)[..., None, None]  # (..., 1, 1)
    out = np.empty_like(joints)
    out[..., 0, :] = joints[..., 0, :] * scale
    for j in range(1, NUM_JOINTS):  # parents come before children in SMPL order
        p = parents[j]
        bone = _normalize(joints[..., j, :] - joints[..., p, :])
        out[..., j, :] = out[..., p, :] + bone * target_len[..., None, j, None]
    return out


def _first_frame_offsets(joints: np.ndarray) -> np.ndarray:
    """Rest offsets (..., 22, 3) with the bone lengths of each clip's first frame."""
    parents = list(SMPL22.parents[1:])
    lengths = np.linalg.norm(joints[..., 0, 1:, :] - joints[..., 0, parents, :], axis=-1)
    lengths = np.concatenate([np.zeros_like(lengths[..., :1]), lengths], -1)
    return SMPL22_RAW_OFFSETS * lengths[..., None]


def process_joints(
    joints: np.ndarray, *, convention: Convention = "humanml3d", floor_lowest: int = 20
) -> np.ndarray:
    """Canonicalise joints (..., T, 22, 3) the way the features describe them.

    Retarget (HumanML3D: to the uniform HumanML3D skeleton; NTU-VIBE: to the clip's own first
    frame, i.e. no rescaling), put the floor at y = 0 (HumanML3D: the lowest joint height of the
    clip; NTU-VIBE: the mean of the ``floor_lowest`` lowest joint heights), move the first-frame
    root to the XZ origin, and turn the clip so that the first frame faces +Z.
    """
    joints = _check_joints(joints)
    if convention == "humanml3d":
        positions = retarget(joints, humanml3d_offsets())
        floor = positions[..., 1].min(axis=(-1, -2))
    elif convention == "ntu-vibe":
        positions = retarget(joints, _first_frame_offsets(joints))
        flat = positions[..., 1].reshape(*positions.shape[:-3], -1)
        k = min(floor_lowest, flat.shape[-1])
        floor = np.sort(flat, axis=-1)[..., :k].mean(-1)
    else:
        raise ValueError(f"convention must be 'humanml3d' or 'ntu-vibe', not {convention!r}")
    positions[..., 1] -= floor[..., None, None]
    root_xz = positions[..., 0:1, 0:1, :] * np.array([1.0, 0.0, 1.0])
    positions = positions - root_xz

    r_hip, l_hip, r_sho, l_sho = FACE_JOINTS
    first = positions[..., 0, :, :]
    across = _normalize(
        (first[..., r_hip, :] - first[..., l_hip, :])
        + (first[..., r_sho, :] - first[..., l_sho, :])
    )
    forward = _normalize(np.cross(_UP, across))
    turn = qbetween(forward, np.broadcast_to(_FORWARD, forward.shape))  # (..., 4)
    return qrot(turn[..., None, None, :], positions)


def facing_rotation(positions: np.ndarray, *, sigma: float = FACING_SIGMA) -> np.ndarray:
    """The per-frame root rotation r_rot (..., T, 4) of the published code.

    Facing from across = (l_hip − r_hip) + (r_sho − l_sho) (the reversed hip term), forward =
    up × across smoothed over time with a Gaussian of ``sigma`` frames (edge mode "nearest"),
    r_rot = the rotation taking forward to +Z, and r_rot[0] = identity.
    """
    r_hip, l_hip, r_sho, l_sho = FACE_JOINTS
    across = (positions[..., l_hip, :] - positions[..., r_hip, :]) + (
        positions[..., r_sho, :] - positions[..., l_sho, :]
    )
    forward = np.cross(_UP, _normalize(across))
    if sigma > 0:
        forward = gaussian_filter1d(forward, sigma, axis=-2, mode="nearest")
    forward = _normalize(forward)
    r_rot = qbetween(forward, np.broadcast_to(_FORWARD, forward.shape))
    r_rot[..., 0, :] = (1.0, 0.0, 0.0, 0.0)
    return r_rot


def local_rotations(positions: np.ndarray, r_rot: np.ndarray) -> np.ndarray:
    """Inverse kinematics along the SMPL chains: local quaternions (..., T, 22, 4).

    Joint 0 holds r_rot. Along a chain, each bone's raw-offset direction is rotated onto its
    actual direction (rot_uv), and the local rotation is that relative to the rotation
    accumulated so far; every chain, the arms included, starts from r_rot, as published. The
    accumulated rotation after a joint is exactly its rot_uv, so all joints are computed at once.
    """
    children = np.arange(1, NUM_JOINTS)
    bones = positions[..., children, :] - positions[..., _CHAIN_PREV[1:], :]
    rot_uv = qbetween(np.broadcast_to(SMPL22_RAW_OFFSETS[1:], bones.shape), _normalize(bones))
    # accumulated rotation before each child: r_rot at a chain start, else the parent's rot_uv
    acc = np.concatenate([r_rot[..., None, :], rot_uv], axis=-2)[..., _CHAIN_ACC, :]
    quats = np.empty((*positions.shape[:-1], 4))
    quats[..., 0, :] = r_rot
    quats[..., 1:, :] = qmul(qinv(acc), rot_uv)
    return quats


def _chain_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each joint: its predecessor in its chain, and where its accumulated parent rotation
    sits in concat([r_rot, rot_uv of joints 1..21]) (0 = r_rot, i = rot_uv of joint i)."""
    prev = np.zeros(NUM_JOINTS, dtype=int)
    acc = np.zeros(NUM_JOINTS - 1, dtype=int)
    for chain in SMPL22.chains:
        for i in range(1, len(chain)):
            prev[chain[i]] = chain[i - 1]
            acc[chain[i] - 1] = 0 if i == 1 else chain[i - 1]
    return prev, acc


_CHAIN_PREV, _CHAIN_ACC = _chain_tables()


def foot_contacts(positions: np.ndarray, threshold: float = FEET_THRESHOLD) -> np.ndarray:
    """Contacts (..., T-1, 4) for (l_ankle, l_foot, r_ankle, r_foot): 1 where the squared
    frame-to-frame displacement is below ``threshold``."""
    feet = list(FOOT_LEFT + FOOT_RIGHT)
    disp = positions[..., 1:, feet, :] - positions[..., :-1, feet, :]
    return ((disp**2).sum(-1) < threshold).astype(np.float64)


def joints_to_features(
    joints: np.ndarray,
    *,
    convention: Convention = "humanml3d",
    feet_threshold: float = FEET_THRESHOLD,
    fix_yaw_sign: bool = False,
) -> np.ndarray:
    """HumanML3D features (..., T-1, 263) float32 of joint positions (..., T, 22, 3).

    ``convention="humanml3d"`` (default) retargets to the uniform HumanML3D skeleton and puts
    the floor at the lowest joint; ``"ntu-vibe"`` keeps the clip's own bones and puts the floor
    at the mean of the 20 lowest joint heights (the KineMIC NTU-VIBE data). Joints given as
    (T, 66) are accepted. Raises ``DataError`` on wrong shapes, NaN/inf or fewer than 2 frames.

    ``fix_yaw_sign``: the published yaw velocity is arcsin(y) of r_rot[t+1]·r_rot[t]⁻¹ without
    first choosing the quaternion's sign. When the smoothed heading crosses ±180° from the
    first frame's, r_rot flips hemisphere and that frame's yaw velocity gets the wrong sign,
    so recovery drifts by one frame's turn per crossing (``heading_crossings`` counts them).
    Real HumanML3D data carries this; ``False`` (default) reproduces it bit for bit, ``True``
    takes the w ≥ 0 representative first so that recovery is exact on every clip.

    Example (the joints of a sampled clip, and back):
        >>> import numpy as np, kinemic
        >>> joints = kinemic.sample("shipped", n=1, length=10, ddim=2).joints[0]  # (10, 22, 3)
        >>> features = kinemic.joints_to_features(joints)
        >>> features.shape  # one row fewer: rows are velocities
        (9, 263)
        >>> bool(np.isfinite(features).all())
        True
    """
    positions = process_joints(joints, convention=convention)
    return _features_of_processed(positions, feet_threshold, fix_yaw_sign)


def heading_crossings(joints: np.ndarray, *, convention: Convention = "humanml3d") -> np.ndarray:
    """How many times each clip's smoothed heading crosses ±180° from its first frame's, (...,).

    On clips with crossings the published features do not recover the joints exactly (see
    ``joints_to_features(fix_yaw_sign=...)``).
    """
    r_rot = facing_rotation(process_joints(joints, convention=convention))
    rel = qmul(r_rot[..., 1:, :], qinv(r_rot[..., :-1, :]))
    return (rel[..., 0] < 0).sum(-1)


def _features_of_processed(
    positions: np.ndarray, feet_threshold: float, fix_yaw_sign: bool = False
) -> np.ndarray:
    contacts = foot_contacts(positions, feet_threshold)
    r_rot = facing_rotation(positions)  # (..., T, 4)
    rot6d = quat_to_cont6d(local_rotations(positions, r_rot))  # (..., T, 22, 6)

    root = positions[..., 0, :]
    root_vel = qrot(r_rot[..., 1:, :], root[..., 1:, :] - root[..., :-1, :])
    step = qmul(r_rot[..., 1:, :], qinv(r_rot[..., :-1, :]))  # (..., T-1, 4)
    if fix_yaw_sign:
        step = np.where(step[..., :1] < 0, -step, step)
    yaw_vel = np.arcsin(step[..., 2:3])

    ric = positions - positions[..., 0:1, :] * np.array([1.0, 0.0, 1.0])
    ric = qrot(r_rot[..., None, :], ric)
    joint_vel = qrot(r_rot[..., :-1, None, :], positions[..., 1:, :, :] - positions[..., :-1, :, :])

    lead = positions.shape[:-3]
    n = positions.shape[-3] - 1
    out = np.concatenate(
        [
            yaw_vel,
            root_vel[..., [0, 2]],
            ric[..., :-1, 0, 1:2],
            ric[..., :-1, 1:, :].reshape(*lead, n, 63),
            rot6d[..., :-1, 1:, :].reshape(*lead, n, 126),
            joint_vel.reshape(*lead, n, 66),
            contacts,
        ],
        axis=-1,
    )
    return out.astype(np.float32)


def encode_clip(
    joints: np.ndarray, *, convention: Convention = "humanml3d", fix_yaw_sign: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """What a HumanML3D-layout dataset stores for one clip of raw joints (T, 22, 3):
    ``new_joint_vecs`` (T-1, 263) and ``new_joints`` (T-1, 22, 3), the joints recovered from
    those features, exactly as HumanML3D stores them. Both float32."""
    features = joints_to_features(joints, convention=convention, fix_yaw_sign=fix_yaw_sign)
    return features, features_to_joints(features).astype(np.float32)


# ------------------------------------------------------------------------------------ recovery


def features_to_joints(features: Array, mask: Array | None = None) -> Array:
    """Joint positions (..., T, 22, 3) from HumanML3D features (..., T, 263): recover_from_ric.

    Integrates the root yaw velocity (angle[0] = 0, used as a half angle) and the root XZ
    velocity, then places the ric joints around the root. Only dims [0:67] are read, so any
    feature width ≥ 67 works. NumPy in, NumPy out; torch in, torch out (differentiable,
    batched). ``mask`` (..., T) bool, True = valid frame: padded frames come back as zeros.
    Padding must follow the valid frames (as in a right-padded batch).

    Example:
        >>> import numpy as np, kinemic
        >>> kinemic.features_to_joints(np.zeros((2, 30, 263), np.float32)).shape
        (2, 30, 22, 3)
    """
    if features.shape[-1] < 67:
        raise DataError(None, f"features: expected (..., T, 263), found {tuple(features.shape)}")
    if isinstance(features, torch.Tensor):
        return _recover_torch(features, mask)
    f = np.asarray(features, dtype=np.float64)
    angle = np.concatenate([np.zeros_like(f[..., :1, 0]), np.cumsum(f[..., :-1, 0], -1)], -1)
    heading = np.stack(
        [np.cos(angle), np.zeros_like(angle), np.sin(angle), np.zeros_like(angle)], -1
    )
    inv = qinv(heading)
    step = np.zeros((*f.shape[:-1], 3))
    step[..., 1:, 0] = f[..., :-1, 1]
    step[..., 1:, 2] = f[..., :-1, 2]
    root = np.cumsum(qrot(inv, step), axis=-2)
    root[..., 1] = f[..., 3]
    ric = f[..., 4:67].reshape(*f.shape[:-1], 21, 3)
    ric = qrot(inv[..., None, :], ric)
    ric[..., 0] += root[..., None, 0]
    ric[..., 2] += root[..., None, 2]
    joints = np.concatenate([root[..., None, :], ric], axis=-2)
    if mask is not None:
        joints = joints * np.asarray(mask)[..., None, None]
    return joints.astype(
        features.dtype if np.issubdtype(features.dtype, np.floating) else np.float32
    )


def _recover_torch(f: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    zero = torch.zeros_like(f[..., :1, 0])
    angle = torch.cat([zero, torch.cumsum(f[..., :-1, 0], -1)], -1)
    z = torch.zeros_like(angle)
    inv = qinv(torch.stack([torch.cos(angle), z, torch.sin(angle), z], -1))
    zrow = torch.zeros_like(f[..., :1, 1])
    step = torch.stack(
        [torch.cat([zrow, f[..., :-1, 1]], -1), z, torch.cat([zrow, f[..., :-1, 2]], -1)], -1
    )
    root_xz = torch.cumsum(qrot(inv, step), dim=-2)
    root = torch.stack([root_xz[..., 0], f[..., 3], root_xz[..., 2]], -1)
    ric = qrot(inv[..., None, :], f[..., 4:67].unflatten(-1, (21, 3)))
    ric = ric + torch.stack([root[..., 0], z, root[..., 2]], -1)[..., None, :]
    joints = torch.cat([root[..., None, :], ric], dim=-2)
    if mask is not None:
        joints = joints * mask[..., None, None].to(joints.dtype)
    return joints


# ---------------------------------------------------------------------------------- mirroring


def mirror_joints(joints: Array) -> Array:
    """Left/right mirror of joints (..., 22, 3): negate X and swap left and right joints."""
    flipped = joints[..., list(SMPL22.mirror), :]
    sign = np.array([-1.0, 1.0, 1.0])
    if isinstance(joints, torch.Tensor):
        return flipped * torch.as_tensor(sign, dtype=joints.dtype, device=joints.device)
    return flipped * sign.astype(joints.dtype)


def _feature_mirror_tables() -> tuple[np.ndarray, np.ndarray]:
    """(index, sign) with mirrored[..., i] = features[..., index[i]] * sign[i]."""
    index = np.arange(FEATURE_DIM)
    sign = np.ones(FEATURE_DIM)
    sign[0] = -1.0  # yaw velocity
    sign[1] = -1.0  # root x velocity
    swap = SMPL22.mirror
    for j in range(1, NUM_JOINTS):  # ric of joint j at 4 + 3 (j-1)
        index[4 + 3 * (j - 1) : 4 + 3 * j] = np.arange(4 + 3 * (swap[j] - 1), 4 + 3 * swap[j])
        sign[4 + 3 * (j - 1)] = -1.0
        # 6-D rotation: the two matrix columns c0, c1 of M R M with M = diag(-1, 1, 1)
        # become (c0x, -c0y, -c0z) and (-c1x, c1y, c1z).
        base, src = 67 + 6 * (j - 1), 67 + 6 * (swap[j] - 1)
        index[base : base + 6] = np.arange(src, src + 6)
        sign[base : base + 6] = (1.0, -1.0, -1.0, -1.0, 1.0, 1.0)
    for j in range(NUM_JOINTS):
        index[193 + 3 * j : 196 + 3 * j] = np.arange(193 + 3 * swap[j], 196 + 3 * swap[j])
        sign[193 + 3 * j] = -1.0
    index[259:263] = (261, 262, 259, 260)
    return index, sign


_MIRROR_INDEX, _MIRROR_SIGN = _feature_mirror_tables()


def mirror_features(features: Array) -> Array:
    """Left/right mirror of HumanML3D features (..., 263), computed in feature space.

    Equals the features of the mirrored joints whenever retargeting does not depend on the
    side (it does under the HumanML3D convention, which scales by the right leg only).
    """
    if features.shape[-1] != FEATURE_DIM:
        raise DataError(None, f"features: expected (..., 263), found {tuple(features.shape)}")
    if isinstance(features, torch.Tensor):
        sign = torch.as_tensor(_MIRROR_SIGN, dtype=features.dtype, device=features.device)
        return features[..., torch.as_tensor(_MIRROR_INDEX, device=features.device)] * sign
    return features[..., _MIRROR_INDEX] * _MIRROR_SIGN.astype(features.dtype)


# --------------------------------------------------------------------------------- normaliser


@dataclass
class Normalizer:
    """Z-normalisation with HumanML3D's statistics: per-dimension mean, group-constant std.

    ``mean`` and ``std`` are (263,) float32. Save it beside every model that was trained with
    it; a model only makes sense with the statistics it saw.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32)
        self.std = np.asarray(self.std, dtype=np.float32)
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError(f"mean {self.mean.shape} and std {self.std.shape} must be (D,)")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all()):
            raise ValueError("mean and std must be finite")
        if (self.std <= 0).any():
            raise ValueError(
                f"std must be > 0; zero or negative at dims {np.nonzero(self.std <= 0)[0][:10]}"
            )

    @staticmethod
    def group_std(std: np.ndarray) -> np.ndarray:
        """Replace each group's std (FEATURE_GROUPS) by the group's mean std."""
        out = np.array(std, dtype=np.float64)
        for _, a, b in FEATURE_GROUPS:
            out[a:b] = out[a:b].mean()
        return out

    @classmethod
    def fit(cls, clips: list[np.ndarray], *, eps: float = 1e-8) -> Normalizer:
        """Statistics over all frames of ``clips`` (each (T, 263)), as HumanML3D computes them."""
        if not clips:
            raise ValueError("Normalizer.fit needs at least one clip")
        data = np.concatenate(
            [np.asarray(c, dtype=np.float64).reshape(-1, FEATURE_DIM) for c in clips]
        )
        std = cls.group_std(data.std(axis=0))
        return cls(data.mean(axis=0), np.maximum(std, eps))

    def normalize(self, features: Array) -> Array:
        mean, std = self._like(features)
        return (features - mean) / std

    def inverse(self, features: Array) -> Array:
        mean, std = self._like(features)
        return features * std + mean

    def _like(self, x):
        if isinstance(x, torch.Tensor):
            return (
                torch.as_tensor(self.mean, dtype=x.dtype, device=x.device),
                torch.as_tensor(self.std, dtype=x.dtype, device=x.device),
            )
        return self.mean, self.std

    def save(self, path: str | Path) -> None:
        """Write ``mean`` and ``std`` to an ``.npz`` file atomically."""
        import io

        from kinemic.files import write_bytes

        buf = io.BytesIO()
        np.savez(buf, mean=self.mean, std=self.std)
        write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        """Read an ``.npz`` written by ``save``, or a HumanML3D folder holding Mean.npy/Std.npy.

        A missing, truncated or damaged file, and statistics other than finite (D,) vectors
        with std > 0, are a DataError naming the file."""
        from kinemic.files import read_npy, read_npz

        path = Path(path)
        if path.is_dir():
            mean_path, std_path = path / "Mean.npy", path / "Std.npy"
            for p in (mean_path, std_path):
                if not p.exists():
                    raise DataError(p, "missing: a HumanML3D folder needs Mean.npy and Std.npy")
            mean, std, where = read_npy(mean_path), read_npy(std_path), f"{path}/{{Mean,Std}}.npy"
        else:
            if not path.exists():
                raise DataError(path, "normaliser file not found")
            arrays = read_npz(path)
            if "mean" not in arrays or "std" not in arrays:
                raise DataError(path, f"expected arrays 'mean' and 'std', found {sorted(arrays)}")
            mean, std, where = arrays["mean"], arrays["std"], path
        try:
            return cls(mean, std)
        except ValueError as e:
            raise DataError(where, f"unusable normaliser statistics: {e}") from None
