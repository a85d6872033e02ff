"""KineMIC mining: soft positives (source motions whose captions match a target class),
attention windows inside them, and how precisely those windows find the target action.

Modules are imported explicitly (``from kinemic.mining.soft_positives import soft_positives``);
importing this package loads nothing heavy.
"""
