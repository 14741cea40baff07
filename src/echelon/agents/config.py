"""How an algorithm is trained on a dataset (:class:`TrainConfig`), and the device it runs on.

Its own module, below the checkpoints: a checkpoint records its ``TrainConfig`` and is checked
against it on load, and both the trainer and the trained policy read checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from echelon._fields import settings_dict


ACTION_SCALINGS = ("bounds", "data")
"""How orders map to the networks' [-1, 1]: over the env's bounds [0, capacity] per stage, or
over the range of the training split's logged orders per stage (d3rlpy's min-max scaler)."""


@dataclass(frozen=True)
class TrainConfig:
    """How an algorithm is trained on a dataset."""

    epochs: int = 100
    """Passes over the training transitions, >= 1."""
    batch_size: int = 256
    """Transitions per gradient step, >= 1."""
    seed: int = 0
    """Seeds the validation split, the initial weights and the batch order."""
    validation_fraction: float = 0.1
    """Share of episodes held out for validation losses, in [0, 0.5]."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before training (1: as logged, OR-Gym's discounted profit)."""
    time_feature: bool = False
    """Append the normalised period n/T to the observation (OR-Gym's has no time index)."""
    sales_history: int = 0
    """Append the retail sales of the last k periods to the observation (the env's
    ``sales_history`` option; read from the log's sales), 0 .. T."""
    action_scaling: str = "bounds"
    """How orders map to the networks' [-1, 1]: ``bounds``, over the env's [0, capacity] per
    stage; ``data``, over the training split's lowest and highest logged order per stage
    (d3rlpy's min-max scaler); the orders played are clipped to the env's bounds either way."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    precision: str = "float32"
    """``float32``, or ``bfloat16`` to run the hidden layers under bfloat16 autocast (output
    layers, losses and weights stay float32): several times faster on CPUs with bfloat16
    instructions, at some cost in precision."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"train.{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"train.seed must be an integer >= 0, got {self.seed!r}")
        if (isinstance(self.sales_history, bool) or not isinstance(self.sales_history, int)
                or self.sales_history < 0):
            raise ValueError(f"train.sales_history must be an integer >= 0 (at most the chain's "
                             f"periods), got {self.sales_history!r}")
        if not 0.0 <= self.validation_fraction <= 0.5:
            raise ValueError(
                f"train.validation_fraction must be in [0, 0.5], got {self.validation_fraction!r}"
            )
        if not math.isfinite(self.reward_scale) or self.reward_scale <= 0:
            raise ValueError(f"train.reward_scale must be > 0, got {self.reward_scale!r}")
        if self.action_scaling not in ACTION_SCALINGS:
            raise ValueError(f"train.action_scaling must be {' or '.join(ACTION_SCALINGS)}, got "
                             f"{self.action_scaling!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"train.precision must be float32 or bfloat16, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a dict (``sales_history`` and ``action_scaling`` only when set: see
        ``settings_dict``)."""
        return settings_dict(self, later=("sales_history", "action_scaling"))


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device")
    return torch.device(name)
