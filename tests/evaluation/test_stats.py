"""Statistics of episode and seed scores against scipy and hand-computed values."""

import itertools
import json
import math
from collections import Counter

import numpy as np
import pytest
from rliable import metrics
from scipy import stats

from echelon.evaluation import Summary, summarize, stats as echelon_stats
from echelon.evaluation.stats import (
    IntervalEstimate,
    PairedComparison,
    ShareOfBound,
    TestResult,
    aggregate_mean,
    aggregate_median,
    interquartile_mean,
    optimality_gap,
    paired_comparison,
    percent_improvement,
    performance_profile,
    probability_of_improvement,
    seeds_and_paths_ci,
    share_of_bound,
    stratified_bootstrap_ci,
    welch_test,
)


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
    assert isinstance(summary, Summary)


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


# --- The paper's protocol -----------------------------------------------------------------------


def _profits(seed, n=100, shift=0.0):
    """Episode profits of two policies on common paths: shared demand noise plus own noise."""
    rng = np.random.default_rng(seed)
    common = rng.normal(350.0, 20.0, size=n)
    return common + shift + rng.normal(0.0, 5.0, size=n), common + rng.normal(0.0, 5.0, size=n)


def _percentiles(replicates, confidence):
    """The percentile interval as stats computes its tails: 100 (1 - c) / 2 is 2.500000000000002
    for c = 0.95, not 2.5, which moves np.percentile's interpolation in the last bits."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    return tuple(np.percentile(replicates, [tail, 100.0 - tail]))


def test_welch_test_matches_scipy():
    a = np.random.default_rng(0).normal(400.78, 14.76, size=100)
    b = np.random.default_rng(1).normal(341.35, 13.27, size=80)
    result = welch_test(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert isinstance(result, TestResult)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.dof == pytest.approx(expected.df, rel=1e-12)
    assert result.statistic > 0 and result.p_value < 1e-50


def test_welch_test_by_hand():
    # a = [1, 2, 3]: mean 2, var 1; b = [4, 6]: mean 5, var 2.
    # se^2 = 1/3 + 2/2 = 4/3; t = -3 / sqrt(4/3); dof = (4/3)^2 / ((1/3)^2/2 + 1^2/1) = 32/19.
    result = welch_test([1.0, 2.0, 3.0], [4.0, 6.0])
    assert result.statistic == pytest.approx(-3.0 / math.sqrt(4.0 / 3.0), rel=1e-12)
    assert result.dof == pytest.approx(32.0 / 19.0, rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.t.sf(3.0 / math.sqrt(4.0 / 3.0), 32 / 19))


def test_welch_test_of_constant_samples_does_not_divide_by_zero():
    assert welch_test([3.0, 3.0], [3.0, 3.0, 3.0]).to_dict() == {
        "statistic": 0.0, "p_value": 1.0, "dof": pytest.approx(math.nan, nan_ok=True)}
    different = welch_test([2.0, 2.0], [3.0, 3.0])
    assert (different.statistic, different.p_value) == (-math.inf, 0.0)


@pytest.mark.parametrize("a, b", [([1.0], [1.0, 2.0]), ([1.0, math.nan], [1.0, 2.0]),
                                  (np.ones((2, 2)), [1.0, 2.0])])
def test_welch_test_rejects_bad_samples(a, b):
    with pytest.raises(ValueError):
        welch_test(a, b)


def test_percent_improvement_reproduces_the_papers_number():
    # Table I: 341.35 -> 400.78 is the paper's "17.41% increase".
    assert percent_improvement([400.78], [341.35]) == pytest.approx(17.41, abs=0.005)
    assert percent_improvement([1.0, 3.0], [-4.0]) == pytest.approx(150.0)  # |mean(b)| = 4
    assert percent_improvement([1.0], [2.0]) == pytest.approx(-50.0)


def test_percent_improvement_over_zero_raises():
    with pytest.raises(ValueError, match="mean of b is 0"):
        percent_improvement([1.0], [-1.0, 1.0])


# --- Paired comparison --------------------------------------------------------------------------


def test_paired_comparison_matches_scipy():
    a, b = _profits(2, shift=3.0)
    result = paired_comparison(a, b, np.random.default_rng(0), n_bootstrap=2000)
    t = stats.ttest_rel(a, b)
    w = stats.wilcoxon(a - b)
    assert isinstance(result, PairedComparison)
    assert result.n == 100
    assert result.mean_difference == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    assert (result.mean_a, result.mean_b) == pytest.approx((a.mean(), b.mean()), rel=1e-15)
    assert result.std_difference == pytest.approx(np.std(a - b, ddof=1), rel=1e-12)
    assert result.t_statistic == pytest.approx(t.statistic, rel=1e-12)
    assert result.t_p_value == pytest.approx(t.pvalue, rel=1e-9)
    assert result.wilcoxon_statistic == pytest.approx(w.statistic, rel=1e-12)
    assert result.wilcoxon_p_value == pytest.approx(w.pvalue, rel=1e-9)
    assert result.win_rate == pytest.approx(np.mean(a > b))
    assert result.tie_rate == 0.0


def test_pairing_detects_what_welch_misses():
    # The shared demand noise (sd 20) swamps a shift of 3 between independent samples, not the
    # per-episode differences (sd about 7).
    a, b = _profits(4, shift=3.0)
    assert welch_test(a, b).p_value > 0.05
    assert paired_comparison(a, b, np.random.default_rng(0), n_bootstrap=500).t_p_value < 1e-3


def test_bootstrap_interval_covers_the_true_shift_and_is_reproducible():
    a, b = _profits(5, n=200, shift=10.0)
    first = paired_comparison(a, b, np.random.default_rng(11))
    again = paired_comparison(a, b, np.random.default_rng(11))
    other = paired_comparison(a, b, np.random.default_rng(12))
    assert first == again
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.ci_low < 10.0 < first.ci_high
    assert first.ci_low < first.mean_difference < first.ci_high
    assert 0.0 < first.ci_low  # a clear improvement
    assert (first.confidence, first.n_bootstrap) == (0.95, 10_000)


def test_bootstrap_interval_is_the_percentile_interval_of_resampled_means():
    a, b = np.array([5.0, 1.0, 4.0, 2.0]), np.array([1.0, 1.0, 1.0, 1.0])
    result = paired_comparison(a, b, np.random.default_rng(3), n_bootstrap=300, confidence=0.8)
    difference = a - b
    means = difference[np.random.default_rng(3).integers(0, 4, size=(300, 4))].mean(axis=1)
    assert (result.ci_low, result.ci_high) == tuple(np.percentile(means, [10.0, 90.0]))


@pytest.mark.parametrize("seed", range(4))
def test_paired_bootstrap_draws_as_scipy_bootstrap(seed):
    # scipy.stats.bootstrap, paired and vectorised, on the same generator draws the same
    # resamples: its bootstrap distribution is ours to the last bit, and so are its percentiles.
    # Its own interval comes from scipy.stats.quantile, equal only to rounding: why
    # paired_comparison keeps np.percentile (the published numbers must not move).
    a, b = _profits(seed, n=37, shift=2.0)
    result = paired_comparison(a, b, np.random.default_rng(seed), n_bootstrap=1500)
    res = stats.bootstrap((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), paired=True,
                          vectorized=True, n_resamples=1500, method="percentile",
                          rng=np.random.default_rng(seed))
    means = (a - b)[np.random.default_rng(seed).integers(0, 37, size=(1500, 37))].mean(axis=1)
    assert np.array_equal(res.bootstrap_distribution, means)
    assert (result.ci_low, result.ci_high) == _percentiles(res.bootstrap_distribution, 0.95)
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(res.confidence_interval),
                                                            rel=1e-12)


def test_paired_comparison_shares_by_hand():
    result = paired_comparison([3.0, 1.0, 2.0, 5.0], [1.0, 1.0, 4.0, 2.0],
                               np.random.default_rng(0), n_bootstrap=10)
    # Differences 2, 0, -2, 3: a wins 2 of 4 episodes and ties 1.
    assert (result.win_rate, result.tie_rate) == (0.5, 0.25)
    assert result.mean_difference == 0.75


def test_identical_policies_do_not_crash():
    a = np.array([300.0, 320.0, 310.0])
    result = paired_comparison(a, a.copy(), np.random.default_rng(0), n_bootstrap=100)
    assert (result.mean_difference, result.t_statistic, result.t_p_value) == (0.0, 0.0, 1.0)
    assert (result.wilcoxon_statistic, result.wilcoxon_p_value) == (0.0, 1.0)
    assert (result.ci_low, result.ci_high, result.win_rate, result.tie_rate) == (
        0.0, 0.0, 0.0, 1.0)


def test_a_constant_difference_is_certain():
    result = paired_comparison([2.0, 5.0, 3.0], [1.0, 4.0, 2.0], np.random.default_rng(0),
                               n_bootstrap=10)
    assert (result.t_statistic, result.t_p_value, result.win_rate) == (math.inf, 0.0, 1.0)


def test_paired_comparison_to_dict_is_json_ready():
    result = paired_comparison([1.0, 2.0, 4.0], [0.0, 2.5, 1.0], np.random.default_rng(0),
                               n_bootstrap=50)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["n"] == 3 and data["mean_difference"] == pytest.approx(3.5 / 3.0)  # 1, -0.5, 3
    assert set(data) >= {"t_p_value", "wilcoxon_p_value", "ci_low", "ci_high", "win_rate"}


@pytest.mark.parametrize("kwargs, message", [
    ({"b": [1.0, 2.0]}, "equal lengths"),
    ({"n_bootstrap": 0}, "n_bootstrap"),
    ({"confidence": 1.0}, "confidence"),
])
def test_paired_comparison_rejects_bad_input(kwargs, message):
    arguments = {"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 2.0], "rng": np.random.default_rng(0)}
    with pytest.raises(ValueError, match=message):
        paired_comparison(**(arguments | kwargs))


# --- Across training seeds: rliable's conventions ------------------------------------------------


def test_interquartile_mean_by_hand():
    # 8 values: cut 2 from each end, mean of 3, 4, 5, 6.
    assert interquartile_mean(np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]])) == 4.5
    # Tasks are pooled: the same values as a (4, 2) matrix, shuffled.
    assert interquartile_mean(np.array([[8.0, 1.0], [3.0, 6.0], [5.0, 2.0], [7.0, 4.0]])) == 4.5
    # An outlier among 4 runs does not move it: cut 1 from each end, mean of 2 and 3.
    assert interquartile_mean(np.array([1.0, 2.0, 3.0, 1000.0])) == 2.5


def test_interval_estimate_unpacks_and_serialises():
    estimate = IntervalEstimate(3.0, (2.0, 4.0))
    point, (low, high) = estimate
    assert (point, low, high) == (3.0, 2.0, 4.0)
    assert estimate.to_dict() == {"point": 3.0, "ci_low": 2.0, "ci_high": 4.0}


def test_probability_of_improvement_by_hand():
    x = np.array([[5.0, 7.0], [6.0, 8.0]])
    assert probability_of_improvement(x, x - 10.0) == 1.0
    assert probability_of_improvement(x - 10.0, x) == 0.0
    assert probability_of_improvement(x, x) == 0.5
    assert probability_of_improvement(np.full((3, 1), 2.0), np.full((2, 1), 2.0)) == 0.5
    # One task, x = [1, 3, 5], y = [2, 3]: x wins (3,2), (5,2), (5,3) and ties (3,3): 3.5 of 6.
    assert probability_of_improvement([1.0, 3.0, 5.0], [2.0, 3.0]) == pytest.approx(3.5 / 6.0)
    # Two tasks averaged: 1 on the first, 3.5/6 on the second.
    x2 = np.array([[10.0, 1.0], [11.0, 3.0], [12.0, 5.0]])
    y2 = np.array([[0.0, 2.0], [0.0, 3.0]])
    assert probability_of_improvement(x2, y2) == pytest.approx((1.0 + 3.5 / 6.0) / 2.0)


def test_probability_of_improvement_is_mann_whitney_u():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 5, size=(9, 4)).astype(float), rng.integers(0, 5, size=(6, 4)) + 0.5
    y[:2] = x[:2]  # some ties
    expected = np.mean([stats.mannwhitneyu(x[:, t], y[:, t]).statistic / 54 for t in range(4)])
    assert probability_of_improvement(x, y) == pytest.approx(expected, rel=1e-12)
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == pytest.approx(1)


def test_probability_of_improvement_needs_the_same_tasks():
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement(np.zeros((3, 2)), np.zeros((3, 1)))


@pytest.mark.parametrize("scores", [np.array([]), np.zeros((2, 2, 2)), np.array([1.0, math.inf])])
def test_aggregates_reject_bad_scores(scores):
    with pytest.raises(ValueError):
        interquartile_mean(scores)


# --- The two-level bootstrap over seeds and paths -----------------------------------------------


def _replicate_loop(values, rng, n_bootstrap):
    """seeds_and_paths_ci's replicates as first written: one Python iteration per replicate."""
    runs, paths = values.shape
    replicates = np.empty(n_bootstrap)
    for i in range(n_bootstrap):
        seeds = rng.integers(0, runs, size=runs)
        columns = rng.integers(0, paths, size=paths)
        replicates[i] = values[seeds][:, columns].mean()
    return replicates


