"""Rotations for motion data: quaternions, 6-D rotations, axis-angle, rotation matrices.

Every function takes NumPy arrays or PyTorch tensors and returns the same kind, batched over
any leading dimensions, with the components in the last axis:

- quaternions ``(..., 4)`` as (w, x, y, z), acting on column vectors;
- vectors ``(..., 3)``; rotation matrices ``(..., 3, 3)``;
- continuous 6-D rotations ``(..., 6)`` = the first two *columns* of the matrix, as
  HumanML3D stores them (Zhou et al. 2019);
- axis-angle ``(..., 3)`` = unit axis times angle in radians.

The torch versions are differentiable (no in-place writes to inputs). This is the project's one
rotation module: nothing else in kinemic re-implements these. scipy's ``Rotation`` is used where
Euler angles are needed (BVH); it is not used here because it is NumPy-only and unbatched over
arbitrary leading dimensions.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _is_torch(x) -> bool:
    return isinstance(x, torch.Tensor)


def _stack(xs, axis: int):
    return torch.stack(xs, dim=axis) if _is_torch(xs[0]) else np.stack(xs, axis=axis)


def _cat(xs, axis: int):
    return torch.cat(xs, dim=axis) if _is_torch(xs[0]) else np.concatenate(xs, axis=axis)


def _cross(a, b):
    if _is_torch(a):
        a, b = torch.broadcast_tensors(a, b)
        return torch.linalg.cross(a, b, dim=-1)
    # Component-wise: several times faster than np.cross on small trailing axes.
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=np.result_type(a, b))
    out[..., 0] = ay * bz - az * by
    out[..., 1] = az * bx - ax * bz
    out[..., 2] = ax * by - ay * bx
    return out


def _sqrt(x):
    return torch.sqrt(x) if _is_torch(x) else np.sqrt(x)


def _norm(x):
    """Euclidean norm over the last axis, kept as a size-1 axis."""
    return _sqrt((x * x).sum(-1)[..., None])


def _like(x, values) -> np.ndarray | torch.Tensor:
    if _is_torch(x):
        return torch.as_tensor(values, dtype=x.dtype, device=x.device)
    return np.asarray(values, dtype=x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)


# ---------------------------------------------------------------------------------- quaternions


def qnormalize(q: Array, eps: float = 0.0) -> Array:
    """Unit quaternions (..., 4)."""
    return q / (_norm(q) + eps)


def qinv(q: Array) -> Array:
    """Inverse of unit quaternions (the conjugate), (..., 4)."""
    return q * _like(q, [1.0, -1.0, -1.0, -1.0])


def qmul(a: Array, b: Array) -> Array:
    """Hamilton product a·b, (..., 4); broadcasts."""
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def qrot(q: Array, v: Array) -> Array:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4); broadcasts."""
    qv = q[..., 1:]
    uv = _cross(qv, v)
    uuv = _cross(qv, uv)
    return v + 2.0 * (q[..., :1] * uv + uuv)


def qbetween(v0: Array, v1: Array) -> Array:
    """The shortest-arc unit quaternion rotating direction v0 onto v1, (..., 4).

    Antiparallel inputs (no unique shortest arc) get a half turn about an axis perpendicular to
    v0, instead of the NaN that the plain formula gives there.
    """
    n0n1 = _sqrt((v0 * v0).sum(-1) * (v1 * v1).sum(-1))[..., None]
    q = _cat([n0n1 + (v0 * v1).sum(-1)[..., None], _cross(v0, v1)], -1)
    qn = _norm(q)
    degenerate = qn <= 1e-9 * n0n1
    if bool(degenerate.any()):
        # v0 × (the basis axis least aligned with v0) is perpendicular to v0 and non-zero.
        if _is_torch(v0):
            least = torch.nn.functional.one_hot(v0.abs().argmin(-1), 3).to(v0.dtype)
            half_turn = torch.cat([torch.zeros_like(n0n1), _cross(v0, least)], -1)
            q = torch.where(degenerate, half_turn, q)
        else:
            least = np.eye(3)[np.abs(v0).argmin(-1)]
            half_turn = np.concatenate([np.zeros_like(n0n1), _cross(v0, least)], -1)
            q = np.where(degenerate, half_turn, q)
        qn = _norm(q)
    return q / qn


def quat_about_y(angle: Array) -> Array:
    """Rotations by ``angle`` radians about +Y, (...,) -> (..., 4)."""
    half = angle / 2.0
    if _is_torch(angle):
        z = torch.zeros_like(half)
        return torch.stack([torch.cos(half), z, torch.sin(half), z], -1)
    z = np.zeros_like(half)
    return np.stack([np.cos(half), z, np.sin(half), z], -1)


# ------------------------------------------------------------------------------ matrices and 6-D


