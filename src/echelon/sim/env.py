"""Gymnasium environments ``echelon/InvManagement-v1`` (lost sales) and ``-v0`` (backlog)."""

from __future__ import annotations

import numbers
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from echelon.sim import core
from echelon.sim.config import ChainConfig


class InvManagementEnv(gym.Env):
    """A serial multi-echelon inventory chain, one episode at a time, over the batched core.

    ## Description

    OR-Gym 0.5.0's ``InvManagement``: a retailer, a distributor and a manufacturer each order
    from the stage above; a raw-material supplier with unlimited stock sits on top. Shipments
    are limited by the supplier's capacity and by the upstream stage's stock at the start of
    the period, and arrive after a lead time. Customer demand is random. This class is a thin
    shell over :mod:`echelon.sim.core`, whose module docstring states the order of events.

    ## Action Space

    ``Box(0, capacity, (S,), float64)``: units each stage 0..S-1 requests from the stage above.
    As in OR-Gym, finite values outside the box are accepted: negatives become 0, fractions are
    truncated toward zero, and shipments are clipped by the dynamics. Unlike OR-Gym, requests
    above ``core.MAX_REQUEST`` (2^53 units) are capped there, so that no finite action makes a
    reward or the state infinite. Actions that are not S real numbers (strings, booleans,
    complex numbers, ``None``), or that hold NaN or infinity, raise ``ValueError``.

    ## Observation Space

    ``Box(0, inf, (S * (max(L) + 1),), float64)``, OR-Gym's observation exactly:

    | index                   | observation                                          |
    |-------------------------|------------------------------------------------------|
    | 0 .. S-1                | on-hand inventory of stages 0..S-1                    |
    | S .. S*(max(L)+1) - 1   | requests of the last max(L) periods, oldest first, a row of S per period, zero-padded on the left |
    | last (``time_feature``) | the period index divided by T, in [0, 1]             |

    ## Rewards

    The period's profit of the whole chain, discounted by ``alpha ** n`` (OR-Gym's reward).

    ## Starting State

    On-hand inventory ``initial_inventory``, nothing in transit, no backlog. A demand path for
    the whole episode is drawn at reset from ``self.np_random`` (or given in
    ``options["demand"]``).

    ## Episode End

    After ``periods`` steps the episode terminates (``terminated=True``): the horizon is part of
    the problem and leftover stock is worth nothing. It is never truncated.

    ## Arguments

    ``gymnasium.make("echelon/InvManagement-v1", **kwargs)`` accepts ``config`` (a
    :class:`ChainConfig`), any ``ChainConfig`` field or OR-Gym short name (``L=[2, 4, 6]``,
    ``periods=52``), ``sales_history=k`` (0 .. T) to append the last k periods' retail sales,
    and ``time_feature=True`` to append the normalised period to the observation. ``reset(options={"demand": path})`` replays a given demand path of length T.

    ## Version History

    * v1: lost sales (OR-Gym ``InvManagement-v1``).
    * v0: unfilled demand and requests are backlogged (OR-Gym ``InvManagement-v0``).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        config: ChainConfig | None = None,
        *,
        time_feature: bool = False,
        sales_history: int = 0,
        **chain_params: Any,
    ) -> None:
        base = config if config is not None else ChainConfig()
        self.config = base.replace(**chain_params) if chain_params else base
        self.time_feature = bool(time_feature)
        self.sales_history = check_sales_history(sales_history, self.config.periods)
        size = self.config.observation_size + self.sales_history + int(self.time_feature)
        self.observation_space = spaces.Box(0.0, np.inf, shape=(size,), dtype=np.float64)
        self.action_space = spaces.Box(
            np.zeros(self.config.stages), np.asarray(self.config.capacity), dtype=np.float64
        )
        self._state: core.ChainState | None = None

    def _observe(self) -> np.ndarray:
        obs = core.observation(self.config, self._state)[0]
        if self.sales_history:
            obs = np.append(obs, core.sales_history(self._state, self.sales_history)[0])
        if self.time_feature:
            obs = np.append(obs, self._state.period / self.config.periods)
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"demand"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; known: ['demand']")
        self._state = core.reset(self.config, episode_demand(self.config, options, self.np_random))
        return self._observe(), {"period": 0, "demand_path": self._state.demand[0].copy()}

    def _check_action(self, action: Any) -> np.ndarray:
        """The action as a float64 array (S,), or ValueError saying what is allowed."""
        stages = self.config.stages
        kinds = (f"action must be {stages} real numbers (int or float; not bool, complex or str), "
                 f"shaped ({stages},)")
        array = real_array(action, kinds)
        if array.shape != (stages,):
            raise ValueError(
                f"action must be shaped ({stages},) (one order per stage), got shape {array.shape}"
            )
        array = array.astype(np.float64)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"action must hold finite numbers; got NaN or infinity in "
                             f"{array.tolist()}")
        return array

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        action = self._check_action(action)
        self._state, out = core.step(self.config, self._state, action[None, :])
        info = {
            "period": out.period,
            "demand": float(out.demand[0]),
            "requests": out.requests[0],
            "shipped": out.shipped[0],
            "arrivals": out.arrivals[0],
            "sales": out.sales[0],
            "lost_sales": out.lost_sales[0],
            "backlog": out.backlog[0],
            "on_hand": out.on_hand[0],
            "pipeline": out.pipeline[0],
            "stage_profit": out.stage_profit[0],
        }
        return self._observe(), float(out.reward[0]), self._state.done, False, info


def check_sales_history(depth: Any, periods: int) -> int:
    """``sales_history`` as an int, or ValueError naming it and its range 0 .. T."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or not 0 <= depth <= periods:
        raise ValueError(f"sales_history must be an integer in 0 .. {periods} (the periods), "
                         f"got {depth!r}")
    return int(depth)


