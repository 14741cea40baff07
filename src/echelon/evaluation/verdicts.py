"""The rules that turn the report's intervals into a verdict on each of the paper's claims.

Each claim has one pure rule: intervals and numbers in, a :class:`Ruling` out; ``report.py``
computes the intervals and writes the evidence around the ruling. A difference is significant
when its 95% interval excludes 0 (:func:`interval_side`); an interval that straddles 0 is no
evidence either way, which a rule reports as "not supported" or "inconclusive", never as
"refuted".

The claims (Section V of the paper):

1. IQL beats the best expert of its dataset (:func:`beats_expert`).
2. It does so by 17.41% in mean profit (:func:`improvement_reproduced`).
3. The expectile tau = 0.7 acts as a value-maximising filter: it beats a lower expectile
   (:func:`value_filter`).
4. IQL is more than imitation: it beats behaviour cloning of the same data
   (:func:`more_than_imitation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

Interval = tuple[float, float]
"""A confidence interval ``(low, high)`` with ``low <= high``."""


class Outcome(Enum):
    """What the evidence says about a claim."""

    SUPPORTED = "supported"
    REFUTED = "refuted"
    NOT_SUPPORTED = "not supported"
    INCONCLUSIVE = "inconclusive"
    REPRODUCED = "reproduced"
    NOT_REPRODUCED = "not reproduced"
    NOT_TESTED = "not tested"


@dataclass(frozen=True)
class Ruling:
    """A verdict on one claim: its outcome and the words the report prints for it."""

    outcome: Outcome
    text: str
    """The verdict as printed, e.g. ``"refuted: behaviour cloning does better"``."""

    def __str__(self) -> str:
        return self.text


def interval_side(interval: Interval) -> int:
    """Which side of 0 an interval lies on: 1 above (low > 0), -1 below (high < 0), 0 across."""
    low, high = interval
    return 1 if low > 0 else -1 if high < 0 else 0


def beats_expert(seed_intervals: Sequence[Interval]) -> Ruling:
    """Claim 1: IQL beats the best expert, judged seed by seed.

    Args:
        seed_intervals: Per training seed, the interval of IQL's paired mean difference to the
            best expert (IQL minus expert) on the same paths.

    Returns:
        Supported if every seed is significantly above the expert, refuted if every seed is
        significantly below, inconclusive otherwise.

    Raises:
        ValueError: If there is no seed.
    """
    if not seed_intervals:
        raise ValueError("claim 1 needs the interval of at least one seed")
    sides = [interval_side(interval) for interval in seed_intervals]
    if all(side == 1 for side in sides):
        return Ruling(Outcome.SUPPORTED, "supported")
    if all(side == -1 for side in sides):
        return Ruling(Outcome.REFUTED, "refuted")
    return Ruling(Outcome.INCONCLUSIVE, "inconclusive: the seeds disagree")


def improvement_reproduced(percent_interval: Interval, claimed: float) -> Ruling:
    """Claim 2: the paper's percent improvement lies inside our interval of it.

    Args:
        percent_interval: Interval of IQL's improvement over the best expert, in percent of the
            expert's mean (over seeds and paths).
        claimed: The paper's improvement, in percent (17.41).

    Returns:
        Reproduced if ``low <= claimed <= high`` (ends included), not reproduced otherwise.
    """
    low, high = percent_interval
    if low <= claimed <= high:
        return Ruling(Outcome.REPRODUCED, "reproduced")
    return Ruling(Outcome.NOT_REPRODUCED, "not reproduced")


def value_filter(difference: Interval | None, *, other_expectiles: bool) -> Ruling:
    """Claim 3: tau = 0.7 does better than a lower expectile.

    Args:
        difference: Interval of tau 0.7's mean profit minus that of the highest expectile below
            0.7 (same seeds, same paths); None if no expectile below 0.7 was trained.
        other_expectiles: Whether any expectile besides 0.7 was trained.

    Returns:
        Not tested without another expectile or without a lower one; else supported if the
        difference is significantly above 0, refuted if below, not supported otherwise.
    """
    if not other_expectiles:
        return Ruling(Outcome.NOT_TESTED, "not tested")
    if difference is None:
        return Ruling(Outcome.NOT_TESTED, "not tested against a lower expectile")
    return _difference_ruling(difference, refuted="the lower expectile does better",
                              not_supported="no significant difference")


def more_than_imitation(difference: Interval) -> Ruling:
    """Claim 4: IQL does better than behaviour cloning of the same data.

    Args:
        difference: Interval of IQL's mean profit minus behaviour cloning's (same seeds, same
            paths).

    Returns:
        Supported if the difference is significantly above 0, refuted if below, not supported
        otherwise.
    """
    return _difference_ruling(
        difference, refuted="behaviour cloning does better",
        not_supported="IQL and behaviour cloning do not differ significantly")


def _difference_ruling(difference: Interval, *, refuted: str, not_supported: str) -> Ruling:
    """Supported above 0, refuted (with the reason ``refuted``) below 0, not supported across."""
    side = interval_side(difference)
    if side == 1:
        return Ruling(Outcome.SUPPORTED, "supported")
    if side == -1:
        return Ruling(Outcome.REFUTED, f"refuted: {refuted}")
    return Ruling(Outcome.NOT_SUPPORTED, f"not supported: {not_supported}")
