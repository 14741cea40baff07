"""Decentralized control: one agent per stage, each acting on its own local observation.

In the paper's second formulation (Section III-B.2) every stage decides its own request from
what it sees alone, ``[I_i, a_{i,n-H}, ..., a_{i,n-1}]`` (:mod:`echelon.sim.stage_view`).
:class:`DecentralizedPolicy` is the chain's policy made of such agents: heuristic ones
(:class:`StageBaseStock`) or trained ones (an ``AgentPolicy`` of the stage's one-stage chain,
:mod:`echelon.agents.decentralized`). Each stage agent maps its local observation (N, 1 + H)
to its request (N, 1); H is its ``history`` attribute if it has one, else its lead time L_i
(the observation of its one-stage chain, :func:`~echelon.sim.stage_view.stage_chain`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from echelon.policies.base import Policy
from echelon.policies.base_stock import RequestMode
from echelon.policies.families import Family, HeuristicSpec
from echelon.sim.config import ChainConfig
from echelon.sim.core import ChainState
from echelon.sim.stage_view import agent_names, check_history, local_observation


def _episode_parameter(name: str, value: float | np.ndarray) -> np.ndarray:
    """A stage agent's parameter as float64, one value or one per episode (N,).

    Raises:
        ValueError: If it has more than one axis or a value is not finite.
    """
    array = np.asarray(value, dtype=np.float64)
    if array.ndim > 1:
        raise ValueError(f"{name} must be one value or one per episode (N,), got shape "
                         f"{array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return array


class StageBaseStock:
    """One stage's base-stock agent: orders up to ``z`` of the position it sees.

    The seen position is its on-hand plus its own requests in the observation (those of the
    last H periods): it sees no shipments, so a request its supplier could not fill still looks
    in transit. It requests ``max(z - seen_position, 0)``, with ``clip`` at most its supplier's
    capacity c (the only limit it knows). With a last ordering period it orders nothing after it
    (a stage knows the period). Acting in the stage's one-stage chain, whose OR-Gym observation
    is the local observation, it is a :class:`~echelon.policies.base.Policy` of that chain too.
    The chain's :class:`~echelon.policies.base_stock.DecentralizedBaseStock` is all stages' agents
    at once (and orders the same, :class:`DecentralizedPolicy`).

    Args:
        level: Its base-stock level [z], one value or one per episode (N,).
        capacity: Its supplier's capacity [c], >= 0.
        last_order_period: The last period in which it may order, one value or one per
            episode (N,); -1 never; None (default) always.
        clip: Cap requests at ``capacity`` (``RequestMode.CLIP``), else request the whole
            shortfall (``RequestMode.RAW``).
    """

    reads_observation = True

    def __init__(self, level: float | np.ndarray, capacity: float,
                 last_order_period: float | np.ndarray | None = None, clip: bool = True) -> None:
        self.level = _episode_parameter("level", level)
        self.capacity = float(capacity)
        if not self.capacity >= 0.0:  # NaN fails too
            raise ValueError(f"capacity must be >= 0, got {capacity!r}")
        self.last_order_period = (None if last_order_period is None
                                  else _episode_parameter("last_order_period", last_order_period))
        self.clip = bool(clip)

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        """(N, 1) its requests, from its local observations (N, 1 + H) at ``state.period``.

        Raises:
            ValueError: If ``obs`` is not (N, 1 + H), or a per-episode parameter has not N rows.
        """
        obs = np.asarray(obs, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[1] < 1:
            raise ValueError(f"a stage's observations must be shaped (N, 1 + H), got {obs.shape}")
        for name, value in (("level", self.level), ("last_order_period", self.last_order_period)):
            if value is not None and value.ndim == 1 and len(value) != len(obs):
                raise ValueError(f"{name} has {len(value)} values (one per episode), the batch "
                                 f"has {len(obs)}")
        position = obs[:, 0] + obs[:, 1:].sum(axis=1)
        requests = np.maximum(self.level - position, 0.0)
        if self.clip:
            np.minimum(requests, self.capacity, out=requests)
        if self.last_order_period is not None:
            requests = np.where(state.period <= self.last_order_period, requests, 0.0)
        return requests[:, None]


class DecentralizedPolicy:
    """The chain's policy made of one agent per stage, each acting on its local observation.

    Stage i's agent gets ``local_observation(config, state, i, H_i)``, shaped (N, 1 + H_i), and
    the state (for its period only: an agent that reads more of it is not decentralized), and
    returns its (N, 1) requests.

    Args:
        config: The chain.
        stage_policies: One agent per stage, retailer first; H_i is an agent's ``history``
            attribute, if it has one, else L_i.
        names: The agents' names (default: retailer, distributor, manufacturer for three
            stages, else stage_i).

    Raises:
        ValueError: If there is not one agent (and name) per stage, or a history is out of range.
    """

    reads_observation = False

    def __init__(self, config: ChainConfig, stage_policies: Sequence[Policy],
                 names: Sequence[str] | None = None) -> None:
        self.config = config
        self.stage_policies = tuple(stage_policies)
        self.names = tuple(names) if names is not None else agent_names(config.stages)
        if len(self.stage_policies) != config.stages or len(self.names) != config.stages:
            raise ValueError(f"a decentralized policy needs one agent and one name per stage "
                             f"({config.stages}), got {len(self.stage_policies)} agents and "
                             f"{len(self.names)} names")
        self.histories = tuple(check_history(config, getattr(policy, "history", None), i)
                               for i, policy in enumerate(self.stage_policies))

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        """(N, S) every stage's requests, each from its own local observation.

        Raises:
            ValueError: If a stage's agent does not return (N, 1) requests.
        """
        orders = np.empty((state.episodes, self.config.stages))
        for i, (policy, history) in enumerate(zip(self.stage_policies, self.histories)):
            local = local_observation(self.config, state, i, history)
            requests = np.asarray(policy.act(local, state))
            if requests.shape != (state.episodes, 1):
                raise ValueError(f"the {self.names[i]}'s agent must return (N, 1) = "
                                 f"({state.episodes}, 1) requests, got {requests.shape}")
            orders[:, i] = requests[:, 0]
        return orders


DECENTRALIZED_FAMILIES = (Family.DECENTRALIZED, Family.DECENTRALIZED_TIME_AWARE)
"""The heuristic families whose stages act on their local observations alone."""


def decentralized_agents(config: ChainConfig, spec: HeuristicSpec) -> DecentralizedPolicy:
    """A decentralized heuristic as one :class:`StageBaseStock` agent per stage.

    It orders what the family's batched policy (``spec.policy(config)``) orders.

    Args:
        config: The chain.
        spec: A heuristic of the ``decentralized`` or ``decentralized-time-aware`` family.

    Raises:
        ValueError: If the family is another, or the parameters do not fit it or the chain.
    """
    if spec.family not in DECENTRALIZED_FAMILIES:
        allowed = [family.value for family in DECENTRALIZED_FAMILIES]
        raise ValueError(f"per-stage agents are made of the {allowed} families, got "
                         f"{spec.family.value!r}")
    batched = spec.policy(config)  # checks the parameters' sizes and ranges
    timed = spec.family is Family.DECENTRALIZED_TIME_AWARE
    levels = batched.base.levels if timed else batched.levels
    clip = spec.mode is RequestMode.CLIP
    agents = [StageBaseStock(levels[i], config.capacity[i],
                             batched.last_order_period[i] if timed else None, clip)
              for i in range(config.stages)]
    return DecentralizedPolicy(config, agents)


__all__ = [
    "DECENTRALIZED_FAMILIES",
    "DecentralizedPolicy",
    "StageBaseStock",
    "decentralized_agents",
]
