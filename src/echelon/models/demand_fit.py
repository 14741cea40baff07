"""Demand estimation from logged sales, censoring included: the model-based route for logs.

The chain's dynamics (lead times, capacities, prices and costs) are accounting identities a team
knows; the law of customer demand is the one unknown. This module estimates it from a dataset's
logs by maximum likelihood, reading only what a real log holds: retail sales (``log/sales[:, 0]``),
the retailer's end-of-period on-hand (``log/on_hand[:, 0]``) and, with backlog, the unfilled
customer demand carried over (``log/unfulfilled[:, 0]``). It never reads ``log/demand`` (the true
demand, which a real log lacks).

What one period's log says about its demand D_n (the core's order of events, steps 5-7):

* Lost sales (v1). The retailer sells Y_n = min(D_n, c_n), where c_n = Y_n + I_n is the stock it
  had available and I_n its on-hand at the end of the period. If I_n > 0 the stock did not run
  out and D_n = Y_n exactly; if I_n = 0 it sold out, and only D_n >= Y_n is known (censored).
* Backlog (v0). Unfilled demand U_n is carried over and owed, so the new demand is recovered
  exactly: D_n = Y_n + U_n - U_{n-1}, with U_{-1} = 0 at the start of an episode. No period is
  censored. (A row whose episode starts after period 0 has no U_{n-1} and is left out.)

Likelihood of i.i.d. demand with pmf f and survival P(D >= y):

    l(theta) = sum_{exact n} log f(Y_n; theta) + sum_{censored n} log P(D >= Y_n; theta).

The threshold c_n depends only on earlier periods (orders and earlier demand), never on D_n, so
the censoring is ignorable and this is the likelihood of theta (Conrad 1976, "Sales data and the
estimation of demand", Oper. Res. Q. 27(1); Nahmias 1994, "Demand estimation in lost sales
inventory systems", Naval Res. Logist. 41). The NAIVE estimate fits the same law to the sales as if
every period were exact; with stock-outs it is biased low.

Laws and estimators (``scipy.stats`` log-pmf and log-survival, ``scipy.optimize``):

* ``poisson`` [mu] and ``geometric`` [p]: one parameter, and the log-likelihood is concave in
  it (the pmf and the survival function are log-concave in it). The Poisson estimate is the root
  of the score, sum (x/mu - 1) over exact periods plus sum P(D = y-1)/P(D >= y) over censored
  ones (Conrad 1976), found by Brent's method to machine precision; the geometric one by Brent's
  bounded search. Interval: profile likelihood, {theta : 2 (l_max - l(theta)) <= chi2_1(level)},
  which needs no symmetry of the likelihood; the standard error from the observed information is
  reported beside it. (Poisson, 300 periods with 74% censored, 400 replications: the 95%
  profile interval covered the true mean in 96%, the naive one in none.)
* ``binomial`` [n, p]: a log does not know n, so n is fitted by profile likelihood over whole
  numbers n >= the largest observation (p maximised for each n), and its interval is the set of
  n whose profile is within chi2_1(level)/2 of the maximum (``inf`` when the data do not bound it
  above: they are not under-dispersed, and the binomial tends to the Poisson). The intervals of
  p and of the mean n p project the joint likelihood set {l_max - l(n, p) <= chi2_1(level)/2}
  (n profiled out; the hull of one interval per n of n's set, sampled when the set is large).
* ``uniform`` [low, high): low and high - 1 bound the support. The likelihood of whole-number
  (low, high) is maximised on a grid; the intervals are the likelihood-ratio sets on it. The
  endpoints are non-regular parameters, so those sets are approximate (with thousands of exact
  observations they shrink to the estimate).

Goodness of fit: a Pearson chi-square on every period, censored ones included. Given the
available stock c_n of each period, the fitted law predicts the count of exact observations of
each value y (f(y) times the number of periods with c_n > y) and of censored periods (sum of
P(D >= c_n)); cells are merged until each expects at least 5, and the statistic has
cells - 1 - (number of fitted parameters) degrees of freedom. It is approximate (c_n depends on
earlier demand), and flags a misspecified law when its p-value is below 0.01.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from echelon.data.dataset import OfflineDataset
from echelon.sim.config import ChainConfig
from echelon.sim.demand import (
    Binomial,
    Demand,
    DiscreteUniform,
    Geometric,
    Poisson,
    demand_to_dict,
)

LAWS = ("poisson", "binomial", "uniform", "geometric")
"""The laws :func:`fit_demand` estimates (the i.i.d. laws of :mod:`echelon.sim.demand`)."""

_PARAMETERS = {"poisson": 1, "binomial": 2, "uniform": 2, "geometric": 1}
# Smallest expected count of a chi-square cell (Cochran's rule of thumb).
_MIN_EXPECTED = 5.0
# A goodness-of-fit p-value below this flags the law as misspecified.
MISSPECIFIED_BELOW = 0.01
# Search caps: binomial n up to 64 times the largest observation; uniform high up to this many
# units above the smallest feasible value (and at least 5 times the observed range).
_BINOMIAL_CAP = 64.0
_UNIFORM_SPAN = 200
# A log-likelihood this low stands for an impossible parameter (keeps optimisers in floats).
_IMPOSSIBLE = -1e15


class UnsupportedLawError(ValueError):
    """The observations are impossible under a law (e.g. exact zero demand for a geometric law)."""


# --- observations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DemandObservations:
    """What the logs say about each period's demand."""

    values: np.ndarray
    """(M,) demand (exact periods) or retail sales, a lower bound on demand (censored periods)."""
    censored: np.ndarray
    """(M,) whether the period sold out, so that only demand >= value is known."""
    available: np.ndarray
    """(M,) stock the retailer had for sale [c]; infinite where demand is never censored (v0)."""
    method: str
    """How the values were read: ``lost-sales`` (censored), ``backlog`` (exact) or ``naive``."""

    @property
    def exact(self) -> np.ndarray:
        """(M_exact,) the exactly observed demands."""
        return self.values[~self.censored]


