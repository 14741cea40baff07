"""The exact optimum of small lost-sales chains, by backward induction over the full Markov state.

The core (:mod:`echelon.sim.core`) is a finite-horizon Markov decision process. At the start of
period n its state is, for every stage i = 0..S-1, the on-hand inventory ``I_i`` and the units in
transit to it by the period they arrive in: ``L_i`` slots, slot j holding what was shipped in
period n - L_i + j, which arrives in period n + j (core step 4). Lost sales (v1) carry nothing
else over, and the demand is i.i.d., so this state is Markov. The objective is OR-Gym's episode
reward: the expected sum over periods of alpha^n times the summed stage profits of core step 8,
from ``config.initial_inventory`` with an empty pipeline at n = 0; leftover stock is worth
nothing, so the value after period T-1 is 0. Backward induction,

    V_T = 0,   V_n(s) = max_q  alpha^n r(s, q) + E[V_{n+1}(s') | s, q],

gives the optimum over ALL non-anticipative policies (a Markov policy attains it; Puterman 1994,
"Markov Decision Processes", Thm. 4.4.2), and :func:`solve_optimum` returns its value and the
optimal Markov policy, period by period.

Exact in the demand. The retailer sells min(x, D), where x is its on-hand after the period's
arrivals, so the next state depends on D only through (x - D)^+: the values D = 0..x-1 and the
tail event D >= x. The expected period profit needs E[min(x, D)] = sum_{d<x} P(D > d),
E[(x - D)^+] = x - E[min(x, D)] and E[(D - x)^+] = E[D] - E[min(x, D)] (the lost demand,
penalised by k_0): finite sums of the law's survival function, so unbounded laws (Poisson,
geometric) are handled without truncation.

A cap keeps the state space finite. Stage i's inventory position (on-hand plus in transit to it)
is kept at most a cap ``M_i``: a request is allowed only if the position after the period cannot
exceed it whatever the demand (zero demand is the worst case). Then no stage's on-hand ever
exceeds its cap either. The default caps (:func:`default_caps`) come from demand quantiles and
capacities; after each solve the distribution of states under the optimal policy is propagated
forward from the initial state, and if at any reachable state the cap, and nothing else,
stopped a larger request, the caps of those stages are raised and the chain solved again. The
caps returned bind nowhere the optimal policy goes. (This is the standard check of a truncated
state space, not a proof: a cap that binds nowhere on the optimal path leaves the optimal policy
unchanged unless a request beyond it, never tried, would have been better still.)

Vectorised over states: the state space is a mixed-radix grid (on-hand 0..M_i, slots
0..c_i), the transition of every state under each request vector is computed once, and each
period is one matrix product (the demand's transition of the retailer's on-hand) and one gather
per request vector. :func:`policy_value` evaluates any state-only Markov policy exactly by the
same forward propagation.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from echelon._limits import check_memory
from echelon._progress import progress as progress_bar
from echelon.evaluation.stats import summarize
from echelon.policies.base import Policy
from echelon.policies.base_stock import RequestMode
from echelon.policies.families import Family, HeuristicSpec
from echelon.policies.lp import perfect_information_bound
from echelon.policies.search import SearchConfig, Space, run_search
from echelon.sim import core
from echelon.sim.config import ChainConfig
from echelon.sim.demand import DemandPath, run_streams
from echelon.sim.rollout import rollout

# Most state-action pairs (states per period x request vectors) a solve may take: its tables
# hold 12 bytes a pair (a float64 profit and an int32 index; 240 MiB at this size), and a
# 30-period solve of 20.2 million pairs (examples/chains/two-stage.json with capacities 7) took
# 6 s and 400 MiB on one core, well under the minute a solve should take.
DEFAULT_MAX_STATES = 20_000_000
# The default cap on stage i's inventory position starts at this upper quantile of the demand
# over its lead time plus one period, plus one period's capacity; the forward check raises it
# where the optimal policy needs more.
_CAP_TAIL = 1e-3
# The demand's support is cut at this upper quantile only to compute the quantiles above (the
# dynamic programme itself never truncates the demand).
_QUANTILE_SUPPORT_TAIL = 1e-12
# How much a binding cap grows per round: by half, and at least one period's capacity.
_CAP_GROWTH = 0.5


# --- what can be solved -----------------------------------------------------------------------


def check_solvable(config: ChainConfig) -> None:
    """Refuses chains outside the dynamic programme's scope.

    Raises:
        ValueError: If the chain has backlog, a demand path rather than an i.i.d. law, or a
            capacity or initial inventory that is not a whole number of units.
    """
    if config.backlog:
        raise ValueError("backlog: the exact optimum covers lost sales only (backlog=False, "
                         "InvManagement-v1); this chain carries unfilled units over")
    if isinstance(config.demand, DemandPath) or not hasattr(config.demand, "scipy"):
        raise ValueError("demand: the exact optimum needs an i.i.d. demand law with a pmf "
                         f"(poisson, binomial, uniform, geometric, negative-binomial), got {config.demand!r}")
    for name in ("capacity", "initial_inventory"):
        values = getattr(config, name)
        if any(v != math.floor(v) for v in values):
            raise ValueError(f"{name} must hold whole units for the exact optimum (its states "
                             f"are whole numbers of units), got {list(values)}")


def _sum_quantile(config: ChainConfig, periods: int) -> int:
    """The 1 - _CAP_TAIL quantile of the demand summed over ``periods`` i.i.d. periods."""
    law = config.demand.scipy()
    top = int(law.ppf(1.0 - _QUANTILE_SUPPORT_TAIL))
    pmf = law.pmf(np.arange(top + 1))
    total = pmf
    for _ in range(periods - 1):
        total = np.convolve(total, pmf)
    return int(np.searchsorted(np.cumsum(total), 1.0 - _CAP_TAIL))


def default_caps(config: ChainConfig) -> tuple[int, ...]:
    """Starting caps [M] on each stage's inventory position (on-hand plus in transit).

    Stage i needs about the demand over its lead time plus one period (the retailer's customer
    demand; upstream, the requests from below, at most c_{i-1} a period), plus one period's
    capacity of room; and at least its initial inventory.

    Returns:
        (S,) caps, whole units.
    """
    check_solvable(config)
    caps = []
    for i, (lead, capacity) in enumerate(zip(config.lead_time, config.capacity)):
        need = _sum_quantile(config, lead + 1)
        if i > 0:
            need = min(need, int(config.capacity[i - 1]) * (lead + 1))
        caps.append(max(int(config.initial_inventory[i]), need + int(capacity)))
    return tuple(caps)


# --- the state grid ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """The mixed-radix grid of states: component 0 is the retailer's on-hand (slowest), then its
    slots, then each upstream stage's on-hand and slots. A state is one flat index."""

    caps: tuple[int, ...]
    """(S,) caps [M] on the inventory positions."""
    capacity: tuple[int, ...]
    """(S,) capacities [c], whole units."""
    lead_time: tuple[int, ...]
    """(S,) lead times [L]."""

    @functools.cached_property
    def on_hand_axis(self) -> tuple[int, ...]:
        """(S,) the component holding each stage's on-hand."""
        return tuple(sum(1 + lead for lead in self.lead_time[:i]) for i in range(len(self.caps)))

    @functools.cached_property
    def slot_axes(self) -> tuple[tuple[int, ...], ...]:
        """Per stage, the components of its L_i slots; slot j arrives j periods from now."""
        return tuple(tuple(range(a + 1, a + 1 + lead))
                     for a, lead in zip(self.on_hand_axis, self.lead_time))

    @functools.cached_property
    def radix(self) -> tuple[int, ...]:
        """(C,) values each component takes: M_i + 1 for an on-hand, c_i + 1 for a slot."""
        return tuple(v for cap, capacity, lead in zip(self.caps, self.capacity, self.lead_time)
                     for v in (cap + 1, *[capacity + 1] * lead))

    @functools.cached_property
    def strides(self) -> np.ndarray:
        """(C,) the flat index's weight of each component (C order)."""
        return np.array([math.prod(self.radix[c + 1:]) for c in range(len(self.radix))],
                        dtype=np.int64)

    @property
    def size(self) -> int:
        """Number of states (the whole grid, a Python int: it may be too large to allocate)."""
        return math.prod(self.radix)

    @property
    def rows(self) -> int:
        """Values of the retailer's on-hand, M_0 + 1."""
        return self.radix[0]

    @property
    def rest(self) -> int:
        """States per value of the retailer's on-hand (the stride of component 0)."""
        return self.size // self.rows

    def decode(self, index: np.ndarray) -> np.ndarray:
        """(C, K) the components of K flat indices."""
        return np.array(np.unravel_index(index, self.radix), dtype=np.int64).reshape(
            len(self.radix), -1)

    def encode(self, components: np.ndarray) -> np.ndarray:
        """(K,) the flat indices of (C, K) components (assumed within the radices)."""
        return self.strides @ components

    def positions(self, components: np.ndarray) -> np.ndarray:
        """(K, S) each stage's inventory position, on-hand plus all its slots."""
        return np.stack([components[a] + components[list(slots)].sum(axis=0)
                         for a, slots in zip(self.on_hand_axis, self.slot_axes)], axis=1)