def episode_demand(config: ChainConfig, options: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """The demand path of an episode: ``options["demand"]`` if given, else drawn from ``rng``.

    Raises:
        ValueError: If the given path is not one-dimensional (the core checks its values).
    """
    if options.get("demand") is None:
        return config.demand.sample(rng, 1, config.periods)
    demand = np.asarray(options["demand"], dtype=np.float64)
    if demand.ndim != 1:
        raise ValueError(f"options['demand'] must be one path of {config.periods} periods, "
                         f"got shape {demand.shape}")
    return demand


def real_array(action: Any, kinds: str) -> np.ndarray:
    """The action as an array of real numbers, or ValueError: ``kinds`` (what is allowed), then
    what was given.

    Booleans, complex numbers, strings, ``None`` and ragged sequences are refused; the shape is
    left to the caller.
    """
    try:
        array = np.asarray(action)
    except ValueError:  # ragged nested sequences
        raise ValueError(f"{kinds}; got {_describe(action)}") from None
    if isinstance(action, np.ndarray) and array.dtype.kind != "O":
        real = array.dtype.kind in "iuf"
    else:
        # Element by element: NumPy turns [True, 2, 3] into integers without a word, and keeps
        # real numbers it does not know (fractions.Fraction) as objects.
        real = all(_is_real(v) for v in np.asarray(action, dtype=object).ravel())
    if not real:
        raise ValueError(f"{kinds}; got {_describe(action)}")
    return array


def _is_real(value: Any) -> bool:
    """Whether one element of an action is a real number (not a bool, complex number or str)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iuf"
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _describe(value: Any) -> str:
    """A short description of a rejected action for an error message."""
    text = repr(value)
    if len(text) <= 80:
        return text
    return f"a {type(value).__name__} of dtype {getattr(value, 'dtype', '?')}"


def register_envs() -> None:
    """Registers ``echelon/InvManagement-v1`` and ``-v0`` with Gymnasium (idempotent)."""
    for version, backlog in (("v1", False), ("v0", True)):
        env_id = f"echelon/InvManagement-{version}"
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="echelon.sim.env:InvManagementEnv",
                kwargs={"backlog": backlog},
            )
