"""Summary statistics against scipy and hand-computed values."""

import math

import numpy as np
import pytest
from scipy import stats

from echelon.evaluation import Summary, summarize


def test_summary_by_hand():
    summary = summarize(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    # Mean 3; squared deviations 4+1+0+1+4 = 10, over n-1 = 4: variance 2.5; se sqrt(2.5/5).
    # t_{0.975, 4} = 2.7764451051977987.
    half = 2.7764451051977987 * math.sqrt(0.5)
    assert summary.mean == 3.0
    assert summary.std == pytest.approx(math.sqrt(2.5), rel=1e-15)
    assert summary.se == pytest.approx(math.sqrt(0.5), rel=1e-15)
    assert summary.ci_low == pytest.approx(3.0 - half, rel=1e-12)
    assert summary.ci_high == pytest.approx(3.0 + half, rel=1e-12)
    assert (summary.n, summary.confidence) == (5, 0.95)


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.99])
def test_summary_matches_scipy(confidence):
    scores = np.random.default_rng(3).normal(250.0, 40.0, size=37)
    summary = summarize(scores, confidence)
    low, high = stats.t.interval(confidence, df=36, loc=scores.mean(),
                                 scale=np.std(scores, ddof=1) / math.sqrt(37))
    assert summary.mean == pytest.approx(scores.mean(), rel=1e-15)
    assert summary.std == pytest.approx(np.std(scores, ddof=1), rel=1e-15)
    assert summary.se == pytest.approx(stats.sem(scores), rel=1e-12)
    assert summary.ci_low == pytest.approx(low, rel=1e-12)
    assert summary.ci_high == pytest.approx(high, rel=1e-12)
    assert summary.n == 37 and summary.confidence == confidence


def test_wider_confidence_gives_a_wider_interval():
    scores = np.arange(10.0)
    narrow, wide = summarize(scores, 0.8), summarize(scores, 0.99)
    assert wide.ci_low < narrow.ci_low < narrow.mean < narrow.ci_high < wide.ci_high


def test_constant_scores_have_a_zero_width_interval():
    summary = summarize([7.0, 7.0, 7.0])
    assert (summary.mean, summary.std, summary.ci_low, summary.ci_high) == (7.0, 0.0, 7.0, 7.0)


def test_one_score_has_a_mean_but_no_interval():
    summary = summarize([42.5])
    assert (summary.mean, summary.n, summary.confidence) == (42.5, 1, 0.95)
    assert all(math.isnan(v) for v in (summary.std, summary.se, summary.ci_low, summary.ci_high))


def test_scores_of_any_shape_are_flattened():
    assert summarize(np.array([[1.0, 2.0], [3.0, 4.0]])) == summarize([1.0, 2.0, 3.0, 4.0])


def test_to_dict():
    data = summarize([1.0, 3.0]).to_dict()
    assert list(data) == ["mean", "std", "se", "ci_low", "ci_high", "n", "confidence"]
    assert data["mean"] == 2.0 and data["n"] == 2


def test_no_scores_raise():
    with pytest.raises(ValueError, match="at least one value"):
        summarize(np.array([]))


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, math.nan])
def test_bad_confidence_raises(confidence):
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        summarize([1.0, 2.0, 3.0], confidence)
