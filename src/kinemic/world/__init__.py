"""A procedural motion world with the structure of the real problem.

Source sequences (HumanML3D-like, SMPL-22, 20 fps) are compositions of parametric primitive
actions played on randomly proportioned bodies:

- ``body``: body proportions (``Body``, ``sample_body``) and forward kinematics;
- ``primitives``: the primitive actions (``PRIMITIVES``), each a function of its parameters
  that returns local joint rotations and a root trajectory (``Motion``);
- ``compose``: sequences of primitives with blended transitions, feet on the floor and
  ground-truth segments (``compose_sequence``, ``sample_sequence``).

Captions, the target HAR domain and the dataset writer build on these.
"""
