"""Uniformly random orders: the least informed behaviour, the floor of normalised scores."""

from __future__ import annotations

import numpy as np

from echelon.sim.config import ChainConfig
from echelon.sim.core import ChainState


class UniformOrders:
    """Each stage requests a whole number of units drawn uniformly from 0 .. its supplier's
    capacity, every period, independently of the state.

    The draws come from the given Generator, so a seeded collection logs the same orders.

    Args:
        config: The chain (its capacities bound the draws).
        rng: The Generator the orders are drawn from.
    """

    reads_observation = False

    def __init__(self, config: ChainConfig, rng: np.random.Generator) -> None:
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.high = np.floor(np.asarray(config.capacity, dtype=np.float64)).astype(np.int64) + 1
        self.rng = rng

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        return self.rng.integers(0, self.high, size=(state.episodes, len(self.high))).astype(np.float64)


__all__ = ["UniformOrders"]
