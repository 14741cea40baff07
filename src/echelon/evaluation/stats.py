"""Statistics of per-episode scores: the paper's test, the paired test, and rliable's aggregates.

Three protocols, from the weakest to the strongest claim:

* **The paper's protocol** (Section V): two independent samples of episode profits, compared by
  Welch's t-test (:func:`welch_test`) and a percent improvement of the means
  (:func:`percent_improvement`). It ignores that our policies run on the *same* test paths.
* **Paired on common paths** (:func:`paired_comparison`): every policy is evaluated on the same
  held-out demand paths, so episode ``i`` of ``a`` and of ``b`` share their demand. The
  per-episode differences remove the demand's variance from the comparison: a paired t-test,
  a Wilcoxon signed-rank test, a bootstrap interval of the mean difference and the share of
  episodes where ``a`` beats ``b``.
* **Across training seeds** (rliable's conventions, Agarwal et al., "Deep Reinforcement Learning
  at the Edge of the Statistical Precipice", NeurIPS 2021): the scores of a method are an array
  shaped (runs, tasks), an aggregate maps that array to a number (:func:`interquartile_mean`,
  :func:`probability_of_improvement`), and an interval estimate takes an explicit
  ``numpy.random.Generator`` and returns a point and an interval (:class:`IntervalEstimate`).
  Here a *run* is one training seed and a *task* one common test path, so scores are shaped
  (seeds, paths). Their interval is :func:`seeds_and_paths_ci`, a two-level bootstrap that
  resamples seeds and, for all seeds alike, paths: rliable's stratified bootstrap would instead
  resample seeds within each path independently, which treats the paths as fixed and breaks
  the seed's identity across them.
* **Across the datasets of a benchmark** (rliable's own protocol): a *task* is a dataset, each
  run's score already a mean over test paths. Aggregates of (seeds, datasets) scores: the IQM,
  :func:`aggregate_mean`, :func:`aggregate_median`, :func:`optimality_gap`, the score
  distribution (:func:`performance_profile`), each with :func:`stratified_bootstrap_ci`, which
  resamples seeds within each dataset (the datasets are the strata).

A 1-D array of run scores is read as (runs, 1). Every random draw comes from the ``rng``
argument; nothing touches global random state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats

# Bootstrap replicates are drawn in chunks of about this many resampled values, so memory stays
# bounded (about 32 MiB of float64) however many episodes or replicates there are.
_BOOTSTRAP_CHUNK_VALUES = 1 << 22


@dataclass(frozen=True)
class Summary:
    """Mean, spread and a t-based confidence interval of the mean of n scores (NaN if n = 1)."""

    mean: float
    std: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    confidence: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(scores: np.ndarray, confidence: float = 0.95) -> Summary:
    """Summarises scores with the sample std (ddof=1) and a Student-t interval of the mean.

    Args:
        scores: (n,) per-episode scores, n >= 1.
        confidence: Coverage of the interval, in (0, 1).

    Raises:
        ValueError: If there are no scores or ``confidence`` is out of range.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("scores must hold at least one value")
    _check_confidence(confidence)
    n = values.size
    mean = float(values.mean())
    if n == 1:  # no spread can be estimated from one score
        return Summary(mean, math.nan, math.nan, math.nan, math.nan, 1, confidence)
    std = float(values.std(ddof=1))
    se = std / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * se
    return Summary(mean, std, float(se), mean - half, mean + half, n, confidence)


# --- The paper's protocol: independent samples --------------------------------------------------


