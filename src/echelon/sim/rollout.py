"""Batched rollouts of any policy on given demand paths (common random numbers).

The one episode loop of the project: evaluation, parameter search and dataset collection all
drive the core through it. A policy here is anything with ``reads_observation`` and
``act(obs, state) -> orders`` (the protocol of :mod:`echelon.policies.base`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from echelon.sim import core
from echelon.sim.config import ChainConfig

Policy = Any  # echelon.policies.Policy; sim/ knows only its act() duck type.

# Episodes per block in rollout_blocks: the state and temporaries of a block stay in a core's
# L2 cache through all periods (measured in benchmarks/bench_sim.py).
DEFAULT_BLOCK_SIZE = 8192


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
    """
    state = core.reset(config, demand)
    episodes = state.episodes
    profit = np.zeros(episodes)
    undiscounted = np.zeros(episodes)
    sales = np.zeros(episodes)
    on_hand = np.zeros((episodes, config.stages))
    frames: dict[str, list[np.ndarray]] = (
        {name: [] for name in (*_RECORDED, "action", "observation")} if record else {}
    )
    while not state.done:
        obs = core.observation(config, state) if policy.reads_observation or record else None
        action = np.asarray(policy.act(obs, state), dtype=np.float64)
        if record:
            frames["observation"].append(obs)
            frames["action"].append(action)
        state, out = core.step(config, state, action)
        profit += out.reward
        undiscounted += out.stage_profit.sum(axis=1)
        sales += out.sales[:, 0]
        on_hand += out.on_hand
        for name in _RECORDED if record else ():
            frames[name].append(getattr(out, name))
    if record:
        frames["observation"].append(core.observation(config, state))
    trajectory = {name: np.stack(frame, axis=1) for name, frame in frames.items()} or None
    return Rollout(
        profit=profit,
        undiscounted_profit=undiscounted,
        demand=state.demand.sum(axis=1),
        retail_sales=sales,
        mean_on_hand=on_hand / config.periods,
        trajectory=trajectory,
    )


def rollout_blocks(
    config: ChainConfig,
    policy_for: Callable[[slice], Policy],
    demand: np.ndarray,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    workers: int = 2,
) -> np.ndarray:
    """Episode profits of many episodes, run in cache-sized blocks on several threads.

    Episodes are independent, so the result equals one :func:`rollout` over all of them; this
    is only faster. NumPy releases the GIL inside its loops, so threads use several cores.

    Args:
        config: The chain.
        policy_for: Returns the (deterministic) policy of the episodes in a slice, e.g. a
            base-stock policy with those episodes' levels.
        demand: Demand paths shaped (N, T).
        block_size: Episodes per block, >= 1.
        workers: Threads, >= 1.

    Returns:
        (N,) discounted episode profits, as ``rollout(...).profit``.
    """
    if block_size < 1 or workers < 1:
        raise ValueError(f"block_size and workers must be >= 1, got {block_size}, {workers}")
    paths = np.asarray(demand)
    blocks = [slice(i, min(i + block_size, len(paths))) for i in range(0, len(paths), block_size)]

    def run(block: slice) -> np.ndarray:
        return rollout(config, policy_for(block), paths[block]).profit

    if workers == 1 or len(blocks) == 1:
        return np.concatenate([run(b) for b in blocks])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.concatenate(list(pool.map(run, blocks)))
