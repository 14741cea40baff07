"""Censored maximum likelihood of regime-switching demand (the ``regimes`` engine of
:mod:`echelon.sim.demand`): Poisson demand whose rate follows a hidden Markov chain of K regimes.

The likelihood of each logged episode sums over the hidden regime paths by the forward
recursion (Rabiner's alpha pass, normalised every period), with each period's emission the
Poisson probability of the exact demand where the retailer did not sell out and ``P(D >= sales)``
where it did (the censoring of :mod:`.demand_fit`). The first period's regime follows the chain's
stationary distribution. The parameters are found by L-BFGS-B from several starts, on an
unconstrained scale: the log of each rate, the logit of each regime's probability of staying, and
the log-ratios of the probabilities of leaving for each other regime. The gradient is exact: the
backward (beta) pass gives each period's regime posterior and each transition's expected count
(Rabiner 1989, eqs. 27 and 37), and the stationary start's derivative is ``dpi = pi dP Z`` with
``Z = (I - P + 1 pi)^-1``, the chain's fundamental matrix (Kemeny and Snell 1960). The regimes are
named by increasing rate afterwards.

Each rate and each probability of staying gets a profile-likelihood interval
(:func:`.profile_interval`), searched on the same scale from the curvature's guess; each period's
logged sales are checked against the fitted law given the episode's earlier logs
(:func:`.check_periods`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special, stats

from echelon.data.dataset import OfflineDataset
from echelon.models.engine_fit import EngineFit, profile_interval
from echelon.models.goodness_of_fit import check_periods
from echelon.models.observations import observe_demand
from echelon.sim.demand import MarkovModulated, stationary_distribution
from echelon.sim.regime_filter import forward_pass

# Starts of the search: the regimes' rates spread over these quantiles of the exact demands, each
# with these probabilities of staying in a regime.
_RATE_QUANTILES = ((0.2, 0.8), (0.35, 0.65))
_STAY = (0.9, 0.7)
# The profiled parameters' range on the search scale: rates in [1e-6, 10 x the largest value + 10]
# and probabilities of staying within 2e-9 of 0 and 1 (no 30-period episode tells them apart).
_LOG_RATE_LOW = math.log(1e-6)
_STAY_LOGIT = 20.0
# Tolerance of the interval ends on the search scale: 0.1% of a rate.
_INTERVAL_XTOL = 1e-3
# Step of the central differences of the gradient that give the curvature at the maximum.
_CURVATURE_STEP = 1e-4


class RegimeFit(EngineFit):
    """Regime-switching demand estimated from logs: ``params`` holds the ``rates`` and the
    ``transition`` matrix (lists) and ``mean``, the long-run mean; ``ci`` the profile-likelihood
    intervals of each regime's rate (``rates[i]``) and probability of staying
    (``transition[i][i]``); ``period_check`` each period's sales against the fitted law given
    the episode's earlier logs."""

    @property
    def name(self) -> str:
        return f"regimes ({len(self.law.rates)})"


