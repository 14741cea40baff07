"""Censored maximum likelihood of a demand curve: a level, a season of known length and a trend,
with Poisson or negative binomial counts (the ``curve`` engine of :mod:`echelon.sim.demand`).

Each period n has the mean ``level * (1 + amplitude * sin(2 pi (n - phase) / season)) *
max(1 + trend * n, 0)``; the likelihood multiplies, over the logged periods, the probability of
the exact demand where the retailer did not sell out, and ``P(D >= sales)`` where it did (the
same censoring as :mod:`.demand_fit`). The maximum is found by L-BFGS-B from several phases (the
likelihood is not concave in the phase); the intervals of the level, the amplitude and the trend
are profile-likelihood intervals (the other parameters maximised at each point). Each period's
logged sales are then checked against the fitted period-n law at the logged stock
(:func:`.check_periods`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from echelon.data.dataset import OfflineDataset
from echelon.models.engine_fit import EngineFit, profile_interval
from echelon.models.goodness_of_fit import check_periods
from echelon.models.observations import observe_demand
from echelon.sim.demand import MeanCurve

COUNT_LAWS = ("poisson", "negative-binomial")
# The phase is searched from this many starts spread over the season (the likelihood has one
# local maximum per half-season shift of the phase and the amplitude's sign).
_PHASE_STARTS = 4
# Dispersion bounds of the negative binomial counts (as in :mod:`.censored_mle`).
_LOG_DISPERSION = (math.log(1e-3), math.log(1e6))


class CurveFit(EngineFit):
    """A demand curve estimated from logs: ``params`` holds the level, amplitude, phase, trend
    (and dispersion) and ``mean``, the curve's average over the horizon; ``ci`` the
    profile-likelihood intervals of the level, the amplitude and the trend; ``period_check``
    each period's sales against the fitted law of that period."""

    @property
    def name(self) -> str:
        return f"curve ({'negative binomial' if self.law.dispersion else 'Poisson'} counts)"


class _Grouped:
    """The observations grouped by (period, value, censored): each distinct one once."""

    def __init__(self, periods: np.ndarray, values: np.ndarray, censored: np.ndarray) -> None:
        keys = np.stack([periods, np.rint(values), censored.astype(np.float64)], axis=1)
        unique, weight = np.unique(keys, axis=0, return_counts=True)
        self.period, self.value = unique[:, 0], unique[:, 1]
        self.censored = unique[:, 2] > 0.5
        self.weight = weight.astype(np.float64)

    def log_likelihood(self, means: np.ndarray, dispersion: float | None) -> float:
        law = _counts(means[self.period.astype(np.int64)], dispersion)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            terms = np.where(self.censored, law.logsf(self.value - 1), law.logpmf(self.value))
        value = float(self.weight @ terms)
        return value if math.isfinite(value) else -1e300


def _counts(means: np.ndarray, dispersion: float | None) -> stats.rv_discrete:
    """The count laws (frozen, one per mean): Poisson, or negative binomial of that dispersion."""
    mu = np.maximum(means, 1e-12)
    return (stats.poisson(mu) if dispersion is None
            else stats.nbinom(dispersion, dispersion / (dispersion + mu)))


