"""The policy protocol every controller meets: heuristics, LP planners and trained agents."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from echelon.sim.core import ChainState


@runtime_checkable
class Policy(Protocol):
    """Maps the state of N episodes to the orders of their S stages.

    A policy is deterministic given its inputs; stochastic behaviour takes an explicit
    ``numpy.random.Generator`` at construction.
    """

    reads_observation: bool
    """Whether ``act`` needs OR-Gym's observation (learned agents) or reads only ``state``."""

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        """Orders for the period about to be played.

        Args:
            obs: (N, obs_size) OR-Gym observations when ``reads_observation``, else None.
            state: The batched chain state at the start of the period.

        Returns:
            (N, S) units each stage requests from the stage above.
        """
        ...