@pytest.mark.parametrize("shape, chunk_values", [
    ((1, 30), 1 << 22), ((2, 30), 1 << 22), ((3, 7), 1 << 22), ((5, 1), 1 << 22), ((1, 1), 1 << 22),
    ((4, 257), 1 << 22), ((3, 40), 500),  # the last one in chunks of 4 replicates
])
def test_seeds_and_paths_ci_draws_as_the_replicate_loop(shape, chunk_values, monkeypatch):
    # The vectorised draws consume the generator exactly as the loop did and every replicate
    # mean is equal to the last bit, so the report's intervals did not move.
    monkeypatch.setattr(echelon_stats, "_BOOTSTRAP_CHUNK_VALUES", chunk_values)
    values = np.random.default_rng(sum(shape)).normal(300.0, 40.0, size=shape).round(2)
    ours, theirs = np.random.default_rng(1), np.random.default_rng(1)
    estimate = seeds_and_paths_ci(values, ours, n_bootstrap=301, confidence=0.9)
    replicates = _replicate_loop(values, theirs, 301)
    assert estimate.interval == _percentiles(replicates, 0.9)
    assert estimate.point == values.mean()
    assert ours.bit_generator.state == theirs.bit_generator.state


def test_one_seed_is_the_path_bootstrap():
    # With one seed, rng.integers(0, 1) returns 0 without drawing: the generator feeds only the
    # path draws, rng.integers(0, P, size=P) per replicate, which is rng.integers(0, P,
    # size=(B, P)) row by row. So the two-level interval of the paired differences is
    # paired_comparison's interval of the same differences, on the same draws.
    a, b = _profits(8, n=30, shift=4.0)
    two_level = seeds_and_paths_ci((a - b)[None, :], np.random.default_rng(5), n_bootstrap=999)
    paired = paired_comparison(a, b, np.random.default_rng(5), n_bootstrap=999)
    means = (a - b)[np.random.default_rng(5).integers(0, 30, size=(999, 30))].mean(axis=1)
    assert two_level.interval == (paired.ci_low, paired.ci_high)
    assert two_level.interval == _percentiles(means, 0.95)
    assert two_level.point == pytest.approx(paired.mean_difference, rel=1e-15)