def _make_grid(config: ChainConfig, caps: Sequence[int]) -> _Grid:
    """The grid under given caps.

    Raises:
        ValueError: If the caps are not S whole numbers, each at least the stage's initial
            inventory (the initial state must lie in the grid).
    """
    values = np.asarray(caps, dtype=np.float64)
    if (values.shape != (config.stages,) or np.any(values != np.floor(values))
            or np.any(values < np.asarray(config.initial_inventory))):
        raise ValueError(f"caps must give {config.stages} whole numbers, each at least the "
                         f"stage's initial inventory {list(config.initial_inventory)}, got "
                         f"{list(np.ravel(caps))}")
    return _Grid(tuple(int(c) for c in values), tuple(int(c) for c in config.capacity),
                 config.lead_time)


def _actions(config: ChainConfig) -> np.ndarray:
    """(A, S) every request vector q with 0 <= q_i <= c_i, stage 0 varying slowest.

    Requests above min(c_i, upstream on-hand at the start of the period) are not needed: the core
    ships min(request, c_i, upstream on-hand) (step 3, ``ChainConfig.arrays.capacity[i]`` being
    the most stage i+1 ships to stage i, as ``base_stock.clip_requests`` reads it too), and in
    lost sales the excess is only charged as unfilled at k_{i+1} >= 0 and never carried over. So
    such a request does what the feasible one does and earns no more.
    """
    return np.array(list(itertools.product(*[range(int(c) + 1) for c in config.capacity])),
                    dtype=np.int64).reshape(-1, config.stages)


