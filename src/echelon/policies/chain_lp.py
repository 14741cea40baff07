"""The linear program of the serial chain, held in HiGHS: one demand path, or K scenarios.

One LP (HiGHS, through ``highspy``) over the periods left in the episode, under the dynamics of
:mod:`echelon.sim.core`, solved from a given state:

* :func:`~echelon.policies.lp.perfect_information_bound` solves it knowing a whole demand path
  in advance. Its optimum is an upper bound on the discounted profit any policy realises on that
  path (OR-Gym's episode reward).
* The receding-horizon planners of :mod:`echelon.policies.receding` re-solve it every period from
  the current state and play the plan's first period: ``ShrinkingHorizonLP`` with every future
  demand at its mean, ``RollingScenarioLP`` with K demand scenarios (:class:`ScenarioLP`).

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

import highspy
import numpy as np
from scipy import sparse

from echelon._limits import check_memory
from echelon.sim.config import ChainConfig

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


class LPSolveError(RuntimeError):
    """HiGHS did not return an optimal solution of one of the LPs."""


def _quiet_highs() -> highspy._Highs:
    """A HiGHS instance that prints nothing.

    The public ``highspy.Highs()`` (checked with highspy 1.16) installs its Python callbacks in
    its constructor, and HiGHS logs its banner to stdout at the first such call (HiGHS PR #798),
    before any option can be set: it would corrupt JSON output. The binding class it wraps,
    exported as ``highspy._Highs``, has the same methods and logs nothing until it is used.
    """
    highs = highspy._Highs()
    highs.setOptionValue("output_flag", False)
    return highs


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


class _HighsLP:
    """A planning LP held in a silent HiGHS instance, every solve from one warm-start basis.

    Subclasses lay out the model (:class:`_PlanningLP`, one scenario; :class:`ScenarioLP`, K
    copies of its rows) and set ``config``, ``horizon``, ``rows``, ``row_lower``, ``row_upper``
    and ``base`` (the single-scenario LP whose row layout the copies share) before calling
    :meth:`_install`. The basis is the optimum of the chain's reset state facing mean demand;
    every later solve starts from it, so a solution depends only on its own data, not on the
    order of solves, and takes a few simplex iterations instead of a presolve and a crash basis.
    """

    config: ChainConfig
    horizon: int
    rows: int
    row_lower: np.ndarray
    row_upper: np.ndarray
    base: _PlanningLP
    demand_shape: tuple[int, ...]
    """(H,) for one demand path, (K, H) for K scenarios."""
    returned: int
    """How many leading columns of the solution :meth:`solve` returns."""

    def solve(
        self, on_hand: np.ndarray, arrivals: np.ndarray, backlog: float, demand: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Solves the LP from one state.

        Args:
            on_hand: (S,) on-hand inventory at the start of the first period [I_{-1}].
            arrivals: (H, S) units already in transit arriving in each period [a].
            backlog: Unfilled customer demand carried into the first period (v0; ignored in v1).
            demand: (H,) customer demand of each period [D]; for a :class:`ScenarioLP`, (K, H)
                one row per scenario [D^k].

        Returns:
            The optimal profit (for K scenarios, their average), discounted from the first
            period (alpha^0 = 1), and the solution: :class:`_PlanningLP`'s whole vector,
            :class:`ScenarioLP`'s (S,) first-period shipments that every scenario shares.

        Raises:
            ValueError: If the demand is not shaped as the LP's.
            LPSolveError: If HiGHS does not report an optimum; the message carries its status.
        """
        demand = np.asarray(demand, dtype=np.float64)
        if demand.shape != self.demand_shape:
            names = "(K, H)" if len(self.demand_shape) == 2 else "(H,)"
            raise ValueError(f"demand must be shaped {names} = {self.demand_shape}, "
                             f"got {demand.shape}")
        value = self._optimum(on_hand, arrivals, backlog, demand)
        return value, np.asarray(self.highs.getSolution().col_value)[: self.returned]

    def _install(self, cost: np.ndarray, upper: np.ndarray, matrix: sparse.csc_matrix,
                 sales_columns: np.ndarray, mean_demand: np.ndarray) -> None:
        """Passes the model to HiGHS and stores the warm-start basis.

        Args:
            cost: (V,) profit coefficients (maximised).
            upper: (V,) upper bounds of the columns (all are >= 0).
            matrix: (R, V) the constraint matrix; the rows are bounded by ``row_lower`` and
                ``row_upper``.
            sales_columns: The retail sales columns (v1: bounded above by their demand).
            mean_demand: The demand of the warm-start solve, as :meth:`solve` takes it.
        """
        variables = len(cost)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = variables, self.rows
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.col_cost_ = cost
        lp.col_lower_ = np.zeros(variables)
        lp.col_upper_ = upper
        lp.row_lower_, lp.row_upper_ = self.row_lower, self.row_upper
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = variables, self.rows
        lp.a_matrix_.start_ = matrix.indptr
        lp.a_matrix_.index_ = matrix.indices
        lp.a_matrix_.value_ = matrix.data
        self.highs = _quiet_highs()
        self.highs.passModel(lp)
        self.all_rows = np.arange(self.rows, dtype=np.int32)
        self.sales_columns = sales_columns
        self.basis = None
        self.solve(np.asarray(self.config.initial_inventory),
                   np.zeros((self.horizon, self.config.stages)), 0.0, mean_demand)
        self.basis = self.highs.getBasis()

    def _optimum(self, on_hand: np.ndarray, arrivals: np.ndarray, backlog: float,
                 demand: np.ndarray) -> float:
        """Writes one state's data (as :meth:`solve` takes it, checked) into the LP, solves it
        from the warm-start basis, and returns the optimum.

        Raises:
            LPSolveError: If HiGHS does not report an optimum; the message carries its status.
        """
        base, highs = self.base, self.highs
        copies = self.rows // base.rows
        _fill_row_bounds(base, self.row_lower.reshape(copies, base.rows),
                         self.row_upper.reshape(copies, base.rows), on_hand, arrivals, backlog,
                         demand.reshape(copies, -1))
        constant = 0.0
        if not self.config.backlog:  # v1: -k_0 u_n = -k_0 D_n + k_0 s_n, the constant here
            count = len(self.sales_columns)
            highs.changeColsBounds(count, self.sales_columns, np.zeros(count), demand.ravel())
            penalty = self.config.unfulfilled_penalty[0]
            constant = -penalty * float(np.mean(demand @ base.discount))
        highs.changeRowsBounds(self.rows, self.all_rows, self.row_lower, self.row_upper)
        if self.basis is not None:
            highs.setBasis(self.basis)
        highs.run()
        status = highs.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise LPSolveError(f"HiGHS model status {highs.modelStatusToString(status)!r}")
        return constant + highs.getInfo().objective_function_value


class _PlanningLP(_HighsLP):
    """The LP of the module docstring over ``horizon`` periods, built once in a HiGHS instance.

    Only the row bounds (initial on-hand, known arrivals, carried backlog, demand in v0) and, in
    v1, the bounds on retail sales (demand) change from one solve to the next, each from the
    basis of the chain's reset state facing mean demand (:class:`_HighsLP`).

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
        self.demand_shape, self.returned = (periods,), self.variables  # the whole solution

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
        # _optimum(); v0: u_n is a variable.
        params = config.arrays
        self.discount = config.alpha ** np.arange(periods)
        k0 = params.unfulfilled_penalty[0]
        profit = np.zeros(self.variables)
        profit[self.s0 : self.i0] = self.discount * (config.price + (0.0 if config.backlog else k0))
        profit[stages - 1 : n_x : stages] -= self.discount * params.replenishment_cost[-1]
        profit[self.i0 : self.u0] = -np.outer(self.discount, params.holding_cost).ravel()
        if config.backlog:
            profit[self.u0 :] = -self.discount * k0

        upper = np.full(self.variables, highspy.kHighsInf)
        upper[:n_x] = np.tile(params.capacity, periods)
        self.row_lower = np.zeros(self.rows)
        self.row_lower[self.eq_rows :] = -highspy.kHighsInf
        self.row_upper = np.zeros(self.rows)
        self._install(profit, upper, matrix, np.arange(self.s0, self.i0, dtype=np.int32),
                      np.full(periods, config.demand.mean))

    @property
    def base(self) -> _PlanningLP:
        """The LP whose row layout :meth:`_HighsLP._optimum` fills: this one (one copy)."""
        return self

    def orders(self, solution: np.ndarray) -> np.ndarray:
        """(H, S) shipments of a solution vector."""
        return solution[: self.s0].reshape(self.horizon, self.stages)


class ScenarioLP(_HighsLP):
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
        self.demand_shape, self.returned = (count, horizon), stages  # the shared shipments
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
        self.row_lower = np.tile(np.asarray(model.row_lower_), count)
        self.row_upper = np.tile(np.asarray(model.row_upper_), count)
        # Scenario k's sales columns (v1: bounded above by its demand).
        sales_columns = np.concatenate(
            [np.arange(base.s0, base.i0) + k * self.block for k in range(count)]
        ).astype(np.int32)
        self._install(np.concatenate([cost[:stages] * count, np.tile(cost[stages:], count)]),
                      np.concatenate([upper[:stages], np.tile(upper[stages:], count)]), joint,
                      sales_columns, np.full((count, horizon), config.demand.mean))
