"""Replay of fixed order plans: logged histories, or the perfect-information plans."""

from __future__ import annotations

import numpy as np

from echelon.sim.core import ChainState


class PlanReplay:
    """Plays fixed per-episode orders: episode i requests ``orders[i, n]`` in period n.

    Args:
        orders: (N, T, S) the orders of each episode, period and stage.
    """

    reads_observation = False

    def __init__(self, orders: np.ndarray) -> None:
        self.orders = np.asarray(orders, dtype=np.float64)  # (N, T, S)

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        return self.orders[:, state.period]