def test_seeds_that_disagree_widen_the_interval():
    paths = np.random.default_rng(2).normal(300.0, 10.0, size=30)
    agree = np.stack([paths, paths])
    disagree = np.stack([paths - 40.0, paths + 40.0])  # same mean, seeds 80 apart
    narrow = seeds_and_paths_ci(agree, np.random.default_rng(0))
    wide = seeds_and_paths_ci(disagree, np.random.default_rng(0))
    assert narrow.point == pytest.approx(wide.point, rel=1e-15)
    # Same shape, same generator: the same draws. A replicate of `disagree` is that of `agree`
    # plus 40 * (mean of the drawn seeds' signs): -40 or +40 with probability 1/4 each, so both
    # tails of its interval lie about 40 from the mean, while `agree` only sees the paths.
    assert narrow.interval[1] - narrow.interval[0] < 10.0
    assert wide.interval[0] < wide.point - 35.0 and wide.interval[1] > wide.point + 35.0


def _exact_two_level_distribution(values):
    """{replicate mean: probability} over every (seed draw, path draw) of a (seeds, paths) array."""
    runs, paths = values.shape
    outcomes = Counter(
        float(values[list(seeds)][:, list(columns)].mean())
        for seeds in itertools.product(range(runs), repeat=runs)
        for columns in itertools.product(range(paths), repeat=paths)
    )
    total = runs**runs * paths**paths
    return {mean: count / total for mean, count in sorted(outcomes.items())}


