"""Named training presets: ``paper``, ``default`` and ``quick`` (:data:`AGENT_PRESETS`).

* ``paper``: exactly the paper's stated IQL settings (gamma 0.99, tau 0.7, beta 1.0, learning
  rate 3e-6, two hidden layers of 1024 units, 100 epochs of batch 512). The other algorithms get
  the same networks, rate, batch and epochs, so that they are controls under the same budget
  (each algorithm's values: ``AlgorithmSpec.paper`` in :mod:`echelon.agents.registry`).
* ``default``: the common settings of each algorithm's paper or reference code (hidden 256,
  learning rate 3e-4; IQL: tau 0.7, beta 3.0, cosine-decayed actor rate (IQL paper, CORL);
  TD3+BC: alpha 2.5 (TD3+BC paper)), 100 epochs of batch 256.
* ``quick``: ``default`` for 20 epochs, for smoke runs and the quick reproduction.

These are presets of one agent's training; the presets of a whole run (``quick``, ``paper``)
are TOML files in :mod:`echelon.presets`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from echelon.agents.config import TrainConfig
from echelon.agents.registry import ALGORITHMS, algorithm_config


@dataclass(frozen=True)
class AgentPreset:
    """A named training budget for any algorithm."""

    summary: str
    """One line on what it is for (help texts)."""
    epochs: int
    """``TrainConfig.epochs``."""
    batch_size: int
    """``TrainConfig.batch_size``."""
    paper_settings: bool
    """Each algorithm's ``AlgorithmSpec.paper`` values instead of its config's defaults."""


AGENT_PRESETS: dict[str, AgentPreset] = {
    "paper": AgentPreset("the paper's IQL settings, and its network and budget for the others",
                         epochs=100, batch_size=512, paper_settings=True),
    "default": AgentPreset("each algorithm's reference settings", epochs=100, batch_size=256,
                           paper_settings=False),
    "quick": AgentPreset("the default settings for 20 epochs, for smoke runs", epochs=20,
                         batch_size=256, paper_settings=False),
}

# The names, under the name they had before AGENT_PRESETS (``echelon.run.config`` imports it).
PRESETS = tuple(AGENT_PRESETS)


def agent_preset(algorithm: str, preset: str, **train_overrides: Any) -> tuple[Any, TrainConfig]:
    """The algorithm config and the training config of a named preset.

    Args:
        algorithm: A key of ``ALGORITHMS``.
        preset: A key of ``AGENT_PRESETS`` (``paper``, ``default`` or ``quick``).
        train_overrides: ``TrainConfig`` fields to change (``seed=3``, ``device="cpu"``).

    Raises:
        ValueError: If the algorithm or preset is unknown.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    if not isinstance(preset, str) or preset not in AGENT_PRESETS:
        raise ValueError(f"agent preset must be one of {list(AGENT_PRESETS)}, got {preset!r}")
    chosen = AGENT_PRESETS[preset]
    values = ALGORITHMS[algorithm].paper if chosen.paper_settings else None
    algo = algorithm_config(algorithm, values)
    train = TrainConfig(epochs=chosen.epochs, batch_size=chosen.batch_size)
    return algo, dataclasses.replace(train, **train_overrides)