@dataclass(frozen=True)
class TestResult:
    """A two-sided test statistic, its p-value and degrees of freedom."""

    __test__ = False  # not a pytest test class, despite its name

    statistic: float
    p_value: float
    dof: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def welch_test(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Welch's two-sided t-test of equal means, as the paper compares its two policies.

    Treats ``a`` and ``b`` as independent samples with unequal variances
    (``scipy.stats.ttest_ind(a, b, equal_var=False)``); the statistic is positive when
    ``mean(a) > mean(b)``.

    Args:
        a: (n_a,) scores, n_a >= 2.
        b: (n_b,) scores, n_b >= 2.

    Returns:
        The t statistic, its p-value and the Welch-Satterthwaite degrees of freedom. If both
        samples are constant the statistic is 0 (p = 1) for equal means and +-inf (p = 0)
        otherwise, with NaN degrees of freedom.

    Raises:
        ValueError: If a sample has fewer than two scores or a non-finite one.
    """
    x, y = _sample(a, "a", minimum=2), _sample(b, "b", minimum=2)
    if np.ptp(x) == 0.0 and np.ptp(y) == 0.0:  # zero standard error: scipy would divide by 0
        return _degenerate_t(float(x[0] - y[0]), math.nan)
    result = stats.ttest_ind(x, y, equal_var=False)
    return TestResult(float(result.statistic), float(result.pvalue), float(result.df))


def percent_improvement(a: np.ndarray, b: np.ndarray) -> float:
    """Improvement of the mean of ``a`` over the mean of ``b``, in percent of ``|mean(b)|``.

    ``100 * (mean(a) - mean(b)) / |mean(b)|``: the paper's 17.41% is
    ``percent_improvement(iql, base_stock)`` with means 400.78 and 341.35.

    Args:
        a: (n_a,) scores.
        b: (n_b,) scores with a non-zero mean.

    Raises:
        ValueError: If a sample is empty or non-finite, or ``mean(b)`` is 0.
    """
    mean_a, mean_b = float(_sample(a, "a").mean()), float(_sample(b, "b").mean())
    if mean_b == 0.0:
        raise ValueError("the mean of b is 0: a percent improvement over it is undefined")
    return 100.0 * (mean_a - mean_b) / abs(mean_b)


# --- Paired comparison on common paths ----------------------------------------------------------


@dataclass(frozen=True)
class PairedComparison:
    """Policy ``a`` against policy ``b`` on the same n episodes (differences are ``a - b``)."""

    n: int
    """Number of paired episodes."""
    mean_a: float
    mean_b: float
    mean_difference: float
    """``mean(a - b)``, which equals ``mean(a) - mean(b)``."""
    std_difference: float
    """Sample standard deviation (ddof=1) of the per-episode differences."""
    t_statistic: float
    """Paired t statistic (``scipy.stats.ttest_rel``), positive when a is better on average."""
    t_p_value: float
    """Two-sided p-value of the paired t-test."""
    wilcoxon_statistic: float
    """Wilcoxon signed-rank statistic (``scipy.stats.wilcoxon`` of the differences)."""
    wilcoxon_p_value: float
    """Two-sided p-value of the signed-rank test; 1 when every difference is 0."""
    ci_low: float
    """Lower end of the percentile-bootstrap interval of the mean difference."""
    ci_high: float
    """Upper end of that interval."""
    confidence: float
    n_bootstrap: int
    win_rate: float
    """Fraction of episodes with ``a > b``."""
    tie_rate: float
    """Fraction of episodes with ``a == b``."""

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def paired_comparison(
    a: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 10_000,
    confidence: float = 0.95,
) -> PairedComparison:
    """Compares two policies episode by episode on common demand paths.

    The bootstrap resamples episodes (pairs) with replacement and takes the percentile interval
    of the resampled mean differences.

    Args:
        a: (n,) scores of policy a; ``a[i]`` and ``b[i]`` come from the same demand path.
        b: (n,) scores of policy b, n >= 2.
        rng: Source of the bootstrap's draws.
        n_bootstrap: Bootstrap replicates, >= 1.
        confidence: Coverage of the interval, in (0, 1).

    Returns:
        The paired comparison.

    Raises:
        ValueError: If the samples differ in length, hold fewer than two or non-finite scores,
            or an option is out of range.
    """
    x, y = _sample(a, "a", minimum=2), _sample(b, "b", minimum=2)
    if x.shape != y.shape:
        raise ValueError(f"paired samples must have equal lengths, got {x.size} and {y.size}")
    _check_confidence(confidence)
    _check_replicates(n_bootstrap)
    difference = x - y
    n = difference.size
    if np.ptp(difference) == 0.0:  # constant differences: zero standard error, scipy divides by 0
        t = _degenerate_t(float(difference[0]), float(n - 1))
    else:
        result = stats.ttest_rel(x, y)
        t = TestResult(float(result.statistic), float(result.pvalue), float(result.df))
    if np.all(difference == 0.0):  # no signed ranks at all: nothing speaks against equality
        w_statistic, w_p_value = 0.0, 1.0
    else:
        signed_rank = stats.wilcoxon(difference)
        w_statistic, w_p_value = float(signed_rank.statistic), float(signed_rank.pvalue)
    # Not scipy.stats.bootstrap(..., paired=True, method="percentile", rng=rng): its replicates
    # are these, draw for draw (test_stats checks it), but it takes the interval with
    # scipy.stats.quantile, whose arithmetic differs from np.percentile's in the last bits, so
    # every published interval would move; its default method, BCa, differs outright.
    replicates = np.concatenate([
        difference[rng.integers(0, n, size=(reps, n))].mean(axis=1)
        for reps in _chunk_sizes(n_bootstrap, n)
    ])
    low, high = _percentile_interval(replicates, confidence)
    return PairedComparison(
        n=n,
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        mean_difference=float(difference.mean()),
        std_difference=float(difference.std(ddof=1)),
        t_statistic=t.statistic,
        t_p_value=t.p_value,
        wilcoxon_statistic=w_statistic,
        wilcoxon_p_value=w_p_value,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        win_rate=float(np.mean(difference > 0.0)),
        tie_rate=float(np.mean(difference == 0.0)),
    )


# --- Across training seeds: rliable's conventions -----------------------------------------------


class IntervalEstimate(NamedTuple):
    """A point estimate and its bootstrap interval; unpacks as ``point, (low, high)``."""

    point: float
    interval: tuple[float, float]

    def to_dict(self) -> dict[str, float]:
        return {"point": self.point, "ci_low": self.interval[0], "ci_high": self.interval[1]}


def interquartile_mean(scores: np.ndarray) -> float:
    """Interquartile mean (IQM): the mean of the middle 50% of all scores, tasks pooled.

    rliable's ``aggregate_iqm``: ``scipy.stats.trim_mean(scores, 0.25, axis=None)``, which cuts
    ``floor(0.25 * size)`` values from each end of the flattened, sorted scores.

    Args:
        scores: (runs, tasks) scores, or (runs,) for one task.

    Returns:
        The IQM.
    """
    return float(stats.trim_mean(_runs_by_tasks(scores, "scores"), 0.25, axis=None))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """Probability that a run of X beats a run of Y on a task, averaged over tasks.

    rliable's definition: for each task, ``P(X > Y) + 0.5 P(X = Y)`` estimated by the
    Mann-Whitney U statistic of x against y divided by ``runs_x * runs_y`` (the share of all
    run pairs that X wins, ties counting half); then the mean over tasks.

    Args:
        x: (runs_x, tasks) scores of method X, or (runs_x,) for one task.
        y: (runs_y, tasks) scores of method Y on the same tasks, or (runs_y,).

    Returns:
        The probability, in [0, 1]; 0.5 means neither method tends to beat the other.

    Raises:
        ValueError: If the arrays are empty, non-finite or cover different numbers of tasks.
    """
    scores_x, scores_y = _matching_tasks(x, y)
    runs_x, runs_y = len(scores_x), len(scores_y)
    # U = (rank sum of x in the pooled sample) - runs_x (runs_x + 1) / 2, with average ranks for
    # ties, counts the pairs x wins plus half the ties: the Mann-Whitney U of x.
    ranks = stats.rankdata(np.concatenate([scores_x, scores_y]), axis=0)
    u = ranks[:runs_x].sum(axis=0) - runs_x * (runs_x + 1) / 2.0  # (tasks,)
    return float((u / (runs_x * runs_y)).mean())


def aggregate_mean(scores: np.ndarray) -> float:
    """Mean of the per-task mean scores (rliable's ``aggregate_mean``).

    Args:
        scores: (runs, tasks) scores, or (runs,) for one task.
    """
    return float(_runs_by_tasks(scores, "scores").mean(axis=0).mean())


def aggregate_median(scores: np.ndarray) -> float:
    """Median of the per-task mean scores (rliable's ``aggregate_median``): robust to a few
    tasks with extreme scores, but blind to the runs' spread within a task.

    Args:
        scores: (runs, tasks) scores, or (runs,) for one task.
    """
    return float(np.median(_runs_by_tasks(scores, "scores").mean(axis=0)))


def optimality_gap(scores: np.ndarray, gamma: float) -> float:
    """How far the scores fall short of a target ``gamma``, on average (rliable's
    ``aggregate_optimality_gap``): ``gamma - mean(min(scores, gamma))`` over all runs and tasks.

    A score above ``gamma`` counts as ``gamma``: beating the target on one task does not make up
    for missing it on another. Lower is better; 0 means every run reached the target.

    Args:
        scores: (runs, tasks) scores, or (runs,) for one task.
        gamma: The target [gamma], e.g. 100 for scores normalised to 100.
    """
    return float(gamma - np.minimum(_runs_by_tasks(scores, "scores"), gamma).mean())


def performance_profile(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The score distribution: the share of all runs (tasks pooled) scoring above each threshold.

    rliable's performance profile with ``use_score_distribution=True``: for each threshold
    ``tau``, ``mean(scores > tau)`` (strictly above). It is non-increasing in ``tau``; one
    method's profile lying above another's everywhere is stochastic dominance.

    Args:
        scores: (runs, tasks) scores, or (runs,) for one task.
        thresholds: (K,) thresholds [tau].

    Returns:
        (K,) shares, in [0, 1].
    """
    values = _runs_by_tasks(scores, "scores").ravel()
    taus = np.asarray(thresholds, dtype=np.float64).ravel()
    return (values[None, :] > taus[:, None]).mean(axis=1)


def stratified_bootstrap_ci(
    aggregate: Callable[..., float],
    *scores: np.ndarray,
    rng: np.random.Generator,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
) -> IntervalEstimate:
    """An aggregate of (runs, tasks) scores with rliable's stratified-bootstrap interval.

    Each replicate resamples the runs of every task with replacement, each task on its own (the
    tasks are the strata: every replicate keeps all of them), and applies ``aggregate``. Given
    several score arrays (``probability_of_improvement(x, y)``), each is resampled independently,
    one after another, as rliable's ``StratifiedIndependentBootstrap`` does. The interval is the
    percentile interval of the replicates. A replicate draws ``rng.integers(0, runs, size=(runs,
    tasks))`` per array, as rliable draws ``np.random.choice(runs, (runs, tasks))``; so a
    generator that draws as ``np.random`` does gives rliable's interval to the last bit
    (test_stats checks it).

    Use it where runs are training seeds and tasks are datasets or environments: the interval
    says how the aggregate would move with other seeds on the same tasks. (For the seeds and
    paths of one task, see :func:`seeds_and_paths_ci`.)

    Args:
        aggregate: Maps the score arrays to a number, e.g. :func:`interquartile_mean`.
        scores: One or more (runs, tasks) arrays over the same tasks ((runs,) for one task).
        rng: The random state of the resampling.
        n_bootstrap: Replicates, >= 1.
        confidence: Coverage of the interval, in (0, 1).

    Returns:
        ``aggregate(*scores)`` and its percentile interval.

    Raises:
        ValueError: If no scores are given, they are empty or non-finite, cover different
            numbers of tasks, or an option is out of range.
    """
    _check_confidence(confidence)
    _check_replicates(n_bootstrap)
    if not scores:
        raise ValueError("stratified_bootstrap_ci needs at least one score array")
    arrays = [_runs_by_tasks(s, "scores") for s in scores]
    tasks = arrays[0].shape[1]
    if any(a.shape[1] != tasks for a in arrays):
        raise ValueError(f"the score arrays must cover the same tasks, got "
                         f"{[a.shape[1] for a in arrays]}")
    columns = np.arange(tasks)
    # One replicate at a time, as rliable draws them: the arrays are a few seeds by a few
    # datasets, so the loop costs little, and the draws stay comparable with rliable's.
    replicates = np.array([
        aggregate(*(a[rng.integers(0, len(a), size=a.shape), columns] for a in arrays))
        for _ in range(n_bootstrap)
    ], dtype=np.float64)
    return IntervalEstimate(float(aggregate(*arrays)),
                            _percentile_interval(replicates, confidence))


def seeds_and_paths_ci(
    scores: np.ndarray,
    rng: np.random.Generator,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
) -> IntervalEstimate:
    """Mean of a (seeds, paths) array with a two-level bootstrap interval.

    Each replicate resamples training seeds with replacement and, independently, test paths
    with replacement (the same paths for every seed, as they are common), then takes the mean.
    The interval so reflects both the spread between training runs and the sampling of paths;
    with few seeds it is wide, as it should be. Use it on paired differences (agent minus
    baseline on the same paths) to compare methods across seeds.

    Args:
        scores: (R, P) one row per training seed, one column per test path.
        rng: The random state of the resampling.
        n_bootstrap: Replicates, >= 1.
        confidence: Coverage of the interval, in (0, 1).

    Returns:
        The mean of all scores and its percentile interval.

    Raises:
        ValueError: If scores are not a non-empty, finite 2-D array, or an option is out of range.
    """
    _check_confidence(confidence)
    _check_replicates(n_bootstrap)
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 2 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"scores must be a finite (seeds, paths) array, got shape {values.shape}")
    runs, paths = values.shape
    # A replicate draws ``runs`` seed indices, then ``paths`` path indices. One call with an array
    # of upper bounds draws element by element in order, as a per-replicate loop of
    # ``rng.integers(0, runs, runs); rng.integers(0, paths, paths)`` would (test_stats checks it
    # against that loop). A bound of 1 draws nothing: one seed gives paired_comparison's draws.
    bounds = np.repeat([runs, paths], [runs, paths])
    chunks = []
    for reps in _chunk_sizes(n_bootstrap, values.size):
        draws = rng.integers(0, np.tile(bounds, reps)).reshape(reps, runs + paths)
        seeds, columns = draws[:, :runs], draws[:, runs:]
        # Summed path-major, as values[seeds][:, columns].mean() sums one replicate (NumPy lays
        # that array out in Fortran order): the same order, so the same means to the last bit.
        resampled = values.T[columns[:, :, None], seeds[:, None, :]]  # (reps, paths, seeds)
        chunks.append(resampled.reshape(reps, -1).mean(axis=1))
    replicates = np.concatenate(chunks)
    return IntervalEstimate(float(values.mean()), _percentile_interval(replicates, confidence))


# --- Share of the perfect-information bound -----------------------------------------------------


@dataclass(frozen=True)
class ShareOfBound:
    """How much of the perfect-information profit a policy earns on the same paths."""

    ratio_of_means: float
    """``mean(profits) / mean(bound)``: the headline share (total profit over total bound)."""
    mean_of_ratios: float
    """``mean(profits / bound)``: the average episode's share; weights every path equally. NaN
    where some path's bound is not positive (a path of so little demand that even perfect
    information loses money on the starting stock): no share of it is defined."""
    n: int
    """Number of episodes."""

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def share_of_bound(profits: np.ndarray, bound: np.ndarray) -> ShareOfBound:
    """Shares of the perfect-information bound earned by a policy, as fractions (1 = the bound).

    The ratio of means is the headline: it is the share of all the profit available on the test
    paths that the policy earns, and it does not let paths with a small bound dominate. The mean
    of per-episode ratios is reported beside it.

    Args:
        profits: (n,) episode profits of a policy.
        bound: (n,) perfect-information profit of the same n demand paths, with a positive
            mean.

    Returns:
        Both shares (the mean of ratios NaN where a path's bound is not positive).

    Raises:
        ValueError: If the arrays differ in length, are empty or non-finite, or the bound's mean
            is not positive.
    """
    values, limits = _sample(profits, "profits"), _sample(bound, "bound")
    if values.shape != limits.shape:
        raise ValueError(f"profits and bound must have equal lengths, got {values.size} and "
                         f"{limits.size}")
    if limits.mean() <= 0.0:
        raise ValueError("the bound's mean must be positive for a share of it to be defined")
    return ShareOfBound(
        ratio_of_means=float(values.mean() / limits.mean()),
        mean_of_ratios=float(np.mean(values / limits)) if np.all(limits > 0.0) else math.nan,
        n=values.size,
    )


# --- Helpers ------------------------------------------------------------------------------------


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _check_replicates(n_bootstrap: int) -> None:
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")


def _sample(scores: np.ndarray, name: str, minimum: int = 1) -> np.ndarray:
    """(n,) float64 copy of a 1-D sample of at least ``minimum`` finite scores."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {values.shape}")
    if values.size < minimum:
        raise ValueError(f"{name} must hold at least {minimum} score(s), got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite")
    return values


def _runs_by_tasks(scores: np.ndarray, name: str) -> np.ndarray:
    """(runs, tasks) float64 array of finite scores; 1-D input is one task."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty (runs, tasks) array, got shape "
                         f"{np.shape(scores)}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite")
    return values


def _matching_tasks(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores_x, scores_y = _runs_by_tasks(x, "x"), _runs_by_tasks(y, "y")
    if scores_x.shape[1] != scores_y.shape[1]:
        raise ValueError(f"x and y must cover the same tasks, got {scores_x.shape[1]} and "
                         f"{scores_y.shape[1]}")
    return scores_x, scores_y


def _degenerate_t(difference: float, dof: float) -> TestResult:
    """The t-test's limit when the standard error is 0: no doubt about the sign of a difference."""
    if difference == 0.0:
        return TestResult(0.0, 1.0, dof)
    return TestResult(math.copysign(math.inf, difference), 0.0, dof)


def _chunk_sizes(replicates: int, values_per_replicate: int) -> Iterator[int]:
    """Splits bootstrap replicates into chunks of about _BOOTSTRAP_CHUNK_VALUES values."""
    per_chunk = max(1, _BOOTSTRAP_CHUNK_VALUES // max(1, values_per_replicate))
    for start in range(0, replicates, per_chunk):
        yield min(per_chunk, replicates - start)


def _percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return float(low), float(high)
