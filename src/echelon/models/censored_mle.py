"""Censored maximum-likelihood estimators of the i.i.d. demand laws, with profile-likelihood
intervals: one fitter per law (the method is described in :mod:`.demand_fit`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from echelon.models.goodness_of_fit import GoodnessOfFit, goodness_of_fit
from echelon.models.observations import DemandObservations, _Counts, _json_float
from echelon.sim.demand import (
    Binomial,
    Demand,
    DiscreteUniform,
    Geometric,
    NegativeBinomial,
    Poisson,
    demand_to_dict,
)


# Free parameters of each law, for AIC and the chi-square's degrees of freedom.
_PARAMETERS = {"poisson": 1, "binomial": 2, "uniform": 2, "geometric": 1, "negative-binomial": 2}
# Search caps: binomial n up to 64 times the largest observation; uniform high up to this many
# units above the smallest feasible value (and at least 5 times the observed range).
_BINOMIAL_CAP = 64.0
_UNIFORM_SPAN = 200
# The negative binomial's dispersion k is searched in log k over [1e-3, 1e6]: at k = 1e6 the law
# is Poisson to within one part in 10^4 of the variance for means up to 100, so a maximum there
# says the data are not over-dispersed.
_DISPERSION_RANGE = (math.log(1e-3), math.log(1e6))


class UnsupportedLawError(ValueError):
    """The observations are impossible under a law (e.g. exact zero demand for a geometric law)."""


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


def _fit_negative_binomial(counts: _Counts, threshold: float):
    """Mean mu and dispersion k by profile likelihood: for each log k, the best mu (Brent);
    then the best log k. Each parameter's interval is that of its profile."""

    def loglik(mu: float, log_k: float) -> float:
        k = math.exp(log_k)
        return counts.log_likelihood(stats.nbinom, k, k / (k + mu))

    mu_range = (1e-9, 10.0 * counts.largest + 10.0)

    def best_mu(log_k: float) -> tuple[float, float]:
        return _maximise(lambda mu: loglik(mu, log_k), *mu_range)

    def profile_k(log_k: float) -> float:
        return best_mu(log_k)[1]

    def profile_mu(mu: float) -> float:
        return _maximise(lambda log_k: loglik(mu, log_k), *_DISPERSION_RANGE)[1]

    log_k, best = _maximise(profile_k, *_DISPERSION_RANGE)
    mu = best_mu(log_k)[0]
    mu_ci = _interval(profile_mu, mu, best, *mu_range, threshold)
    low_k, high_k = _interval(profile_k, log_k, best, *_DISPERSION_RANGE, threshold)
    notes = []
    if high_k >= _DISPERSION_RANGE[1]:
        notes.append("negative binomial dispersion's interval is unbounded above: the data are "
                     "not shown to be over-dispersed, and the law may be the Poisson law")
    k_ci = (math.exp(low_k), math.inf if high_k >= _DISPERSION_RANGE[1] else math.exp(high_k))
    k = math.exp(log_k)
    se = {"mu": _standard_error(profile_mu, mu, *mu_range)}
    se["mean"] = se["mu"]
    return (NegativeBinomial(mu, k), {"mu": mu, "dispersion": k, "mean": mu},
            {"mu": mu_ci, "dispersion": k_ci, "mean": mu_ci}, se, best, notes)


_FITTERS = {"poisson": _fit_poisson, "binomial": _fit_binomial, "uniform": _fit_uniform,
            "geometric": _fit_geometric, "negative-binomial": _fit_negative_binomial}
