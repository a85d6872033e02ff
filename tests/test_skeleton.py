"""Joint-set definitions agree with themselves and with the spec."""

import itertools

import numpy as np
import pytest

from kinemic import skeleton as S


@pytest.mark.parametrize("skel", [S.SMPL22, S.KINECT25])
def test_chains_follow_parents_and_mirror_is_an_involution(skel):
    for chain in skel.chains:
        for parent, child in itertools.pairwise(chain):
            assert skel.parents[child] == parent, (skel.name, chain)
    mirror = np.array(skel.mirror)
    np.testing.assert_array_equal(mirror[mirror], np.arange(skel.num_joints))
    for j, name in enumerate(skel.joint_names):  # left joints map to right joints
        other = skel.joint_names[mirror[j]]
        if "l_" in name[:2] or "Left" in name:
            assert other.replace("r_", "l_").replace("Right", "Left") == name


def test_smpl22_matches_the_spec():
    assert S.SMPL22.joint_names[0] == "pelvis" and S.SMPL22.joint_names[21] == "r_wrist"
    assert S.SMPL22.num_joints == 22 and len(S.SMPL22.bones()) == 21
    np.testing.assert_array_equal(S.SMPL22_RAW_OFFSETS[10], [0, 0, 1])  # feet point +Z
    np.testing.assert_array_equal(S.SMPL22_RAW_OFFSETS[1], [1, 0, 0])  # left hip at +X
    assert (S.HUMANML3D_BONE_LENGTHS[1:] > 0.05).all()
    with pytest.raises(KeyError, match="no joint 'knee'"):
        S.SMPL22.index("knee")


def test_kinect_to_smpl_weights():
    w = S.KINECT_TO_SMPL
    np.testing.assert_allclose(w.sum(1), 1.0)
    k = S.KINECT25.index
    assert w[S.SMPL22.index("l_wrist"), k("WristLeft")] == 1.0
    assert w[:, [k("HandTipLeft"), k("ThumbLeft"), k("HandTipRight"), k("ThumbRight")]].sum() == 0
    kinect = np.random.default_rng(0).normal(size=(5, 25, 3))
    assert S.kinect_to_smpl(kinect).shape == (5, 22, 3)
    with pytest.raises(ValueError, match=r"\(\.\.\., 25, 3\)"):
        S.kinect_to_smpl(np.zeros((5, 22, 3)))
