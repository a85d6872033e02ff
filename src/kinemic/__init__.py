"""kinemic: few-shot skeleton action synthesis (KineMIC) and transferable motion representations.

The package is organised one concept per module; see the README's module map.
"""

__version__ = "0.1.0"