def test_two_seeds_two_paths_by_enumeration():
    values = np.array([[0.0, 1.0], [2.0, 4.0]])
    exact = _exact_two_level_distribution(values)
    # By hand: path draws (0, 0), mixed, (1, 1) give the seeds' row means (0, 2), (0.5, 3),
    # (1, 4); seed draws (0, 0), mixed, (1, 1) take the first, their average, the second. With
    # probabilities 1/4, 1/2, 1/4 at each level, in sixteenths:
    assert exact == {0.0: 1 / 16, 0.5: 2 / 16, 1.0: 3 / 16, 1.75: 4 / 16, 2.0: 1 / 16,
                     2.5: 2 / 16, 3.0: 2 / 16, 4.0: 1 / 16}
    # The replicates (drawn as seeds_and_paths_ci draws them, checked above) take only these
    # values, at these frequencies (chi-square goodness of fit).
    counts = Counter(_replicate_loop(values, np.random.default_rng(4), 16_000).tolist())
    assert set(counts) == set(exact)
    assert stats.chisquare([counts[m] for m in exact], [16_000 * p for p in exact.values()]
                           ).pvalue > 1e-3
    # Each tail below lies well inside one step of the exact CDF (0.05 against 1/16, 0.125
    # against 3/16, ...), so with 20000 replicates the interval's ends are the exact quantiles.
    atoms, cumulative = list(exact), np.cumsum(list(exact.values()))
    for confidence in (0.2, 0.5, 0.75, 0.9, 0.99):
        tail = (1.0 - confidence) / 2.0  # the q-quantile is the first atom with CDF >= q
        ends = tuple(atoms[int(np.searchsorted(cumulative, q))] for q in (tail, 1.0 - tail))
        point, interval = seeds_and_paths_ci(values, np.random.default_rng(3), n_bootstrap=20_000,
                                             confidence=confidence)
        assert interval == ends, confidence
        assert point == sum(m * p for m, p in exact.items()) == 1.75  # the bootstrap's mean


