"""Receding-horizon LP planners: re-plan every period from the current state, play the first one.

In period n each episode's LP (:mod:`echelon.policies.chain_lp`) over the remaining periods
n .. T-1 starts from its on-hand inventory, its units in transit (rebuilt from the shipment log
by :func:`~echelon.sim.core.scheduled_arrivals`) and, in v0, its carried customer backlog. The
planners differ only in the demand they plan for (:meth:`RecedingHorizonLP._plan`):

* :class:`ShrinkingHorizonLP`: every future demand at its forecast (the mean), a certainty-
  equivalent MPC policy.
* :class:`RollingScenarioLP`: K demand paths drawn from a law (e.g. a fitted one) that share the
  first period's shipments and plan the rest with their own path known, so the first-period
  orders hedge against the spread of demand instead of planning for its mean. For regime-
  switching demand the paths are drawn given what the episode has seen so far.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from echelon._limits import check_memory
from echelon.policies.base_stock import clip_requests
from echelon.policies.chain_lp import LPSolveError, ScenarioLP, _HighsLP, _PlanningLP, lp_bytes
from echelon.sim.config import ChainConfig
from echelon.sim.core import ChainState, observed_demand, scheduled_arrivals
from echelon.sim.demand import Demand, DemandPath, MarkovModulated, mean_curve
from echelon.sim.regime_filter import sample_given


class RecedingHorizonLP(abc.ABC):
    """Re-plan every period with an LP over the remaining horizon; play its first period.

    The first period's planned shipments become the requests. Rounding: the simulator truncates
    requests, so the planned shipments are rounded to the nearest whole unit (halves up) first;
    truncating instead would lose a unit whenever HiGHS returns 19.9999999. The plan respects the
    capacities and the upstream stages' start-of-period on-hand, both whole numbers in the chains
    of OR-Gym, so the rounded requests do too; they are then clipped to both anyway
    (:func:`~echelon.policies.base_stock.clip_requests`), so that no request is ever left
    unfilled upstream, whatever the chain.

    With backlog (v0) the core adds carried unfilled requests to the new ones; the policy requests
    the plan minus that backlog (never below zero). Its own requests are always filled, so this
    matters only from a state another policy left behind.

    An instance keeps one HiGHS model per remaining horizon and is not thread-safe: use one per
    thread. Subclasses build the LP of a horizon (:meth:`_build`) and say which episodes it is
    solved for, facing which demand (:meth:`_plan`).

    Args:
        config: The chain.
    """

    reads_observation = False
    label = "receding-horizon LP"
    """Names the LP in errors."""

    def __init__(self, config: ChainConfig) -> None:
        self.config = config
        self._lps: dict[int, _HighsLP] = {}

    def __getstate__(self) -> dict:
        # HiGHS instances do not pickle; they are rebuilt on demand.
        return {**self.__dict__, "_lps": {}}

    @abc.abstractmethod
    def _build(self, horizon: int) -> _HighsLP:
        """The LP over ``horizon`` periods (built once per horizon)."""

    @abc.abstractmethod
    def _plan(self, lp: _HighsLP, state: ChainState, arrivals: np.ndarray,
              carried: np.ndarray) -> np.ndarray:
        """(N, S) the planned first-period shipments of every episode (see :meth:`_solve`)."""

    def _solve(self, lp: _HighsLP, state: ChainState, episodes: Sequence[int],
               arrivals: np.ndarray, carried: np.ndarray, demand: np.ndarray) -> np.ndarray:
        """The first-period shipments of the LP of each listed episode.

        Args:
            lp: The LP of the remaining horizon H.
            state: The batched state at the start of period n.
            episodes: The M episodes to solve for.
            arrivals: (N, H, S) units in transit by arrival period.
            carried: (N,) carried customer backlog (zeros in v1).
            demand: (M, H), or (M, K, H) for a scenario LP, the demand each solve faces.

        Returns:
            (M, S) the planned shipments of the first period.

        Raises:
            LPSolveError: If HiGHS fails, naming the period and the episode.
        """
        planned = np.empty((len(episodes), self.config.stages))
        for row, episode in enumerate(episodes):
            try:
                _, solution = lp.solve(state.on_hand[episode], arrivals[episode],
                                       carried[episode], demand[row])
            except LPSolveError as error:
                raise LPSolveError(
                    f"{self.label} of period {state.period}, episode {episode}: {error}"
                ) from None
            planned[row] = solution[: self.config.stages]  # the first S columns of either LP
        return planned

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        """Requests of the first period of each episode's plan.

        Args:
            obs: Unused (None).
            state: The batched state at the start of period n < T.

        Returns:
            (N, S) whole-unit requests that the upstream stages can fill this period.

        Raises:
            LPSolveError: If HiGHS fails, naming the period and an episode in that state.
        """
        config = self.config
        horizon = config.periods - state.period
        if horizon not in self._lps:
            self._lps[horizon] = self._build(horizon)
        arrivals = scheduled_arrivals(config, state)
        carried = state.backlog[:, 0] if config.backlog else np.zeros(state.episodes)
        planned = self._plan(self._lps[horizon], state, arrivals, carried)
        requests = clip_requests(config, state, np.maximum(np.floor(planned + 0.5), 0.0))
        if config.backlog:
            requests = np.maximum(requests - state.backlog[:, 1:], 0.0)
        return requests


class ShrinkingHorizonLP(RecedingHorizonLP):
    """Re-plan every period with the LP over the remaining horizon, mean demand as the forecast.

    Demand [D] is set to the forecast in every period n .. T-1 (this one included: demand arrives
    after ordering). Episodes in the same state share one solve (in period 0 all of them do).
    Rounding, clipping and v0 backlog as in :class:`RecedingHorizonLP`.

    Args:
        config: The chain.
        forecast: Demand assumed in every future period; ``config.demand.mean`` by default.
    """

    label = "shrinking-horizon LP"

    def __init__(self, config: ChainConfig, forecast: float | None = None) -> None:
        super().__init__(config)
        self.forecast = float(config.demand.mean if forecast is None else forecast)
        if not np.isfinite(self.forecast) or self.forecast < 0:
            raise ValueError(f"forecast must be a finite number >= 0, got {forecast!r}")
        # (T,) the forecast of each period: the demand's mean curve (constant for i.i.d. laws,
        # seasonal, trending or regime-dependent for the engines), or the given constant.
        self.curve = (mean_curve(config.demand, config.periods) if forecast is None
                      else np.full(config.periods, self.forecast))
        # Over an episode it keeps one LP per remaining horizon, 1 .. T: T(T+1)/2 periods of LP.
        periods = config.periods
        check_memory(f"the shrinking-horizon LP's {periods:,} planning LPs",
                     lp_bytes(config, periods * (periods + 1) // 2), reduce="periods")

    def _build(self, horizon: int) -> _PlanningLP:
        return _PlanningLP(self.config, horizon)

    def _plan(self, lp: _HighsLP, state: ChainState, arrivals: np.ndarray,
              carried: np.ndarray) -> np.ndarray:
        keys = np.concatenate(
            [state.on_hand, carried[:, None], arrivals.reshape(state.episodes, -1)], axis=1
        )
        unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        demand = np.broadcast_to(self.curve[state.period :], (len(first), lp.horizon))
        return self._solve(lp, state, first, arrivals, carried, demand)[inverse.ravel()]


class RollingScenarioLP(RecedingHorizonLP):
    """Re-plan every period with a K-scenario LP over the remaining horizon; play its first period.

    Each episode's LP (:class:`~echelon.policies.chain_lp.ScenarioLP`) faces K demand paths over
    periods n .. T-1 drawn from ``demand`` (fresh draws for each episode and period, from
    ``rng``). The K scenarios share the first period's shipments and plan the rest with their own
    path known, so the first-period orders hedge against the spread of demand instead of planning
    for its mean (:class:`ShrinkingHorizonLP`). A ``DemandPath`` law is known in advance: every
    scenario is the rest of the path. Time-varying engines are drawn from period n on. With
    ``history`` (the default), a regime-switching law (``regimes``) is drawn given the episode's
    history: the regime now from the forward filter over what the retailer has seen (sales,
    censored where it sold out: :mod:`echelon.sim.regime_filter`), then the rest of the chain.
    Other laws' draws do not depend on the history (i.i.d. laws and the curve engine have none to
    learn from; the log-AR(1) and bootstrap engines are drawn unconditionally). Rounding, clipping
    and v0 backlog as in :class:`RecedingHorizonLP`.

    The scenario draws make the actions depend on ``rng``'s state: the same generator seed and the
    same sequence of states give the same actions.

    Args:
        config: The chain (its dynamics; its demand law is the default ``demand``).
        rng: Source of the demand scenarios.
        demand: The law the scenarios are drawn from, e.g. a fitted one; ``config.demand`` if None.
        scenarios: Number of scenarios K per LP, >= 1.
        history: Draw regime-switching scenarios given the history so far (False: from the
            engine's own start, as if nothing had been seen).
    """

    label = "scenario LP"

    def __init__(
        self,
        config: ChainConfig,
        rng: np.random.Generator,
        *,
        demand: Demand | None = None,
        scenarios: int = 16,
        history: bool = True,
    ) -> None:
        whole = isinstance(scenarios, (int, np.integer)) and not isinstance(scenarios, bool)
        if not whole or scenarios < 1:
            raise ValueError(f"scenarios must be an integer >= 1, got {scenarios!r}")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.demand = config.demand if demand is None else demand
        if isinstance(self.demand, DemandPath) and len(self.demand.values) != config.periods:
            raise ValueError(
                f"demand path has {len(self.demand.values)} periods, the chain needs "
                f"{config.periods}"
            )
        # The LPs' fixed start basis comes from the scenario law's mean demand.
        super().__init__(config.replace(demand=self.demand))
        self.rng, self.scenarios, self.history = rng, int(scenarios), bool(history)

    def _build(self, horizon: int) -> ScenarioLP:
        return ScenarioLP(self.config, horizon, self.scenarios)

    def _draw(self, state: ChainState, horizon: int) -> np.ndarray:
        """(N, K, H) demand scenarios of the periods n .. T-1."""
        episodes, period = state.episodes, state.period
        if self.history and isinstance(self.demand, MarkovModulated):
            values, censored = observed_demand(self.config, state)
            return sample_given(self.demand, self.rng, values, censored, self.scenarios, horizon)
        if isinstance(self.demand, DemandPath):
            rest = np.asarray(self.demand.values[period:])
            return np.broadcast_to(rest, (episodes, self.scenarios, horizon))
        if getattr(self.demand, "time_varying", False):  # its law depends on the period: the tail
            paths = self.demand.sample(self.rng, episodes * self.scenarios, period + horizon)
            return paths[:, period:].reshape(episodes, self.scenarios, horizon)
        paths = self.demand.sample(self.rng, episodes * self.scenarios, horizon)
        return paths.reshape(episodes, self.scenarios, horizon)

    def _plan(self, lp: _HighsLP, state: ChainState, arrivals: np.ndarray,
              carried: np.ndarray) -> np.ndarray:
        scenarios = self._draw(state, lp.horizon)
        return self._solve(lp, state, range(state.episodes), arrivals, carried, scenarios)


__all__ = ["RecedingHorizonLP", "RollingScenarioLP", "ShrinkingHorizonLP"]
