"""Linear programs of the serial chain: the perfect-information bound and a shrinking-horizon LP.

Both solve the same LP (HiGHS, through ``highspy``) over the periods left in the episode, under
the dynamics of :mod:`echelon.sim.core`:

* :func:`perfect_information_bound` knows a whole demand path in advance. Its optimum is an upper
  bound on the discounted profit any policy realises on that path (OR-Gym's episode reward).
* :class:`ShrinkingHorizonLP` re-plans every period from the current state with every future
  demand set to its mean, and plays the plan's first period (a certainty-equivalent MPC policy).

Symbols (per stage i = 0..S-1, stage 0 the retailer, stage S the unlimited supplier):
retail price [p], replenishment cost [r] (r_i paid by stage i per unit bought, r_S by the supplier
per unit shipped), unfulfilled penalty [k], holding cost [h], capacity [c] of the shipment to
stage i, lead time [L], discount [alpha], demand [D]. Decision variables of period n:
shipment x_{n,i} from stage i+1 to stage i, retail sales s_n, end-of-period on-hand I_{n,i} and,
with backlog (v0), unfilled customer demand u_n carried to period n+1.

Profit algebra. The core's reward of period n sums, over the S+1 stages, price * sales - cost *
purchases - k * unfulfilled - h * on-hand, with stage prices [p, r_0, .., r_{S-1}]. Stage j sells
x_{n,j-1} at r_{j-1} and buys x_{n,j} at r_j, so the revenues and purchases telescope:

    profit_n = p s_n - r_S x_{n,S-1} - k_0 u_n - sum_{j>=1} k_j u_{n,j} - sum_i h_i I_{n,i},

where u_n = D_n - s_n with lost sales (v1) and u_n = u_{n-1} + D_n - s_n with backlog (v0), and
u_{n,j} is stage j-1's unfilled request. A request beyond what can be shipped only adds k_j u_{n,j}
>= 0, so the LP requests exactly what it ships (u_{n,j} = 0) and its orders are its shipments.

The LP over periods n = 0..H-1, from on-hand I_{-1} and known arrivals a_{n,i} of units already in
transit:

    maximise    sum_n alpha^n (p s_n - r_S x_{n,S-1} - k_0 u_n - sum_i h_i I_{n,i})
    subject to  I_{n,0} = I_{n-1,0} + x_{n-L_0,0} + a_{n,0} - s_n              (retailer)
                I_{n,i} = I_{n-1,i} + x_{n-L_i,i} + a_{n,i} - x_{n,i-1}, i >= 1   (upstream stages)
                x_{n,i-1} <= I_{n-1,i}, i >= 1    (ship from start-of-period stock, before arrivals)
                0 <= x_{n,i} <= c_i,   I_{n,i} >= 0,   s_n >= 0
                v1: s_n <= D_n              v0: u_n = u_{n-1} + D_n - s_n >= 0

with x_{m,i} = 0 for m < 0 (the known arrivals a stand for those) and shipments arriving after
the horizon worth nothing. I_{n,0} >= 0 bounds retail sales by the on-hand after arrivals, which
include this period's shipment when L_0 = 0; upstream stages ship only stock they held at the
start of the period, so an arrival with L_i = 0 cannot move further down the chain that period.
Every policy's shipments and sales are feasible here (the core's sales are min(on-hand, demand)),
and integrality is relaxed, so the optimum bounds every policy's realised profit on the path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import highspy
import numpy as np
from scipy import sparse

from echelon._limits import check_memory
from echelon.policies.base_stock import clip_requests
from echelon.sim.config import ChainConfig
from echelon.sim.core import ChainState
from echelon.sim.demand import check_paths

# A plan value this close to an integer (relative to max(1, |value|)) is that integer: HiGHS
# returns vertices up to its feasibility tolerance (1e-7), and the core floors requests, so
# 19.99999999 must become 20, not 19.
_INTEGRAL_TOLERANCE = 1e-7
# Peak memory per nonzero of the constraint matrix while an LP is built and warm-started: the
# Python triplet lists, the scipy matrix, and HiGHS's model and factorisation (measured 700-750
# bytes for horizons of 2,000 to 60,000 periods, 630 of them kept while the LP lives).
_BYTES_PER_NONZERO = 800


def lp_bytes(config: ChainConfig, horizon: int, scenarios: int = 1) -> int:
    """Memory of one planning LP over ``horizon`` periods with ``scenarios`` copies, in bytes.

    Each period has at most 6S - 2 nonzeros (3 more with backlog): the S stock balances hold
    four each, the S-1 start-of-period stock limits two, the v0 backlog balance three.
    """
    per_period = 6 * config.stages - 2 + (3 if config.backlog else 0)
    return _BYTES_PER_NONZERO * scenarios * horizon * per_period


def plan_bytes(config: ChainConfig, episodes: int) -> int:
    """Peak memory of :func:`perfect_information_plan` for N demand paths, in bytes.

    Its LP over T periods, and the plans (N, T, 2S+1) twice (as solved and snapped to whole
    units) with the temporaries of one snap (N, T, S) twice; float64.
    """
    periods, stages = config.periods, config.stages
    arrays = 8 * episodes * periods * (2 * (2 * stages + 1) + 2 * stages)
    return lp_bytes(config, periods) + arrays


class LPSolveError(RuntimeError):
    """HiGHS did not return an optimal solution of one of the LPs."""


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


def _quiet_highs() -> highspy._Highs:
    """A HiGHS instance that prints nothing.

    ``highspy.Highs()`` installs its Python callbacks in its constructor, which makes HiGHS log
    its banner to stdout before any option can be set (it would corrupt JSON output). The
    binding class it wraps, exported as ``highspy._Highs``, logs nothing until it is used.
    """
    highs = highspy._Highs()
    highs.setOptionValue("output_flag", False)
    return highs


def _install(owner, lp, sales_columns: np.ndarray, mean_demand: np.ndarray) -> None:
    """Passes ``lp`` to a silent HiGHS instance on ``owner`` and stores its warm-start basis.

    The basis is the optimum of the chain's reset state facing mean demand; every later solve
    starts from it, so a solution depends only on its own data, not on the order of solves.
    """
    owner.highs = _quiet_highs()
    owner.highs.passModel(lp)
    owner.all_rows = np.arange(owner.rows, dtype=np.int32)
    owner.sales_columns = sales_columns
    owner.basis = None
    config = owner.config
    owner.solve(np.asarray(config.initial_inventory),
                np.zeros((owner.horizon, config.stages)), 0.0, mean_demand)
    owner.basis = owner.highs.getBasis()


def _fill_row_bounds(
    lp: _PlanningLP,
    lower: np.ndarray,
    upper: np.ndarray,
    on_hand: np.ndarray,
    arrivals: np.ndarray,
    backlog: float,
    demand: np.ndarray,
) -> None:
    """Writes one state's data into the row bounds of K copies of ``lp``'s rows, in place.

    Args:
        lp: The single-scenario LP whose row layout the copies share.
        lower, upper: (K, rows) views of the row bounds.
        on_hand: (S,) on-hand at the start of the first period.
        arrivals: (H, S) units in transit by arrival period.
        backlog: Carried customer demand (v0).
        demand: (K, H) demand of each copy (v0 only: in v1 it bounds the sales columns).
    """
    stages, eq_rows = lp.stages, lp.eq_rows
    n_x = lp.horizon * stages
    upper[:, :n_x] = arrivals.ravel()
    upper[:, :stages] += on_hand
    upper[:, eq_rows : eq_rows + stages - 1] = on_hand[1:]
    lower[:, :eq_rows] = upper[:, :eq_rows]
    if lp.backlog:
        upper[:, n_x:eq_rows] = demand
        upper[:, n_x] += backlog
        lower[:, n_x:eq_rows] = upper[:, n_x:eq_rows]


def _optimise(highs, rows: int, all_rows: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              basis) -> float:
    """Sets the row bounds, starts from ``basis`` (if any), solves, and returns the optimum.

    Raises:
        LPSolveError: If HiGHS does not report an optimum; the message carries its status.
    """
    highs.changeRowsBounds(rows, all_rows, lower, upper)
    if basis is not None:
        highs.setBasis(basis)
    highs.run()
    status = highs.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise LPSolveError(f"HiGHS model status {highs.modelStatusToString(status)!r}")
    return highs.getInfo().objective_function_value


class _PlanningLP:
    """The LP of the module docstring over ``horizon`` periods, built once in a HiGHS instance.

    Only the row bounds (initial on-hand, known arrivals, carried backlog, demand in v0) and, in
    v1, the bounds on retail sales (demand) change from one solve to the next. Every solve starts
    from the same basis (the optimum of the chain's reset state facing mean demand), so a
    solution depends only on its own data, not on the order of solves, and takes a few simplex
    iterations instead of a presolve and a crash basis.

    Variables are grouped by kind: x (H*S, period-major), s (H), I (H*S), then u (H) in v0.
    Rows: the stock balance of (n, i) at n*S + i; in v0 the backlog balance of n at H*S + n;
    then the start-of-period stock limit of shipment (n, i-1), i >= 1.
    """

    def __init__(self, config: ChainConfig, horizon: int) -> None:
        check_memory(f"a planning LP over {horizon:,} periods", lp_bytes(config, horizon),
                     reduce="periods")
        stages, periods = config.stages, horizon
        self.config, self.horizon, self.stages = config, horizon, stages
        self.backlog = config.backlog
        n_x = periods * stages
        self.s0 = n_x
        self.i0 = n_x + periods
        self.u0 = self.i0 + n_x
        self.variables = self.u0 + (periods if config.backlog else 0)
        self.eq_rows = n_x + (periods if config.backlog else 0)
        self.rows = self.eq_rows + periods * (stages - 1)

        def x(n: int, i: int) -> int:
            return n * stages + i

        def inv(n: int, i: int) -> int:
            return self.i0 + n * stages + i

        rows, cols, vals = [], [], []

        def put(row: int, col: int, val: float) -> None:
            rows.append(row)
            cols.append(col)
            vals.append(val)

        for n in range(periods):
            for i in range(stages):
                row = n * stages + i
                put(row, inv(n, i), 1.0)
                if n > 0:
                    put(row, inv(n - 1, i), -1.0)
                lead = config.lead_time[i]
                if n >= lead:
                    put(row, x(n - lead, i), -1.0)
                put(row, self.s0 + n if i == 0 else x(n, i - 1), 1.0)
            if config.backlog:
                row = n_x + n
                put(row, self.u0 + n, 1.0)
                if n > 0:
                    put(row, self.u0 + n - 1, -1.0)
                put(row, self.s0 + n, 1.0)
            for i in range(1, stages):
                row = self.eq_rows + n * (stages - 1) + i - 1
                put(row, x(n, i - 1), 1.0)
                if n > 0:
                    put(row, inv(n - 1, i), -1.0)
        matrix = sparse.csc_matrix((vals, (rows, cols)), shape=(self.rows, self.variables))

        # Profit coefficients. v1: -k_0 u_n = -k_0 D_n + k_0 s_n, the constant added back in
        # solve(); v0: u_n is a variable.
        params = config.arrays
        self.discount = config.alpha ** np.arange(periods)
        k0 = params.unfulfilled_penalty[0]
        profit = np.zeros(self.variables)
        profit[self.s0 : self.i0] = self.discount * (config.price + (0.0 if config.backlog else k0))
        profit[stages - 1 : n_x : stages] -= self.discount * params.replenishment_cost[-1]
        profit[self.i0 : self.u0] = -np.outer(self.discount, params.holding_cost).ravel()
        if config.backlog:
            profit[self.u0 :] = -self.discount * k0

        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.variables, self.rows
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.col_cost_ = profit
        lp.col_lower_ = np.zeros(self.variables)
        upper = np.full(self.variables, highspy.kHighsInf)
        upper[:n_x] = np.tile(params.capacity, periods)
        lp.col_upper_ = upper
        self.row_lower = np.zeros(self.rows)
        self.row_lower[self.eq_rows :] = -highspy.kHighsInf
        self.row_upper = np.zeros(self.rows)
        lp.row_lower_, lp.row_upper_ = self.row_lower, self.row_upper
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = self.variables, self.rows
        lp.a_matrix_.start_ = matrix.indptr
        lp.a_matrix_.index_ = matrix.indices
        lp.a_matrix_.value_ = matrix.data
        _install(self, lp, np.arange(self.s0, self.i0, dtype=np.int32),
                 np.full(periods, config.demand.mean))

    def solve(
        self, on_hand: np.ndarray, arrivals: np.ndarray, backlog: float, demand: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Solves the LP from one state.

        Args:
            on_hand: (S,) on-hand inventory at the start of the first period [I_{-1}].
            arrivals: (H, S) units already in transit arriving in each period [a].
            backlog: Unfilled customer demand carried into the first period (v0; ignored in v1).
            demand: (H,) customer demand of each period [D].

        Returns:
            The optimal profit, discounted from the first period (alpha^0 = 1), and the solution
            vector (variables laid out as in the class docstring).

        Raises:
            LPSolveError: If HiGHS does not report an optimum; the message carries its status.
        """
        demand = np.asarray(demand, dtype=np.float64)
        _fill_row_bounds(self, self.row_lower[None], self.row_upper[None], on_hand, arrivals,
                         backlog, demand[None])
        constant = 0.0
        if not self.backlog:
            self.highs.changeColsBounds(
                self.horizon, self.sales_columns, np.zeros(self.horizon), demand
            )
            constant = -self.config.unfulfilled_penalty[0] * float(self.discount @ demand)
        value = _optimise(self.highs, self.rows, self.all_rows, self.row_lower, self.row_upper,
                          self.basis)
        return constant + value, np.asarray(self.highs.getSolution().col_value)

    def orders(self, solution: np.ndarray) -> np.ndarray:
        """(H, S) shipments of a solution vector."""
        return solution[: self.s0].reshape(self.horizon, self.stages)


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


def scheduled_arrivals(config: ChainConfig, state: ChainState) -> np.ndarray:
    """Units in transit, by the period they will arrive in, rebuilt from the shipment log.

    A shipment to stage i in period m arrives in period m + L_i, so at the start of period n the
    units still in transit to stage i are those shipped in periods max(0, n - L_i) .. n-1.

    Args:
        config: The chain.
        state: The batched state at the start of period n.

    Returns:
        (N, T - n, S) units arriving at each stage in periods n .. T-1 from shipments already
        made (arrivals after the horizon are left out).

    Raises:
        ValueError: If the log does not add up to the state's pipeline.
    """
    n, periods = state.period, config.periods
    arrivals = np.zeros((state.episodes, periods - n, config.stages))
    in_transit = np.zeros((state.episodes, config.stages))
    for i, lead in enumerate(config.lead_time):
        for shipped_in in range(max(0, n - lead), n):
            units = state.shipped[shipped_in, :, i]
            in_transit[:, i] += units
            if shipped_in + lead < periods:
                arrivals[:, shipped_in + lead - n, i] += units
    if not np.allclose(in_transit, state.pipeline, rtol=0.0, atol=1e-9):
        raise ValueError("the shipment log does not add up to the pipeline: is it the core's state?")
    return arrivals


class ShrinkingHorizonLP:
    """Re-plan every period with the LP over the remaining horizon, mean demand as the forecast.

    In period n each episode's LP starts from its on-hand inventory, its units in transit
    (rebuilt from the shipment log by :func:`scheduled_arrivals`) and, in v0, its carried customer
    backlog, with demand [D] set to the forecast in every period n .. T-1 (this one included:
    demand arrives after ordering). The first period's planned shipments become the requests.

    Rounding: the simulator truncates requests, so the planned shipments are rounded to the
    nearest whole unit (halves up) first; truncating instead would lose a unit whenever HiGHS
    returns 19.9999999. The plan respects the capacities and the upstream stages' start-of-period
    on-hand, both whole numbers in the chains of OR-Gym, so the rounded requests do too; they are
    then clipped to both anyway (:func:`~echelon.policies.base_stock.clip_requests`), so that no
    request is ever left unfilled upstream, whatever the chain.

    With backlog (v0) the core adds carried unfilled requests to the new ones; the policy requests
    the plan minus that backlog (never below zero). Its own requests are always filled, so this
    matters only from a state another policy left behind.

    Episodes in the same state share one solve (in period 0 all of them do). An instance keeps
    one HiGHS model per remaining horizon and is not thread-safe: use one per thread.

    Args:
        config: The chain.
        forecast: Demand assumed in every future period; ``config.demand.mean`` by default.
    """

    reads_observation = False

    def __init__(self, config: ChainConfig, forecast: float | None = None) -> None:
        self.config = config
        self.forecast = float(config.demand.mean if forecast is None else forecast)
        if not np.isfinite(self.forecast) or self.forecast < 0:
            raise ValueError(f"forecast must be a finite number >= 0, got {forecast!r}")
        # Over an episode it keeps one LP per remaining horizon, 1 .. T: T(T+1)/2 periods of LP.
        periods = config.periods
        check_memory(f"the shrinking-horizon LP's {periods:,} planning LPs",
                     lp_bytes(config, periods * (periods + 1) // 2), reduce="periods")
        self._lps: dict[int, _PlanningLP] = {}

    def __getstate__(self) -> dict:
        # HiGHS instances do not pickle; they are rebuilt on demand.
        return {**self.__dict__, "_lps": {}}

    def _lp(self, horizon: int) -> _PlanningLP:
        if horizon not in self._lps:
            self._lps[horizon] = _PlanningLP(self.config, horizon)
        return self._lps[horizon]

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
        lp = self._lp(horizon)
        arrivals = scheduled_arrivals(config, state)
        carried = state.backlog[:, 0] if config.backlog else np.zeros(state.episodes)
        keys = np.concatenate(
            [state.on_hand, carried[:, None], arrivals.reshape(state.episodes, -1)], axis=1
        )
        unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        demand = np.full(horizon, self.forecast)
        planned = np.empty((len(unique), config.stages))
        for row, episode in enumerate(first):
            try:
                _, solution = lp.solve(
                    state.on_hand[episode], arrivals[episode], carried[episode], demand
                )
            except LPSolveError as error:
                raise LPSolveError(
                    f"shrinking-horizon LP of period {state.period}, episode {episode}: {error}"
                ) from None
            planned[row] = lp.orders(solution)[0]
        requests = np.floor(planned[inverse.ravel()] + 0.5)
        requests = clip_requests(config, state, np.maximum(requests, 0.0))
        if config.backlog:
            requests = np.maximum(requests - state.backlog[:, 1:], 0.0)
        return requests


class ScenarioLP:
    """The LP of the module docstring for K demand scenarios that share their first period.

    A two-stage stochastic program over ``horizon`` periods: the first period's shipments
    x_{0,i} are decided now, once, for every scenario (non-anticipativity); each scenario k has
    its own demand path [D^k] and its own later shipments, sales and stock, planned with that
    path known. The objective is the average over the K scenarios of the discounted profit of
    the module docstring:

        maximise    (1/K) sum_k sum_n alpha^n (p s^k_n - r_S x^k_{n,S-1} - k_0 u^k_n
                                               - sum_i h_i I^k_{n,i})
        subject to  each scenario's constraints of the module docstring, x^k_{0,i} = x_{0,i}.

    It is built from K copies of :class:`_PlanningLP`'s model (the same variables, rows, costs
    and bounds), with the first-period shipment columns merged. Every solve starts from one
    fixed basis (the optimum from the chain's reset state with every scenario at mean demand),
    so a solution depends only on its own data, not on the order of solves.

    Variables: the S shared first-period shipments, then scenario k's block of the remaining
    ``_PlanningLP`` variables (x of periods 1..H-1, s, I, u in v0) at S + k * (V - S), V being
    ``_PlanningLP``'s variable count. Rows: scenario k's rows of ``_PlanningLP`` at k * R.

    Args:
        config: The chain.
        horizon: Periods H planned over, >= 1.
        scenarios: Number of demand scenarios K, >= 1.
    """

    def __init__(self, config: ChainConfig, horizon: int, scenarios: int) -> None:
        if scenarios < 1 or horizon < 1:
            raise ValueError(f"horizon and scenarios must be >= 1, got {horizon}, {scenarios}")
        check_memory(f"a scenario LP of {scenarios:,} scenarios over {horizon:,} periods",
                     lp_bytes(config, horizon, scenarios + 1), reduce="scenarios or periods")
        base = _PlanningLP(config, horizon)
        model = base.highs.getLp()
        stages, count = config.stages, scenarios
        self.config, self.horizon, self.scenarios, self.stages = config, horizon, count, stages
        self.base = base
        per, rows = base.variables, base.rows
        self.block = per - stages
        self.variables = stages + count * self.block
        self.rows = count * rows
        matrix = sparse.csc_matrix(
            (model.a_matrix_.value_, model.a_matrix_.index_, model.a_matrix_.start_),
            shape=(rows, per),
        ).tocoo()

        def column(k: int, col: np.ndarray) -> np.ndarray:
            return np.where(col < stages, col, stages + k * self.block + col - stages)

        rows_k = np.concatenate([matrix.row + k * rows for k in range(count)])
        cols_k = np.concatenate([column(k, matrix.col) for k in range(count)])
        values = np.tile(matrix.data, count)
        joint = sparse.csc_matrix((values, (rows_k, cols_k)), shape=(self.rows, self.variables))

        cost = np.asarray(model.col_cost_) / count
        upper = np.asarray(model.col_upper_)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.variables, self.rows
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.col_cost_ = np.concatenate([cost[:stages] * count, np.tile(cost[stages:], count)])
        lp.col_lower_ = np.zeros(self.variables)
        lp.col_upper_ = np.concatenate([upper[:stages], np.tile(upper[stages:], count)])
        self.row_lower = np.tile(np.asarray(model.row_lower_), count)
        self.row_upper = np.tile(np.asarray(model.row_upper_), count)
        lp.row_lower_, lp.row_upper_ = self.row_lower, self.row_upper
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = self.variables, self.rows
        lp.a_matrix_.start_ = joint.indptr
        lp.a_matrix_.index_ = joint.indices
        lp.a_matrix_.value_ = joint.data
        # Scenario k's sales columns (v1: bounded above by its demand).
        sales_columns = np.concatenate(
            [np.arange(base.s0, base.i0) + k * self.block for k in range(count)]
        ).astype(np.int32)
        _install(self, lp, sales_columns, np.full((count, horizon), config.demand.mean))

    def solve(
        self, on_hand: np.ndarray, arrivals: np.ndarray, backlog: float, demand: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Solves the scenario LP from one state.

        Args:
            on_hand: (S,) on-hand inventory at the start of the first period [I_{-1}].
            arrivals: (H, S) units already in transit arriving in each period [a].
            backlog: Unfilled customer demand carried into the first period (v0; ignored in v1).
            demand: (K, H) customer demand of each scenario and period [D^k].

        Returns:
            The optimal average profit over the scenarios, discounted from the first period,
            and the (S,) first-period shipments every scenario shares.

        Raises:
            LPSolveError: If HiGHS does not report an optimum; the message carries its status.
        """
        base, highs = self.base, self.highs
        demand = np.asarray(demand, dtype=np.float64)
        if demand.shape != (self.scenarios, self.horizon):
            raise ValueError(
                f"demand must be shaped (K, H) = ({self.scenarios}, {self.horizon}), "
                f"got {demand.shape}"
            )
        _fill_row_bounds(base, self.row_lower.reshape(self.scenarios, base.rows),
                         self.row_upper.reshape(self.scenarios, base.rows), on_hand, arrivals,
                         backlog, demand)
        constant = 0.0
        if not self.config.backlog:
            highs.changeColsBounds(
                len(self.sales_columns), self.sales_columns,
                np.zeros(len(self.sales_columns)), demand.ravel(),
            )
            penalty = self.config.unfulfilled_penalty[0]
            constant = -penalty * float(np.mean(demand @ base.discount))
        value = _optimise(highs, self.rows, self.all_rows, self.row_lower, self.row_upper, self.basis)
        return constant + value, np.asarray(highs.getSolution().col_value)[: self.stages]
