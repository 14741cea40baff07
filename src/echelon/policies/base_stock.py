"""Echelon base-stock policies: order up to a level of echelon inventory position."""

from __future__ import annotations

import enum

import numpy as np

from echelon.sim.config import ChainConfig
from echelon.sim.core import ChainState, echelon_inventory_position


class RequestMode(enum.Enum):
    """How a base-stock policy turns its shortfall into a request."""

    CLIP = "clip"
    """Request no more than the upstream capacity and the upstream stage's on-hand at the start
    of the period (OR-Gym's own base-stock helper), so no penalty is paid for unfillable units."""
    RAW = "raw"
    """Request the whole shortfall and let the simulator clip it and charge the unfilled part."""


def _levels(name: str, values: np.ndarray, stages: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] != stages or array.ndim > 2:
        raise ValueError(f"{name} must be shaped (S,) or (N, S) with S = {stages}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


def clip_requests(config: ChainConfig, state: ChainState, requests: np.ndarray) -> np.ndarray:
    """Caps requests at the upstream capacity and the upstream stage's on-hand right now.

    Args:
        requests: (N, S) non-negative requests.

    Returns:
        (N, S) requests that the upstream stages can fill this period (the supplier, at the top,
        is limited only by its capacity).
    """
    capped = np.minimum(requests, np.asarray(config.capacity))
    np.minimum(capped[:, :-1], state.on_hand[:, 1:], out=capped[:, :-1])
    return capped


class EchelonBaseStock:
    """Order up to ``z_i`` minus stage i's echelon inventory position.

    Args:
        config: The chain.
        levels: Echelon base-stock levels [z], shaped (S,) or (N, S) for one level per episode
            (so that many parameter settings run in one batch).
        mode: ``RequestMode.CLIP`` (default) or ``RequestMode.RAW``.
    """

    reads_observation = False

    def __init__(
        self, config: ChainConfig, levels: np.ndarray, mode: RequestMode = RequestMode.CLIP
    ) -> None:
        self.config = config
        self.levels = _levels("levels", levels, config.stages)
        self.mode = RequestMode(mode)

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        shortfall = self.levels - echelon_inventory_position(self.config, state)
        requests = np.maximum(shortfall, 0.0)
        if self.mode is RequestMode.CLIP:
            requests = clip_requests(self.config, state, requests)
        return requests
