"""Profile-likelihood intervals (the engines' fits share them), on known profiles."""

import math

import pytest

from echelon.models.engine_fit import profile_interval

Z95 = 1.959964  # sqrt of chi2_1's 95% quantile


@pytest.mark.parametrize("step", [None, 0.1, 5.0], ids=["bounds", "short-step", "long-step"])
def test_a_quadratic_profile_gives_the_wald_interval(step):
    # log-likelihood -(v - 1)^2 / (2 * 0.5^2): the interval is 1 +- 1.96 * 0.5 however found
    calls = []

    def profile(value):
        calls.append(value)
        return -((value - 1.0) ** 2) / (2 * 0.25)

    low, high = profile_interval(profile, 1.0, 0.0, (-10.0, 10.0), step=step)
    assert (low, high) == pytest.approx((1.0 - Z95 * 0.5, 1.0 + Z95 * 0.5), abs=1e-6)
    assert len(calls) <= 20  # the signed root deviance is linear here: few evaluations


def test_an_end_past_the_bound_is_the_bound_and_the_level_is_honoured():
    def profile(value):
        return -(value - 1.0) ** 2 / 2.0

    assert profile_interval(profile, 1.0, 0.0, (0.5, 10.0)) == pytest.approx((0.5, 1.0 + Z95))
    high = profile_interval(profile, 1.0, 0.0, (0.0, 10.0), level=0.5, step=1.0)[1]
    assert high == pytest.approx(1.0 + 0.674490, abs=1e-6)  # the 75% normal quantile


def test_an_asymmetric_profile():
    # A Poisson rate's log-likelihood after 10 events: 10 log(r) - r, maximal at r = 10.
    def profile(rate):
        return 10 * math.log(rate) - rate

    best = profile(10.0)
    low, high = profile_interval(profile, 10.0, best, (1e-6, 100.0), step=6.0)
    for end in (low, high):
        assert 2 * (best - profile(end)) == pytest.approx(Z95 ** 2, abs=1e-5)
    assert 10.0 - low < high - 10.0
