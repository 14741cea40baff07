"""The decentralized view of a chain: what each stage sees, what it decides, what it earns.

The paper's second formulation (Section III-B.2) makes every inventory stage an agent of a
partially observed problem. Stage i sees only its own on-hand inventory and its own recent
requests, ``o_t = [I_t, a_{t-1}, ..., a_{t-H}]`` (H its history, by default its own lead time
L_i), decides one number, its request to stage i+1 (at most stage i+1's capacity c_i), and is
rewarded locally. This module holds that view as pure functions of the core's state and
outputs, so that the PettingZoo env (:mod:`echelon.sim.marl`), the per-stage datasets
(:mod:`echelon.data.stage_split`) and the decentralized policies all see the same thing; it
needs no PettingZoo.

Each stage's own problem is also written as a one-stage chain (:func:`stage_chain`): the stage
as retailer, its supplier as the raw-material source. Its OR-Gym observation is exactly the
stage's local observation with H = L_i, so per-stage datasets keep the dataset schema and
per-stage agents are ordinary agents of that chain.

Rewards (:class:`StageReward`), all discounted by alpha^n like OR-Gym's reward:

* ``local``: the paper's ``-(h_i I_i + k_i LS_i)``, the stage's holding cost on its end-of-period
  on-hand and the penalty on its customer's unfilled orders (unfulfilled demand for the
  retailer, stage i-1's unfilled request for stage i; lost in v1, carried in v0).
* ``profit``: the stage's own share of OR-Gym's profit, its revenue minus its purchases,
  penalties and holding cost. The raw-material supplier's margin (no agent decides it) goes to
  the top stage, so the shares of the S stages sum to OR-Gym's reward.
* ``team``: OR-Gym's reward itself, the same for every stage.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from echelon.sim import core
from echelon.sim.config import ChainConfig

# The default chain's stages by name (OR-Gym's retailer, distributor and manufacturer).
DEFAULT_AGENT_NAMES = ("retailer", "distributor", "manufacturer")


class StageReward(enum.Enum):
    """What each stage is rewarded with in the decentralized view."""

    LOCAL = "local"
    """The paper's local cost: ``-(h_i I_i + k_i LS_i)``, discounted by alpha^n."""
    PROFIT = "profit"
    """The stage's share of OR-Gym's profit (the top stage also takes the supplier's margin)."""
    TEAM = "team"
    """OR-Gym's reward, shared by every stage."""


def agent_names(stages: int) -> tuple[str, ...]:
    """The agents' names: retailer, distributor, manufacturer for three stages, else stage_i."""
    if stages == len(DEFAULT_AGENT_NAMES):
        return DEFAULT_AGENT_NAMES
    return tuple(f"stage_{i}" for i in range(stages))


def check_stage(config: ChainConfig, stage: int) -> int:
    """The stage index as an int, or ValueError naming the allowed range."""
    if isinstance(stage, bool) or not isinstance(stage, (int, np.integer)) or not (
            0 <= stage < config.stages):
        raise ValueError(f"stage must be an integer in [0, {config.stages - 1}], got {stage!r}")
    return int(stage)


def check_history(config: ChainConfig, history: int | None, stage: int) -> int:
    """The number of past requests stage ``stage`` observes: its lead time when None.

    Raises:
        ValueError: If ``history`` is not an integer in [0, max(L)].
    """
    if history is None:
        return config.lead_time[stage]
    if isinstance(history, bool) or not isinstance(history, (int, np.integer)) or not (
            0 <= history <= config.max_lead_time):
        raise ValueError(f"history must be an integer in [0, {config.max_lead_time}] (the "
                         f"chain's longest lead time), got {history!r}")
    return int(history)


def stage_chain(config: ChainConfig, stage: int) -> ChainConfig:
    """Stage ``stage``'s own problem as a one-stage chain.

    The stage is the chain's retailer: it sells at its own price (p for the retailer, r_{i-1}
    above it), buys at r_i from a supplier of capacity c_i who pays r_{i+1}, holds at h_i, is
    penalised k_i and k_{i+1}, and waits L_i periods. Its demand law is the chain's customer
    demand (which only the retailer faces: upstream, demand is the customer stage's orders, whose
    law no one models). Its OR-Gym observation is the stage's local observation with its own lead
    time as history.

    Raises:
        ValueError: If ``stage`` is not in [0, S-1].
    """
    i = check_stage(config, stage)
    return ChainConfig(
        periods=config.periods,
        initial_inventory=(config.initial_inventory[i],),
        price=float(config.stage_price[i]),
        replenishment_cost=config.replenishment_cost[i : i + 2],
        unfulfilled_penalty=config.unfulfilled_penalty[i : i + 2],
        holding_cost=(config.holding_cost[i],),
        capacity=(config.capacity[i],),
        lead_time=(config.lead_time[i],),
        backlog=config.backlog,
        demand=config.demand,
        alpha=config.alpha,
    )


