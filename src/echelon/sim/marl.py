"""The PettingZoo parallel env: one agent per inventory stage, over the batched core.

The paper's decentralized formulation (Section III-B.2) as a ``pettingzoo.ParallelEnv``: each
stage sees its local observation, orders from the stage above and earns its own reward, as
:mod:`echelon.sim.stage_view` defines them. The dynamics are :func:`echelon.sim.core.step`'s,
played on a batch of one episode, so this env, the Gymnasium env and the batched tools agree bit
for bit. Users import it from :mod:`echelon.marl`.

PettingZoo is an optional extra (``pip install 'echelon[marl]'``); without it, importing this
module raises an ImportError that says so.
"""

from __future__ import annotations

import enum
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from echelon.sim import core
from echelon.sim.config import ChainConfig
from echelon.sim.env import _describe, episode_demand, real_array
from echelon.sim.stage_view import (
    StageReward,
    agent_names,
    local_observation,
    parse_choice,
    parse_reward,
    profit_shares,
    stage_rewards,
)

PETTINGZOO_MISSING = "the multi-agent env needs PettingZoo: pip install 'echelon[marl]'"

try:
    from pettingzoo import ParallelEnv
except ImportError as error:  # an optional extra: say which one, not just the module's name
    raise ImportError(PETTINGZOO_MISSING) from error


class ObservedHistory(enum.Enum):
    """How many of its own past requests each stage observes."""

    OWN = "own"
    """Its own lead time L_i: the orders it still waits for (the paper's local observation)."""
    LONGEST = "longest"
    """The chain's longest lead time max(L), the same length for every stage."""


def parse_history(history: ObservedHistory | str) -> ObservedHistory:
    """The history as an :class:`ObservedHistory`, or ValueError naming the allowed values."""
    return parse_choice(ObservedHistory, history, "history")