# --- one period -------------------------------------------------------------------------------


class _DemandTerms(NamedTuple):
    """What a period's demand contributes, as functions of the retailer's on-hand x after the
    period's arrivals (x = 0..X)."""

    sales: np.ndarray
    """(X+1,) E[min(x, D)], expected retail sales."""
    lost: np.ndarray
    """(X+1,) E[(D - x)^+], expected unfulfilled demand."""
    left: np.ndarray
    """(X+1,) E[(x - D)^+], expected end-of-period on-hand."""
    matrix: np.ndarray
    """(M_0+1, M_0+1) P((x - D)^+ = y), the law of the retailer's next on-hand y given x <= M_0."""


def _demand_terms(config: ChainConfig, rows: int, top: int) -> _DemandTerms:
    """The exact demand terms for x = 0..top and the (rows, rows) transition matrix."""
    law = config.demand.scipy()
    survival = law.sf(np.arange(top))  # P(D > d), d = 0..top-1
    sales = np.concatenate([[0.0], np.cumsum(survival)])  # E min(x, D) = sum_{d<x} P(D > d)
    x = np.arange(top + 1)
    gap = x[:rows, None] - x[None, :rows]  # x - y
    matrix = law.pmf(gap)  # P(D = x - y) for y >= 1 (0 where y > x)
    matrix[:, 0] = np.concatenate([[1.0], survival[: rows - 1]])  # P(D >= x), the stock-out
    return _DemandTerms(sales=sales, lost=np.maximum(config.demand.mean - sales, 0.0),
                        left=x - sales, matrix=matrix)


class _Step(NamedTuple):
    """One period from K states under given requests (core steps 1-8, in expectation)."""

    post: np.ndarray
    """(K,) x * rest + the flat index of the next state's other components: the next state is
    ((x - D)^+, those components)."""
    reward: np.ndarray
    """(K,) expected undiscounted profit of the period, summed over the S+1 stages."""
    shipped: np.ndarray
    """(K, S) units shipped to each stage."""
    position: np.ndarray
    """(K, S) each stage's inventory position after the period if the demand is 0 (the most
    it can be)."""


def _transition(config: ChainConfig, grid: _Grid, components: np.ndarray, requests: np.ndarray,
                terms: _DemandTerms) -> _Step:
    """The core's period from K states, exactly in expectation over the demand.

    Args:
        config: The chain.
        grid: The state grid.
        components: (C, K) the states.
        requests: (K, S) or (S,) whole, non-negative requests (core step 1 done).
        terms: The demand terms, for x up to M_0 + c_0.

    Returns:
        The period's transition and expected profit.
    """
    stages, count = config.stages, components.shape[1]
    params = config.arrays
    requests = np.broadcast_to(requests, (count, stages))
    on_hand = [components[a] for a in grid.on_hand_axis]
    # Step 3: clipped to capacity, then to the upstream stage's on-hand at the period's start.
    shipped = np.minimum(requests, np.asarray(grid.capacity))
    for i in range(stages - 1):
        shipped[:, i] = np.minimum(shipped[:, i], on_hand[i + 1])
    shipped = shipped.astype(np.int64)
    # Step 4: slot 0 arrives (this period's shipment when L_i = 0).
    arrivals = [components[slots[0]] if slots else shipped[:, i]
                for i, slots in enumerate(grid.slot_axes)]
    x = on_hand[0] + arrivals[0]
    post = x * grid.strides[0]
    position = np.empty((count, stages), dtype=np.int64)
    # Steps 5-8 at the retailer, in expectation: sales min(x, D), lost (D - x)^+, end (x - D)^+.
    reward = (params.stage_price[0] * terms.sales[x] - params.unfulfilled_penalty[0] * terms.lost[x]
              - params.holding_cost[0] * terms.left[x])
    for i in range(stages):
        slots = [components[a] for a in grid.slot_axes[i]]
        new_slots = [*slots[1:], shipped[:, i]] if slots else []
        if i == 0:
            kept = x  # the retailer keeps all of x if nothing is sold
        else:  # stage i ships to stage i-1 what it sells (step 6)
            kept = on_hand[i] + arrivals[i] - shipped[:, i - 1]
            post = post + kept * grid.strides[grid.on_hand_axis[i]]
            reward = reward - params.holding_cost[i] * kept
        for axis, units in zip(grid.slot_axes[i], new_slots):
            post = post + units * grid.strides[axis]
        position[:, i] = kept + sum(new_slots)
        # Stage i+1 sells what it ships at r_i and stage i buys it at r_i; the request it could
        # not fill is charged at k_{i+1} (steps 7-8).
        reward = (reward + params.stage_price[i + 1] * shipped[:, i]
                  - params.replenishment_cost[i] * shipped[:, i]
                  - params.unfulfilled_penalty[i + 1] * (requests[:, i] - shipped[:, i]))
    reward = reward - params.replenishment_cost[stages] * shipped[:, -1]  # the supplier buys
    return _Step(post=post, reward=reward, shipped=shipped, position=position)


