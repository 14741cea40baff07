"""The algorithms by name, their config dataclasses, and the named training presets."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from echelon.agents.bc import BC, BCConfig
from echelon.agents.cql import CQL, CQLConfig
from echelon.agents.iql import IQL, IQLConfig
from echelon.agents.td3bc import TD3BC, TD3BCConfig


class AlgorithmSpec(NamedTuple):
    config: type
    """The config dataclass."""
    learner: type
    """The learner class: ``(obs_dim, action_dim, config, total_steps, generator, device)``."""
    defaults: dict[str, Any] = {}
    """Config values that differ from the dataclass defaults for this name."""


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "iql": AlgorithmSpec(IQLConfig, IQL),
    "bc": AlgorithmSpec(BCConfig, BC),
    "td3bc": AlgorithmSpec(TD3BCConfig, TD3BC),
    "td3": AlgorithmSpec(TD3BCConfig, TD3BC, {"bc_weight": 0.0}),
    "cql": AlgorithmSpec(CQLConfig, CQL),
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
