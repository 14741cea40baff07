"""Base-stock heuristics: echelon, local (installation) and decentralized base-stock, their
time-aware variants, time-varying base-stock, and (s, S).

All take their parameters shaped (S,), one value per stage, or (N, S), one row per episode, so
that many parameter settings run in one batch on common demand paths.
"""

from __future__ import annotations

import enum

import numpy as np

from echelon.sim.config import ChainConfig
from echelon.sim.core import ChainState, echelon_inventory_position


class RequestMode(enum.Enum):
    """How a policy turns its shortfall into a request."""

    CLIP = "clip"
    """Request no more than the upstream capacity and the upstream stage's on-hand at the start
    of the period (OR-Gym's own base-stock helper), so no penalty is paid for unfillable units."""
    RAW = "raw"
    """Request the whole shortfall and let the simulator clip it and charge the unfilled part
    (what the paper's experts did)."""


def stage_parameter(name: str, values: np.ndarray, stages: int) -> np.ndarray:
    """Validates a per-stage parameter shaped (S,) or (N, S) and returns it as float64.

    Raises:
        ValueError: If the shape does not end in S or a value is not finite.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim not in (1, 2) or array.shape[-1] != stages:
        raise ValueError(f"{name} must be shaped (S,) or (N, S) with S = {stages}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


def check_rows(name: str, values: np.ndarray, episodes: int) -> None:
    """Raises ValueError if a per-episode parameter (N, S) does not have one row per episode."""
    if values.ndim == 2 and values.shape[0] != episodes:
        raise ValueError(f"{name} has {values.shape[0]} rows (one per episode), the batch has {episodes}")


def clip_requests(config: ChainConfig, state: ChainState, requests: np.ndarray) -> np.ndarray:
    """Caps requests at the upstream capacity and the upstream stage's on-hand right now.

    Args:
        config: The chain.
        state: The state at the start of the period.
        requests: (N, S) non-negative requests.

    Returns:
        (N, S) requests that the upstream stages can fill this period (the supplier, at the top,
        is limited only by its capacity).
    """
    capped = np.minimum(requests, config.arrays.capacity)
    np.minimum(capped[:, :-1], state.on_hand[:, 1:], out=capped[:, :-1])
    return capped


def _request(config: ChainConfig, state: ChainState, shortfall: np.ndarray, mode: RequestMode) -> np.ndarray:
    requests = np.maximum(shortfall, 0.0)
    return clip_requests(config, state, requests) if mode is RequestMode.CLIP else requests


class EchelonBaseStock:
    """Order up to ``z_i`` of echelon inventory position (Clark and Scarf's echelon policy).

    Stage i requests ``z_i - IP_i``, where ``IP_i`` is the echelon inventory position: on-hand
    plus in-transit inventory of stages 0..i, minus backlog owed (v0).

    Args:
        config: The chain.
        levels: Echelon base-stock levels [z], shaped (S,) or (N, S).
        mode: ``RequestMode.CLIP`` (default) or ``RequestMode.RAW``.
    """

    reads_observation = False

    def __init__(
        self, config: ChainConfig, levels: np.ndarray, mode: RequestMode = RequestMode.CLIP
    ) -> None:
        self.config = config
        self.levels = stage_parameter("levels", levels, config.stages)
        self.mode = RequestMode(mode)

    def position(self, state: ChainState) -> np.ndarray:
        """(N, S) the inventory position the levels are compared with."""
        return echelon_inventory_position(self.config, state)

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        check_rows("levels", self.levels, state.episodes)
        return _request(self.config, state, self.levels - self.position(state), self.mode)


class LocalBaseStock(EchelonBaseStock):
    """Order up to ``z_i`` of the stage's own (installation) inventory position.

    Stage i requests ``z_i`` minus its installation position: on-hand plus in-transit, and in
    v0 minus what it owes downstream plus what upstream still owes it. Each stage looks only at
    its own stock, as in a decentralised chain.

    Args:
        config: The chain.
        levels: Local base-stock levels [z], shaped (S,) or (N, S).
        mode: ``RequestMode.CLIP`` (default) or ``RequestMode.RAW``.
    """

    def position(self, state: ChainState) -> np.ndarray:
        position = state.on_hand + state.pipeline
        if self.config.backlog:  # net of what it owes downstream, plus what it is still owed
            position = position - state.backlog[:, :-1] + state.backlog[:, 1:]
        return position


class DecentralizedBaseStock(EchelonBaseStock):
    """Order up to ``z_i`` of the position the stage can see: on-hand plus its recent requests.

    Stage i sees only its local observation (:func:`echelon.sim.stage_view.local_observation`):
    its on-hand and its own requests of the last L_i periods. It does not see shipments, so it
    counts each of those requests as in transit, even the part its supplier could not fill
    (lost in v1, owed in v0). It requests ``max(z_i - seen_position_i, 0)``; in
    ``RequestMode.CLIP`` at most its supplier's capacity c_i, the only limit it knows (it does not
    see the supplier's stock). When every request is filled, the seen position is the stage's
    on-hand plus in-transit stock, and the policy orders as :class:`LocalBaseStock` (in v1).

    Args:
        config: The chain.
        levels: Levels [z] of each stage's seen position, shaped (S,) or (N, S).
        mode: ``RequestMode.CLIP`` (default) or ``RequestMode.RAW``.
    """

    def position(self, state: ChainState) -> np.ndarray:
        """(N, S) each stage's on-hand plus its own requests of the last L_i periods."""
        n = state.period
        position = state.on_hand.copy()
        for i, lead in enumerate(self.config.lead_time):
            played = min(n, lead)
            if played:
                # Whole units (the core truncates requests), so the sum is exact in any order:
                # the same number as the stage's own sum over its local observation.
                position[:, i] += state.requests[n - played : n, :, i].sum(axis=0)
        return position

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        check_rows("levels", self.levels, state.episodes)
        requests = np.maximum(self.levels - self.position(state), 0.0)
        if self.mode is RequestMode.CLIP:
            np.minimum(requests, self.config.arrays.capacity, out=requests)
        return requests


class TimeAwareBaseStock:
    """Echelon base-stock that stops ordering near the horizon.

    Leftover stock is worth nothing, so an order that cannot arrive and be sold before the
    episode ends only costs. Stage i orders as :class:`EchelonBaseStock` in periods
    ``0 .. last_order_period_i`` and nothing afterwards.

    Args:
        config: The chain.
        levels: Echelon base-stock levels [z], shaped (S,) or (N, S).
        last_order_period: The last period in which each stage may still order, shaped (S,)
            or (N, S); -1 means never, T-1 means always.
        mode: ``RequestMode.CLIP`` (default) or ``RequestMode.RAW``.
    """

    reads_observation = False
    base_policy: type = EchelonBaseStock
    """The base-stock policy followed up to each stage's last ordering period."""

    def __init__(
        self,
        config: ChainConfig,
        levels: np.ndarray,
        last_order_period: np.ndarray,
        mode: RequestMode = RequestMode.CLIP,
    ) -> None:
        self.base = self.base_policy(config, levels, mode)
        self.last_order_period = stage_parameter(
            "last_order_period", last_order_period, config.stages
        )
        if np.any(self.last_order_period < -1) or np.any(self.last_order_period >= config.periods):
            raise ValueError(
                f"last_order_period must lie in [-1, {config.periods - 1}] (periods - 1)"
            )

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        check_rows("last_order_period", self.last_order_period, state.episodes)
        requests = self.base.act(obs, state)
        return np.where(state.period <= self.last_order_period, requests, 0.0)


class DecentralizedTimeAwareBaseStock(TimeAwareBaseStock):
    """Decentralized base-stock that stops ordering near the horizon.

    Stage i orders as :class:`DecentralizedBaseStock` in periods ``0 .. last_order_period_i``
    and nothing afterwards: besides its local observation, a stage knows the period.

    Args:
        config: The chain.
        levels: Levels [z] of each stage's seen position, shaped (S,) or (N, S).
        last_order_period: The last period in which each stage may still order, shaped (S,)
            or (N, S); -1 means never, T-1 means always.
        mode: ``RequestMode.CLIP`` (default) or ``RequestMode.RAW``.
    """

    base_policy = DecentralizedBaseStock


class TimeVaryingBaseStock:
    """Echelon base-stock with its own levels in each block of periods, for demand that moves
    with time (a season, a trend): the horizon is cut into ``blocks`` blocks of equal length
    (period n is in block ``n * blocks // T``) and block b orders up to ``z_b``.

    Args:
        config: The chain.
        levels: The blocks' echelon levels one after another [z_1, ..., z_B], shaped (B S,) or
            (N, B S).
        blocks: Number of blocks B, >= 1 (beyond T, some blocks are never reached).
        mode: ``RequestMode.CLIP`` (default) or ``RequestMode.RAW``.
    """

    reads_observation = False

    def __init__(self, config: ChainConfig, levels: np.ndarray, blocks: int,
                 mode: RequestMode = RequestMode.CLIP) -> None:
        if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) or blocks < 1:
            raise ValueError(f"blocks must be an integer >= 1, got {blocks!r}")
        self.config, self.blocks, self.mode = config, int(blocks), RequestMode(mode)
        self.levels = stage_parameter("levels", levels, config.stages * self.blocks)

    def block(self, period: int) -> int:
        """The block of period n: n B // T."""
        return period * self.blocks // self.config.periods

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        check_rows("levels", self.levels, state.episodes)
        stages, block = self.config.stages, self.block(state.period)
        levels = self.levels[..., block * stages : (block + 1) * stages]
        shortfall = levels - echelon_inventory_position(self.config, state)
        return _request(self.config, state, shortfall, self.mode)


