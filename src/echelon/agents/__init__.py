"""Offline RL agents (PyTorch): IQL, BC, TD3+BC, TD3 and CQL, one shared trainer."""

from echelon.agents.registry import ALGORITHMS, algorithm_config
from echelon.agents.trainer import (
    AgentPolicy,
    CheckpointError,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    load_checkpoint,
    train,
)

__all__ = [
    "ALGORITHMS",
    "AgentPolicy",
    "CheckpointError",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "algorithm_config",
    "load_checkpoint",
    "train",
]