# --- forward propagation ----------------------------------------------------------------------


class _Forward(NamedTuple):
    value: float
    """Expected discounted profit from the initial state."""
    binding: np.ndarray
    """(S,) whether the cap, and nothing else, stopped a larger request of the stage at some
    reachable state."""
    max_position: np.ndarray
    """(S,) the largest inventory position of each stage at a reachable state."""


def _initial_index(config: ChainConfig, grid: _Grid) -> int:
    components = np.zeros((len(grid.radix), 1), dtype=np.int64)
    components[list(grid.on_hand_axis), 0] = np.asarray(config.initial_inventory, dtype=np.int64)
    return int(grid.encode(components)[0])


def _propagate(config: ChainConfig, grid: _Grid, terms: _DemandTerms,
               choose: Callable[[int, np.ndarray, np.ndarray], np.ndarray]) -> _Forward:
    """Propagates the distribution of states from the initial state under a Markov policy.

    Args:
        config: The chain.
        grid: The state grid; the initial state must lie in it.
        terms: The demand terms.
        choose: ``choose(n, index, components)`` gives the (K, S) whole requests of period n at
            the K states of positive probability (flat ``index`` (K,), ``components`` (C, K)).

    Returns:
        The policy's exact expected discounted profit and where it goes in the grid.

    Raises:
        ValueError: If the policy leads outside the grid (a position above its cap).
    """
    stages, caps = config.stages, np.asarray(grid.caps)
    probability = np.zeros(grid.size)
    probability[_initial_index(config, grid)] = 1.0
    value = 0.0
    binding = np.zeros(stages, dtype=bool)
    max_position = np.zeros(stages, dtype=np.int64)
    for n in range(config.periods):
        index = np.flatnonzero(probability)
        weight = probability[index]
        components = grid.decode(index)
        requests = choose(n, index, components)
        step = _transition(config, grid, components, requests, terms)
        outside = step.position > caps
        if outside.any():
            k, i = np.argwhere(outside)[0]
            raise ValueError(
                f"the policy leaves the solved table in period {n}: stage {i}'s inventory "
                f"position may reach {step.position[k, i]}, over its cap {caps[i]}; pass larger "
                "caps")
        value += config.alpha**n * float(weight @ step.reward)
        max_position = np.maximum(max_position, grid.positions(components).max(axis=0))
        # A larger request was allowed by capacity and the upstream on-hand but not by the cap.
        room = step.shipped < np.asarray(grid.capacity)
        room[:, :-1] &= step.shipped[:, :-1] < components[list(grid.on_hand_axis[1:])].T
        binding |= np.any(room & (step.position >= caps), axis=0)
        held = np.bincount(step.post, weights=weight, minlength=grid.size)
        probability = (terms.matrix.T @ held.reshape(grid.rows, grid.rest)).ravel()
    return _Forward(value=value, binding=binding, max_position=max_position)


# --- the solve --------------------------------------------------------------------------------


def _table_bytes(grid: _Grid, actions: int, periods: int) -> int:
    """Peak memory of one solve: per state-action a profit and an index, per state a policy
    entry a period, its components and about 24 float64 working arrays."""
    index_bytes = 4 if grid.size < 2**31 else 8
    return (grid.size * actions * (8 + index_bytes) + grid.size * periods * 4
            + grid.size * 8 * (len(grid.radix) + 24))


def _check_size(config: ChainConfig, grid: _Grid, actions: int, max_states: int,
                binding: str = "") -> None:
    pairs = grid.size * actions
    if pairs > max_states:
        raise ValueError(
            f"{binding}the exact optimum needs {grid.size:,} states x {actions:,} request "
            f"vectors = {pairs:,} state-action pairs, over max_states={max_states:,}: shrink "
            f"capacity (request vectors and in-transit states), lead_time (in-transit slots), "
            f"the number of stages, or the demand's mean and initial_inventory (the caps on "
            f"the inventory positions, now {list(grid.caps)})")
    check_memory(f"the exact optimum's tables ({pairs:,} state-action pairs over "
                 f"{config.periods} periods)", _table_bytes(grid, actions, config.periods),
                 reduce="capacity, lead_time or the number of stages")


