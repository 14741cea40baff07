"""Named training presets: ``paper``, ``default`` and ``quick``.

* ``paper``: exactly the paper's stated IQL settings (gamma 0.99, tau 0.7, beta 1.0, learning
  rate 3e-6, two hidden layers of 1024 units, 100 epochs of batch 512). The other algorithms get
  the same networks, rate, batch and epochs, so that they are controls under the same budget.
* ``default``: the common settings of each algorithm's paper or reference code (hidden 256,
  learning rate 3e-4; IQL: tau 0.7, beta 3.0, cosine-decayed actor rate (IQL paper, CORL);
  TD3+BC: alpha 2.5 (TD3+BC paper)), 100 epochs of batch 256.
* ``quick``: ``default`` for 20 epochs, for smoke runs and the quick reproduction.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from echelon.agents.registry import ALGORITHMS, algorithm_config
from echelon.agents.trainer import TrainConfig

PRESETS = ("paper", "default", "quick")

_PAPER_NETWORK = {"hidden": (1024, 1024), "learning_rate": 3e-6}
_PAPER = {
    "iql": {**_PAPER_NETWORK, "gamma": 0.99, "expectile": 0.7, "temperature": 1.0,
            "actor_lr_schedule": "constant"},
    "bc": dict(_PAPER_NETWORK),
    "td3bc": {**_PAPER_NETWORK, "gamma": 0.99},
    "td3": {**_PAPER_NETWORK, "gamma": 0.99},
    # CQL has a rate per network; both get the paper's (its entropy weight keeps its own rate).
    "cql": {"hidden": _PAPER_NETWORK["hidden"], "gamma": 0.99,
            "actor_learning_rate": _PAPER_NETWORK["learning_rate"],
            "critic_learning_rate": _PAPER_NETWORK["learning_rate"]},
}


def agent_preset(algorithm: str, preset: str, **train_overrides: Any) -> tuple[Any, TrainConfig]:
    """The algorithm config and the training config of a named preset.

    Args:
        algorithm: A key of ``ALGORITHMS``.
        preset: ``paper``, ``default`` or ``quick``.
        train_overrides: ``TrainConfig`` fields to change (``seed=3``, ``device="cpu"``).

    Raises:
        ValueError: If the algorithm or preset is unknown.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    if preset not in PRESETS:
        raise ValueError(f"agent preset must be one of {list(PRESETS)}, got {preset!r}")
    if preset == "paper":
        algo = algorithm_config(algorithm, _settings(algorithm, _PAPER[algorithm]))
        train = TrainConfig(epochs=100, batch_size=512)
    else:
        algo = algorithm_config(algorithm)
        train = TrainConfig(epochs=100 if preset == "default" else 20, batch_size=256)
    return algo, dataclasses.replace(train, **train_overrides)


def _settings(algorithm: str, values: dict[str, Any]) -> dict[str, Any]:
    """Only the keys the algorithm's config has (e.g. BC has no gamma)."""
    known = {f.name for f in dataclasses.fields(ALGORITHMS[algorithm].config)}
    return {k: v for k, v in values.items() if k in known}
