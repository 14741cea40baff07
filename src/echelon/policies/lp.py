"""The perfect-information bound: the chain's LP solved knowing each whole demand path.

:func:`perfect_information_plan` solves the LP of :mod:`echelon.policies.chain_lp` (the
formulation is written out there) once per demand path, from the core's reset state. Every
policy's shipments and sales are feasible in it and integrality is relaxed, so its optimum is an
upper bound on the discounted profit any policy realises on that path (OR-Gym's episode reward).

This module is also the old home of the LP names, which it re-exports: the LP itself
(:mod:`~echelon.policies.chain_lp`), the receding-horizon planners
(:mod:`~echelon.policies.receding`) and :func:`~echelon.sim.core.scheduled_arrivals`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from echelon._limits import check_memory
from echelon.policies.chain_lp import LPSolveError, ScenarioLP, _PlanningLP, lp_bytes
from echelon.policies.receding import RollingScenarioLP, ShrinkingHorizonLP
from echelon.sim.config import ChainConfig
from echelon.sim.core import scheduled_arrivals
from echelon.sim.demand import check_paths

# A plan value this close to an integer (relative to max(1, |value|)) is that integer: HiGHS
# returns vertices up to its feasibility tolerance (1e-7), and the core floors requests, so
# 19.99999999 must become 20, not 19.
_INTEGRAL_TOLERANCE = 1e-7


def plan_bytes(config: ChainConfig, episodes: int) -> int:
    """Peak memory of :func:`perfect_information_plan` for N demand paths, in bytes.

    Its LP over T periods, and the plans (N, T, 2S+1) twice (as solved and snapped to whole
    units) with the temporaries of one snap (N, T, S) twice; float64.
    """
    periods, stages = config.periods, config.stages
    arrays = 8 * episodes * periods * (2 * (2 * stages + 1) + 2 * stages)
    return lp_bytes(config, periods) + arrays


@dataclass(frozen=True)
class PerfectInformationPlan:
    """Optimal anticipative plans of N demand paths.

    The orders are the LP's shipments (it never requests what cannot be shipped); fed to the
    simulator as requests, period by period, an integral plan realises exactly ``profit``.
    """

    profit: np.ndarray
    """(N,) optimal discounted profit of each path, the perfect-information bound."""
    orders: np.ndarray
    """(N, T, S) units each stage requests (and receives shipped) in each period; values within
    1e-7 of an integer are snapped to it."""
    retail_sales: np.ndarray
    """(N, T) units sold to customers in each period."""
    on_hand: np.ndarray
    """(N, T, S) on-hand inventory at the end of each period."""

    @property
    def integral(self) -> np.ndarray:
        """(N,) whether each path's plan orders whole units only (then the simulator replays it)."""
        return np.all(self.orders == np.floor(self.orders), axis=(1, 2))


def _snap(values: np.ndarray) -> np.ndarray:
    nearest = np.rint(values)
    close = np.abs(values - nearest) <= _INTEGRAL_TOLERANCE * np.maximum(1.0, np.abs(values))
    return np.where(close, nearest, values)


def perfect_information_plan(
    config: ChainConfig,
    demand: np.ndarray,
    *,
    progress: Callable[[int], None] | None = None,
) -> PerfectInformationPlan:
    """Solves the anticipative LP of every demand path (see the module docstring).

    Args:
        config: The chain (any number of stages, lead times, horizon, backlog or lost sales).
        demand: Demand paths shaped (N, T), or (T,) for one path.
        progress: Called with the number of paths solved so far after each path.

    Returns:
        The optimal discounted profits and plans, starting from the core's reset state.

    Raises:
        ValueError: If the demand's shape does not match the chain or a value is bad.
        SizeLimitError: If the LP and the plans would exceed the memory limit
            (``echelon._limits``), checked before they are built.
        LPSolveError: If HiGHS fails on a path, naming the path's index and HiGHS's status.
    """
    paths = check_paths(demand, config.periods)
    check_memory(f"perfect-information plans of {len(paths):,} paths of {config.periods:,} periods",
                 plan_bytes(config, len(paths)), reduce="episodes or periods")
    lp = _PlanningLP(config, config.periods)
    count, periods, stages = len(paths), config.periods, config.stages
    on_hand0 = np.asarray(config.initial_inventory)
    no_arrivals = np.zeros((periods, stages))
    profit = np.empty(count)
    orders = np.empty((count, periods, stages))
    sales = np.empty((count, periods))
    on_hand = np.empty((count, periods, stages))
    for index, path in enumerate(paths):
        try:
            profit[index], solution = lp.solve(on_hand0, no_arrivals, 0.0, path)
        except LPSolveError as error:
            raise LPSolveError(f"perfect-information LP of demand path {index}: {error}") from None
        orders[index] = lp.orders(solution)
        sales[index] = solution[lp.s0 : lp.i0]
        on_hand[index] = solution[lp.i0 : lp.u0].reshape(periods, stages)
        if progress is not None:
            progress(index + 1)
    return PerfectInformationPlan(
        profit=profit, orders=_snap(orders), retail_sales=_snap(sales), on_hand=_snap(on_hand)
    )


def perfect_information_bound(
    config: ChainConfig,
    demand: np.ndarray,
    *,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The perfect-information upper bound on the discounted profit of each demand path.

    Args:
        config: The chain.
        demand: Demand paths shaped (N, T), or (T,) for one path.
        progress: Called with the number of paths solved so far after each path.

    Returns:
        (N,) the optimal anticipative discounted profit of each path: no policy realises more.

    Raises:
        ValueError: If the demand's shape does not match the chain or a value is bad.
        LPSolveError: If HiGHS fails on a path, naming the path's index and HiGHS's status.
    """
    return perfect_information_plan(config, demand, progress=progress).profit


__all__ = [
    "LPSolveError",
    "PerfectInformationPlan",
    "RollingScenarioLP",
    "ScenarioLP",
    "ShrinkingHorizonLP",
    "lp_bytes",
    "perfect_information_bound",
    "perfect_information_plan",
    "plan_bytes",
    "scheduled_arrivals",
]
