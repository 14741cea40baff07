"""Censored maximum likelihood of regime-switching demand (the ``regimes`` engine of
:mod:`echelon.sim.demand`): Poisson demand whose rate follows a hidden Markov chain of K regimes.

The likelihood of each logged episode sums over the hidden regime paths by the forward
recursion (Rabiner's alpha pass, normalised every period), with each period's emission the
Poisson probability of the exact demand where the retailer did not sell out and ``P(D >= sales)``
where it did (the censoring of :mod:`.demand_fit`). The first period's regime follows the chain's
stationary distribution. The rates (kept in increasing order, which names the regimes) and the
transition probabilities are found by L-BFGS-B on unconstrained parameters from several starts.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special, stats

from echelon.data.dataset import OfflineDataset
from echelon.models.engine_fit import EngineFit
from echelon.models.observations import observe_demand
from echelon.sim.demand import MarkovModulated, stationary_distribution

# Starts of the search: the regimes' rates spread over these quantiles of the exact demands, each
# with these probabilities of staying in a regime.
_RATE_QUANTILES = ((0.2, 0.8), (0.35, 0.65))
_STAY = (0.9, 0.7)


class RegimeFit(EngineFit):
    """Regime-switching demand estimated from logs: ``params`` holds the ``rates`` and the
    ``transition`` matrix (lists) and ``mean``, the long-run mean; no intervals yet."""

    @property
    def name(self) -> str:
        return f"regimes ({len(self.law.rates)})"


def _episodes(data: OfflineDataset):
    """(E, T) demand information per episode: values, censored flags and a mask of the periods
    logged (lost-sales logs only: backlog logs recover demand exactly, and a period missing from
    an episode would break its chain of regimes)."""
    obs = observe_demand(data)
    if len(obs.values) != len(data):
        raise ValueError("regime fits need every period of every episode logged")
    episodes, periods = data.episodes, data.chain.periods
    values = np.zeros((episodes, periods))
    censored = np.zeros((episodes, periods), dtype=bool)
    logged = np.zeros((episodes, periods), dtype=bool)
    values[data.episode_ids, obs.periods] = obs.values
    censored[data.episode_ids, obs.periods] = obs.censored
    logged[data.episode_ids, obs.periods] = True
    return obs, values, censored, logged


def _unpack(x: np.ndarray, regimes: int) -> tuple[np.ndarray, np.ndarray]:
    """Rates (increasing: the first, then positive steps) and row-stochastic transitions."""
    rates = np.cumsum(np.exp(x[:regimes]))
    logits = x[regimes:].reshape(regimes, regimes - 1)
    full = np.zeros((regimes, regimes))
    for i in range(regimes):  # the diagonal is the reference of each row's softmax
        full[i, np.arange(regimes) != i] = logits[i]
    return rates, special.softmax(full, axis=1)


def _log_likelihood(rates: np.ndarray, transition: np.ndarray, values: np.ndarray,
                    censored: np.ndarray, logged: np.ndarray) -> float:
    """The forward recursion over every episode at once."""
    with np.errstate(divide="ignore", under="ignore"):
        emit = np.where(censored[..., None],
                        stats.poisson.sf(values[..., None] - 1, rates),
                        stats.poisson.pmf(values[..., None], rates))  # (E, T, K)
    emit = np.where(logged[..., None], emit, 1.0)
    alpha = stationary_distribution(transition) * emit[:, 0]
    total = 0.0
    for n in range(values.shape[1]):
        if n:
            alpha = (alpha @ transition) * emit[:, n]
        scale = alpha.sum(axis=1)
        if np.any(scale <= 0.0):
            return -1e300
        total += float(np.log(scale).sum())
        alpha = alpha / scale[:, None]
    return total


def fit_regimes(data: OfflineDataset, regimes: int = 2) -> RegimeFit:
    """Fits the ``regimes`` engine to a dataset's logs by censored maximum likelihood.

    Args:
        data: The dataset (lost-sales logs are censored where the retailer sold out).
        regimes: Number of regimes K, >= 2.

    Raises:
        ValueError: If ``regimes`` is out of range, an episode misses a period, or no period
            observed demand exactly.
    """
    if isinstance(regimes, bool) or not isinstance(regimes, int) or not 2 <= regimes <= 6:
        raise ValueError(f"regimes must be an integer in [2, 6], got {regimes!r}")
    obs, values, censored, logged = _episodes(data)
    exact = obs.values[~obs.censored]
    if not len(exact):
        raise ValueError("no period with exactly observed demand: the retailer sold out in "
                         "every period, so no rate is identified")

    def objective(x: np.ndarray) -> float:
        rates, transition = _unpack(x, regimes)
        return -_log_likelihood(rates, transition, values, censored, logged)

    best = None
    for quantiles in _RATE_QUANTILES:
        rates = np.quantile(exact, np.linspace(*quantiles, regimes)) + 0.5
        steps = np.diff(np.concatenate([[0.0], np.maximum.accumulate(rates)]))
        for stay in _STAY:
            leave = math.log((1.0 - stay) / (regimes - 1) / stay)
            start = np.concatenate([np.log(np.maximum(steps, 0.5)),
                                    np.full(regimes * (regimes - 1), leave)])
            result = optimize.minimize(objective, start, method="L-BFGS-B")
            if best is None or result.fun < best.fun:
                best = result
    rates, transition = _unpack(best.x, regimes)
    law = MarkovModulated(rates=tuple(float(r) for r in rates),
                          transition=tuple(tuple(float(p) for p in row) for row in transition))
    ll = float(-best.fun)
    k = regimes + regimes * (regimes - 1)
    return RegimeFit(law=law, params={"rates": list(law.rates),
                                      "transition": [list(r) for r in law.transition],
                                      "mean": law.mean},
                     log_likelihood=ll, aic=2.0 * k - 2.0 * ll, observations=len(obs.values),
                     censored=int(obs.censored.sum()))


__all__ = ["RegimeFit", "fit_regimes"]
