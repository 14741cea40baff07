"""The algorithms by name: each one's config dataclass, learner, and settings under the paper.

Adding an algorithm is one file (its config and learner, as ``iql.py``) and one entry here; the
trainer, the checkpoints, the agent presets (:mod:`echelon.agents.presets`) and the command
line's choices read this table.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from echelon.agents.bc import BC, BCConfig
from echelon.agents.cql import CQL, CQLConfig
from echelon.agents.iql import IQL, IQLConfig
from echelon.agents.td3bc import TD3BC, TD3BCConfig

# The paper's stated network and learning rate (two hidden layers of 1024 units, 3e-6, for its
# IQL); the ``paper`` agent preset gives them to every algorithm, so that the others are
# controls under the same budget.
_PAPER_HIDDEN = (1024, 1024)
_PAPER_LEARNING_RATE = 3e-6


def paper_settings(rates: tuple[str, ...] = ("learning_rate",), **values: Any) -> dict[str, Any]:
    """An algorithm's config values under the ``paper`` preset.

    Args:
        rates: The config's fields that hold the networks' learning rates; each gets the
            paper's rate.
        values: Further config values the paper states (``gamma=0.99``).

    Returns:
        ``hidden`` (the paper's layers), each of ``rates`` (the paper's rate), and ``values``.
    """
    return {"hidden": _PAPER_HIDDEN, **dict.fromkeys(rates, _PAPER_LEARNING_RATE), **values}


class AlgorithmSpec(NamedTuple):
    config: type
    """The config dataclass."""
    learner: type
    """The learner class: ``(obs_dim, action_dim, config, total_steps, generator, device)``."""
    paper: dict[str, Any]
    """Config values under the ``paper`` agent preset (see :func:`paper_settings`)."""
    defaults: dict[str, Any] = {}
    """Config values that differ from the dataclass defaults for this name."""
    uses_rewards: bool = True
    """Whether its learning reads the rewards (behaviour cloning does not, so data that differ
    only in their rewards give it the same agent)."""


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "iql": AlgorithmSpec(IQLConfig, IQL, paper_settings(
        gamma=0.99, expectile=0.7, temperature=1.0, actor_lr_schedule="constant")),
    "bc": AlgorithmSpec(BCConfig, BC, paper_settings(), uses_rewards=False),
    "td3bc": AlgorithmSpec(TD3BCConfig, TD3BC, paper_settings(gamma=0.99)),
    "td3": AlgorithmSpec(TD3BCConfig, TD3BC, paper_settings(gamma=0.99), {"bc_weight": 0.0}),
    # CQL has a rate per network; both get the paper's (its entropy weight keeps its own rate).
    "cql": AlgorithmSpec(CQLConfig, CQL, paper_settings(
        ("actor_learning_rate", "critic_learning_rate"), gamma=0.99)),
}


def algorithm_config(algorithm: str, values: dict[str, Any] | None = None) -> Any:
    """The algorithm's config from a dict (TOML or a checkpoint), tuples restored.

    Raises:
        ValueError: If the algorithm or a key is unknown, or a value is out of range.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    cls = ALGORITHMS[algorithm].config
    values = {**ALGORITHMS[algorithm].defaults, **(values or {})}
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {algorithm} settings {sorted(unknown)}; known: {sorted(known)}")
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = tuple(value)
    return cls(**values)
