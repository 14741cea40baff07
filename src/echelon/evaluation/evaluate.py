"""Every policy on the same held-out demand paths: per-episode results, side by side.

Heuristics, LP planners and trained agents all run through the batched core on one array of
test paths (common random numbers). The perfect-information bound is evaluated by replaying its
optimal anticipative plan through the core, so its undiscounted profit and service level are
measured the same way as every policy's.

The base-stock heuristics with one parameter setting run in cache-sized blocks of episodes
(faster, and their memory stays that of the test paths, however many there are), with the same
results bit for bit; every other policy runs as one batch, refused beforehand if it would not fit
in memory (see :func:`blockable`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from echelon._limits import check_memory
from echelon.evaluation.kinds import PolicyKind
from echelon.policies.base import Policy
from echelon.policies.base_stock import (
    DecentralizedBaseStock,
    DecentralizedTimeAwareBaseStock,
    EchelonBaseStock,
    LocalBaseStock,
    ReorderPointOrderUpTo,
    TimeAwareBaseStock,
)
from echelon.policies.lp import perfect_information_plan, plan_bytes
from echelon.policies.replay import PlanReplay
from echelon.sim.config import ChainConfig
from echelon.sim.rollout import rollout, rollout_bytes, rollout_in_blocks

Kind = PolicyKind  # the role of a policy in a comparison (it sets its colour in the figures)


@dataclass(frozen=True)
class PolicyResult:
    """One policy's per-episode results on the test paths."""

    name: str
    kind: Kind
    profit: np.ndarray
    """(N,) discounted episode profit (OR-Gym's episode reward, the paper's unit)."""
    undiscounted_profit: np.ndarray
    """(N,) undiscounted episode profit."""
    service_level: np.ndarray
    """(N,) retail fill rate."""
    mean_on_hand: np.ndarray
    """(N, S) average end-of-period on-hand per stage."""
    seconds: float
    """Wall time of the evaluation (not saved)."""
    params: dict[str, Any] = field(default_factory=dict)
    """What defines the policy (levels, checkpoint, algorithm, seed...)."""

    def to_dict(self) -> dict[str, Any]:
        """The results as JSON; the timing is left out, so equal inputs give equal files."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "params": self.params,
            "profit": self.profit.tolist(),
            "undiscounted_profit": self.undiscounted_profit.tolist(),
            "service_level": self.service_level.tolist(),
            "mean_on_hand": self.mean_on_hand.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyResult:
        return cls(
            name=data["name"],
            kind=Kind(data["kind"]),
            profit=np.asarray(data["profit"], dtype=np.float64),
            undiscounted_profit=np.asarray(data["undiscounted_profit"], dtype=np.float64),
            service_level=np.asarray(data["service_level"], dtype=np.float64),
            mean_on_hand=np.asarray(data["mean_on_hand"], dtype=np.float64),
            seconds=float(data.get("seconds", float("nan"))),
            params=dict(data.get("params", {})),
        )


def blockable(policy: Policy) -> bool:
    """Whether a policy provably orders for each episode what it orders for it in any batch.

    True for the base-stock heuristics (echelon, local, decentralized, their time-aware
    variants, (s, S)) with one parameter setting for every episode: their orders are elementwise
    functions of the episode's own state row, cumulative sums along its stages and sums of its
    own logged requests. Their exact classes only: a subclass may keep state.
    Every other policy may depend on its batch: per-episode arrays (a mixture's assignment,
    per-episode levels, replayed plans), state across calls (a noise or scenario generator, whose
    draws follow the batch's size), or networks (whose matrix products may round differently for
    another batch size).
    """
    if type(policy) in (TimeAwareBaseStock, DecentralizedTimeAwareBaseStock):
        return blockable(policy.base) and policy.last_order_period.ndim == 1
    if type(policy) in (EchelonBaseStock, LocalBaseStock, DecentralizedBaseStock):
        return policy.levels.ndim == 1
    if type(policy) is ReorderPointOrderUpTo:
        return policy.reorder_point.ndim == 1 and policy.order_up_to.ndim == 1
    return False


def evaluate_policy(
    config: ChainConfig, name: str, kind: Kind, policy: Policy, test_paths: np.ndarray,
    params: dict[str, Any] | None = None,
) -> PolicyResult:
    """Runs one policy on the test paths and keeps its per-episode results.

    :func:`blockable` policies run in blocks of episodes, with the results of one batch.

    Args:
        config: The chain.
        name: The policy's label in the comparison.
        kind: Its role (sets its colour in the figures).
        policy: Any :class:`~echelon.policies.base.Policy`.
        test_paths: Demand paths shaped (N, T).
        params: What defines the policy, saved with its results.

    Raises:
        SizeLimitError: If a policy that must run as one batch would exceed the memory limit
            (``echelon._limits``), checked before it runs.
    """
    start = time.perf_counter()
    if blockable(policy):
        result = rollout_in_blocks(config, lambda block: policy, test_paths, workers=1)
    else:
        episodes = len(test_paths)
        check_memory(
            f"evaluating {name!r} on {episodes:,} test paths of {config.periods:,} periods",
            rollout_bytes(config, episodes), reduce="evaluate.episodes or periods",
        )
        result = rollout(config, policy, test_paths)
    return PolicyResult(
        name=name,
        kind=kind,
        profit=result.profit,
        undiscounted_profit=result.undiscounted_profit,
        service_level=result.service_level,
        mean_on_hand=result.mean_on_hand,
        seconds=time.perf_counter() - start,
        params=params or {},
    )


def evaluate_bound(config: ChainConfig, test_paths: np.ndarray, name: str = "perfect-information bound") -> PolicyResult:
    """The perfect-information bound on every test path, with its plan's measured internals.

    Its ``profit`` is the LP optimum; the other fields come from replaying the optimal plan.

    Raises:
        SizeLimitError: If the plans and their replay would exceed the memory limit
            (``echelon._limits``), checked before the LP is built.
    """
    episodes = len(test_paths)
    check_memory(
        f"the perfect-information bound on {episodes:,} test paths of {config.periods:,} periods",
        plan_bytes(config, episodes) + rollout_bytes(config, episodes),
        reduce="evaluate.episodes or periods",
    )
    start = time.perf_counter()
    plan = perfect_information_plan(config, test_paths)
    replay = rollout(config, PlanReplay(plan.orders), test_paths)
    return PolicyResult(
        name=name,
        kind=Kind.BOUND,
        profit=plan.profit,
        undiscounted_profit=replay.undiscounted_profit,
        service_level=replay.service_level,
        mean_on_hand=replay.mean_on_hand,
        seconds=time.perf_counter() - start,
        params={"integral_plans": int(plan.integral.sum()),
                "max_replay_gap": float(np.max(np.abs(replay.profit - plan.profit)))},
    )
