"""A mixture of behaviour policies: each episode follows the policy it was assigned."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from echelon.policies.base import Policy
from echelon.sim.core import ChainState


class Mixture:
    """Episode i follows ``policies[assignment[i]]`` for the whole episode.

    Every component acts on the whole batch and each episode takes its own component's rows;
    components are few, so this stays one vectorised call per component.

    Args:
        policies: The K component policies.
        assignment: (N,) the component index of each episode, in [0, K).

    Raises:
        ValueError: If the assignment is out of range or not one-dimensional.
    """

    def __init__(self, policies: Sequence[Policy], assignment: np.ndarray) -> None:
        self.policies = list(policies)
        raw = np.asarray(assignment)
        if raw.size and not np.all(raw == np.round(raw)):
            raise ValueError("assignment must hold whole policy indices")
        self.assignment = raw.astype(np.int64)
        if not self.policies:
            raise ValueError("a mixture needs at least one policy")
        if self.assignment.ndim != 1:
            raise ValueError(f"assignment must be shaped (N,), got {self.assignment.shape}")
        if np.any(self.assignment < 0) or np.any(self.assignment >= len(self.policies)):
            raise ValueError(f"assignment must lie in [0, {len(self.policies) - 1}]")
        self.reads_observation = any(p.reads_observation for p in self.policies)

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        if len(self.assignment) != state.episodes:
            raise ValueError(
                f"assignment covers {len(self.assignment)} episodes, the batch has {state.episodes}"
            )
        orders = np.zeros(state.on_hand.shape)
        for k, policy in enumerate(self.policies):
            rows = self.assignment == k
            if rows.any():
                orders[rows] = np.asarray(policy.act(obs, state), dtype=np.float64)[rows]
        return orders