class ReorderPointOrderUpTo:
    """(s, S) on echelon inventory position: below ``s_i``, order up to ``S_i``; else nothing.

    Args:
        config: The chain.
        reorder_point: Levels [s] that trigger an order, shaped (S,) or (N, S).
        order_up_to: Levels [S] ordered up to, shaped (S,) or (N, S), >= ``reorder_point``.
        mode: ``RequestMode.CLIP`` (default) or ``RequestMode.RAW``.
    """

    reads_observation = False

    def __init__(
        self,
        config: ChainConfig,
        reorder_point: np.ndarray,
        order_up_to: np.ndarray,
        mode: RequestMode = RequestMode.CLIP,
    ) -> None:
        self.config = config
        self.reorder_point = stage_parameter("reorder_point", reorder_point, config.stages)
        self.order_up_to = stage_parameter("order_up_to", order_up_to, config.stages)
        if np.any(self.order_up_to < self.reorder_point):
            raise ValueError("order_up_to (S) must be >= reorder_point (s) at every stage")
        self.mode = RequestMode(mode)

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        check_rows("reorder_point", self.reorder_point, state.episodes)
        check_rows("order_up_to", self.order_up_to, state.episodes)
        position = echelon_inventory_position(self.config, state)
        shortfall = np.where(position < self.reorder_point, self.order_up_to - position, 0.0)
        return _request(self.config, state, shortfall, self.mode)