def observe_demand(data: OfflineDataset) -> DemandObservations:
    """Reads each period's demand information from a dataset's logs (never ``log/demand``).

    Args:
        data: The dataset; its chain says whether unfilled demand was lost (v1) or backlogged (v0).

    Returns:
        Exact demand where the retailer did not sell out (v1) or always (v0); sales as a lower
        bound where it sold out (v1).

    Raises:
        ValueError: If sales, on-hand or backlog are not whole units or a recovered demand is
            negative (the log does not fit the chain's dynamics).
    """
    sales = data.log["sales"][:, 0]
    if data.chain.backlog:
        unfulfilled = data.log["unfulfilled"][:, 0]
        ids, periods = data.episode_ids, data.periods
        previous = np.zeros(len(sales))
        follows = np.zeros(len(sales), dtype=bool)
        follows[1:] = (ids[1:] == ids[:-1]) & (periods[1:] == periods[:-1] + 1)
        previous[1:][follows[1:]] = unfulfilled[:-1][follows[1:]]
        keep = follows | (periods == 0)
        values = (sales + unfulfilled - previous)[keep]
        if np.any(values < 0):
            raise ValueError(
                "recovered demand (sales + backlog - previous backlog) is negative in "
                f"{int(np.sum(values < 0))} periods: the log does not fit a backlog (v0) chain"
            )
        _check_whole("backlog-recovered demand", values)
        return DemandObservations(
            values=values, censored=np.zeros(len(values), dtype=bool),
            available=np.full(len(values), np.inf), method="backlog",
        )
    on_hand = data.log["on_hand"][:, 0]
    _check_whole("retail sales", sales)
    _check_whole("retailer on-hand", on_hand)
    return DemandObservations(
        values=sales.copy(), censored=on_hand <= 0.0, available=sales + on_hand, method="lost-sales"
    )