class InvManagementParallelEnv(ParallelEnv[str, np.ndarray, np.ndarray]):
    """A serial multi-echelon inventory chain with one agent per stage, over the batched core.

    ## Description

    OR-Gym 0.5.0's ``InvManagement`` (the chain of :class:`echelon.sim.env.InvManagementEnv`)
    played by S agents at once: each inventory stage decides its own request to the stage above,
    seeing only its own stock and its own recent requests. All stages act in the same period;
    the order of events is the core's (:mod:`echelon.sim.core`).

    ## Agents

    ``agent_names(S)``: ``retailer``, ``distributor``, ``manufacturer`` for OR-Gym's three
    stages, ``stage_0`` .. ``stage_{S-1}`` otherwise (stage 0 is the retailer). Every agent
    lives for the whole episode; ``agents`` is empty before ``reset`` and after the last period.

    ## Action Space

    ``Box(0, c_i, (1,), float64)`` for stage i: the units it requests from stage i+1, at most
    what stage i+1 can ship it a period (capacity c_i). ``step`` takes a dict with an action for
    every live agent, each a real number or an array of shape (1,). As in the Gymnasium env,
    finite values outside the box are accepted (negatives become 0, fractions are truncated
    toward zero, shipments are clipped by the dynamics, requests are capped at 2^53); NaN,
    infinity, non-numbers and missing or unknown agents raise ``ValueError``.

    ## Observation Space

    ``Box(0, inf, (1 + H,), float64)`` for stage i, its local observation
    (:func:`echelon.sim.stage_view.local_observation`), with H its own lead time L_i
    (``history="own"``) or the chain's longest, max(L) (``history="longest"``):

    | index                   | observation                                                   |
    |-------------------------|---------------------------------------------------------------|
    | 0                       | the stage's on-hand inventory                                 |
    | 1 .. H                  | its requests of the last H periods, oldest first, zero-padded |
    | last (``time_feature``) | the period index divided by T, in [0, 1]                      |

    ``state()`` is the whole chain's observation, the Gymnasium env's (``state_space``).

    ## Rewards

    Each chosen by ``reward`` (:class:`echelon.sim.stage_view.StageReward`), all discounted by
    ``alpha ** n`` like OR-Gym's reward:

    * ``"local"`` (default): the paper's ``-(h_i I_i + k_i U_i)``, the stage's holding cost on
      its end-of-period on-hand and the penalty on its customer's unfilled orders.
    * ``"profit"``: the stage's share of OR-Gym's profit (the top stage also takes the
      raw-material supplier's margin), so the S rewards sum to OR-Gym's reward.
    * ``"team"``: OR-Gym's reward itself, the same for every agent.

    ## Starting State

    On-hand inventory ``initial_inventory``, nothing in transit, no backlog. A demand path for
    the whole episode is drawn at reset from ``self.np_random`` (or given in
    ``options["demand"]``).

    ## Episode End

    After ``periods`` steps every agent terminates (``terminated=True``): the horizon is part of
    the problem and leftover stock is worth nothing. No agent is ever truncated.

    ## Arguments

    ``echelon.marl.parallel_env(config=None, *, reward="local", history="own",
    time_feature=False, **chain_fields)``: ``config`` (a :class:`ChainConfig`), any
    ``ChainConfig`` field or OR-Gym short name (``L=[2, 4, 6]``, ``backlog=True`` for v0's
    backlog), the reward and history above, and ``time_feature=True`` to append the normalised
    period to every observation. ``reset(options={"demand": path})`` replays a given demand path
    of length T.

    ## Version History

    * v1: the first version (lost sales by default, v0's backlog with ``backlog=True``).
    """

    metadata = {"name": "echelon_inv_management_v1", "render_modes": [], "is_parallelizable": True}
    render_mode = None

    def __init__(
        self,
        config: ChainConfig | None = None,
        *,
        reward: StageReward | str = StageReward.LOCAL,
        history: ObservedHistory | str = ObservedHistory.OWN,
        time_feature: bool = False,
        **chain_fields: Any,
    ) -> None:
        if config is not None and not isinstance(config, ChainConfig):
            raise ValueError(f"config must be a ChainConfig or None, got {_describe(config)}")
        base = config if config is not None else ChainConfig()
        self.config = base.replace(**chain_fields) if chain_fields else base
        self.reward = parse_reward(reward)
        self.history = parse_history(history)
        self.time_feature = bool(time_feature)
        stages = self.config.stages
        self.possible_agents = list(agent_names(stages))
        self.agents: list[str] = []
        # H of each stage: the number of its own past requests it observes.
        self.history_length = tuple(
            self.config.lead_time[i] if self.history is ObservedHistory.OWN
            else self.config.max_lead_time
            for i in range(stages)
        )
        extra = int(self.time_feature)
        # Built once: PettingZoo requires the same space object on every call (action spaces
        # carry their own seeded generators).
        self.observation_spaces = {
            agent: spaces.Box(0.0, np.inf, shape=(1 + depth + extra,), dtype=np.float64)
            for agent, depth in zip(self.possible_agents, self.history_length)
        }
        self.action_spaces = {
            agent: spaces.Box(np.zeros(1), np.array([capacity]), dtype=np.float64)
            for agent, capacity in zip(self.possible_agents, self.config.capacity)
        }
        self.state_space = spaces.Box(
            0.0, np.inf, shape=(self.config.observation_size + extra,), dtype=np.float64
        )
        self.np_random: np.random.Generator | None = None
        self._state: core.ChainState | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        """The observation space of ``agent`` (the same object on every call)."""
        return self.observation_spaces[self._check_agent(agent)]

    def action_space(self, agent: str) -> spaces.Box:
        """The action space of ``agent`` (the same object on every call)."""
        return self.action_spaces[self._check_agent(agent)]

    def _check_agent(self, agent: str) -> str:
        if agent not in self.action_spaces:
            raise ValueError(f"unknown agent {agent!r}; agents: {self.possible_agents}")
        return agent

    def _time(self) -> float:
        return self._state.period / self.config.periods

    def _observe(self) -> dict[str, np.ndarray]:
        observations = {}
        for i, agent in enumerate(self.possible_agents):
            obs = local_observation(self.config, self._state, i, self.history_length[i])[0]
            observations[agent] = np.append(obs, self._time()) if self.time_feature else obs
        return observations

    def state(self) -> np.ndarray:
        """The whole chain's observation, the Gymnasium env's (OR-Gym's, then the time feature).

        Returns:
            (S * (max(L) + 1) [+ 1],) on-hand of every stage, then every stage's requests of the
            last max(L) periods, for centralized critics.
        """
        if self._state is None:
            raise RuntimeError("call reset() before state()")
        obs = core.observation(self.config, self._state)[0]
        return np.append(obs, self._time()) if self.time_feature else obs

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Starts an episode.

        Args:
            seed: Seeds ``self.np_random``, from which the demand path is drawn; None keeps the
                current generator (a fresh, randomly seeded one on the first reset).
            options: ``{"demand": path}`` replays a given demand path of T periods. Unknown
                keys are ignored with a warning: PettingZoo's API test passes one.

        Returns:
            Every agent's observation and info (``{"period": 0}``).

        Raises:
            ValueError: If the demand path is not one path of T finite values >= 0.
        """
        # Gymnasium's Env.reset seeding, so that one seed gives the same episode in both envs.
        if seed is not None or self.np_random is None:
            self.np_random, _ = seeding.np_random(seed)
        options = options or {}
        if not isinstance(options, Mapping):
            raise ValueError(f"options must be a dict such as {{'demand': path}}, got "
                             f"{_describe(options)}")
        unknown = set(options) - {"demand"}
        if unknown:
            # A warning, not Gymnasium env's error: pettingzoo.test.parallel_api_test resets with
            # options={"options": 1} to check that reset takes options at all.
            warnings.warn(f"ignoring unknown reset options {sorted(unknown, key=str)}; "
                          "known: ['demand']", stacklevel=2)
        self._state = core.reset(self.config, episode_demand(self.config, options, self.np_random))
        self.agents = list(self.possible_agents)
        return self._observe(), {agent: {"period": 0} for agent in self.agents}

    def _check_actions(self, actions: Any) -> np.ndarray:
        """The actions as float64 orders (S,), or ValueError naming the agents at fault."""
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions must be a dict from agent to order with every live agent "
                             f"{self.agents}, got {_describe(actions)}")
        missing = [agent for agent in self.agents if agent not in actions]
        unknown = [agent for agent in actions if agent not in self.agents]
        if missing or unknown:
            raise ValueError(f"actions must hold every live agent {self.agents} and no other: "
                             f"missing {missing}, unknown {unknown}")
        return np.array([_check_order(agent, actions[agent]) for agent in self.agents])

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Plays one period with every agent's order.

        Args:
            actions: Every live agent's request to the stage above (a number or shape (1,)).

        Returns:
            Observations, rewards, terminations (all True after the last period), truncations
            (always False) and infos, each a dict over the agents that acted. An agent's info
            holds the period, the demand it faced (customer demand for the retailer, the
            request of the stage below for the others, both without carried backlog), its
            request, the units shipped to it, its arrivals, sales, its customer's unfulfilled
            orders, its end-of-period on-hand and pipeline, its undiscounted profit share and
            the team reward.

        Raises:
            RuntimeError: Before the first reset.
            ValueError: If an action is malformed or an agent is missing or unknown, or the
                episode is over.
        """
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if self._state.done:
            raise ValueError(f"the episode is over: all {self.config.periods} periods were "
                             "played; call reset() to start another")
        orders = self._check_actions(actions)
        self._state, out = core.step(self.config, self._state, orders[None, :])
        rewards = stage_rewards(self.config, self.reward, out.period,
                                stage_profit=out.stage_profit, unfulfilled=out.unfulfilled,
                                on_hand=out.on_hand, team=out.reward)[0]
        shares = profit_shares(out.stage_profit)[0]
        # Stage i's demand is the customer's (i = 0) or stage i-1's request.
        faced = np.concatenate([out.demand, out.requests[0, :-1]])
        team = float(out.reward[0])
        live, done = self.agents, self._state.done
        infos = {
            agent: {
                "period": out.period,
                "demand": float(faced[i]),
                "request": float(out.requests[0, i]),
                "shipped": float(out.shipped[0, i]),
                "arrivals": float(out.arrivals[0, i]),
                "sales": float(out.sales[0, i]),
                "unfulfilled": float(out.unfulfilled[0, i]),
                "on_hand": float(out.on_hand[0, i]),
                "pipeline": float(out.pipeline[0, i]),
                "profit": float(shares[i]),
                "team_reward": team,
            }
            for i, agent in enumerate(live)
        }
        observations = self._observe()
        if done:
            self.agents = []
        return (
            observations,
            {agent: float(rewards[i]) for i, agent in enumerate(live)},
            dict.fromkeys(live, done),
            dict.fromkeys(live, False),
            infos,
        )

    def render(self) -> None:
        """Nothing to render (``metadata["render_modes"]`` is empty)."""
        return None

    def close(self) -> None:
        """Nothing to release."""


