"""Joint sets: SMPL-22 (the HumanML3D body) and Kinect-25 (NTU RGB+D), and the map between them.

Everything here is a plain constant or a small frozen dataclass; nothing imports torch.
Joint order, chains and raw offset directions follow ``../shared/SPEC.md`` §2 and §3 exactly,
because the HumanML3D features depend on them bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A joint set: names, parent of each joint (-1 for the root), chains and mirror map."""

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    chains: tuple[tuple[int, ...], ...]
    mirror: tuple[int, ...]  # mirror[j] = the joint that j becomes under a left/right swap

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(self.parents) != n or len(self.mirror) != n:
            raise ValueError(f"skeleton {self.name}: names, parents and mirror differ in length")
        if sorted(self.mirror) != list(range(n)):
            raise ValueError(f"skeleton {self.name}: mirror map is not a permutation")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(
                f"skeleton {self.name} has no joint {name!r}; joints: {', '.join(self.joint_names)}"
            ) from None

    def bones(self) -> list[tuple[int, int]]:
        """(parent, child) pairs, one per non-root joint."""
        return [(p, j) for j, p in enumerate(self.parents) if p >= 0]


# --------------------------------------------------------------------------------------------
# SMPL-22, Y up, metres, the body of HumanML3D.

SMPL22_JOINTS: tuple[str, ...] = (
    "pelvis",
    "l_hip",
    "r_hip",
    "spine1",
    "l_knee",
    "r_knee",
    "spine2",
    "l_ankle",
    "r_ankle",
    "spine3",
    "l_foot",
    "r_foot",
    "neck",
    "l_collar",
    "r_collar",
    "head",
    "l_shoulder",
    "r_shoulder",
    "l_elbow",
    "r_elbow",
    "l_wrist",
    "r_wrist",
)
SMPL22_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11),
    (0, 1, 4, 7, 10),
    (0, 3, 6, 9, 12, 15),
    (9, 14, 17, 19, 21),
    (9, 13, 16, 18, 20),
)
SMPL22_PARENTS: tuple[int, ...] = (
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
)
SMPL22_MIRROR: tuple[int, ...] = (
    0,
    2,
    1,
    3,
    5,
    4,
    6,
    8,
    7,
    9,
    11,
    10,
    12,
    14,
    13,
    15,
    17,
    16,
    19,
    18,
    21,
    20,
)

#: Unit direction of each bone (parent -> joint) in the rest pose; HumanML3D's ``t2m_raw_offsets``.
SMPL22_RAW_OFFSETS = np.array(
    [
        [0, 0, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, 0, 1],
        [0, 0, 1],
        [0, 1, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 0, 1],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
    ],
    dtype=np.float64,
)

#: Bone lengths (metres) of the uniform target skeleton that every HumanML3D clip is retargeted
#: to, read off the stored joints of the real HumanML3D clip 012314 (median over frames; the
#: stored float32 joints give them to ~1e-6). Index = child joint; 0 for the root.
HUMANML3D_BONE_LENGTHS = np.array(
    [
        0.0,
        0.1030740,
        0.1098834,
        0.1315682,
        0.3936232,
        0.3901882,
        0.1431902,
        0.4324330,
        0.4256434,
        0.0573647,
        0.1433818,
        0.1494191,
        0.2193600,
        0.1374868,
        0.1433828,
        0.1030392,
        0.1316140,
        0.1229844,
        0.2568399,
        0.2630919,
        0.2660118,
        0.2698763,
    ],
    dtype=np.float64,
)

SMPL22 = Skeleton(
    name="smpl22",
    joint_names=SMPL22_JOINTS,
    parents=SMPL22_PARENTS,
    chains=SMPL22_CHAINS,
    mirror=SMPL22_MIRROR,
)

#: Foot joints used for contacts: (l_ankle, l_foot), (r_ankle, r_foot).
FOOT_LEFT = (7, 10)
FOOT_RIGHT = (8, 11)
#: (r_hip, l_hip, r_shoulder, l_shoulder): the joints that define facing.
FACE_JOINTS = (2, 1, 17, 16)


def humanml3d_offsets(bone_lengths: np.ndarray = HUMANML3D_BONE_LENGTHS) -> np.ndarray:
    """Rest-pose offsets (22, 3): each joint's raw direction scaled by its bone length."""
    return SMPL22_RAW_OFFSETS * np.asarray(bone_lengths, dtype=np.float64)[:, None]


# --------------------------------------------------------------------------------------------
# Kinect v2, 25 joints (NTU RGB+D); camera space, Y up, Z into the scene, metres, 30 fps.