def _backward(config: ChainConfig, grid: _Grid, actions: np.ndarray, terms: _DemandTerms,
              bar: Any) -> tuple[float, np.ndarray]:
    """Backward induction on the grid.

    Returns:
        The optimal value of the initial state and the (T, states) optimal request vector of
        each period and state (an index into ``actions``; -1 where the state lies beyond a cap).
    """
    size, caps = grid.size, np.asarray(grid.caps)
    index_type = np.int32 if size < 2**31 else np.int64
    components = grid.decode(np.arange(size))
    valid = np.all(grid.positions(components) <= caps, axis=1)
    # Every state's transition under every request vector, once for all periods: the index of
    # (x, next components) in the expectation table, or -1 (a -inf sentinel) where the vector
    # is not allowed (it asks for more than the upstream stage holds, or breaks a cap).
    profit = np.empty((len(actions), size))
    where = np.empty((len(actions), size), dtype=index_type)
    for a, requests in enumerate(actions):
        step = _transition(config, grid, components, requests, terms)
        allowed = np.all(step.shipped == requests, axis=1) & np.all(step.position <= caps, axis=1)
        profit[a] = step.reward
        where[a] = np.where(allowed, step.post, -1)
    del components
    value = np.zeros(size)
    policy = np.empty((config.periods, size), dtype=np.int16 if len(actions) < 2**15 else np.int32)
    for n in reversed(range(config.periods)):
        # E[V_{n+1}((x - D)^+, rest)] for every x <= M_0 and rest, then the -inf sentinel.
        expected = np.append((terms.matrix @ value.reshape(grid.rows, grid.rest)).ravel(), -np.inf)
        discount = config.alpha**n
        best = np.full(size, -np.inf)
        choice = np.zeros(size, dtype=policy.dtype)
        for a in range(len(actions)):
            q = discount * profit[a] + expected.take(where[a])
            better = q > best  # ties keep the smaller request vector
            np.putmask(best, better, q)
            np.putmask(choice, better, a)
        best[~valid] = 0.0  # never reached from the initial state; finite for the next product
        choice[~valid] = -1
        value, policy[n] = best, choice
        bar.update(1)
    return float(value[_initial_index(config, grid)]), policy


def _grown(grid: _Grid, binding: np.ndarray) -> tuple[int, ...]:
    return tuple(cap + max(capacity, math.ceil(_CAP_GROWTH * cap)) if bound else cap
                 for cap, capacity, bound in zip(grid.caps, grid.capacity, binding))


