"""Gaussian behaviour noise around any policy, to make logged data more diverse."""

from __future__ import annotations

import numpy as np

from echelon.policies.base import Policy
from echelon.sim.core import ChainState


class GaussianNoise:
    """Adds N(0, std^2) noise to another policy's orders, floored at zero.

    The draws come from the given Generator, so a seeded run logs the same noisy orders. The
    simulator truncates the noisy orders to whole units as it does any order.

    Args:
        policy: The policy whose orders are perturbed.
        std: Standard deviation of the noise in units, >= 0 (0 returns the orders unchanged).
        rng: The Generator the noise is drawn from.

    Raises:
        ValueError: If ``std`` is negative or not finite.
    """

    def __init__(self, policy: Policy, std: float, rng: np.random.Generator) -> None:
        if not np.isfinite(std) or std < 0:
            raise ValueError(f"noise std must be a finite number >= 0, got {std!r}")
        self.policy = policy
        self.std = float(std)
        self.rng = rng
        self.reads_observation = policy.reads_observation

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        orders = np.asarray(self.policy.act(obs, state), dtype=np.float64)
        if self.std == 0.0:
            return orders
        return np.maximum(orders + self.rng.normal(0.0, self.std, size=orders.shape), 0.0)