class _Episodes:
    """(E, T) demand information per episode: values, censored flags and the periods logged
    (every one: a period missing from an episode would break its chain of regimes)."""

    def __init__(self, data: OfflineDataset) -> None:
        obs = observe_demand(data)
        if len(obs.values) != len(data):
            raise ValueError("regime fits need every period of every episode logged")
        shape = (data.episodes, data.chain.periods)
        self.obs, self.rows = obs, (data.episode_ids, obs.periods)
        self.values, logged = np.zeros(shape), np.zeros(shape, dtype=bool)
        censored = np.zeros(shape, dtype=bool)
        self.values[self.rows] = obs.values
        censored[self.rows] = obs.censored
        logged[self.rows] = True
        self.exact, self.censored = logged & ~censored, logged & censored
        self.log_factorial = special.gammaln(self.values[self.exact] + 1.0)[:, None]

    def emissions(self, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(E, T, K) each period's probability in each regime, and its log's derivative in the
        regime's rate (1 and 0 in periods not logged)."""
        emit = np.ones((*self.values.shape, len(rates)))
        slope = np.zeros_like(emit)
        y = self.values[self.exact][:, None]
        emit[self.exact] = np.exp(special.xlogy(y, rates) - rates - self.log_factorial)
        slope[self.exact] = y / rates - 1.0
        c = self.values[self.censored][:, None]
        with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
            tail = special.gammainc(c, rates)  # P(D >= c), 1 at c = 0
            density = np.exp(special.xlogy(c - 1.0, rates) - rates - special.gammaln(c))  # P(c-1)
            slope[self.censored] = np.where(tail > 0.0, density / tail, 0.0)
        emit[self.censored] = tail
        return emit, slope


def _unpack(theta: np.ndarray, regimes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rates, (K, K) transitions and (K, K-1) shares of each row's leaving probability among
    the other regimes, from the search scale [log rates (K), stay logits (K), share log-ratios
    (K, K-2) against each row's first other regime]."""
    rates = np.exp(theta[:regimes])
    stay = special.expit(theta[regimes:2 * regimes])
    ratios = theta[2 * regimes:].reshape(regimes, regimes - 2)
    shares = special.softmax(np.concatenate([np.zeros((regimes, 1)), ratios], axis=1), axis=1)
    transition = np.diag(stay)
    transition[~np.eye(regimes, dtype=bool)] = ((1.0 - stay)[:, None] * shares).ravel()
    return rates, transition, shares


def _pack(rates: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """The search scale's point of these rates and transitions (the inverse of ``_unpack``)."""
    regimes = len(rates)
    tiny = np.finfo(np.float64).tiny
    leave = np.maximum(transition[~np.eye(regimes, dtype=bool)].reshape(regimes, regimes - 1), tiny)
    return np.concatenate([np.log(rates), special.logit(np.diag(transition)),
                           np.log(leave[:, 1:] / leave[:, :1]).ravel()])


def _log_likelihood(theta: np.ndarray, episodes: _Episodes,
                    regimes: int) -> tuple[float, np.ndarray]:
    """The log-likelihood and its gradient on the search scale."""
    rates, transition, shares = _unpack(theta, regimes)
    start = stationary_distribution(transition)
    emit, slope = episodes.emissions(rates)
    value, filtered, _, scale = forward_pass(emit, transition, start)
    if not math.isfinite(value):
        return -1e300, np.zeros_like(theta)
    d_rates, d_transition = np.zeros(regimes), np.zeros((regimes, regimes))
    beta = np.ones(emit.shape[::2])  # (E, K) the backward pass, scaled like the forward one
    with np.errstate(over="ignore", invalid="ignore"):
        for n in range(emit.shape[1] - 1, -1, -1):
            d_rates += np.sum(filtered[:, n] * beta * slope[:, n], axis=0)  # posterior x d log e
            weighted = emit[:, n] * beta / scale[:, n, None]
            if n:
                d_transition += filtered[:, n - 1].T @ weighted
                beta = weighted @ transition.T
    if not (np.all(np.isfinite(d_rates)) and np.all(np.isfinite(d_transition))):
        # The backward pass overflowed: a regime the past all but rules out explains the
        # future far better (only near the edge of the parameters); the search backs off.
        return -1e300, np.zeros_like(theta)
    fundamental = np.linalg.inv(np.eye(regimes) - transition + start[None, :])
    d_transition += np.outer(start, fundamental @ weighted.sum(axis=0))  # via the start
    stay = np.diag(transition)
    others = ~np.eye(regimes, dtype=bool)
    d_leave = d_transition[others].reshape(regimes, regimes - 1)
    mixed = np.sum(d_leave * shares, axis=1)
    d_stay = stay * (1.0 - stay) * (np.diag(d_transition) - mixed)
    d_ratios = ((1.0 - stay)[:, None] * shares * (d_leave - mixed[:, None]))[:, 1:]
    return value, np.concatenate([rates * d_rates, d_stay, d_ratios.ravel()])


def fit_regimes(data: OfflineDataset, regimes: int = 2, *, level: float = 0.95) -> RegimeFit:
    """Fits the ``regimes`` engine to a dataset's logs by censored maximum likelihood.

    Args:
        data: The dataset (lost-sales logs are censored where the retailer sold out).
        regimes: Number of regimes K, >= 2.
        level: Confidence level of the intervals, in (0, 1).

    Raises:
        ValueError: If ``regimes`` or ``level`` is out of range, an episode misses a period, or
            no period observed demand exactly.
    """
    if isinstance(regimes, bool) or not isinstance(regimes, int) or not 2 <= regimes <= 6:
        raise ValueError(f"regimes must be an integer in [2, 6], got {regimes!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    episodes = _Episodes(data)
    obs = episodes.obs
    exact = obs.values[~obs.censored]
    if not len(exact):
        raise ValueError("no period with exactly observed demand: the retailer sold out in "
                         "every period, so no rate is identified")

    def objective(x: np.ndarray, fixed: int | None = None,
                  value: float = 0.0) -> tuple[float, np.ndarray]:
        """Minus the log-likelihood and its gradient, in the free coordinates with coordinate
        ``fixed`` held at ``value``."""
        theta = x if fixed is None else np.insert(x, fixed, value)
        ll, gradient = _log_likelihood(theta, episodes, regimes)
        return -ll, -(gradient if fixed is None else np.delete(gradient, fixed))

    best = None
    for quantiles in _RATE_QUANTILES:
        rates = np.quantile(exact, np.linspace(*quantiles, regimes)) + 0.5
        steps = np.maximum(np.diff(np.concatenate([[0.0], np.maximum.accumulate(rates)])), 0.5)
        for stay in _STAY:
            start = np.concatenate([np.log(np.cumsum(steps)), np.full(regimes, special.logit(stay)),
                                    np.zeros(regimes * (regimes - 2))])
            result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B")
            if best is None or result.fun < best.fun:
                best = result
    rates, transition, _ = _unpack(best.x, regimes)
    order = np.argsort(rates)  # regimes named by increasing rate
    rates, transition = rates[order], transition[np.ix_(order, order)]
    theta, ll = _pack(rates, transition), float(-best.fun)
    ci = _intervals(objective, theta, ll, regimes, float(obs.values.max()), level)
    law = MarkovModulated(rates=tuple(float(r) for r in rates),
                          transition=tuple(tuple(float(p) for p in row) for row in transition))
    emit, _ = episodes.emissions(rates)
    predicted = forward_pass(emit, transition, stationary_distribution(transition))[2]
    check = check_periods(obs, [stats.poisson(rate) for rate in rates],
                          predicted[episodes.rows], data.chain.periods)
    k = regimes + regimes * (regimes - 1)
    return RegimeFit(law=law, params={"rates": list(law.rates),
                                      "transition": [list(r) for r in law.transition],
                                      "mean": law.mean},
                     log_likelihood=ll, aic=2.0 * k - 2.0 * ll, observations=len(obs.values),
                     censored=int(obs.censored.sum()), ci=ci, period_check=check)


def _intervals(objective, theta: np.ndarray, best: float, regimes: int, largest: float,
               level: float) -> dict[str, tuple[float, float]]:
    """Profile-likelihood intervals of each rate and each probability of staying.

    Each is searched on the search scale (log rate, stay logit), where the profile is closer to
    quadratic, from the Wald guess of its ends (the inverse curvature at the maximum), each
    maximisation starting from the nearest point maximised before.
    """
    step = _CURVATURE_STEP
    columns = [(objective(theta - step * e)[1] - objective(theta + step * e)[1]) / (2.0 * step)
               for e in np.eye(len(theta))]  # the Hessian of the log-likelihood, by columns
    information = -0.5 * (np.array(columns) + np.array(columns).T)
    try:
        np.linalg.cholesky(information)
        spread = np.sqrt(np.diag(np.linalg.inv(information)))
    except np.linalg.LinAlgError:  # not a regular maximum: search from unit steps
        spread = np.ones(len(theta))
    cut = math.sqrt(stats.chi2.ppf(level, 1))
    ci = {}
    for j in range(2 * regimes):
        tried: dict[float, np.ndarray] = {theta[j]: np.delete(theta, j)}

        def profile(value: float, j: int = j, tried: dict = tried) -> float:
            nearest = tried[min(tried, key=lambda v: abs(v - value))]
            result = optimize.minimize(objective, nearest, args=(j, value), jac=True,
                                       method="L-BFGS-B")
            tried[value] = result.x
            return float(-result.fun)

        if j < regimes:
            bounds = (_LOG_RATE_LOW, math.log(10.0 * largest + 10.0))
        else:
            bounds = (-_STAY_LOGIT, _STAY_LOGIT)
        low, high = profile_interval(profile, theta[j], best, bounds, level=level,
                                     step=cut * spread[j], xtol=_INTERVAL_XTOL)
        if j < regimes:
            ci[f"rates[{j}]"] = (math.exp(low), math.exp(high))
        else:
            i = j - regimes
            ci[f"transition[{i}][{i}]"] = (float(special.expit(low)), float(special.expit(high)))
    return ci


__all__ = ["RegimeFit", "fit_regimes"]