@pytest.mark.parametrize("kwargs, message", [
    ({"scores": np.ones(3)}, "seeds, paths"),
    ({"scores": np.ones((2, 0))}, "seeds, paths"),
    ({"scores": np.array([[1.0, math.nan]])}, "seeds, paths"),
    ({"n_bootstrap": 0}, "n_bootstrap"),
    ({"confidence": 0.0}, "confidence"),
])
def test_seeds_and_paths_ci_rejects_bad_input(kwargs, message):
    arguments = {"scores": np.ones((2, 3)), "rng": np.random.default_rng(0)}
    with pytest.raises(ValueError, match=message):
        seeds_and_paths_ci(**(arguments | kwargs))


# --- Cross-checks against rliable -----------------------------------------------------------------


def _score_matrices():
    rng = np.random.default_rng(9)
    yield rng.normal(300.0, 40.0, size=(5, 30)), rng.normal(310.0, 40.0, size=(1, 30))
    yield rng.normal(size=(10, 3)), rng.normal(0.5, 1.0, size=(8, 3))
    yield rng.integers(0, 4, size=(7, 5)).astype(float), rng.integers(0, 4, size=(3, 5)) * 1.0
    yield np.full((3, 2), 2.0), np.full((4, 2), 2.0)  # every pair tied


