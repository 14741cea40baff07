"""The batched simulator core: N episodes of a serial supply chain as arrays, one period a step.

This module is the single source of truth for the dynamics. The Gymnasium env, the parameter
search, dataset collection and evaluation all run on :func:`reset` and :func:`step`.

Indexing: stage 0 is the retailer, stages 0..S-1 hold stock and order from the stage above, and
stage S is the raw-material supplier with unlimited stock. Arrays carry a leading episode axis N.

Order of events in period n (OR-Gym 0.5.0 ``InvManagement``, reproduced exactly):

1. Requests: negative orders become 0, orders above ``MAX_REQUEST`` (2^53 units) become 2^53,
   and fractions are truncated toward zero. These requests are what the observation's order
   history records.
2. Backlog only: each stage adds its unfilled request of the previous period.
3. Shipments: each request is clipped to the upstream stage's capacity, then to the upstream
   stage's on-hand at the START of the period (before this period's arrivals); the supplier has
   unlimited stock.
4. Arrivals: stage i receives what was shipped to it in period n - L_i (this period's shipment
   when L_i = 0).
5. Demand D_n occurs at the retailer; with backlog it adds the previous period's unfilled demand.
6. Sales: the retailer sells min(on-hand, demand); each upstream stage sells what it ships.
7. Unfulfilled: demand minus retail sales at the retailer; at stage j >= 1, stage j-1's request
   (after step 2) minus what stage j shipped. Lost (v1) or carried as backlog to n+1 (v0).
8. Reward: alpha^n * sum over the S+1 stages of price * sales - cost * purchases
   - k * unfulfilled - h * on-hand at the end of the period, with stage prices [p, r_0 .. r_{S-1}];
   the supplier pays r_S per unit it ships and holds nothing. Leftover stock is worth nothing.

The episode ends after period T-1.

Where echelon departs from OR-Gym: only for absurd inputs. OR-Gym accepts any order and, past
2^53 units, no longer counts whole units; an order of 1.7e308 overflows its v0 backlog to
infinity and its reward to -inf. Here requests are capped at 2^53 (step 1), so every finite
order gives finite requests, shipments, penalties, backlogs and rewards; orders that are NaN,
infinite or not real numbers are refused. Below the cap, more than 10^13 times any capacity of
OR-Gym's chains, the two agree bit for bit (``tests/sim/test_orgym_conformance.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas

from echelon._limits import check_memory
from echelon.sim.config import ChainConfig
from echelon.sim.demand import check_paths

# Requests are capped at 2^53 units: float64 holds every whole number up to 2^53 and no longer all
# of them above it, so a larger request cannot be counted in whole units (step 1 truncates to
# them). The cap is far above any meaningful order (OR-Gym's capacities are 80-100 a period) and
# keeps an unfilled request, its penalty and its v0 backlog (at most 2^53 more a period) finite
# for any finite order, where an order of 1.7e308 overflowed the v0 reward to -inf.
MAX_REQUEST = 2.0**53
# The fast check of check_orders: a sum of squares within this bound proves every order finite
# and within the cap (squares cannot cancel; NaN, infinity and overflow fail the comparison).
_MAX_SQUARED = MAX_REQUEST**2


@dataclass(frozen=True)
class ChainState:
    """The state of N episodes at the start of a period.

    The two logs are shared, append-only buffers: :func:`step` writes period n's column, so a
    state may be stepped once. Use :meth:`copy` to branch several futures from one state.
    """

    period: int
    """Index n of the period about to be played (0 .. T); T means the episodes are over."""
    on_hand: np.ndarray
    """(N, S) on-hand inventory of stages 0..S-1."""
    pipeline: np.ndarray
    """(N, S) units shipped to stage i and not yet received."""
    backlog: np.ndarray
    """(N, S+1) unfilled demand (index 0) and requests (index j: stage j-1's) carried over; 0 in v1."""
    demand: np.ndarray
    """(N, T) the retailer's demand in each period (fixed at reset: common random numbers)."""
    requests: np.ndarray
    """(T, N, S) log of requests after truncation; rows >= period are not yet written.
    Period-major, so that each step writes one contiguous block."""
    shipped: np.ndarray
    """(T, N, S) log of shipments after clipping; rows >= period are not yet written."""
    sales: np.ndarray
    """(T, N) log of retail sales (what a real log shows of censored demand); rows >= period are
    not yet written."""
    _written: np.ndarray = dataclasses.field(repr=False, compare=False)
    """(1,) shared count of log columns written, guarding against stepping a stale state."""

    @property
    def episodes(self) -> int:
        """Number of episodes N."""
        return self.on_hand.shape[0]

    @property
    def done(self) -> bool:
        """Whether every period has been played."""
        return self.period >= self.demand.shape[1]

    def copy(self) -> ChainState:
        """An independent deep copy, to step several futures from the same state."""
        return ChainState(
            period=self.period,
            on_hand=self.on_hand.copy(),
            pipeline=self.pipeline.copy(),
            backlog=self.backlog.copy(),
            demand=self.demand,
            requests=self.requests.copy(),
            shipped=self.shipped.copy(),
            sales=self.sales.copy(),
            _written=np.array([self.period]),
        )

    def take(self, index: np.ndarray | slice) -> ChainState:
        """The state of a subset of episodes (a copy), e.g. ``state.take([3])``."""
        return ChainState(
            period=self.period,
            on_hand=self.on_hand[index].copy(),
            pipeline=self.pipeline[index].copy(),
            backlog=self.backlog[index].copy(),
            demand=self.demand[index].copy(),
            requests=self.requests[:, index].copy(),
            shipped=self.shipped[:, index].copy(),
            sales=self.sales[:, index].copy(),
            _written=np.array([self.period]),
        )


@dataclass(frozen=True)
class StepOutput:
    """What happened in one period, for each of the N episodes."""

    period: int
    """Index n of the period just played."""
    demand: np.ndarray
    """(N,) new customer demand D_n (without carried backlog)."""
    requests: np.ndarray
    """(N, S) requests after truncation, before backlog and clipping."""
    shipped: np.ndarray
    """(N, S) units shipped to stage i by stage i+1 after clipping."""
    arrivals: np.ndarray
    """(N, S) units received by stage i this period."""
    sales: np.ndarray
    """(N, S+1) retail sales (index 0) and units shipped by stages 1..S."""
    unfulfilled: np.ndarray
    """(N, S+1) unfilled demand (index 0) and unfilled requests (index j: stage j-1's)."""
    on_hand: np.ndarray
    """(N, S) on-hand inventory at the end of the period."""
    pipeline: np.ndarray
    """(N, S) in-transit inventory at the end of the period."""
    stage_profit: np.ndarray
    """(N, S+1) undiscounted profit of each stage in this period."""
    reward: np.ndarray
    """(N,) discounted profit alpha^n * sum(stage_profit), OR-Gym's reward."""
    backlogged: bool
    """Whether unfulfilled units carry over (v0) or are lost (v1)."""

    @property
    def lost_sales(self) -> np.ndarray:
        """(N, S+1) units lost this period (zero with backlog)."""
        return np.zeros_like(self.unfulfilled) if self.backlogged else self.unfulfilled

    @property
    def backlog(self) -> np.ndarray:
        """(N, S+1) units carried over to the next period (zero with lost sales)."""
        return self.unfulfilled if self.backlogged else np.zeros_like(self.unfulfilled)


def _empty(episodes: int, width: int) -> np.ndarray:
    # Stage-major (Fortran) order: each stage's column over N episodes is contiguous, so
    # per-stage operations and broadcasts over stages run on contiguous memory.
    return np.empty((episodes, width), order="F")


def reset_bytes(config: ChainConfig, episodes: int) -> int:
    """Memory :func:`reset` allocates for N episodes, in bytes.

    The state holds a copy of the demand (N, T), the request and shipment logs (T, N, S) each,
    the retail sales log (T, N), and the on-hand, pipeline and backlog arrays (N, 3S+1), all
    float64.
    """
    periods, stages = config.periods, config.stages
    return 8 * episodes * (periods * (2 + 2 * stages) + 3 * stages + 1)


def reset(config: ChainConfig, demand: np.ndarray) -> ChainState:
    """Starts N episodes facing the given demand paths.

    Args:
        config: The chain.
        demand: Demand paths shaped (N, T), or (T,) for one episode; finite and >= 0.

    Returns:
        The state at the start of period 0.

    Raises:
        ValueError: If the demand's shape does not match the chain or a value is bad.
        SizeLimitError: If the state would exceed the memory limit (``echelon._limits``).
    """
    shape = np.shape(demand)
    episodes = shape[0] if len(shape) == 2 else 1
    check_memory(f"the state of {episodes:,} episode{'s' * (episodes != 1)} of {config.periods:,} "
                 "periods",
                 reset_bytes(config, episodes), reduce="episodes or periods")
    # A copy: the caller's array may change later, the episodes' demand may not.
    paths = np.array(check_paths(demand, config.periods), order="F")
    n, periods, stages = paths.shape[0], config.periods, config.stages
    on_hand = _empty(n, stages)
    on_hand[:] = config.initial_inventory
    # The logs are stored (T, S, N) and seen as (T, N, S): row n is one contiguous block.
    return ChainState(
        period=0,
        on_hand=on_hand,
        pipeline=np.zeros((n, stages), order="F"),
        backlog=np.zeros((n, stages + 1), order="F"),
        demand=paths,
        requests=np.zeros((periods, stages, n)).transpose(0, 2, 1),
        shipped=np.zeros((periods, stages, n)).transpose(0, 2, 1),
        sales=np.zeros((periods, n)),
        _written=np.array([0]),
    )


def check_orders(orders: np.ndarray, episodes: int, stages: int) -> np.ndarray:
    """Validates orders and returns them as a float64 array (N, S), capped at ``MAX_REQUEST``.

    Raises:
        ValueError: If the orders are not real numbers (bool, complex, str and object arrays are
            refused), the shape is not (N, S), or a value is NaN or infinite.
    """
    array = np.asarray(orders)
    if array.dtype != np.float64:
        if array.dtype.kind not in "iuf":
            raise ValueError(
                f"orders must be real numbers (int or float), got an array of dtype {array.dtype}"
            )
        array = array.astype(np.float64)
    if array.shape != (episodes, stages):
        raise ValueError(
            f"orders must be shaped (N, S) = ({episodes}, {stages}) (episodes x ordering "
            f"stages), got {np.shape(orders)}"
        )
    # One BLAS dot product instead of elementwise passes; only orders it cannot clear
    # (non-finite, or some beyond the cap) are checked in full. Orders beyond 1e154 overflow it
    # to infinity, which is what it tests for: BLAS's own ddot, unlike NumPy's, does not warn
    # (and silencing NumPy's warning would cost more than the product).
    flat = array.ravel(order="K")
    if flat.size and not blas.ddot(flat, flat) <= _MAX_SQUARED:
        if not np.all(np.isfinite(array)):
            raise ValueError("orders must be finite numbers: got NaN or infinity")
        array = np.minimum(array, MAX_REQUEST)
    return array


def step(config: ChainConfig, state: ChainState, orders: np.ndarray) -> tuple[ChainState, StepOutput]:
    """Plays one period for all N episodes.

    Args:
        config: The chain the state was reset with.
        state: The state at the start of period n.
        orders: Units each of the S stages requests from the stage above, shaped (N, S). Any
            finite real value is accepted; see the module docstring for how it is capped,
            truncated and clipped.

    Returns:
        The state at the start of period n+1 and what happened in period n.

    Raises:
        ValueError: If the orders are malformed, the episodes are over, or the state is stale
            (it was stepped already; branch with ``state.copy()``).
    """
    n = state.period
    if state.done:
        raise ValueError(f"the episodes are over: all {config.periods} periods were played")
    if state._written[0] != n:
        raise ValueError(
            "this state was already stepped; use state.copy() to step one state more than once"
        )
    episodes, stages = state.on_hand.shape
    params = config.arrays
    requests = _empty(episodes, stages)
    np.maximum(check_orders(orders, episodes, stages), 0.0, out=requests)
    np.floor(requests, out=requests)

    # 2-3: requests (plus carried backlog) are clipped to capacity, then to what the upstream
    # stage holds at the start of the period. Shipments are the upstream stages' sales.
    requested = requests + state.backlog[:, 1:] if config.backlog else requests
    sales = _empty(episodes, stages + 1)
    shipped = sales[:, 1:]
    np.minimum(requested, params.capacity, out=shipped)
    np.minimum(shipped[:, :-1], state.on_hand[:, 1:], out=shipped[:, :-1])
    state.requests[n] = requests
    state.shipped[n] = shipped
    state._written[0] = n + 1

    # 4: arrivals of what was shipped L_i periods ago (or now, when L_i = 0).
    arrivals = np.zeros((episodes, stages), order="F")
    for i, lead in enumerate(config.lead_time):
        if n >= lead:
            arrivals[:, i] = state.shipped[n - lead, :, i]
    on_hand = state.on_hand + arrivals

    # 5-6: demand and retail sales.
    new_demand = state.demand[:, n]
    demand = new_demand + state.backlog[:, 0] if config.backlog else new_demand
    np.minimum(on_hand[:, 0], demand, out=sales[:, 0])
    state.sales[n] = sales[:, 0]
    on_hand -= sales[:, :-1]
    pipeline = state.pipeline - arrivals
    pipeline += shipped

    # 7: unfilled demand and requests.
    unfulfilled = _empty(episodes, stages + 1)
    np.subtract(demand, sales[:, 0], out=unfulfilled[:, 0])
    np.subtract(requested, shipped, out=unfulfilled[:, 1:])

    # 8: profit.
    stage_profit = stage_profits(config, sales, shipped, unfulfilled, on_hand)
    # Stages are summed left to right, as np.sum does for OR-Gym's short vector.
    reward = stage_profit[:, 0].copy()
    for j in range(1, stages + 1):
        reward += stage_profit[:, j]
    reward *= config.alpha**n

    next_state = ChainState(
        period=n + 1,
        on_hand=on_hand,
        pipeline=pipeline,
        backlog=unfulfilled if config.backlog else state.backlog,
        demand=state.demand,
        requests=state.requests,
        shipped=state.shipped,
        sales=state.sales,
        _written=state._written,
    )
    out = StepOutput(
        period=n,
        demand=new_demand,
        requests=requests,
        shipped=shipped,
        arrivals=arrivals,
        sales=sales,
        unfulfilled=unfulfilled,
        on_hand=on_hand,
        pipeline=pipeline,
        stage_profit=stage_profit,
        reward=reward,
        backlogged=config.backlog,
    )
    return next_state, out


def stage_profits(config: ChainConfig, sales: np.ndarray, shipped: np.ndarray,
                  unfulfilled: np.ndarray, on_hand: np.ndarray) -> np.ndarray:
    """Each stage's undiscounted profit in a period (step 8), from what happened in it.

    Computed in OR-Gym's order of operations, p*S - ((r*R + k*U) + h*I), so that rewards match
    it bit for bit. The supplier buys what it ships and holds nothing (h*0 adds 0). Also used to
    account logged periods (``echelon.sim.stage_view``), so the formula exists once.

    Args:
        config: The chain.
        sales: (N, S+1) retail sales and units shipped by stages 1..S.
        shipped: (N, S) units shipped to stages 0..S-1.
        unfulfilled: (N, S+1) unfilled demand and requests.
        on_hand: (N, S) on-hand at the end of the period.

    Returns:
        (N, S+1) the profit of stages 0..S (the supplier last).
    """
    params = config.arrays
    episodes, stages = np.shape(shipped)
    cost = _empty(episodes, stages + 1)
    np.multiply(shipped, params.replenishment_cost[:-1], out=cost[:, :-1])
    np.multiply(shipped[:, -1], params.replenishment_cost[-1], out=cost[:, -1])
    cost += np.multiply(unfulfilled, params.unfulfilled_penalty)
    cost[:, :-1] += np.multiply(on_hand, params.holding_cost)
    stage_profit = np.multiply(sales, params.stage_price)
    stage_profit -= cost
    return stage_profit


def observation(config: ChainConfig, state: ChainState) -> np.ndarray:
    """OR-Gym's observation of each episode, shaped (N, S * (max(L) + 1)).

    The first S entries are the on-hand inventory of stages 0..S-1; then come the requests of
    the last max(L) periods, oldest first, one row of S per period, zero-padded on the left
    while fewer periods have been played.
    """
    depth, n = config.max_lead_time, state.period
    obs = np.zeros((state.episodes, config.observation_size))
    obs[:, : config.stages] = state.on_hand
    played = min(n, depth)
    if played:
        history = state.requests[n - played : n].transpose(1, 0, 2).reshape(state.episodes, -1)
        obs[:, obs.shape[1] - history.shape[1] :] = history
    return obs


def sales_history(state: ChainState, depth: int) -> np.ndarray:
    """Retail sales of the last ``depth`` periods, shaped (N, depth), oldest first and
    zero-padded on the left while fewer periods have been played (as the observation's request
    history). In lost-sales chains this is demand censored at the retailer's stock: what a real
    log shows."""
    n = state.period
    history = np.zeros((state.episodes, depth))
    played = min(n, depth)
    if played:
        history[:, depth - played :] = state.sales[n - played : n].T
    return history


def observed_demand(config: ChainConfig, state: ChainState) -> tuple[np.ndarray, np.ndarray]:
    """What the retailer has seen of the demand of the periods played, as a real log shows it.

    Lost sales (v1): the retail sales, and whether each period sold out, so that its demand is
    only known to be at least the sales (censored). The stock on hand at the end of period m is
    rebuilt from the logs: the initial stock, plus what arrived (shipped in m - L_0), minus what
    was sold. Backlog (v0): customers' unfilled orders wait, so every period's demand is known.

    Returns:
        (N, n) values and (N, n) censored flags of periods 0 .. n-1.
    """
    n = state.period
    if config.backlog:
        return state.demand[:, :n].copy(), np.zeros((state.episodes, n), dtype=bool)
    sales = state.sales[:n].T
    lead = config.lead_time[0]
    arrivals = np.zeros((state.episodes, n))
    if n > lead:
        arrivals[:, lead:] = state.shipped[: n - lead, :, 0].T
    left = config.initial_inventory[0] + np.cumsum(arrivals - sales, axis=1)
    return sales.copy(), left <= 0.0


def echelon_inventory_position(config: ChainConfig, state: ChainState) -> np.ndarray:
    """On-hand plus in-transit inventory summed from the retailer up, net of backlog.

    Echelon i is stages 0..i. Its inventory position is the on-hand and in-transit stock of
    those stages, minus unfilled customer demand still owed (v0), plus the units stage i
    requested from stage i+1 that are still owed to it (v0: the core requests them again every
    period, so they are on order). Debts between stages inside the echelon do not change it.
    This differs from OR-Gym's helper, which subtracts every stage's backlog and so makes a
    raw-mode base-stock policy order backlogged units twice in v0.

    Returns:
        (N, S) the echelon inventory position of stages 0..S-1.
    """
    position = np.cumsum(state.on_hand + state.pipeline, axis=1)
    if config.backlog:
        position += state.backlog[:, 1:] - state.backlog[:, :1]
    return position


def scheduled_arrivals(config: ChainConfig, state: ChainState) -> np.ndarray:
    """Units in transit, by the period they will arrive in, rebuilt from the shipment log.

    A shipment to stage i in period m arrives in period m + L_i (step 4), so at the start of
    period n the units still in transit to stage i are those shipped in periods
    max(0, n - L_i) .. n-1.

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