def local_observation(config: ChainConfig, state: core.ChainState, stage: int,
                      history: int | None = None) -> np.ndarray:
    """What stage ``stage`` sees at the start of the period: ``[I, a_{n-H}, ..., a_{n-1}]``.

    Args:
        config: The chain.
        state: The batched state at the start of period n.
        stage: The stage, 0 (retailer) .. S-1.
        history: H, the number of its own past requests it sees (default: its lead time L_i).

    Returns:
        (N, 1 + H) its on-hand, then its requests (after the core's truncation) of the last H
        periods, oldest first, zero-padded on the left while fewer periods have been played:
        the layout of OR-Gym's observation for one stage.
    """
    i = check_stage(config, stage)
    depth, n = check_history(config, history, i), state.period
    obs = np.zeros((state.episodes, 1 + depth))
    obs[:, 0] = state.on_hand[:, i]
    played = min(n, depth)
    if played:
        obs[:, 1 + depth - played :] = state.requests[n - played : n, :, i].T
    return obs


def observation_columns(config: ChainConfig, stage: int, history: int | None = None) -> np.ndarray:
    """Where stage ``stage``'s local observation sits in OR-Gym's observation of the chain.

    Returns:
        (1 + H,) column indices: ``central_obs[:, columns]`` is the local observation.
    """
    i = check_stage(config, stage)
    depth, stages, rows = check_history(config, history, i), config.stages, config.max_lead_time
    requests = [stages * (1 + rows - depth + r) + i for r in range(depth)]
    return np.array([i, *requests], dtype=np.int64)


def profit_shares(stage_profit: np.ndarray) -> np.ndarray:
    """(N, S) each stage's share of the period's profit from (N, S+1) stage profits: the
    supplier's column is added to the top stage's, so the shares sum to the chain's profit."""
    shares = np.array(stage_profit[:, :-1], dtype=np.float64)
    shares[:, -1] += stage_profit[:, -1]
    return shares


def stage_rewards(config: ChainConfig, reward: StageReward | str, period: np.ndarray | int, *,
                  stage_profit: np.ndarray, unfulfilled: np.ndarray, on_hand: np.ndarray,
                  team: np.ndarray) -> np.ndarray:
    """Every stage's reward for periods already played.

    Args:
        config: The chain.
        reward: Which reward (a :class:`StageReward` or its value).
        period: Period index n of each row, (M,), or one int for all rows.
        stage_profit: (M, S+1) undiscounted profit of each stage and the supplier
            (:func:`echelon.sim.core.stage_profits`).
        unfulfilled: (M, S+1) unfilled demand and requests.
        on_hand: (M, S) on-hand at the end of the period.
        team: (M,) OR-Gym's reward of the period (discounted).

    Returns:
        (M, S) the reward of each stage, discounted by alpha^n.

    Raises:
        ValueError: If ``reward`` is not one of :class:`StageReward`'s values.
    """
    kind = parse_reward(reward)
    if kind is StageReward.TEAM:
        return np.repeat(np.asarray(team, dtype=np.float64)[:, None], config.stages, axis=1)
    discount = (config.alpha ** np.asarray(period, dtype=np.float64))
    discount = discount[:, None] if np.ndim(discount) else discount
    if kind is StageReward.LOCAL:
        cost = (np.multiply(on_hand, config.arrays.holding_cost)
                + np.multiply(unfulfilled[:, :-1], config.arrays.unfulfilled_penalty[:-1]))
        return -cost * discount
    return profit_shares(stage_profit) * discount


def parse_choice(kind: type[enum.Enum], value: Any, name: str) -> Any:
    """``kind(value)``, or ValueError naming ``name`` and the allowed values."""
    try:
        return kind(value)
    except ValueError:
        allowed = [member.value for member in kind]
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}") from None


def parse_reward(reward: StageReward | str) -> StageReward:
    """The reward as a :class:`StageReward`, or ValueError naming the allowed values."""
    return parse_choice(StageReward, reward, "reward")


__all__ = [
    "DEFAULT_AGENT_NAMES",
    "StageReward",
    "agent_names",
    "check_history",
    "check_stage",
    "local_observation",
    "observation_columns",
    "parse_choice",
    "parse_reward",
    "profit_shares",
    "stage_chain",
    "stage_rewards",
]
