"""What a censored fit of a demand engine (:mod:`.curve_fit`, :mod:`.regime_fit`) returns, and
the profile-likelihood intervals both give."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scipy import optimize, stats

from echelon.models.goodness_of_fit import PeriodCheck
from echelon.models.observations import _json_float
from echelon.sim.demand import Demand, demand_to_dict


@dataclass(frozen=True)
class EngineFit:
    """A demand engine estimated from logs by censored maximum likelihood."""

    law: Demand
    """The fitted engine, ready for a ``ChainConfig``."""
    params: dict[str, Any]
    """Its maximum-likelihood parameters, and ``mean``, its average demand per period."""
    log_likelihood: float
    aic: float
    """2 k - 2 l (k fitted parameters), comparable with :func:`.compare_laws`' i.i.d. fits of
    the same logs."""
    observations: int
    censored: int
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Profile-likelihood intervals of some parameters (see each fit)."""
    period_check: PeriodCheck | None = None
    """Each period's logged sales against what the fitted engine expects of them."""

    def to_dict(self) -> dict[str, Any]:
        return {"law": demand_to_dict(self.law),
                "params": {k: _plain(v) for k, v in self.params.items()},
                "ci": {k: [_json_float(lo), _json_float(hi)] for k, (lo, hi) in self.ci.items()},
                "log_likelihood": self.log_likelihood, "aic": self.aic,
                "observations": self.observations, "censored": self.censored,
                "period_check": self.period_check.to_dict() if self.period_check else None}


def profile_interval(profile: Callable[[float], float], estimate: float, best: float,
                     bounds: tuple[float, float], *, level: float = 0.95,
                     step: float | None = None, xtol: float = 1e-6) -> tuple[float, float]:
    """The likelihood-ratio interval of one parameter (Wilks): the values v within ``bounds``
    where ``2 (best - profile(v)) <= chi2_1^-1(level)``.

    Each end is a root of the signed root deviance ``sqrt(2 (best - profile(v))) - sqrt(chi2_1^-1
    (level))``, which is close to linear in v near a regular maximum, so that Brent's method
    needs few profile evaluations (each one a maximisation). The root is bracketed between the
    estimate and the first of ``estimate +- step, +- 2 step, +- 4 step, ...`` (the bound itself
    without a ``step``) past the cut-off; where even the bound is not, the bound is the end.

    Args:
        profile: The log-likelihood maximised over the other parameters with this one at v.
        estimate: The maximum-likelihood value of the parameter.
        best: The maximum log-likelihood, ``profile(estimate)``.
        bounds: The parameter's range.
        level: The confidence level, in (0, 1).
        step: A guess of the distance from the estimate to either end (from the curvature).
        xtol: The tolerance of each end.

    Returns:
        The interval's lower and upper ends.
    """
    cut = math.sqrt(stats.chi2.ppf(level, 1))
    known = {estimate: -cut}

    def excess(value: float) -> float:
        if value not in known:
            known[value] = math.sqrt(max(2.0 * (best - profile(value)), 0.0)) - cut
        return known[value]

    ends = []
    for side, limit in ((-1.0, bounds[0]), (1.0, bounds[1])):
        inner, distance = estimate, step
        while True:
            beyond = distance is None or side * (estimate + side * distance - limit) >= 0.0
            trial = limit if beyond else estimate + side * distance
            if excess(trial) >= 0.0:
                ends.append(float(optimize.brentq(excess, inner, trial, xtol=xtol)))
                break
            if trial == limit:
                ends.append(limit)
                break
            inner, distance = trial, 2.0 * distance
    return ends[0], ends[1]


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return _json_float(value) if isinstance(value, float) else value


__all__ = ["EngineFit", "profile_interval"]