@dataclass(frozen=True)
class OptimumResult:
    """The exact optimum of a chain and its optimal Markov policy."""

    config: ChainConfig
    """The chain solved."""
    value: float
    """Expected discounted profit of the optimal policy from the initial state (OR-Gym reward)."""
    caps: tuple[int, ...]
    """(S,) the caps [M] on the inventory positions, which bind nowhere the policy goes."""
    policy: np.ndarray = field(repr=False, compare=False)
    """(T, states) the optimal request vector (a row of ``actions``) by period and flat state;
    -1 where a state lies beyond a cap."""
    actions: np.ndarray = field(repr=False, compare=False)
    """(A, S) the request vectors, 0..c_i per stage."""
    states: int
    """Number of states per period (the grid under the caps)."""
    state_actions: int
    """States x request vectors, the size ``max_states`` limits."""
    max_position: tuple[int, ...]
    """(S,) the largest inventory position of each stage reachable under the optimal policy."""
    rounds: int
    """Solves done: 1 plus the times a binding cap was raised."""
    seconds: float
    """Wall-clock time of all the rounds."""

    @functools.cached_property
    def _grid(self) -> _Grid:
        return _make_grid(self.config, self.caps)

    def _lookup(self, period: int, components: np.ndarray) -> np.ndarray:
        """(K, S) optimal requests at K states given as (C, K) grid components.

        Raises:
            ValueError: If a state is not whole units or lies outside the solved table.
        """
        grid = self._grid
        if not 0 <= period < self.config.periods:
            raise ValueError(f"period must be in [0, {self.config.periods - 1}], got {period}")
        values = np.asarray(components, dtype=np.float64)
        bad = (values != np.floor(values)) | (values < 0)
        bad |= values > (np.asarray(grid.radix)[:, None] - 1)
        if not bad.any():
            whole = values.astype(np.int64)
            over = grid.positions(whole) > np.asarray(grid.caps)
            if over.any():
                k, i = np.argwhere(over)[0]
                raise ValueError(
                    f"state {k} is outside the solved table: stage {i}'s on-hand plus in-transit "
                    f"is {grid.positions(whole)[k, i]}, over the cap {grid.caps[i]}")
            return self.actions[self.policy[period, grid.encode(whole)]]
        c, k = np.argwhere(bad)[0]
        stage = next(i for i, a in enumerate(grid.on_hand_axis) if a <= c < a + 1
                     + self.config.lead_time[i])
        what = "on-hand" if c == grid.on_hand_axis[stage] else "units in transit"
        raise ValueError(
            f"state {k} is outside the solved table: stage {stage}'s {what} is {values[c, k]:g}, "
            f"not whole units in [0, {grid.radix[c] - 1}] (caps {list(grid.caps)}, capacities "
            f"{list(grid.capacity)})")

    def requests(self, period: int, on_hand: np.ndarray, in_transit: np.ndarray) -> np.ndarray:
        """The optimal requests of period n at K states.

        Args:
            period: The period n about to be played.
            on_hand: (K, S) on-hand inventory of each stage at the start of the period.
            in_transit: (K, max(L), S) units arriving at each stage at the start of period
                n + j (j = 0: this period) from shipments already made; 0 for j >= L_i.

        Returns:
            (K, S) optimal whole requests.

        Raises:
            ValueError: If a shape is wrong or a state lies outside the solved table.
        """
        config, grid = self.config, self._grid
        on_hand, in_transit = np.asarray(on_hand, float), np.asarray(in_transit, float)
        count = len(on_hand)
        if on_hand.shape != (count, config.stages) or in_transit.shape != (
                count, config.max_lead_time, config.stages):
            raise ValueError(f"on_hand must be (K, {config.stages}) and in_transit (K, "
                             f"{config.max_lead_time}, {config.stages}), got {on_hand.shape} and "
                             f"{in_transit.shape}")
        components = np.empty((len(grid.radix), count))
        for i, lead in enumerate(config.lead_time):
            if np.any(in_transit[:, lead:, i] != 0):
                raise ValueError(f"in_transit[:, j, {i}] must be 0 for j >= L_{i} = {lead}")
            components[grid.on_hand_axis[i]] = on_hand[:, i]
            components[list(grid.slot_axes[i])] = in_transit[:, :lead, i].T
        return self._lookup(period, components)

    @property
    def initial_requests(self) -> np.ndarray:
        """(S,) the optimal requests of period 0 at the initial state."""
        grid = self._grid
        return self.actions[self.policy[0, _initial_index(self.config, grid)]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "initial_requests": [int(v) for v in self.initial_requests],
            "caps": list(self.caps),
            "max_position": list(self.max_position),
            "states": self.states,
            "request_vectors": len(self.actions),
            "state_actions": self.state_actions,
            "rounds": self.rounds,
            "seconds": self.seconds,
        }


def solve_optimum(
    config: ChainConfig,
    *,
    caps: Sequence[int] | None = None,
    max_states: int = DEFAULT_MAX_STATES,
    progress: bool = False,
) -> OptimumResult:
    """The exact optimal expected discounted profit and policy of a lost-sales chain.

    Args:
        config: The chain: lost sales, an i.i.d. demand law, whole capacities and initial
            inventory (see :func:`check_solvable`).
        caps: (S,) starting caps on the inventory positions; :func:`default_caps` when None.
            Caps that bind on the optimal path are raised and the chain solved again.
        max_states: Most state-action pairs (states x request vectors) a solve may take.
        progress: Show a progress bar on stderr.

    Returns:
        The optimum, its policy table and the caps it was verified with.

    Raises:
        ValueError: If the chain cannot be solved (:func:`check_solvable`), or its state-action
            pairs, with the caps as they need to be, exceed ``max_states`` (checked before
            anything is allocated; the message gives the size and the fields to shrink).
        SizeLimitError: If the tables would exceed the memory limit (``echelon._limits``).
    """
    check_solvable(config)
    start = time.perf_counter()
    actions = _actions(config)
    grid = _make_grid(config, default_caps(config) if caps is None else caps)
    rounds, reason = 0, ""
    while True:
        _check_size(config, grid, len(actions), max_states, reason)
        rounds += 1
        terms = _demand_terms(config, grid.rows, grid.caps[0] + grid.capacity[0])
        with progress_bar(total=config.periods, desc=f"optimum caps={list(grid.caps)}",
                          unit="period", enabled=progress) as bar:
            value, policy = _backward(config, grid, actions, terms, bar)
        forward = _propagate(config, grid, terms,
                             lambda n, index, components: actions[policy[n, index]])
        if not forward.binding.any():
            break
        stages = [int(i) for i in np.flatnonzero(forward.binding)]
        reason = (f"the cap on the inventory position of stage(s) {stages} binds at "
                  f"{[grid.caps[i] for i in stages]} on the optimal path, and raising it: ")
        grid = _make_grid(config, _grown(grid, forward.binding))
    return OptimumResult(
        config=config, value=value, caps=grid.caps, policy=policy, actions=actions,
        states=grid.size, state_actions=grid.size * len(actions),
        max_position=tuple(int(v) for v in forward.max_position), rounds=rounds,
        seconds=time.perf_counter() - start,
    )


# --- policies on the table --------------------------------------------------------------------


