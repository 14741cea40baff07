"""Batched rollouts of any policy on given demand paths (common random numbers)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from echelon.policies.base import Policy
from echelon.sim import core
from echelon.sim.config import ChainConfig


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
    """With ``record=True``: each ``StepOutput`` array field stacked over periods as (N, T, ...)."""

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
        record: Keep every period's internals in ``Rollout.trajectory``.

    Returns:
        The per-episode results.
    """
    state = core.reset(config, demand)
    episodes = state.episodes
    profit = np.zeros(episodes)
    undiscounted = np.zeros(episodes)
    sales = np.zeros(episodes)
    on_hand = np.zeros((episodes, config.stages))
    frames: dict[str, list[np.ndarray]] = {name: [] for name in _RECORDED} if record else {}
    while not state.done:
        obs = core.observation(config, state) if policy.reads_observation else None
        state, out = core.step(config, state, policy.act(obs, state))
        profit += out.reward
        undiscounted += out.stage_profit.sum(axis=1)
        sales += out.sales[:, 0]
        on_hand += out.on_hand
        for name, frame in frames.items():
            frame.append(getattr(out, name))
    trajectory = {name: np.stack(frame, axis=1) for name, frame in frames.items()} or None
    return Rollout(
        profit=profit,
        undiscounted_profit=undiscounted,
        demand=state.demand.sum(axis=1),
        retail_sales=sales,
        mean_on_hand=on_hand / config.periods,
        trajectory=trajectory,
    )