def fit_curve(data: OfflineDataset, season: int, *, counts: str = "poisson",
              trend: bool = True, level: float = 0.95) -> CurveFit:
    """Fits the ``curve`` engine to a dataset's logs by censored maximum likelihood.

    Args:
        data: The dataset (lost-sales logs are censored where the retailer sold out).
        season: The season's length in periods, >= 2 (0: no season).
        counts: ``poisson`` or ``negative-binomial``.
        trend: Fit a linear trend (else it is 0).
        level: Confidence level of the intervals, in (0, 1).

    Raises:
        ValueError: If an argument is out of range, or no period observed demand exactly.
    """
    if counts not in COUNT_LAWS:
        raise ValueError(f"counts must be one of {list(COUNT_LAWS)}, got {counts!r}")
    if isinstance(season, bool) or not isinstance(season, int) or season == 1 or season < 0:
        raise ValueError(f"season must be an integer >= 2 (0: none), got {season!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    obs = observe_demand(data)
    if not np.any(~obs.censored):
        raise ValueError("no period with exactly observed demand: the retailer sold out in "
                         "every period, so no curve is identified")
    grouped = _Grouped(obs.periods, obs.values, obs.censored)
    horizon = data.chain.periods
    n = np.arange(horizon, dtype=np.float64)
    largest = float(obs.values.max())
    names = ["level", "amplitude", "phase", "trend"] + (["log_dispersion"] if counts != "poisson" else [])
    bounds = {"level": (1e-6, 10.0 * largest + 10.0), "amplitude": (0.0, 0.999),
              "phase": (0.0, float(max(season, 1))),
              "trend": ((-1.0 / max(horizon - 1, 1) + 1e-6, 1.0) if trend else (0.0, 0.0)),
              "log_dispersion": _LOG_DISPERSION}
    if not season:
        bounds["amplitude"] = bounds["phase"] = (0.0, 0.0)

    def curve(theta: dict[str, float]) -> np.ndarray:
        means = np.full(horizon, theta["level"])
        if season:
            means *= 1.0 + theta["amplitude"] * np.sin(2.0 * np.pi * (n - theta["phase"]) / season)
        return means * np.maximum(1.0 + theta["trend"] * n, 0.0)

    def loglik(theta: dict[str, float]) -> float:
        dispersion = math.exp(theta["log_dispersion"]) if "log_dispersion" in theta else None
        return grouped.log_likelihood(curve(theta), dispersion)

    def maximise(fixed: dict[str, float], starts: list[dict[str, float]]) -> tuple[dict, float]:
        free = [name for name in names if name not in fixed]
        best: tuple[dict, float] = ({}, -math.inf)
        for start in starts:
            result = optimize.minimize(
                lambda x: -loglik({**fixed, **dict(zip(free, x))}),
                [start[name] for name in free], method="L-BFGS-B",
                bounds=[bounds[name] for name in free])
            if -result.fun > best[1]:
                best = ({**fixed, **dict(zip(free, result.x))}, float(-result.fun))
        return best

    exact_mean = float(np.mean(obs.values[~obs.censored]))
    starts = [{"level": max(exact_mean, 1e-3), "amplitude": 0.3 if season else 0.0,
               "phase": season * j / _PHASE_STARTS if season else 0.0, "trend": 0.0,
               "log_dispersion": math.log(10.0)} for j in range(_PHASE_STARTS if season else 1)]
    theta, best = maximise({}, starts)
    ci = {}
    for name in ("level", "amplitude", "trend"):
        if bounds[name][0] == bounds[name][1]:
            continue

        def profile(value: float, name: str = name) -> float:
            return maximise({name: value}, [theta])[1]

        ci[name] = profile_interval(profile, theta[name], best, bounds[name], level=level)
    dispersion = math.exp(theta["log_dispersion"]) if "log_dispersion" in theta else None
    law = MeanCurve(level=float(theta["level"]), season=season,
                    amplitude=float(theta["amplitude"]), phase=float(theta["phase"]) % max(season, 1),
                    trend=float(theta["trend"]), dispersion=dispersion)
    params = {"level": law.level, "amplitude": law.amplitude, "phase": law.phase,
              "trend": law.trend, "mean": float(np.mean(law.mean_curve(horizon)))}
    if dispersion is not None:
        params["dispersion"] = dispersion
    k = sum(1 for name in names if bounds[name][0] != bounds[name][1])
    each_period = [_counts(np.array(mu), dispersion) for mu in law.mean_curve(horizon)]
    check = check_periods(obs, each_period, np.eye(horizon)[obs.periods], horizon)
    return CurveFit(law=law, params=params, log_likelihood=best, aic=2.0 * k - 2.0 * best,
                    observations=len(obs.values), censored=int(obs.censored.sum()), ci=ci,
                    period_check=check)


__all__ = ["COUNT_LAWS", "CurveFit", "fit_curve"]