def _check_order(agent: str, action: Any) -> float:
    """One agent's action as a float, or ValueError saying what is allowed (as the Gymnasium
    env's ``_check_action``, for one stage)."""
    kinds = (f"the action of {agent!r} must be one real number (int or float; not bool, complex "
             "or str), a scalar or shaped (1,)")
    array = real_array(action, kinds)
    if array.shape not in ((), (1,)):
        raise ValueError(f"the action of {agent!r} must be a scalar or shaped (1,) (one order), "
                         f"got shape {array.shape}")
    try:
        order = float(array.astype(np.float64).reshape(()))
    except OverflowError:  # a Python int beyond float64
        order = float("inf")
    if not math.isfinite(order):
        raise ValueError(f"the action of {agent!r} must be a finite number; got NaN or infinity: "
                         f"{_describe(action)}")
    return order


def parallel_env(
    config: ChainConfig | None = None,
    *,
    reward: StageReward | str = StageReward.LOCAL,
    history: ObservedHistory | str = ObservedHistory.OWN,
    time_feature: bool = False,
    **chain_fields: Any,
) -> InvManagementParallelEnv:
    """The multi-agent chain (PettingZoo's factory convention), e.g. ``parallel_env(L=[2, 4, 6])``.

    Args:
        config: The chain (default: OR-Gym's ``InvManagement-v1``).
        reward: Each agent's reward: ``"local"``, ``"profit"`` or ``"team"`` (:class:`StageReward`).
        history: Past requests each stage sees: ``"own"`` (its lead time) or ``"longest"``.
        time_feature: Append the period divided by T to every observation.
        **chain_fields: ``ChainConfig`` fields or OR-Gym short names replacing ``config``'s.

    Raises:
        ValueError: Naming the argument and its allowed values if one is bad.
    """
    return InvManagementParallelEnv(config, reward=reward, history=history,
                                    time_feature=time_feature, **chain_fields)


__all__ = [
    "PETTINGZOO_MISSING",
    "InvManagementParallelEnv",
    "ObservedHistory",
    "parallel_env",
    "parse_history",
]
