"""The demo's verdict: sentences computed from its own numbers, read before any table.

Three questions, in the order a newcomer asks them:

1. **Can the classifier tell the classes apart at all?** ``gt`` (every real training clip of
   the classes) against ``real`` (the ten shots): the calibration. When ``gt`` is not clearly
   above ``real``, the classifiers are not trained enough to say anything about synthetic data,
   and the verdict says so instead of ranking the modes.
2. **Did synthetic data help?** Each ``mixed`` mode (real + synthetic) against ``real``: by how
   many points, and whether the 95% intervals separate (the lower end of one above the upper
   end of the other). "Helped" only when one does; a higher mean whose intervals overlap is
   called what it is, a rise within seed noise.
3. **Did KineMIC beat the baseline?** ``mixed (kinemic)`` against ``mixed (mdm-ft)``.

When no synthetic set helped, the verdict names the likely reason the report can see in how
much the clips move (:mod:`kinemic.har.motion`): synthetic clips far slower than the real ones
(a nearly static body) or travelling far further (moving where the action stays in place).
Nothing here looks at anything but the demo's own figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: ``gt`` must be this many points above ``real`` for the calibration to hold.
CALIBRATION_MARGIN = 10.0
#: a synthetic set whose mean local speed is under this fraction of the real clips' is "slow".
SLOW = 0.6
#: ... whose mean root travel is over this multiple of the real clips' "travels too far".
FAR = 2.0


@dataclass(frozen=True)
class Score:
    """One mode's final-epoch top-1: mean and 95% half-width (None for a single seed)."""

    mode: str
    mean: float
    ci95: float | None

    @property
    def low(self) -> float:
        return self.mean - (self.ci95 or 0.0)

    @property
    def high(self) -> float:
        return self.mean + (self.ci95 or 0.0)

    def separates_above(self, other: Score) -> bool:
        """Whether this score's whole interval lies above ``other``'s."""
        return self.low > other.high

    def text(self) -> str:
        return f"{self.mean:.1f}%" + ("" if self.ci95 is None else f" ± {self.ci95:.1f}")


def scores(modes: Sequence[Mapping[str, Any]]) -> dict[str, Score]:
    """:class:`Score` per mode label from the protocol's ``results["modes"]``."""
    out = {}
    for m in modes:
        ci = m["final"].get("ci95")
        out[m["mode"]] = Score(m["mode"], float(m["final"]["mean"]), None if ci is None else ci)
    return out


def _compare(a: Score, b: Score) -> str:
    """'+7.3 points, intervals separate' style comparison of a against b."""
    diff = a.mean - b.mean
    if a.ci95 is None or b.ci95 is None:
        return f"{diff:+.1f} points; one seed, so no interval"
    if a.separates_above(b) or b.separates_above(a):
        sep = "the 95% intervals separate"
    else:
        sep = "the 95% intervals overlap, so the difference is within seed noise"
    return f"{diff:+.1f} points; {sep}"


def motion_reasons(motion: Mapping[str, Any] | None) -> list[str]:
    """What the clips' motion says about each synthetic set, as short phrases (empty when
    nothing stands out)."""
    if not motion:
        return []
    sets = motion["sets"]
    real = sets.get("real (few-shot training)")
    if real is None:
        return []
    reasons = []
    for name, per_class in sets.items():
        if not name.startswith("synthetic"):
            continue
        for cls, r, s in zip(motion["classes"], real, per_class, strict=True):
            speed = s["local_speed"] / r["local_speed"] if r["local_speed"] > 0 else float("nan")
            travel = s["travel"] / r["travel"] if r["travel"] > 0 else float("nan")
            if speed < SLOW:
                reasons.append(
                    f"{name} clips of “{cls}” move at {speed:.0%} of the real clips' local speed"
                )
            if travel > FAR:
                reasons.append(
                    f"{name} clips of “{cls}” travel {travel:.1f}× as far as the real ones"
                )
    return reasons


def verdict(
    modes: Sequence[Mapping[str, Any]],
    *,
    num_classes: int,
    motion: Mapping[str, Any] | None = None,
) -> list[str]:
    """The verdict as sentences (the first is the headline)."""
    s = scores(modes)
    chance = 100.0 / num_classes
    real, gt = s.get("real"), s.get("gt")
    lines: list[str] = []
    if real is None:
        return ["No `real` mode was evaluated, so nothing can be compared with it."]
    if gt is not None and gt.mean < real.mean + CALIBRATION_MARGIN:
        lines.append(
            f"Inconclusive: with every real training clip (`gt`, {gt.text()}) the classifier "
            f"is not clearly better than with ten per class (`real`, {real.text()}), so these "
            "classifiers cannot show whether synthetic clips help (too little training or too "
            f"few seeds; chance is {chance:.1f}%)."
        )
    mixed = [v for k, v in s.items() if k.startswith("mixed")]
    best = max(mixed, key=lambda v: v.mean, default=None)
    if best is not None and best.mean > real.mean:
        helped = [v for v in mixed if v.mean > real.mean]
        parts = [f"`{v.mode}` {v.text()} ({_compare(v, real)})" for v in helped]
        head = (
            "Synthetic data helped"
            if any(v.separates_above(real) for v in helped)
            else "Synthetic data raised the mean, but within seed noise"
        )
        lines.append(
            f"{head}: against `real` ({real.text()}, ten real clips per class) "
            + "; ".join(parts)
            + "."
        )
    elif best is not None:
        reasons = motion_reasons(motion)
        why = (
            " Likely reason: " + "; ".join(reasons[:3]) + "."
            if reasons
            else " The clips' motion figures show no obvious defect; see the per-class table."
        )
        lines.append(
            f"Synthetic data did not help: the best mixed set, `{best.mode}` at {best.text()}, "
            f"is not above `real` ({real.text()}; {_compare(best, real)}).{why}"
        )
    kin, base = s.get("mixed (kinemic)"), s.get("mixed (mdm-ft)")
    if kin is not None and base is not None:
        if kin.mean <= base.mean:
            word = "did not beat the mdm-ft baseline"
        elif kin.separates_above(base):
            word = "beat the mdm-ft baseline"
        else:
            word = "scored above the mdm-ft baseline, within seed noise"
        lines.append(
            f"KineMIC {word}: `mixed (kinemic)` {kin.text()} against "
            f"`mixed (mdm-ft)` {base.text()} ({_compare(kin, base)})."
        )
    if gt is not None and gt.mean >= real.mean + CALIBRATION_MARGIN:
        lines.append(
            f"Calibration: all real training clips (`gt`) reach {gt.text()} against "
            f"{real.text()} for ten per class, so the classifier can tell the classes apart "
            f"and more good data helps (chance is {chance:.1f}%)."
        )
    return lines
