"""The core's dynamics in PyTorch, for policies trained by back-propagating the episode profit.

:mod:`echelon.sim.core` is the single source of truth: this module is its twin, step for step and
operation for operation in the order of events stated there, and
``tests/sim/test_differentiable.py`` holds the two equal (float64, bit for bit) on random integer
states that exercise every clip, in v0 and v1 and on chains of other sizes. Nothing here is used to
evaluate a policy: every evaluation runs in the NumPy core on whole units.

Why a twin rather than one array-API core: the NumPy core's speed comes from writing into
preallocated Fortran-ordered buffers (``out=``), an append-only shipment log and a BLAS check of
the orders, none of which autograd allows; a single generic form would slow every search,
collection and evaluation to serve the one consumer that needs gradients.

Two things differ on purpose, both options of :func:`step`:

* ``units``: the core truncates requests to whole units (step 1). Flooring has no gradient, so
  training uses ``"continuous"`` requests (no flooring) or ``"straight-through"`` (the floored
  value forward, the identity's gradient backward); ``"whole"`` floors as the core does (the
  conformance test's setting).
* The state keeps the units in transit as slots by arrival period instead of the core's full
  request and shipment logs: what the dynamics need, and what a policy sees of the pipeline. It
  keeps the core's log of retail sales (what a policy may see of past demand).

The gradient of min(a, b) flows to the smaller argument, so a clipped order gets no gradient from
the clip's far side: that is the subgradient autograd takes, and what the planner optimises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from echelon.sim.config import ChainConfig
from echelon.sim.core import MAX_REQUEST, ChainState

Units = Literal["whole", "continuous", "straight-through"]
UNITS: tuple[str, ...] = ("whole", "continuous", "straight-through")


@dataclass(frozen=True)
class TensorState:
    """The state of N episodes at the start of a period, as tensors (the core's ``ChainState``)."""

    period: int
    """Index n of the period about to be played."""
    on_hand: torch.Tensor
    """(N, S) on-hand inventory of stages 0..S-1."""
    transit: tuple[torch.Tensor, ...]
    """S tensors (N, L_i): units shipped to stage i in periods n-L_i .. n-1, oldest first, so that
    slot j arrives in period n + j (zeros before period 0)."""
    backlog: torch.Tensor
    """(N, S+1) unfilled demand (index 0) and requests (index j: stage j-1's) carried over; 0 in v1."""
    demand: torch.Tensor
    """(N, T) the retailer's demand in each period."""
    sales: torch.Tensor
    """(N, n) retail sales of the periods played (the core's ``sales`` log, episode-major)."""

    @property
    def pipeline(self) -> torch.Tensor:
        """(N, S) units shipped to each stage and not yet received (the core's ``pipeline``)."""
        return torch.stack([slots.sum(dim=1) for slots in self.transit], dim=1)

    def transit_flat(self) -> torch.Tensor:
        """(N, sum L) the transit slots of all stages side by side, stage 0 first."""
        return torch.cat(self.transit, dim=1)


@dataclass(frozen=True)
class TensorStep:
    """What happened in one period (the core's ``StepOutput``, as tensors)."""

    requests: torch.Tensor
    """(N, S) requests after capping (and flooring with ``units="whole"``), before backlog."""
    shipped: torch.Tensor
    """(N, S) units shipped to stage i by stage i+1 after clipping."""
    arrivals: torch.Tensor
    """(N, S) units received by stage i this period."""
    sales: torch.Tensor
    """(N, S+1) retail sales (index 0) and units shipped by stages 1..S."""
    unfulfilled: torch.Tensor
    """(N, S+1) unfilled demand (index 0) and unfilled requests (index j: stage j-1's)."""
    stage_profit: torch.Tensor
    """(N, S+1) undiscounted profit of each stage in this period."""
    reward: torch.Tensor
    """(N,) discounted profit alpha^n * sum(stage_profit), OR-Gym's reward."""


def _parameters(config: ChainConfig, like: torch.Tensor) -> dict[str, torch.Tensor]:
    arrays = config.arrays
    # torch.tensor copies: the config's arrays are read-only, which torch cannot share.
    return {name: torch.tensor(getattr(arrays, name), dtype=like.dtype, device=like.device)
            for name in arrays._fields}


def reset(config: ChainConfig, demand: torch.Tensor) -> TensorState:
    """Starts N episodes facing the given demand paths (N, T), as :func:`echelon.sim.core.reset`.

    Raises:
        ValueError: If the demand is not shaped (N, T) with T the chain's periods.
    """
    if demand.ndim != 2 or demand.shape[1] != config.periods:
        raise ValueError(f"demand must be shaped (N, T) with T = {config.periods}, got "
                         f"{tuple(demand.shape)}")
    n, stages = demand.shape[0], config.stages
    like = demand
    on_hand = torch.as_tensor(config.initial_inventory, dtype=like.dtype,
                              device=like.device).expand(n, stages).clone()
    transit = tuple(torch.zeros(n, lead, dtype=like.dtype, device=like.device)
                    for lead in config.lead_time)
    backlog = torch.zeros(n, stages + 1, dtype=like.dtype, device=like.device)
    sales = torch.zeros(n, 0, dtype=like.dtype, device=like.device)
    return TensorState(0, on_hand, transit, backlog, demand, sales)


def from_chain_state(config: ChainConfig, state: ChainState, *,
                     dtype: torch.dtype = torch.float64) -> TensorState:
    """The twin of a NumPy core state: on-hand and backlog as they are, transit rebuilt from the
    shipment log (the last L_i shipments to stage i), the sales log as it is."""
    n = state.period
    slots = []
    for i, lead in enumerate(config.lead_time):
        stage = np.zeros((state.episodes, lead))
        for j in range(lead):
            shipped_in = n - lead + j
            if shipped_in >= 0:
                stage[:, j] = state.shipped[shipped_in, :, i]
        slots.append(torch.as_tensor(stage, dtype=dtype))
    return TensorState(
        period=n,
        on_hand=torch.as_tensor(np.ascontiguousarray(state.on_hand), dtype=dtype),
        transit=tuple(slots),
        backlog=torch.as_tensor(np.ascontiguousarray(state.backlog), dtype=dtype),
        demand=torch.as_tensor(np.ascontiguousarray(state.demand), dtype=dtype),
        sales=torch.as_tensor(np.ascontiguousarray(state.sales[:n].T), dtype=dtype),
    )


def sales_history(state: TensorState, depth: int) -> torch.Tensor:
    """(N, depth) retail sales of the last ``depth`` periods, oldest first, zero-padded on the
    left (:func:`echelon.sim.core.sales_history`)."""
    recent = state.sales[:, max(0, state.period - depth):]
    return torch.nn.functional.pad(recent, (depth - recent.shape[1], 0))


def echelon_inventory_position(config: ChainConfig, state: TensorState) -> torch.Tensor:
    """(N, S) on-hand plus in-transit stock of stages 0..i, net of backlog (v0), as
    :func:`echelon.sim.core.echelon_inventory_position` computes it."""
    position = torch.cumsum(state.on_hand + state.pipeline, dim=1)
    if config.backlog:
        position = position + (state.backlog[:, 1:] - state.backlog[:, :1])
    return position


def clip_requests(config: ChainConfig, state: TensorState, requests: torch.Tensor) -> torch.Tensor:
    """Caps requests at the upstream capacity and the upstream stage's on-hand now, as
    :func:`echelon.policies.base_stock.clip_requests` does."""
    capacity = _parameters(config, requests)["capacity"]
    capped = torch.minimum(requests, capacity)
    return torch.cat([torch.minimum(capped[:, :-1], state.on_hand[:, 1:]), capped[:, -1:]], dim=1)


def step(config: ChainConfig, state: TensorState, orders: torch.Tensor, *,
         units: Units = "whole") -> tuple[TensorState, TensorStep]:
    """Plays one period for all N episodes (:func:`echelon.sim.core.step`, steps 1-8).

    Args:
        config: The chain.
        state: The state at the start of period n.
        orders: (N, S) finite orders (a NaN passes through: the caller checks its loss).
        units: ``"whole"`` truncates requests to whole units like the core; ``"continuous"``
            keeps fractions; ``"straight-through"`` truncates forward and passes the gradient
            through unchanged.

    Returns:
        The state at the start of period n+1 and what happened in period n.

    Raises:
        ValueError: If the episodes are over or ``units`` is unknown.
    """
    n = state.period
    if n >= config.periods:
        raise ValueError(f"the episodes are over: all {config.periods} periods were played")
    if units not in UNITS:
        raise ValueError(f"units must be one of {list(UNITS)}, got {units!r}")
    params = _parameters(config, state.on_hand)
    # 1: requests are capped, made non-negative and (unless continuous) truncated.
    requests = torch.clamp(torch.clamp(orders, max=MAX_REQUEST), min=0.0)
    if units == "whole":
        requests = torch.floor(requests)
    elif units == "straight-through":
        requests = requests + (torch.floor(requests) - requests).detach()

    # 2-3: requests plus carried backlog, clipped to capacity, then to upstream on-hand.
    requested = requests + state.backlog[:, 1:] if config.backlog else requests
    shipped = torch.minimum(requested, params["capacity"])
    shipped = torch.cat([torch.minimum(shipped[:, :-1], state.on_hand[:, 1:]), shipped[:, -1:]],
                        dim=1)

    # 4: arrivals: the oldest slot, or this period's shipment when L_i = 0.
    arrivals, transit = [], []
    for i, slots in enumerate(state.transit):
        if slots.shape[1] == 0:
            arrivals.append(shipped[:, i])
            transit.append(slots)
        else:
            arrivals.append(slots[:, 0])
            transit.append(torch.cat([slots[:, 1:], shipped[:, i : i + 1]], dim=1))
    arrived = torch.stack(arrivals, dim=1)
    on_hand = state.on_hand + arrived

    # 5-6: demand and retail sales; upstream stages sell what they ship.
    new_demand = state.demand[:, n]
    demand = new_demand + state.backlog[:, 0] if config.backlog else new_demand
    retail = torch.minimum(on_hand[:, 0], demand)
    sales = torch.cat([retail[:, None], shipped], dim=1)
    on_hand = on_hand - sales[:, :-1]

    # 7: unfilled demand and requests.
    unfulfilled = torch.cat([(demand - retail)[:, None], requested - shipped], dim=1)

    # 8: profit, in the core's order of operations (and so OR-Gym's), bit for bit.
    cost = torch.cat([shipped * params["replenishment_cost"][:-1],
                      shipped[:, -1:] * params["replenishment_cost"][-1:]], dim=1)
    cost = cost + unfulfilled * params["unfulfilled_penalty"]
    cost = torch.cat([cost[:, :-1] + on_hand * params["holding_cost"], cost[:, -1:]], dim=1)
    stage_profit = sales * params["stage_price"] - cost
    reward = stage_profit[:, 0]
    for j in range(1, config.stages + 1):
        reward = reward + stage_profit[:, j]
    reward = reward * config.alpha**n

    next_state = TensorState(
        period=n + 1,
        on_hand=on_hand,
        transit=tuple(transit),
        backlog=unfulfilled if config.backlog else state.backlog,
        demand=state.demand,
        sales=torch.cat([state.sales, retail[:, None]], dim=1),
    )
    return next_state, TensorStep(requests, shipped, arrived, sales, unfulfilled, stage_profit,
                                  reward)