def _components_of(config: ChainConfig, grid: _Grid, state: core.ChainState) -> np.ndarray:
    """(C, N) the grid components of a core state: on-hand, and the slots rebuilt from the
    shipment log as :func:`echelon.sim.core.scheduled_arrivals` reads it (shipped in period m,
    arriving in m + L_i), arrivals after the horizon included.

    Raises:
        ValueError: If the log does not add up to the state's pipeline.
    """
    n = state.period
    components = np.zeros((len(grid.radix), state.episodes))
    for i, lead in enumerate(config.lead_time):
        components[grid.on_hand_axis[i]] = state.on_hand[:, i]
        for j, axis in enumerate(grid.slot_axes[i]):
            if n - lead + j >= 0:
                components[axis] = state.shipped[n - lead + j, :, i]
        in_transit = components[list(grid.slot_axes[i])].sum(axis=0)
        if not np.allclose(in_transit, state.pipeline[:, i], rtol=0.0, atol=1e-9):
            raise ValueError("the shipment log does not add up to the pipeline: is it the core's "
                             "state of this chain?")
    return components


class OptimalPolicy:
    """The dynamic programme's optimal Markov policy, acting on the core's state.

    It reads ``state.period``, ``state.on_hand`` and the in-transit units by arrival period,
    rebuilt from ``state.shipped``; the state must be the core's state of the chain solved.

    Args:
        result: A solve of the chain (:func:`solve_optimum`).
    """

    reads_observation = False

    def __init__(self, result: OptimumResult) -> None:
        self.result = result

    def act(self, obs: np.ndarray | None, state: core.ChainState) -> np.ndarray:
        """(N, S) the optimal requests.

        Raises:
            ValueError: If a state lies outside the solved table (another chain, or a state the
                optimal policy never reaches beyond the caps).
        """
        result = self.result
        components = _components_of(result.config, result._grid, state)
        return result._lookup(state.period, components).astype(np.float64)


def _core_state(config: ChainConfig, grid: _Grid, period: int,
                components: np.ndarray) -> core.ChainState:
    """The core's state of K grid states at the start of ``period``: on-hand, pipeline and the
    shipment log of the last L_i periods. The request log holds the shipments too, and the
    demand and sales are zero: a state-only policy reads none of them."""
    count, periods, stages = components.shape[1], config.periods, config.stages
    on_hand = np.asfortranarray(components[list(grid.on_hand_axis)].T.astype(np.float64))
    shipped = np.zeros((periods, stages, count)).transpose(0, 2, 1)
    for i, lead in enumerate(config.lead_time):
        for j, axis in enumerate(grid.slot_axes[i]):
            if period - lead + j >= 0:
                shipped[period - lead + j, :, i] = components[axis]
    return core.ChainState(
        period=period, on_hand=on_hand,
        pipeline=np.asfortranarray(grid.positions(components) - on_hand),
        backlog=np.zeros((count, stages + 1), order="F"), demand=np.zeros((count, periods)),
        requests=shipped.copy(), shipped=shipped, sales=np.zeros((periods, count)),
        _written=np.array([period]),
    )


def policy_value(config: ChainConfig, policy: Policy, *,
                 caps: Sequence[int] | None = None) -> float:
    """The exact expected discounted profit of a deterministic, state-only Markov policy.

    The distribution of states is propagated forward from the initial state; in each period
    the policy acts once on all states of positive probability, given as a core state
    (:func:`_core_state`), and its orders are truncated and clipped as the core does.

    Args:
        config: The chain (as for :func:`solve_optimum`).
        policy: A policy with ``reads_observation = False`` whose orders depend only on the
            period, the on-hand and the in-transit units (base-stock, time-aware,
            :class:`OptimalPolicy`).
        caps: (S,) caps on the inventory positions; :func:`default_caps` when None.

    Returns:
        The expected discounted profit.

    Raises:
        ValueError: If the policy reads observations, the chain cannot be solved, or the
            policy takes a stage's inventory position above its cap (pass larger caps).
    """
    check_solvable(config)
    if policy.reads_observation:
        raise ValueError("policy_value evaluates state-only policies (reads_observation False)")
    grid = _make_grid(config, default_caps(config) if caps is None else caps)
    terms = _demand_terms(config, grid.rows, grid.caps[0] + grid.capacity[0])

    def choose(n: int, index: np.ndarray, components: np.ndarray) -> np.ndarray:
        orders = policy.act(None, _core_state(config, grid, n, components))
        orders = core.check_orders(orders, len(index), config.stages)
        return np.floor(np.maximum(orders, 0.0))  # core step 1

    return _propagate(config, grid, terms, choose).value


# --- the comparison ---------------------------------------------------------------------------

TUNED_FAMILIES = (Family.BASE_STOCK, Family.TIME_AWARE)
"""The heuristic families :func:`optimum_comparison` tunes by default."""