def naive_observations(data: OfflineDataset) -> DemandObservations:
    """Retail sales taken as demand in every period (what ignoring the stock-outs assumes)."""
    sales = data.log["sales"][:, 0]
    _check_whole("retail sales", sales)
    return DemandObservations(
        values=sales.copy(), censored=np.zeros(len(sales), dtype=bool),
        available=np.full(len(sales), np.inf), method="naive",
    )


def _check_whole(what: str, values: np.ndarray) -> None:
    if np.any(np.abs(values - np.rint(values)) > 1e-9):
        raise ValueError(
            f"{what} must be whole units to fit a discrete demand law, got fractions in "
            f"{int(np.sum(np.abs(values - np.rint(values)) > 1e-9))} periods"
        )


@dataclass(frozen=True)
class _Counts:
    """Observations grouped by value: the likelihood needs each distinct value once."""

    exact: np.ndarray
    exact_weight: np.ndarray
    censored: np.ndarray
    censored_weight: np.ndarray

    @classmethod
    def of(cls, obs: DemandObservations) -> _Counts:
        exact, exact_weight = np.unique(np.rint(obs.exact), return_counts=True)
        censored, censored_weight = np.unique(
            np.rint(obs.values[obs.censored]), return_counts=True
        )
        return cls(exact, exact_weight.astype(np.float64), censored,
                   censored_weight.astype(np.float64))

    def log_likelihood(self, family: stats.rv_discrete, *params: float) -> float:
        """sum of log f(y) over exact values plus log P(D >= y) over censored ones.

        Args:
            family: A ``scipy.stats`` discrete family (``stats.poisson``, not frozen: faster).
            params: Its shape parameters.
        """
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            value = self.exact_weight @ family.logpmf(self.exact, *params)
            if len(self.censored):
                value += self.censored_weight @ family.logsf(self.censored - 1, *params)
        return float(value) if np.isfinite(value) else _IMPOSSIBLE

    @property
    def largest(self) -> float:
        return float(max(self.exact.max(), self.censored.max() if len(self.censored) else 0.0))


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoodnessOfFit:
    """Pearson chi-square of the fitted law against every logged period (censored ones too)."""

    statistic: float
    """Pearson's sum over cells of (observed - expected)^2 / expected."""
    dof: int
    """Degrees of freedom: cells - 1 - fitted parameters (the p-value is NaN below 1)."""
    p_value: float
    """Upper tail of chi2(dof) at the statistic."""
    cells: int
    """Number of cells after merging to at least 5 expected periods each."""

    @property
    def misspecified(self) -> bool:
        """Whether the law is rejected at the 1% level (``MISSPECIFIED_BELOW``)."""
        return bool(self.p_value < MISSPECIFIED_BELOW)

    def to_dict(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "dof": self.dof, "p_value": _json_float(self.p_value),
                "cells": self.cells, "misspecified": self.misspecified}


