"""Goodness of fit of a demand law to censored logs: a Pearson chi-square over every period,
censored ones included (see :mod:`.demand_fit` for how the cells are formed) for the i.i.d. laws,
and a check period by period for the engines, whose law changes with the period."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from echelon.models.observations import DemandObservations, _json_float
from echelon.sim.demand import Demand

# Smallest expected count of a chi-square cell (Cochran's rule of thumb).
_MIN_EXPECTED = 5.0
# A goodness-of-fit p-value below this flags the law as misspecified.
MISSPECIFIED_BELOW = 0.01
# A period whose logged mean is further than this many standard errors from the model's is
# flagged: P(|z| > 3) = 0.27%, so a right model of 30 periods flags one in about 13 fits (the
# p-value of the sum of z^2, not a flag, says whether the model is rejected).
FLAGGED_BEYOND = 3.0
# The demand laws' upper tail left out of the period check's sums (P(D > that value)).
_TAIL = 1e-12


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


@dataclass(frozen=True)
class PeriodCheck:
    """Each period's logged sales against what a fitted engine expects of them, at the stock
    each logged period had (the same censoring).

    A period is checked where the model expects at least 5 of its logged periods (Cochran's
    rule, as ``_MIN_EXPECTED``) to see demand below the stock; in the others the sales are
    nearly always the stock, their sum is far from normal, and z is NaN (so are the observed and
    expected means where nothing was logged)."""

    observed: np.ndarray
    """(T,) mean logged retail sales in period n (demand itself in backlog logs)."""
    expected: np.ndarray
    """(T,) the model's mean of ``E[min(D_n, c)]`` over the same logged periods (stock c)."""
    standard_error: np.ndarray
    """(T,) the model's standard deviation of ``observed``."""
    z: np.ndarray
    """(T,) ``(observed - expected) / standard_error`` in the periods checked."""
    statistic: float
    """The sum of z^2 over the periods checked."""
    dof: int
    """The number of periods checked."""
    p_value: float
    """Upper tail of chi2(dof) at the statistic."""

    @property
    def flagged(self) -> list[int]:
        """The periods whose |z| exceeds ``FLAGGED_BEYOND``."""
        with np.errstate(invalid="ignore"):
            return [int(n) for n in np.flatnonzero(np.abs(self.z) > FLAGGED_BEYOND)]

    @property
    def misspecified(self) -> bool:
        """Whether the model is rejected at the 1% level (``MISSPECIFIED_BELOW``)."""
        return bool(self.p_value < MISSPECIFIED_BELOW)

    def summary(self) -> str:
        """One line: the statistic, its p-value and the flagged periods with their z."""
        flagged = (", ".join(f"{n} ({self.z[n]:+.1f})" for n in self.flagged)
                   or f"none beyond {FLAGGED_BEYOND:g} standard errors")
        return (f"per-period check: sum of z^2 {self.statistic:.1f} over {self.dof} periods, "
                f"p {self.p_value:.3g}; flagged periods (z): {flagged}")

    def to_dict(self) -> dict[str, Any]:
        def plain(values: np.ndarray) -> list[float | None]:
            return [_json_float(float(v)) for v in values]

        return {"statistic": self.statistic, "dof": self.dof,
                "p_value": _json_float(self.p_value), "flagged": self.flagged,
                "misspecified": self.misspecified, "observed": plain(self.observed),
                "expected": plain(self.expected), "standard_error": plain(self.standard_error),
                "z": plain(self.z)}


def check_periods(obs: DemandObservations, components: Sequence[Any], weights: np.ndarray,
                  horizon: int) -> PeriodCheck:
    """Compares each period's logged sales with what a fitted model expects under the same
    censoring.

    Logged period m (period n_m, stock c_m, demand D_m) shows the sales ``Y_m = min(D_m, c_m)``
    (the demand itself where c_m is infinite). The model's law of D_m is the mixture
    ``sum_j w_mj F_j`` of the ``components`` F_j, so that ``E[Y_m] = sum_{k=1}^{c_m} P(D_m >= k)``
    and ``E[Y_m^2] = sum_{k=1}^{c_m} (2k - 1) P(D_m >= k)``. Period n's z is ``(sum Y_m - sum
    E[Y_m]) / sqrt(sum Var[Y_m])`` over its logged periods (episodes independent), and the sum
    of z^2 over the periods checked (see :class:`PeriodCheck`) is compared with chi2 of as many
    degrees of freedom. The weights may depend on the episode's earlier logs, as the stock c_m
    does: each Y_m is then compared with its law given that past, and the z are uncorrelated
    under the model. The parameters fitted to the same logs lower the statistic a little, so
    that the test is slightly conservative.

    Args:
        obs: The observations, with their periods.
        components: (C) frozen ``scipy.stats`` discrete laws.
        weights: (M, C) the model's probability that observation m's demand follows each.
        horizon: The number of periods T.

    Returns:
        The check.
    """
    top = max(int(law.isf(_TAIL)) for law in components) + 1
    k = np.arange(1, top + 1, dtype=np.float64)
    with np.errstate(under="ignore"):
        survival = np.array([law.sf(k - 1.0) for law in components])  # (C, top) P(D >= k)
    ones, zero = np.ones((len(components), 1)), np.zeros((len(components), 1))
    first = np.concatenate([zero, np.cumsum(survival, axis=1)], axis=1)  # E[min(D, c)], c = 0..top
    second = np.concatenate([zero, np.cumsum((2.0 * k - 1.0) * survival, axis=1)], axis=1)
    reaches = np.concatenate([ones, survival], axis=1)  # P(D >= c), c = 0..top
    stock = np.where(np.isfinite(obs.available), obs.available, top)
    cap = np.clip(np.rint(stock), 0, top).astype(np.int64)
    mean = np.einsum("mc,cm->m", weights, first[:, cap])
    variance = np.maximum(np.einsum("mc,cm->m", weights, second[:, cap]) - mean ** 2, 0.0)
    short = 1.0 - np.einsum("mc,cm->m", weights, reaches[:, cap])  # P(D < c)

    def per_period(values: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(obs.periods.astype(np.int64), weights=values, minlength=horizon)

    count, logged = per_period().astype(np.float64), per_period(obs.values)
    expected = per_period(mean)
    spread = np.sqrt(per_period(variance))
    checked = (per_period(short) >= _MIN_EXPECTED) & (spread > 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(checked, (logged - expected) / spread, np.nan)
        statistic, dof = float(np.sum(z[checked] ** 2)), int(checked.sum())
        return PeriodCheck(observed=logged / count, expected=expected / count,
                           standard_error=spread / count, z=z, statistic=statistic, dof=dof,
                           p_value=float(stats.chi2.sf(statistic, dof)) if dof else math.nan)