def tuned_heuristic(config: ChainConfig, family: Family, seed: np.random.SeedSequence,
                    episodes: int = 200, *, progress: bool = False) -> HeuristicSpec:
    """The best member of a family, by :func:`~echelon.policies.search.run_search` over
    ``Space.WIDE`` on ``episodes`` paths of ``seed`` (requests clipped to what can be shipped)."""
    settings = SearchConfig(space=Space.WIDE, family=family, mode=RequestMode.CLIP,
                            episodes=episodes, top_k=1)
    best = run_search(config, settings, seed, progress=progress).best
    return HeuristicSpec(family, RequestMode.CLIP, best.params)


def optimum_comparison(
    config: ChainConfig,
    episodes: int = 10_000,
    seed: int = 0,
    extra: Mapping[str, Policy] | None = None,
    *,
    result: OptimumResult | None = None,
    families: Sequence[Family] = TUNED_FAMILIES,
    search_episodes: int = 200,
    max_states: int = DEFAULT_MAX_STATES,
    progress: bool = False,
) -> dict[str, Any]:
    """The exact optimum beside policies simulated on common demand paths.

    Every policy runs in the core on the same ``episodes`` paths of the run's test stream
    (``run_streams(seed).test``): the optimal policy (whose mean estimates ``value``), each
    family of ``families`` tuned on the run's search stream, and the ``extra`` policies; the
    perfect-information bound of each path is solved too. Shares are of the optimum's value.

    Args:
        config: The chain (as for :func:`solve_optimum`).
        episodes: Test paths, >= 1.
        seed: The run seed.
        extra: More policies by name (trained agents, planners), e.g. ``{"iql": policy}``.
        result: A solve of ``config`` to reuse; solved here when None.
        families: Heuristic families to tune (:func:`tuned_heuristic`).
        search_episodes: Paths each tuning search scores on (and ranks on).
        max_states: As for :func:`solve_optimum`.
        progress: Show progress on stderr.

    Returns:
        ``{"config": the chain's dict, "optimum": OptimumResult.to_dict(), "episodes", "seed",
        "policies": {name: summary}, "perfect_information": summary}``, where each summary is
        :class:`~echelon.evaluation.stats.Summary`'s fields, ``share`` and ``share_ci`` (mean
        and 95% interval over the optimum; NaN if the optimum is not positive), ``seconds``,
        and for a policy ``difference`` and ``difference_se``, the mean and standard error of
        its per-path profit minus the optimal policy's (paired on the common paths), and
        ``params`` for a tuned heuristic.

    Raises:
        ValueError: If an extra policy takes a built-in name, ``result`` solves another chain,
            or the chain cannot be solved (as :func:`solve_optimum`).
    """
    names = {"optimal", *(Family(f).value for f in families)}
    clash = sorted(names & set(extra or {}))
    if clash:
        raise ValueError(f"extra policies may not be named {clash}: those names are built in")
    if result is None:
        result = solve_optimum(config, max_states=max_states, progress=progress)
    elif result.config != config:
        raise ValueError("result is the optimum of another chain: "
                         f"{config.differences(result.config)}")
    streams = run_streams(seed)
    policies: dict[str, tuple[Policy, dict[str, Any]]] = {"optimal": (OptimalPolicy(result), {})}
    for family in families:
        start = time.perf_counter()
        spec = tuned_heuristic(config, Family(family), streams.search, search_episodes,
                               progress=progress)
        policies[spec.family.value] = (spec.policy(config), {
            "params": spec.params, "search_seconds": time.perf_counter() - start})
    policies.update({name: (policy, {}) for name, policy in (extra or {}).items()})
    demand = config.demand.sample(np.random.default_rng(streams.test), episodes, config.periods)

    def share(values: dict[str, Any]) -> dict[str, Any]:
        scale = 1.0 / result.value if result.value > 0 else math.nan
        return {**values, "share": values["mean"] * scale,
                "share_ci": [values["ci_low"] * scale, values["ci_high"] * scale]}

    report: dict[str, Any] = {"config": config.to_dict(), "optimum": result.to_dict(),
                              "episodes": episodes, "seed": seed, "policies": {}}
    profits, seconds = {}, {}
    for name, (policy, _) in policies.items():
        start = time.perf_counter()
        profits[name] = rollout(config, policy, demand).profit
        seconds[name] = time.perf_counter() - start
    for name, (_, info) in policies.items():
        difference = summarize(profits[name] - profits["optimal"])
        report["policies"][name] = {**share(summarize(profits[name]).to_dict()),
                                    "seconds": seconds[name], "difference": difference.mean,
                                    "difference_se": difference.se, **info}
    start = time.perf_counter()
    bound = perfect_information_bound(config, demand)
    report["perfect_information"] = {**share(summarize(bound).to_dict()),
                                     "seconds": time.perf_counter() - start}
    return report


__all__ = [
    "DEFAULT_MAX_STATES",
    "TUNED_FAMILIES",
    "OptimalPolicy",
    "OptimumResult",
    "check_solvable",
    "default_caps",
    "optimum_comparison",
    "policy_value",
    "solve_optimum",
    "tuned_heuristic",
]
