"""The fixed numbers of the HumanML3D representation, defined once.

Every dataset, model and reader in kinemic uses the same motion representation (SPEC §2): the
22-joint SMPL body at 20 frames per second, 263 feature dims per row, clips of at most 196
feature rows. This module imports nothing, so readers, the command line and configs can use
these without loading NumPy or PyTorch.
"""

FPS = 20.0  # frames per second of every clip kinemic reads or writes
NUM_JOINTS = 22  # SMPL body joints (kinemic.skeleton.SMPL22)
FEATURE_DIM = 263  # HumanML3D feature dims per row (kinemic.features)
MAX_FRAMES = 196  # the longest clip, in feature rows (HumanML3D keeps 40 <= T < 200 frames)
