"""Batched rollouts of any policy on given demand paths (common random numbers).

The one episode loop of the project: evaluation, parameter search and dataset collection all
drive the core through it. A policy here is anything with ``reads_observation`` and
``act(obs, state) -> orders`` (the protocol of :mod:`echelon.policies.base`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from echelon._limits import check_memory, memory_limit
from echelon.sim import core
from echelon.sim.config import ChainConfig

Policy = Any  # echelon.policies.Policy; sim/ knows only its act() duck type.

# Episodes per block in rollout_in_blocks: the state and temporaries of a block stay in a core's
# L2 cache through all periods (measured in benchmarks/bench_sim.py).
DEFAULT_BLOCK_SIZE = 8192
# Most memory one block of rollout_in_blocks may take, and at most a quarter of the memory limit
# (blocks run on several threads): its state holds two (T, block, S) logs, so long horizons get
# fewer episodes per block (the default chain's 8,192 take 20 MiB).
_BLOCK_MEMORY = 256 * 2**20


@dataclass(frozen=True)
class Rollout:
    """Per-episode results of one policy on N demand paths."""

    profit: np.ndarray
    """(N,) episode reward: the sum of per-period profits discounted by alpha (OR-Gym's unit)."""
    undiscounted_profit: np.ndarray
    """(N,) the sum of per-period profits without discount."""
    demand: np.ndarray
    """(N,) total customer demand (new demand only, backlog not counted twice)."""
    retail_sales: np.ndarray
    """(N,) total units sold to customers."""
    mean_on_hand: np.ndarray
    """(N, S) on-hand inventory at the end of a period, averaged over the episode."""
    trajectory: dict[str, np.ndarray] | None = None
    """With ``record=True``: each ``StepOutput`` array field stacked over periods as (N, T, ...),
    plus ``action`` (N, T, S), the policy's orders as it returned them (before the core's
    truncation and clipping), and ``observation`` (N, T+1, obs_size), OR-Gym's observation at
    the start of each period and after the last one."""

    @property
    def service_level(self) -> np.ndarray:
        """(N,) fill rate: retail sales over demand (1 where there was no demand)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = self.retail_sales / self.demand
        return np.where(self.demand > 0, rate, 1.0)


_RECORDED = ("demand", "requests", "shipped", "arrivals", "sales", "unfulfilled", "on_hand",
             "pipeline", "stage_profit", "reward")


def _trajectory_shapes(config: ChainConfig, episodes: int) -> dict[str, tuple[int, ...]]:
    """The shape of each array of ``Rollout.trajectory``."""
    n, periods, stages = episodes, config.periods, config.stages
    trailing = {"demand": (), "reward": (), "sales": (stages + 1,), "unfulfilled": (stages + 1,),
                "stage_profit": (stages + 1,)}
    shapes = {name: (n, periods, *trailing.get(name, (stages,))) for name in _RECORDED}
    shapes["action"] = (n, periods, stages)
    shapes["observation"] = (n, periods + 1, config.observation_size)
    return shapes


def rollout_bytes(config: ChainConfig, episodes: int, *, record: bool = False) -> int:
    """Peak memory of :func:`rollout` over N episodes, in bytes (the demand paths excluded).

    The state (:func:`~echelon.sim.core.reset_bytes`), one period's arrays of the core, the
    policy and the observation, and with ``record`` the trajectory: (N, T, 9S+5) values and
    (N, T+1, obs_size) observations, all float64.
    """
    stages, width = config.stages, config.observation_size
    # About 16 (N, S+1) arrays live during a step (the old and new state, the outputs and their
    # temporaries, the policy's), and the (N, obs_size) observation.
    per_period = 8 * episodes * (16 * (stages + 1) + width)
    total = core.reset_bytes(config, episodes) + per_period
    if record:
        shapes = _trajectory_shapes(config, episodes).values()
        total += sum(8 * math.prod(shape) for shape in shapes)
    return total


def rollout(
    config: ChainConfig, policy: Policy, demand: np.ndarray, *, record: bool = False
) -> Rollout:
    """Runs a policy on every demand path at once.

    Args:
        config: The chain.
        policy: Any :class:`~echelon.policies.base.Policy`.
        demand: Demand paths shaped (N, T).
        record: Keep every period's internals, the policy's actions and the observations in
            ``Rollout.trajectory``.

    Returns:
        The per-episode results.

    Raises:
        SizeLimitError: If the rollout would exceed the memory limit (``echelon._limits``),
            checked before anything is allocated.
    """
    shape = np.shape(demand)
    episodes = shape[0] if len(shape) == 2 else 1
    check_memory(
        f"a rollout of {episodes:,} episode{'s' * (episodes != 1)} of {config.periods:,} periods"
        + (" with its trajectory" if record else ""),
        rollout_bytes(config, episodes, record=record), reduce="episodes or periods",
    )
    state = core.reset(config, demand)
    profit = np.zeros(episodes)
    undiscounted = np.zeros(episodes)
    sales = np.zeros(episodes)
    on_hand = np.zeros((episodes, config.stages))
    # Filled period by period, so that the trajectory is never held twice.
    trajectory = (
        {name: np.empty(shape) for name, shape in _trajectory_shapes(config, episodes).items()}
        if record else None
    )
    while not state.done:
        n = state.period
        obs = core.observation(config, state) if policy.reads_observation or record else None
        action = np.asarray(policy.act(obs, state), dtype=np.float64)
        state, out = core.step(config, state, action)
        profit += out.reward
        undiscounted += out.stage_profit.sum(axis=1)
        sales += out.sales[:, 0]
        on_hand += out.on_hand
        if record:
            trajectory["observation"][:, n] = obs
            trajectory["action"][:, n] = action
            for name in _RECORDED:
                trajectory[name][:, n] = getattr(out, name)
    if record:
        trajectory["observation"][:, config.periods] = core.observation(config, state)
    return Rollout(
        profit=profit,
        undiscounted_profit=undiscounted,
        demand=state.demand.sum(axis=1),
        retail_sales=sales,
        mean_on_hand=on_hand / config.periods,
        trajectory=trajectory,
    )


def _blocks(config: ChainConfig, episodes: int, block_size: int) -> list[slice]:
    """Consecutive blocks of at most ``block_size`` episodes (fewer for long horizons), >= 2 each.

    A block of one episode is a C-contiguous row, whose sums over periods NumPy adds pairwise,
    while a batch's (F-ordered) sums add period after period: a lone last episode joins the block
    before it, so that sums such as ``Rollout.demand`` are the same bits in blocks as in one batch.
    """
    budget = min(_BLOCK_MEMORY, memory_limit() // 4)
    size = max(2, min(block_size, budget // rollout_bytes(config, 1)))
    starts = list(range(0, episodes, size)) or [0]
    if len(starts) > 1 and episodes - starts[-1] == 1:
        starts.pop()
    return [slice(a, b) for a, b in zip(starts, [*starts[1:], episodes])]


def rollout_in_blocks(
    config: ChainConfig,
    policy_for: Callable[[slice], Policy],
    demand: np.ndarray,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    workers: int = 2,
) -> Rollout:
    """:func:`rollout` of many episodes, run in cache-sized blocks on several threads.

    Episodes are independent, so the result equals one :func:`rollout` over all of them (without
    a trajectory) when each block's policy gives every episode the orders one batch's policy
    would; this is only faster, and its memory stays that of the demand and a few blocks. NumPy
    releases the GIL inside its loops, so threads use several cores.

    Args:
        config: The chain.
        policy_for: Returns the (deterministic) policy of the episodes in a slice, e.g. a
            base-stock policy with those episodes' levels.
        demand: Demand paths shaped (N, T).
        block_size: Episodes per block, >= 1; at least 2, and fewer than asked when a block
            would take more than 256 MiB or a quarter of the memory limit (long horizons).
        workers: Threads, >= 1.

    Returns:
        The per-episode results, episodes in the order of ``demand``.
    """
    if block_size < 1 or workers < 1:
        raise ValueError(f"block_size and workers must be >= 1, got {block_size}, {workers}")
    paths = np.asarray(demand)
    blocks = _blocks(config, len(paths), block_size)

    def run(block: slice) -> Rollout:
        return rollout(config, policy_for(block), paths[block])

    if workers == 1 or len(blocks) == 1:
        parts = [run(b) for b in blocks]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(run, blocks))
    fields = ("profit", "undiscounted_profit", "demand", "retail_sales", "mean_on_hand")
    return Rollout(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in fields})


def rollout_blocks(
    config: ChainConfig,
    policy_for: Callable[[slice], Policy],
    demand: np.ndarray,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    workers: int = 2,
) -> np.ndarray:
    """Episode profits of many episodes, run in blocks as :func:`rollout_in_blocks`.

    Returns:
        (N,) discounted episode profits, as ``rollout(...).profit``.
    """
    return rollout_in_blocks(config, policy_for, demand, block_size=block_size,
                             workers=workers).profit
