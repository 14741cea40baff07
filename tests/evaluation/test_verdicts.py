"""The verdict rules on hand-made intervals: every branch of every claim."""

import math

import pytest

from echelon.evaluation.verdicts import (
    Outcome,
    Ruling,
    beats_expert,
    improvement_reproduced,
    interval_side,
    more_than_imitation,
    value_filter,
)


@pytest.mark.parametrize("interval, side", [
    ((0.5, 3.0), 1), ((-3.0, -0.5), -1), ((-1.0, 2.0), 0),
    ((0.0, 2.0), 0), ((-2.0, 0.0), 0), ((0.0, 0.0), 0),  # touching 0 is not excluding it
    ((math.nan, math.nan), 0),  # no interval, no evidence
])
def test_interval_side(interval, side):
    assert interval_side(interval) == side


def test_a_ruling_prints_as_its_text():
    ruling = Ruling(Outcome.REFUTED, "refuted: behaviour cloning does better")
    assert str(ruling) == f"{ruling}" == "refuted: behaviour cloning does better"


# --- Claim 1: IQL beats the best expert ---------------------------------------------------------


@pytest.mark.parametrize("intervals, outcome, text", [
    ([(1.0, 5.0), (0.1, 2.0)], Outcome.SUPPORTED, "supported"),
    ([(2.0, 3.0)], Outcome.SUPPORTED, "supported"),
    ([(-217.98, -188.74), (-166.67, -139.22)], Outcome.REFUTED, "refuted"),  # the quick run's
    ([(1.0, 5.0), (-5.0, -1.0)], Outcome.INCONCLUSIVE, "inconclusive: the seeds disagree"),
    ([(1.0, 5.0), (-1.0, 5.0)], Outcome.INCONCLUSIVE, "inconclusive: the seeds disagree"),
    ([(-1.0, 1.0)], Outcome.INCONCLUSIVE, "inconclusive: the seeds disagree"),
])
def test_beats_expert(intervals, outcome, text):
    assert beats_expert(intervals) == Ruling(outcome, text)


def test_beats_expert_needs_a_seed():
    with pytest.raises(ValueError, match="at least one seed"):
        beats_expert([])


# --- Claim 2: by 17.41% -------------------------------------------------------------------------


@pytest.mark.parametrize("interval, outcome", [
    ((10.0, 20.0), Outcome.REPRODUCED),
    ((17.41, 25.0), Outcome.REPRODUCED),  # the ends count
    ((5.0, 17.41), Outcome.REPRODUCED),
    ((-63.43, -42.62), Outcome.NOT_REPRODUCED),  # the quick run's
    ((17.42, 30.0), Outcome.NOT_REPRODUCED),  # significantly better than claimed is not it either
    ((0.0, 17.4), Outcome.NOT_REPRODUCED),
])
def test_improvement_reproduced(interval, outcome):
    ruling = improvement_reproduced(interval, claimed=17.41)
    assert ruling.outcome is outcome and str(ruling) == outcome.value


# --- Claim 3: tau = 0.7 as a value-maximising filter --------------------------------------------


@pytest.mark.parametrize("difference, other_expectiles, outcome, text", [
    ((0.2, 3.0), True, Outcome.SUPPORTED, "supported"),
    ((-3.0, -0.2), True, Outcome.REFUTED, "refuted: the lower expectile does better"),
    ((-0.39, 0.12), True, Outcome.NOT_SUPPORTED, "not supported: no significant difference"),
    (None, True, Outcome.NOT_TESTED, "not tested against a lower expectile"),
    (None, False, Outcome.NOT_TESTED, "not tested"),
])
def test_value_filter(difference, other_expectiles, outcome, text):
    assert value_filter(difference, other_expectiles=other_expectiles) == Ruling(outcome, text)


# --- Claim 4: IQL is more than imitation --------------------------------------------------------


@pytest.mark.parametrize("difference, outcome, text", [
    ((5.0, 40.0), Outcome.SUPPORTED, "supported"),
    ((-200.68, -83.24), Outcome.REFUTED, "refuted: behaviour cloning does better"),
    ((-10.0, 10.0), Outcome.NOT_SUPPORTED,
     "not supported: IQL and behaviour cloning do not differ significantly"),
])
def test_more_than_imitation(difference, outcome, text):
    assert more_than_imitation(difference) == Ruling(outcome, text)
