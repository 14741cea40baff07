"""Goodness of fit of a demand law to censored logs: a Pearson chi-square over every period,
censored ones included (see :mod:`.demand_fit` for how the cells are formed)."""

from __future__ import annotations

import math
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