KINECT25_JOINTS: tuple[str, ...] = (
    "SpineBase",
    "SpineMid",
    "Neck",
    "Head",
    "ShoulderLeft",
    "ElbowLeft",
    "WristLeft",
    "HandLeft",
    "ShoulderRight",
    "ElbowRight",
    "WristRight",
    "HandRight",
    "HipLeft",
    "KneeLeft",
    "AnkleLeft",
    "FootLeft",
    "HipRight",
    "KneeRight",
    "AnkleRight",
    "FootRight",
    "SpineShoulder",
    "HandTipLeft",
    "ThumbLeft",
    "HandTipRight",
    "ThumbRight",
)
KINECT25_PARENTS: tuple[int, ...] = (
    -1,
    0,
    20,
    2,
    20,
    4,
    5,
    6,
    20,
    8,
    9,
    10,
    0,
    12,
    13,
    14,
    0,
    16,
    17,
    18,
    1,
    7,
    7,
    11,
    11,
)
KINECT25_MIRROR: tuple[int, ...] = (
    0,
    1,
    2,
    3,
    8,
    9,
    10,
    11,
    4,
    5,
    6,
    7,
    16,
    17,
    18,
    19,
    12,
    13,
    14,
    15,
    20,
    23,
    24,
    21,
    22,
)
KINECT25 = Skeleton(
    name="kinect25",
    joint_names=KINECT25_JOINTS,
    parents=KINECT25_PARENTS,
    chains=(
        (0, 16, 17, 18, 19),
        (0, 12, 13, 14, 15),
        (0, 1, 20, 2, 3),
        (20, 8, 9, 10, 11, 23),
        (20, 4, 5, 6, 7, 21),
    ),
    mirror=KINECT25_MIRROR,
)


def _kinect_to_smpl_weights() -> np.ndarray:
    """(22, 25) matrix W with smpl_joints = W @ kinect_joints (rows sum to 1)."""
    k = KINECT25.index
    w = np.zeros((22, 25))
    direct = {
        "pelvis": "SpineBase",
        "l_hip": "HipLeft",
        "r_hip": "HipRight",
        "l_knee": "KneeLeft",
        "r_knee": "KneeRight",
        "l_ankle": "AnkleLeft",
        "r_ankle": "AnkleRight",
        "l_foot": "FootLeft",
        "r_foot": "FootRight",
        "neck": "Neck",
        "head": "Head",
        "l_shoulder": "ShoulderLeft",
        "r_shoulder": "ShoulderRight",
        "l_elbow": "ElbowLeft",
        "r_elbow": "ElbowRight",
        "l_wrist": "WristLeft",
        "r_wrist": "WristRight",
    }
    for smpl_name, kinect_name in direct.items():
        w[SMPL22.index(smpl_name), k(kinect_name)] = 1.0

    def lerp(row: str, a: str, b: str, f: float) -> None:
        w[SMPL22.index(row), k(a)] += 1.0 - f
        w[SMPL22.index(row), k(b)] += f

    # The SMPL spine has three joints where Kinect has SpineMid between base and SpineShoulder:
    # spine1 sits halfway up the lower back, spine2 just above SpineMid, spine3 at the chest.
    lerp("spine1", "SpineBase", "SpineMid", 0.5)
    lerp("spine2", "SpineMid", "SpineShoulder", 0.25)
    lerp("spine3", "SpineMid", "SpineShoulder", 0.6)
    # Collars: a third of the way from the sternum (SpineShoulder) to each shoulder.
    lerp("l_collar", "SpineShoulder", "ShoulderLeft", 1.0 / 3.0)
    lerp("r_collar", "SpineShoulder", "ShoulderRight", 1.0 / 3.0)
    return w


#: smpl (…, 22, 3) = einsum("sk,...kc->...sc", KINECT_TO_SMPL, kinect (…, 25, 3)).
KINECT_TO_SMPL = _kinect_to_smpl_weights()


def kinect_to_smpl(kinect_joints: np.ndarray) -> np.ndarray:
    """Map Kinect-25 joints (..., 25, 3) to SMPL-22 joints (..., 22, 3), keeping the axes."""
    kinect_joints = np.asarray(kinect_joints)
    if kinect_joints.shape[-2:] != (25, 3):
        raise ValueError(f"expected Kinect joints of shape (..., 25, 3), got {kinect_joints.shape}")
    return np.einsum("sk,...kc->...sc", KINECT_TO_SMPL, kinect_joints)