@pytest.mark.parametrize("x, y", list(_score_matrices()))
def test_aggregates_match_rliable(x, y):
    assert interquartile_mean(x) == metrics.aggregate_iqm(x)
    assert interquartile_mean(y) == metrics.aggregate_iqm(y)
    assert probability_of_improvement(x, y) == pytest.approx(
        metrics.probability_of_improvement(x, y), rel=1e-12, abs=1e-15)
    assert probability_of_improvement(y, x) == pytest.approx(
        metrics.probability_of_improvement(y, x), rel=1e-12, abs=1e-15)


def test_seed_bootstrap_agrees_with_rliables_stratified_bootstrap():
    # With one column, seeds_and_paths_ci resamples only the seeds (a bound of 1 draws
    # nothing): rliable's stratified bootstrap of the mean over one task. rliable draws its
    # indices from NumPy's global state (np.random.choice), not from a Generator, so the two
    # cannot share draws; they must agree statistically: with 20000 replicates each, the
    # percentile ends differ by Monte Carlo error alone, about 1% of the interval's width.
    from rliable import library  # needs pandas < 3 (the test extra pins it): arch 7 breaks on 3
    scores = np.random.default_rng(6).normal(380.0, 15.0, size=(12, 1))
    ours = seeds_and_paths_ci(scores, np.random.default_rng(0), n_bootstrap=20_000)
    state = np.random.get_state()
    np.random.seed(0)  # rliable's only source of randomness; restored below
    try:
        points, intervals = library.get_interval_estimates(
            {"x": scores}, lambda s: np.array([metrics.aggregate_mean(s)]), reps=20_000)
    finally:
        np.random.set_state(state)
    width = ours.interval[1] - ours.interval[0]
    assert points["x"][0] == pytest.approx(ours.point, rel=1e-12)
    assert intervals["x"][:, 0] == pytest.approx(ours.interval, abs=0.05 * width)


# --- Across the datasets of a benchmark -------------------------------------------------------


def test_benchmark_aggregates_by_hand():
    # Two seeds (rows) on three datasets (columns); task means 15, 50, 130.
    scores = np.array([[10.0, 40.0, 120.0], [20.0, 60.0, 140.0]])
    assert aggregate_mean(scores) == pytest.approx(65.0, rel=1e-15)
    assert aggregate_median(scores) == 50.0
    # Clipped at 100: 10, 40, 100, 20, 60, 100, mean 55; the gap is 45.
    assert optimality_gap(scores, 100.0) == pytest.approx(45.0, rel=1e-15)
    assert optimality_gap(np.full((2, 2), 150.0), 100.0) == 0.0
    # Strictly above each threshold: 6 of 6 above 0, 4 above 20 (40, 60, 120, 140), 2 above 100.
    profile = performance_profile(scores, [0.0, 20.0, 100.0, 140.0])
    assert profile.tolist() == [1.0, 4 / 6, 2 / 6, 0.0]


@pytest.mark.parametrize("x, y", list(_score_matrices()))
def test_benchmark_aggregates_match_rliable(x, y):
    from rliable import library

    for scores in (x, y):
        assert aggregate_mean(scores) == pytest.approx(metrics.aggregate_mean(scores), rel=1e-12)
        assert aggregate_median(scores) == pytest.approx(metrics.aggregate_median(scores),
                                                         rel=1e-12)
        for gamma in (1.0, 300.0):
            assert optimality_gap(scores, gamma) == pytest.approx(
                metrics.aggregate_optimality_gap(scores, gamma), rel=1e-12, abs=1e-12)
        taus = np.linspace(scores.min() - 1.0, scores.max() + 1.0, 11)
        np.testing.assert_array_equal(performance_profile(scores, taus),
                                      library.score_distributions(scores, taus))


class _GlobalDraws:
    """Draws as rliable's bootstrap does, from NumPy's global state: ``np.random.choice(n,
    shape)`` with replacement is ``np.random.randint(0, n, shape)``."""

    def integers(self, low, high, size):
        return np.random.randint(low, high, size=size)