@dataclass(frozen=True)
class Estimate:
    """One law fitted by maximum likelihood to one set of observations."""

    law: Demand
    """The fitted law, ready for a ``ChainConfig``."""
    params: dict[str, float]
    """Maximum-likelihood parameters, plus ``mean`` (expected demand per period)."""
    ci: dict[str, tuple[float, float]]
    """Interval of each parameter and of the mean at the fit's level (see the module docstring)."""
    se: dict[str, float]
    """Standard errors from the observed information, where the parameter is regular."""
    log_likelihood: float
    """Maximised log-likelihood."""
    aic: float
    """Akaike's criterion, 2 k - 2 l (k fitted parameters); smaller is better."""
    goodness_of_fit: GoodnessOfFit
    """The chi-square check of the fitted law against the observations it was fitted to."""
    notes: tuple[str, ...] = ()
    """Caveats of this fit (a parameter at its search cap, ...)."""

    @property
    def name(self) -> str:
        """The law's name (``poisson``, ``binomial``, ``uniform``, ``geometric``)."""
        return demand_to_dict(self.law)["law"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": demand_to_dict(self.law),
            "params": {k: _json_float(v) for k, v in self.params.items()},
            "ci": {k: [_json_float(lo), _json_float(hi)] for k, (lo, hi) in self.ci.items()},
            "se": {k: _json_float(v) for k, v in self.se.items()},
            "log_likelihood": self.log_likelihood,
            "aic": self.aic,
            "goodness_of_fit": self.goodness_of_fit.to_dict(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class DemandFit:
    """A demand law estimated from logs, with the naive estimate beside it.

    ``law``, ``params``, ``ci``, ``se``, ``log_likelihood``, ``aic``, ``goodness_of_fit`` and
    ``notes`` are the censoring-aware estimate's (its :class:`Estimate` is ``estimate``).
    """

    estimate: Estimate
    """The censoring-aware (v1) or exact (v0) maximum-likelihood fit."""
    naive: Estimate | None
    """The same law fitted to retail sales as if they were demand in every period; None when the
    law rules that out (``naive_error`` says why: e.g. sales of 0 under a geometric law)."""
    censored: int
    """Periods that sold out (demand only known to be >= sales)."""
    observations: int
    """Periods used (all of them; v0 leaves out rows whose episode starts after period 0)."""
    method: str
    """``lost-sales`` (censored maximum likelihood) or ``backlog`` (demand recovered exactly)."""
    level: float = 0.95
    """Confidence level of the intervals."""
    naive_error: str = ""
    """Why there is no naive estimate, if there is none."""

    law = property(lambda self: self.estimate.law, doc="The fitted law.")
    params = property(lambda self: self.estimate.params, doc="Fitted parameters and mean.")
    ci = property(lambda self: self.estimate.ci, doc="Intervals of the parameters and mean.")
    se = property(lambda self: self.estimate.se, doc="Standard errors (regular parameters).")
    log_likelihood = property(lambda self: self.estimate.log_likelihood, doc="Max log-likelihood.")
    aic = property(lambda self: self.estimate.aic, doc="Akaike's criterion (smaller is better).")
    goodness_of_fit = property(lambda self: self.estimate.goodness_of_fit, doc="Chi-square check.")
    notes = property(lambda self: self.estimate.notes, doc="Caveats of the fit.")
    name = property(lambda self: self.estimate.name, doc="The law's name.")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (infinite interval ends become ``null``)."""
        return {
            **self.estimate.to_dict(),
            "method": self.method,
            "level": self.level,
            "observations": self.observations,
            "censored": self.censored,
            "naive": self.naive.to_dict() if self.naive else {"error": self.naive_error},
        }


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# --- fitting ----------------------------------------------------------------------------------


def fit_demand(data: OfflineDataset, law: str = "poisson", *, level: float = 0.95) -> DemandFit:
    """Estimates the demand law from a dataset's sales and on-hand logs.

    Args:
        data: The logs (only retail sales, the retailer's end-of-period on-hand and, with backlog,
            its unfilled demand are read).
        law: One of :data:`LAWS`.
        level: Confidence level of the intervals, in (0, 1).

    Returns:
        The censoring-aware fit and the naive one (sales taken as demand).

    Raises:
        ValueError: If the law is unknown, no period observed demand exactly (every period sold
            out, so no law is identified), the observations are impossible under the law
            (:class:`UnsupportedLawError`), or the logs are not whole units.
    """
    return fit_observations(observe_demand(data), law, naive=naive_observations(data), level=level)


def fit_observations(
    obs: DemandObservations,
    law: str = "poisson",
    *,
    naive: DemandObservations | None = None,
    level: float = 0.95,
) -> DemandFit:
    """:func:`fit_demand` on observations already read from logs.

    Args:
        obs: The observations to fit.
        law: One of :data:`LAWS`.
        naive: Observations of the naive fit (sales as demand); ``obs`` with no censoring if None.
        level: Confidence level of the intervals, in (0, 1).
    """
    if law not in _FITTERS:
        raise ValueError(f"unknown demand law {law!r}; fit_demand knows {list(LAWS)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if not len(obs.values) or not np.any(~obs.censored):
        raise ValueError(
            f"no period with exactly observed demand among {len(obs.values)}: the retailer sold "
            "out in every period, so the logs only bound demand from below and no law is identified"
        )
    if naive is None:
        naive = DemandObservations(obs.values, np.zeros(len(obs.values), dtype=bool),
                                   np.full(len(obs.values), np.inf), "naive")
    estimate = _estimate(obs, law, level)
    try:
        naive_estimate, naive_error = _estimate(naive, law, level), ""
    except UnsupportedLawError as error:
        naive_estimate, naive_error = None, f"no naive estimate: {error}"
    return DemandFit(
        estimate=estimate,
        naive=naive_estimate,
        censored=int(np.sum(obs.censored)),
        observations=len(obs.values),
        method=obs.method,
        level=level,
        naive_error=naive_error,
    )


def compare_laws(
    data: OfflineDataset, laws: tuple[str, ...] = LAWS, *, level: float = 0.95
) -> list[DemandFit]:
    """Fits every law and ranks them by AIC, best first.

    A law under which the observations are impossible (an exact demand of 0 for the geometric
    law, whose support starts at 1) is left out of the list.

    Raises:
        ValueError: As :func:`fit_demand` does, except for laws that the data rule out.
    """
    obs, naive = observe_demand(data), naive_observations(data)
    fits = []
    for law in laws:
        try:
            fits.append(fit_observations(obs, law, naive=naive, level=level))
        except UnsupportedLawError:
            continue
    return sorted(fits, key=lambda fit: fit.aic)


def fitted_chain(data: OfflineDataset, fit: DemandFit) -> ChainConfig:
    """The dataset's chain with the fitted demand law: the model to plan in."""
    return data.chain.replace(demand=fit.law)


def _estimate(obs: DemandObservations, law: str, level: float) -> Estimate:
    counts = _Counts.of(obs)
    threshold = stats.chi2.ppf(level, 1) / 2.0
    demand, params, ci, se, ll, notes = _FITTERS[law](counts, threshold)
    k = _PARAMETERS[law]
    return Estimate(
        law=demand, params=params, ci=ci, se=se, log_likelihood=ll, aic=2.0 * k - 2.0 * ll,
        goodness_of_fit=goodness_of_fit(demand, obs, k), notes=tuple(notes),
    )


def _maximise(loglik: Callable[[float], float], lower: float, upper: float) -> tuple[float, float]:
    """Brent's bounded search for the maximum of a concave function of one parameter."""
    result = optimize.minimize_scalar(lambda t: -loglik(t), bounds=(lower, upper),
                                      method="bounded", options={"xatol": 1e-10})
    return float(result.x), float(-result.fun)


def _interval(
    loglik: Callable[[float], float], theta: float, best: float, lower: float, upper: float,
    threshold: float,
) -> tuple[float, float]:
    """Profile-likelihood interval {t : l_max - l(t) <= threshold} of a concave log-likelihood."""

    def excess(t: float) -> float:
        return best - loglik(t) - threshold

    ends = []
    for limit in (lower, upper):
        if excess(limit) <= 0.0:
            ends.append(limit)
        else:
            ends.append(float(optimize.brentq(excess, theta, limit, xtol=1e-12, rtol=1e-12)))
    return ends[0], ends[1]


def _standard_error(
    loglik: Callable[[float], float], theta: float, lower: float, upper: float
) -> float:
    """1 / sqrt(observed information), by a central second difference (NaN at a bound)."""
    step = 1e-4 * max(abs(theta), 1e-6)
    if theta - step < lower or theta + step > upper:
        return math.nan
    curvature = (loglik(theta + step) - 2.0 * loglik(theta) + loglik(theta - step)) / step**2
    return 1.0 / math.sqrt(-curvature) if curvature < 0 else math.nan


def _fit_poisson(counts: _Counts, threshold: float):
    def loglik(mu: float) -> float:
        return counts.log_likelihood(stats.poisson, mu)

    positive = counts.censored >= 1  # P(D >= 0) = 1 carries no information

    def score(mu: float) -> float:
        """d l / d mu: x / mu - 1 per exact x, P(D = y-1) / P(D >= y) per censored y."""
        value = counts.exact_weight @ counts.exact / mu - counts.exact_weight.sum()
        if positive.any():
            y = counts.censored[positive] - 1
            with np.errstate(under="ignore"):
                hazard = np.exp(stats.poisson.logpmf(y, mu) - stats.poisson.logsf(y, mu))
            value += counts.censored_weight[positive] @ hazard
        return float(value)

    lower, upper = 1e-9, 10.0 * counts.largest + 10.0
    # The log-likelihood is concave in mu, so the score falls through zero once.
    if score(lower) <= 0.0:
        mu = lower
    else:
        mu = float(optimize.brentq(score, lower, upper, xtol=1e-14, rtol=1e-15))
    best = loglik(mu)
    ci = _interval(loglik, mu, best, lower, upper, threshold)
    step = 1e-5 * mu
    information = -(score(mu + step) - score(mu - step)) / (2.0 * step) if mu - step > 0 else 0.0
    se = 1.0 / math.sqrt(information) if information > 0 else math.nan
    return (Poisson(mu), {"mu": mu, "mean": mu}, {"mu": ci, "mean": ci},
            {"mu": se, "mean": se}, best, [])


def _fit_geometric(counts: _Counts, threshold: float):
    zeros = counts.exact_weight[counts.exact == 0].sum()
    if zeros:
        raise UnsupportedLawError(
            f"geometric demand is at least 1 (trials up to the first success), but {int(zeros)} "
            "periods had an exact demand of 0"
        )

    def loglik(p: float) -> float:
        return counts.log_likelihood(stats.geom, p)

    lower, upper = 1e-9, 1.0 - 1e-12
    p, best = _maximise(loglik, lower, upper)
    low, high = _interval(loglik, p, best, lower, upper, threshold)
    se = _standard_error(loglik, p, lower, upper)
    ci = {"p": (low, high), "mean": (1.0 / high, 1.0 / low)}
    return Geometric(p), {"p": p, "mean": 1.0 / p}, ci, {"p": se, "mean": se / p**2}, best, []


def _fit_binomial(counts: _Counts, threshold: float):
    smallest = max(1, int(counts.largest))
    cache: dict[int, tuple[float, float]] = {}

    def p_loglik(n: int) -> Callable[[float], float]:
        return lambda p: counts.log_likelihood(stats.binom, n, p)

    def profile(n: int) -> float:
        """max over p of l(n, p), remembered with its p."""
        if n not in cache:
            if not len(counts.censored):  # closed form without censoring
                total = counts.exact_weight.sum()
                p = counts.exact_weight @ counts.exact / (total * n)
                p = float(np.clip(p, 1e-12, 1 - 1e-12))
                cache[n] = (p, p_loglik(n)(p))
            else:
                cache[n] = _maximise(p_loglik(n), 1e-12, 1.0 - 1e-12)
        return cache[n][1]

    cap = int(math.ceil(_BINOMIAL_CAP * smallest))
    grid = np.unique(np.concatenate([
        smallest + np.arange(16), np.rint(np.geomspace(smallest, cap, 60)),
    ]).astype(np.int64))
    values = np.array([profile(int(n)) for n in grid])
    index = int(np.argmax(values))
    notes = []
    if index == len(grid) - 1:
        n = int(grid[-1])
        notes.append(
            f"binomial n reached its search cap {n}: the profile likelihood still rises, so the "
            "data are not under-dispersed and the binomial tends to the Poisson law"
        )
    else:
        low, high = int(grid[max(index - 1, 0)]), int(grid[index + 1])
        n = _integer_argmax(profile, low, high)
    p, best = cache[n]

    def within(m: int) -> bool:
        """Whether n = m lies in n's likelihood set."""
        return best - profile(m) <= threshold

    n_low = smallest if within(smallest) else _integer_edge(within, int(smallest), n)
    beyond = [int(m) for m in grid if m > n and not within(int(m))]
    n_high = _integer_edge(within, beyond[0], n) if beyond else math.inf
    # p and the mean: the likelihood set {(n, p) : l_max - l(n, p) <= threshold} projected on
    # p and on n p. With n whole, it is a union of one interval per n in n's set; the intervals
    # reported are the hull of that union (n sampled along its set when the set is large).
    top = int(min(n_high, grid[-1]))
    sample = np.unique(np.rint(np.linspace(n_low, top, min(top - n_low + 1, 20))).astype(np.int64))
    p_ends, mean_ends = [], []
    for m in {*map(int, sample), n}:
        if best - profile(m) > threshold:
            continue
        low_p, high_p = _interval(p_loglik(m), cache[m][0], best, 1e-12, 1.0 - 1e-12, threshold)
        p_ends += [low_p, high_p]
        mean_ends += [m * low_p, m * high_p]
    return (
        Binomial(n, p),
        {"n": float(n), "p": p, "mean": n * p},
        {"n": (float(n_low), float(n_high)), "p": (min(p_ends), max(p_ends)),
         "mean": (min(mean_ends), max(mean_ends))},
        {},
        best,
        notes,
    )


def _integer_argmax(f: Callable[[int], float], low: int, high: int) -> int:
    """Maximiser of a unimodal function of whole numbers on [low, high] (ternary search)."""
    while high - low > 2:
        a, b = low + (high - low) // 3, high - (high - low) // 3
        if f(a) < f(b):
            low = a + 1
        else:
            high = b
    return max(range(low, high + 1), key=f)


def _integer_edge(inside: Callable[[int], bool], outside: int, within: int) -> int:
    """The whole number nearest ``outside`` that is still inside, between the two (bisection)."""
    while abs(outside - within) > 1:
        middle = (outside + within) // 2
        if inside(middle):
            within = middle
        else:
            outside = middle
    return within


def _fit_uniform(counts: _Counts, threshold: float):
    low_hat = int(counts.exact.min())
    smallest_high = int(counts.largest) + 1
    span = max(_UNIFORM_SPAN, 5 * (smallest_high - low_hat))
    lows = np.arange(max(0, low_hat - span), low_hat + 1)[:, None, None]
    highs = np.arange(smallest_high, smallest_high + span)[None, :, None]
    width = (highs - lows)[..., 0]
    # Exact periods: 1 / (high - low) each; censored at y: P(D >= y) = (high - max(y, low)) / width.
    loglik = -counts.exact_weight.sum() * np.log(width)
    if len(counts.censored):
        y = counts.censored[None, None, :]
        share = np.log(highs - np.maximum(y, lows)) - np.log(highs - lows)
        loglik = loglik + (share * counts.censored_weight).sum(axis=2)
    i, j = np.unravel_index(int(np.argmax(loglik)), loglik.shape)
    best = float(loglik[i, j])
    low, high = int(lows[i, 0, 0]), int(highs[0, j, 0])
    inside = best - loglik <= threshold
    low_set = lows[:, 0, 0][inside.any(axis=1)]
    high_set = highs[0, :, 0][inside.any(axis=0)]
    notes = ["the intervals of low and high are likelihood-ratio sets (non-regular endpoints)"]
    if high_set.max() == highs.max():
        notes.append(f"high's interval reaches its search cap {int(highs.max())}")
    ci = {"low": (float(low_set.min()), float(low_set.max())),
          "high": (float(high_set.min()), float(high_set.max()))}
    ci["mean"] = tuple((ci["low"][end] + ci["high"][end] - 1) / 2.0 for end in (0, 1))
    law = DiscreteUniform(low, high)
    return law, {"low": float(low), "high": float(high), "mean": law.mean}, ci, {}, best, notes


_FITTERS = {"poisson": _fit_poisson, "binomial": _fit_binomial, "uniform": _fit_uniform,
            "geometric": _fit_geometric}


# --- goodness of fit --------------------------------------------------------------------------


def goodness_of_fit(law: Demand, obs: DemandObservations, fitted: int = 0) -> GoodnessOfFit:
    """Pearson chi-square of a law against logged periods, censored ones included.

    Cells: each exact value y (expected: f(y) times the periods whose available stock exceeded
    y), exact values above the largest one seen, and the censored periods (expected: the sum of
    P(D >= c_n)). Adjacent exact cells are merged until each expects at least 5 periods.

    Args:
        law: A law with a ``scipy()`` method (the laws of :mod:`echelon.sim.demand`).
        obs: The observations.
        fitted: Number of parameters fitted to ``obs`` (subtracted from the degrees of freedom).
    """
    dist = law.scipy()
    exact = np.rint(obs.exact).astype(np.int64)
    top = int(exact.max())
    ys = np.arange(top + 1)
    available = np.sort(obs.available)
    finite, times = np.unique(available[np.isfinite(available)], return_counts=True)
    at_risk = len(available) - np.searchsorted(available, ys, side="right")
    with np.errstate(under="ignore"):
        expected = list(dist.pmf(ys) * at_risk)
        observed = list(np.bincount(exact, minlength=top + 1).astype(np.float64))
        sold_out = dist.sf(finite - 1)  # P(D >= c) for each distinct finite c
        above_top = np.sum(np.isinf(available)) * dist.sf(top)
        above_top += float(times @ np.clip(dist.sf(top) - sold_out, 0.0, None))
    expected.append(float(above_top))
    observed.append(0.0)
    cells_e, cells_o = _merge(np.array(expected), np.array(observed))
    censored_expected = float(times @ sold_out) if len(finite) else 0.0
    censored_observed = float(np.sum(obs.censored))
    if censored_expected >= _MIN_EXPECTED or (censored_expected > 0 and not len(cells_e)):
        cells_e = np.append(cells_e, censored_expected)
        cells_o = np.append(cells_o, censored_observed)
    elif len(cells_e):
        cells_e[-1] += censored_expected
        cells_o[-1] += censored_observed
    keep = cells_e > 0
    statistic = float(np.sum((cells_o[keep] - cells_e[keep]) ** 2 / cells_e[keep]))
    dof = int(keep.sum()) - 1 - fitted
    p_value = float(stats.chi2.sf(statistic, dof)) if dof >= 1 else math.nan
    return GoodnessOfFit(statistic=statistic, dof=dof, p_value=p_value, cells=int(keep.sum()))


def _merge(expected: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merges adjacent cells, left to right, until each expects at least ``_MIN_EXPECTED``."""
    cells_e, cells_o = [], []
    run_e = run_o = 0.0
    for e, o in zip(expected, observed):
        run_e += e
        run_o += o
        if run_e >= _MIN_EXPECTED:
            cells_e.append(run_e)
            cells_o.append(run_o)
            run_e = run_o = 0.0
    if run_e > 0 or run_o > 0:
        if cells_e:
            cells_e[-1] += run_e
            cells_o[-1] += run_o
        else:
            cells_e.append(run_e)
            cells_o.append(run_o)
    return np.array(cells_e), np.array(cells_o)


__all__ = [
    "LAWS",
    "MISSPECIFIED_BELOW",
    "DemandFit",
    "DemandObservations",
    "Estimate",
    "GoodnessOfFit",
    "UnsupportedLawError",
    "compare_laws",
    "fit_demand",
    "fit_observations",
    "fitted_chain",
    "goodness_of_fit",
    "naive_observations",
    "observe_demand",
]
