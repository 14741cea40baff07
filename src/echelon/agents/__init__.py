"""Offline RL agents (PyTorch): IQL, BC, TD3+BC, TD3 and CQL, one shared trainer.

Modules, in the order they import each other: one file per algorithm (``iql``, ``bc``,
``td3bc``, ``cql``) over ``common``; ``registry`` (the algorithms by name); ``config``
(``TrainConfig``); ``preprocessing`` (what the networks see of a dataset); ``checkpoint`` (the
file); ``policy`` (a checkpoint as a policy); ``ensemble`` (seeds trained together); ``trainer``
(the loop); ``presets`` (named budgets).
"""

from echelon.agents.checkpoint import CheckpointError, load_checkpoint
from echelon.agents.config import TrainConfig
from echelon.agents.policy import AgentPolicy
from echelon.agents.registry import ALGORITHMS, algorithm_config
from echelon.agents.trainer import TrainingDiverged, TrainResult, train, train_ensemble

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
    "train_ensemble",
]