@pytest.mark.parametrize("x, y", list(_score_matrices())[:3])
def test_stratified_bootstrap_is_rliables_draw_for_draw(x, y):
    # Given rliable's draws, the stratified bootstrap's intervals are rliable's to the last bit:
    # one score array (get_interval_estimates' StratifiedBootstrap) and two resampled
    # independently (its StratifiedIndependentBootstrap, for the probability of improvement).
    from rliable import library  # needs pandas < 3 (the test extra pins it): arch 7 breaks on 3

    cases = [({"x": x}, interquartile_mean, metrics.aggregate_iqm, (x,)),
             ({"x": x}, aggregate_median, metrics.aggregate_median, (x,)),
             ({"xy": [x, y]}, probability_of_improvement, metrics.probability_of_improvement,
              (x, y))]
    state = np.random.get_state()
    try:
        for data, ours, theirs, arrays in cases:
            np.random.seed(11)  # rliable's only source of randomness; restored below
            points, intervals = library.get_interval_estimates(
                data, lambda *s, f=theirs: np.array([f(*s)]), reps=300)
            np.random.seed(11)
            estimate = stratified_bootstrap_ci(ours, *arrays, rng=_GlobalDraws(), n_bootstrap=300)
            (key,) = data
            assert estimate.point == pytest.approx(points[key][0], rel=1e-12, abs=1e-15)
            assert estimate.interval == pytest.approx(tuple(intervals[key][:, 0]), rel=1e-12,
                                                      abs=1e-15)
    finally:
        np.random.set_state(state)


def test_stratified_bootstrap_keeps_every_dataset():
    # Seeds are resampled within each dataset, never across: a dataset whose seeds agree adds
    # no width, and with every dataset's seeds equal the interval is a point.
    flat = np.array([[10.0, 50.0], [10.0, 50.0], [10.0, 50.0]])
    point, interval = stratified_bootstrap_ci(aggregate_mean, flat, rng=np.random.default_rng(0))
    assert point == 30.0 and interval == (30.0, 30.0)
    spread = np.array([[0.0, 50.0], [20.0, 50.0]])  # task means 10 +- 10 and 50
    point, (low, high) = stratified_bootstrap_ci(aggregate_mean, spread,
                                                 rng=np.random.default_rng(0), n_bootstrap=4000)
    # A replicate's first-task mean is 0, 10 or 20 (probabilities 1/4, 1/2, 1/4): overall 25,
    # 30 or 35, so the 95% interval's ends are 25 and 35.
    assert point == 30.0 and (low, high) == (25.0, 35.0)


def test_stratified_bootstrap_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least one"):
        stratified_bootstrap_ci(aggregate_mean, rng=rng)
    with pytest.raises(ValueError, match="same tasks"):
        stratified_bootstrap_ci(probability_of_improvement, np.zeros((2, 3)), np.zeros((2, 2)),
                                rng=rng)
    with pytest.raises(ValueError, match="finite"):
        stratified_bootstrap_ci(aggregate_mean, np.array([[1.0, math.nan]]), rng=rng)
    with pytest.raises(ValueError, match="n_bootstrap"):
        stratified_bootstrap_ci(aggregate_mean, np.ones((2, 2)), rng=rng, n_bootstrap=0)


# --- Share of the bound -------------------------------------------------------------------------


def test_share_of_bound_by_hand():
    share = share_of_bound([90.0, 10.0], [100.0, 100.0 / 3.0])
    assert isinstance(share, ShareOfBound)
    # Ratio of means: 50 / (200/3) = 0.75; mean of ratios: (0.9 + 0.3) / 2 = 0.6.
    assert share.ratio_of_means == pytest.approx(0.75, rel=1e-15)
    assert share.mean_of_ratios == pytest.approx(0.6, rel=1e-15)
    assert share.to_dict() == {"ratio_of_means": share.ratio_of_means,
                               "mean_of_ratios": share.mean_of_ratios, "n": 2}


def test_share_of_bound_rejects_bad_bounds():
    with pytest.raises(ValueError, match="the bound's mean must be positive"):
        share_of_bound([1.0, 2.0], [1.0, -1.0])
    # A path whose bound loses money (little demand, costly starting stock) leaves the headline
    # share defined and the per-path one not.
    share = share_of_bound([30.0, -20.0], [60.0, -10.0])
    assert share.ratio_of_means == pytest.approx(0.2) and math.isnan(share.mean_of_ratios)
    with pytest.raises(ValueError, match="equal lengths"):
        share_of_bound([1.0, 2.0], [1.0])
