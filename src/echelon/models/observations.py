"""What a log says about each period's demand: exact where the stock lasted, censored (at least
the sales) where it sold out, and the counts the estimators work on (see :mod:`.demand_fit`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from echelon.data.dataset import OfflineDataset

# A log-likelihood this low stands for an impossible parameter (keeps optimisers in floats).
_IMPOSSIBLE = -1e15


def _json_float(value: float) -> float | None:
    """A float for JSON: NaN and infinities become None."""
    return float(value) if math.isfinite(value) else None


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
    periods: np.ndarray | None = None
    """(M,) the period index n of each value, for laws whose mean changes with n."""

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
            available=np.full(len(values), np.inf), method="backlog", periods=periods[keep],
        )
    on_hand = data.log["on_hand"][:, 0]
    _check_whole("retail sales", sales)
    _check_whole("retailer on-hand", on_hand)
    return DemandObservations(
        values=sales.copy(), censored=on_hand <= 0.0, available=sales + on_hand, method="lost-sales",
        periods=data.periods.copy(),
    )


def naive_observations(data: OfflineDataset) -> DemandObservations:
    """Retail sales taken as demand in every period (what ignoring the stock-outs assumes)."""
    sales = data.log["sales"][:, 0]
    _check_whole("retail sales", sales)
    return DemandObservations(
        values=sales.copy(), censored=np.zeros(len(sales), dtype=bool),
        available=np.full(len(sales), np.inf), method="naive", periods=data.periods.copy(),
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
