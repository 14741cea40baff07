"""Where regime-switching demand is heading, given what the retailer has seen of it so far.

The ``regimes`` engine (:class:`~echelon.sim.demand.MarkovModulated`) hides its regime; the
retailer sees each period's demand, or in lost-sales chains only the sales where it sold out
(demand at least the sales: :func:`~echelon.sim.core.observed_demand`). The forward filter turns
that history into the probability of each regime now, and :func:`sample_given` draws the rest of
the horizon from it: what a planner conditioned on the history plans for (the rolling scenario
LP's ``history`` option), where unconditional draws from the engine plan for the average path.

The emission of a period in regime k is the Poisson probability of the exact demand, or
``P(D >= sales)`` where the period was censored: the same censored likelihood the regime fit
(:mod:`echelon.models.regime_fit`) maximises.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from echelon.sim.demand import MarkovModulated


def emission_probabilities(rates: np.ndarray, values: np.ndarray,
                           censored: np.ndarray) -> np.ndarray:
    """(..., K) the probability of each period's observation in each regime.

    Args:
        rates: (K,) the regimes' Poisson rates.
        values: (...) demand, or sales where censored.
        censored: (...) whether demand is only known to be at least the value.
    """
    with np.errstate(divide="ignore", under="ignore"):
        return np.where(censored[..., None],
                        stats.poisson.sf(values[..., None] - 1, rates),
                        stats.poisson.pmf(values[..., None], rates))


def forward_pass(emit: np.ndarray, transition: np.ndarray,
                 start: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The forward recursion over every episode at once (normalised every period).

    Args:
        emit: (E, T, K) each period's probability in each regime.
        transition: (K, K) the regime's transition matrix.
        start: (K,) the first period's regime probabilities.

    Returns:
        The log-likelihood (-inf where an episode is impossible), and (E, T, K) the regime
        probabilities given the episode's periods up to n (filtered) and before n (predicted),
        and (E, T) each period's normaliser.
    """
    filtered, predicted = np.empty_like(emit), np.empty_like(emit)
    scale = np.empty(emit.shape[:2])
    predicted[:, 0] = start
    for n in range(emit.shape[1]):
        if n:
            predicted[:, n] = filtered[:, n - 1] @ transition
        alpha = predicted[:, n] * emit[:, n]
        scale[:, n] = alpha.sum(axis=1)
        if np.any(scale[:, n] <= 0.0):
            return -math.inf, filtered, predicted, scale
        filtered[:, n] = alpha / scale[:, n, None]
    return float(np.log(scale).sum()), filtered, predicted, scale


def regime_now(engine: MarkovModulated, values: np.ndarray, censored: np.ndarray) -> np.ndarray:
    """(N, K) the probability of each regime in the period after the observed ones.

    The forward recursion (:func:`forward_pass`) from the engine's first-period distribution,
    then one step of the transition matrix. An observation the engine gives no probability in
    any regime (a demand of 50 where every rate is 0) carries no information: its emissions are
    floored at the smallest positive float, so the filter passes over it instead of dividing by
    zero.

    Args:
        engine: The regime-switching law (fitted or true).
        values: (N, n) demand, or sales where censored, of periods 0 .. n-1 (n may be 0).
        censored: (N, n) whether each is censored.
    """
    matrix = np.asarray(engine.transition)
    episodes, periods = np.shape(values)
    if not periods:
        return np.broadcast_to(engine.start(), (episodes, len(engine.rates))).copy()
    emit = emission_probabilities(np.asarray(engine.rates), np.asarray(values, dtype=np.float64),
                                  np.asarray(censored))
    filtered = forward_pass(np.maximum(emit, np.finfo(np.float64).tiny), matrix, engine.start())[1]
    return filtered[:, -1] @ matrix


def sample_given(engine: MarkovModulated, rng: np.random.Generator, values: np.ndarray,
                 censored: np.ndarray, count: int, horizon: int) -> np.ndarray:
    """(N, count, horizon) demand paths of the next ``horizon`` periods given each history.

    Each path's first regime is drawn from :func:`regime_now`, the rest from the transition
    matrix, and each period's demand from its regime's Poisson law, all from ``rng``.
    """
    belief = regime_now(engine, values, censored)
    episodes, regimes = belief.shape
    rates = np.asarray(engine.rates)
    cumulative = np.cumsum(np.asarray(engine.transition), axis=1)
    cumulative[:, -1] = 1.0  # rounding must not leave a draw of 0.9999999 without a regime
    first = np.cumsum(belief, axis=1)
    first[:, -1] = 1.0
    regime = np.empty((episodes, count, horizon), dtype=np.int64)
    if horizon:
        draws = rng.random((episodes, count))
        regime[:, :, 0] = (draws[..., None] >= first[:, None, :]).sum(axis=2)
    for n in range(1, horizon):
        draws = rng.random((episodes, count))
        regime[:, :, n] = (draws[..., None] >= cumulative[regime[:, :, n - 1]]).sum(axis=2)
    return rng.poisson(rates[regime]).astype(np.float64)


__all__ = ["emission_probabilities", "forward_pass", "regime_now", "sample_given"]