def quat_to_matrix(q: Array) -> Array:
    """Rotation matrices (..., 3, 3) of quaternions (..., 4) (need not be unit)."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    s = 2.0 / (q * q).sum(-1)
    rows = [
        1 - s * (y * y + z * z),
        s * (x * y - z * w),
        s * (x * z + y * w),
        s * (x * y + z * w),
        1 - s * (x * x + z * z),
        s * (y * z - x * w),
        s * (x * z - y * w),
        s * (y * z + x * w),
        1 - s * (x * x + y * y),
    ]
    m = _stack(rows, -1)
    return m.reshape(*m.shape[:-1], 3, 3)


def matrix_to_quat(m: Array) -> Array:
    """Unit quaternions (..., 4) with w ≥ 0 of rotation matrices (..., 3, 3).

    Uses the largest of the four candidate denominators for every element (numerically stable
    near half turns).
    """
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4·(component)² for w, x, y, z
    four_sq = _stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    four_sq = four_sq.clamp_min(0.0) if _is_torch(m) else np.maximum(four_sq, 0.0)
    comps = _sqrt(four_sq) / 2.0  # |w|, |x|, |y|, |z|
    # Candidates computed from each largest component k (rows: q scaled so that q_k = comps_k).
    d21, d02, d10 = (
        m[..., 2, 1] - m[..., 1, 2],
        m[..., 0, 2] - m[..., 2, 0],
        m[..., 1, 0] - m[..., 0, 1],
    )
    s21, s02, s10 = (
        m[..., 2, 1] + m[..., 1, 2],
        m[..., 0, 2] + m[..., 2, 0],
        m[..., 1, 0] + m[..., 0, 1],
    )
    cands = _stack(
        [
            _stack([four_sq[..., 0], d21, d02, d10], -1),
            _stack([d21, four_sq[..., 1], s10, s02], -1),
            _stack([d02, s10, four_sq[..., 2], s21], -1),
            _stack([d10, s02, s21, four_sq[..., 3]], -1),
        ],
        -2,
    )  # (..., 4 candidates, 4)
    denom = 2.0 * comps[..., :, None]
    if _is_torch(m):
        cands = cands / denom.clamp_min(1e-12)
        best = comps.argmax(-1)
        q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
        q = torch.where(q[..., :1] < 0, -q, q)
    else:
        cands = cands / np.maximum(denom, 1e-12)
        best = comps.argmax(-1)
        q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
        q = np.where(q[..., :1] < 0, -q, q)
    return qnormalize(q)


def quat_to_cont6d(q: Array) -> Array:
    """Continuous 6-D rotations (..., 6): the first two columns of the matrix of q."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    s = 2.0 / (q * q).sum(-1)
    return _stack(
        [
            1 - s * (y * y + z * z),
            s * (x * y + z * w),
            s * (x * z - y * w),
            s * (x * y - z * w),
            1 - s * (x * x + z * z),
            s * (y * z + x * w),
        ],
        -1,
    )


def matrix_to_cont6d(m: Array) -> Array:
    """Continuous 6-D rotations (..., 6) of rotation matrices (..., 3, 3)."""
    return _cat([m[..., :, 0], m[..., :, 1]], -1)


def cont6d_to_matrix(d6: Array) -> Array:
    """Rotation matrices (..., 3, 3) from 6-D rotations, by Gram–Schmidt."""
    a, b = d6[..., 0:3], d6[..., 3:6]
    x = a / _norm(a)
    z = _cross(x, b)
    z = z / _norm(z)
    y = _cross(z, x)
    return _stack([x, y, z], -1)


def cont6d_to_quat(d6: Array) -> Array:
    """Unit quaternions (..., 4) from 6-D rotations."""
    return matrix_to_quat(cont6d_to_matrix(d6))


# ---------------------------------------------------------------------------------- axis-angle


def axis_angle_to_quat(aa: Array) -> Array:
    """Unit quaternions (..., 4) of axis-angle vectors (..., 3)."""
    angle = _norm(aa)
    half = angle / 2.0
    if _is_torch(aa):
        # sin(half)/angle, with its limit 1/2 at zero (Taylor) to stay finite and differentiable
        small = angle < 1e-6
        safe = torch.where(small, torch.ones_like(angle), angle)
        k = torch.where(small, 0.5 - angle * angle / 48.0, torch.sin(safe / 2.0) / safe)
        return torch.cat([torch.cos(half), aa * k], -1)
    small = angle < 1e-6
    safe = np.where(small, 1.0, angle)
    k = np.where(small, 0.5 - angle * angle / 48.0, np.sin(safe / 2.0) / safe)
    return np.concatenate([np.cos(half), aa * k], -1)


def quat_to_axis_angle(q: Array) -> Array:
    """Axis-angle vectors (..., 3), angle in [0, π], of quaternions (..., 4)."""
    q = qnormalize(q)
    if _is_torch(q):
        q = torch.where(q[..., :1] < 0, -q, q)
        sin_half = torch.linalg.vector_norm(q[..., 1:], dim=-1, keepdim=True)
        angle = 2.0 * torch.atan2(sin_half, q[..., :1])
        small = sin_half < 1e-8
        k = torch.where(small, 2.0 / q[..., :1].clamp_min(1e-12), angle / sin_half.clamp_min(1e-12))
        return q[..., 1:] * k
    q = np.where(q[..., :1] < 0, -q, q)
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[..., :1])
    small = sin_half < 1e-8
    k = np.where(small, 2.0 / np.maximum(q[..., :1], 1e-12), angle / np.maximum(sin_half, 1e-12))
    return q[..., 1:] * k
