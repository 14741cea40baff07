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

from dataclasses import dataclass
from typing import Any

import numpy as np

from echelon.data.dataset import OfflineDataset
from echelon.models.censored_mle import _FITTERS, Estimate, UnsupportedLawError, _estimate
from echelon.models.goodness_of_fit import MISSPECIFIED_BELOW, GoodnessOfFit, goodness_of_fit
from echelon.models.observations import DemandObservations, naive_observations, observe_demand
from echelon.sim.config import ChainConfig

LAWS = tuple(_FITTERS)
"""The laws :func:`fit_demand` estimates (the i.i.d. laws of :mod:`echelon.sim.demand`): poisson,
binomial, uniform, geometric, negative-binomial. A law is added by its fitter in
:mod:`.censored_mle`."""


# --- results ----------------------------------------------------------------------------------


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
