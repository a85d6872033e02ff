"""The rotation module against scipy, NumPy against torch, and its edge cases."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from kinemic import geometry as g


@pytest.fixture(scope="module")
def rots():
    r = Rotation.random(500, random_state=0)
    q = r.as_quat()[:, [3, 0, 1, 2]]  # scipy is (x, y, z, w)
    return r, np.where(q[:, :1] < 0, -q, q)


def test_quat_to_matrix_matches_scipy(rots):
    r, q = rots
    np.testing.assert_allclose(g.quat_to_matrix(q), r.as_matrix(), atol=1e-12)


def test_matrix_to_quat_inverts(rots):
    r, q = rots
    np.testing.assert_allclose(g.matrix_to_quat(r.as_matrix()), q, atol=1e-12)
    # near half turns, where the naive trace formula breaks down
    half = Rotation.from_rotvec(np.array([[np.pi, 0, 0], [0, np.pi - 1e-9, 0], [0, 0, -np.pi]]))
    back = Rotation.from_quat(g.matrix_to_quat(half.as_matrix())[:, [1, 2, 3, 0]])
    np.testing.assert_allclose(back.as_matrix(), half.as_matrix(), atol=1e-9)


def test_qrot_and_qmul_match_scipy(rots):
    r, q = rots
    v = np.random.default_rng(1).normal(size=(500, 3))
    np.testing.assert_allclose(g.qrot(q, v), r.apply(v), atol=1e-12)
    composed = g.quat_to_matrix(g.qmul(q, q[::-1]))
    np.testing.assert_allclose(composed, (r * r[::-1]).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(g.qmul(q, g.qinv(q)), np.tile([1.0, 0, 0, 0], (500, 1)), atol=1e-12)


def test_axis_angle_round_trip(rots):
    r, q = rots
    aa = g.quat_to_axis_angle(q)
    np.testing.assert_allclose(aa, r.as_rotvec(), atol=1e-12)
    np.testing.assert_allclose(g.axis_angle_to_quat(aa), q, atol=1e-12)
    zero = g.axis_angle_to_quat(np.zeros((1, 3)))
    np.testing.assert_allclose(zero, [[1.0, 0, 0, 0]])


def test_cont6d_round_trip(rots):
    r, q = rots
    d6 = g.quat_to_cont6d(q)
    assert d6.shape == (500, 6)
    np.testing.assert_allclose(d6[:, :3], r.as_matrix()[:, :, 0], atol=1e-12)
    np.testing.assert_allclose(g.cont6d_to_matrix(d6), r.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(g.cont6d_to_quat(d6), q, atol=1e-12)
    # Gram-Schmidt accepts non-orthonormal input and returns a proper rotation
    m = g.cont6d_to_matrix(d6 + 0.1)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)


def test_qbetween_maps_directions_including_antiparallel():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    b[:10] = -a[:10] * 3.0  # antiparallel: the plain formula gives NaN here
    q = g.qbetween(a, b)
    assert np.isfinite(q).all()
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(unit(g.qrot(q, a)), unit(b), atol=1e-10)
    qt = g.qbetween(torch.tensor(a), torch.tensor(b))
    np.testing.assert_allclose(qt.numpy(), q, atol=1e-12)


def test_quat_about_y():
    q = g.quat_about_y(np.array([np.pi / 2]))
    np.testing.assert_allclose(g.qrot(q, np.array([[0.0, 0, 1]])), [[1.0, 0, 0]], atol=1e-12)


@pytest.mark.parametrize(
    "fn",
    [g.quat_to_matrix, g.quat_to_cont6d, g.quat_to_axis_angle, g.qnormalize, g.qinv],
)
def test_torch_matches_numpy_and_is_differentiable(rots, fn):
    _, q = rots
    qt = torch.tensor(q, requires_grad=True)
    out = fn(qt)
    np.testing.assert_allclose(out.detach().numpy(), fn(q), atol=1e-12)
    out.sum().backward()
    assert torch.isfinite(qt.grad).all()


def test_batched_leading_dims(rots):
    _, q = rots
    q4 = q[:480].reshape(4, 5, 24, 4)
    v = np.ones((4, 5, 24, 3))
    np.testing.assert_allclose(g.qrot(q4, v).reshape(-1, 3), g.qrot(q[:480], v.reshape(-1, 3)))
    assert g.matrix_to_quat(g.quat_to_matrix(torch.tensor(q4))).shape == (4, 5, 24, 4)
