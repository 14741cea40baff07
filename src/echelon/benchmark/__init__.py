"""An offline-RL benchmark of inventory control: datasets of graded behaviour quality on each
scenario, and the constants their scores are normalised by (:mod:`.datasets`)."""

from echelon.benchmark.datasets import (
    NOISY_EXPERT_STD,
    QUALITIES,
    SCENARIOS,
    BenchmarkDataset,
    Scenario,
    build_dataset,
    build_suite,
    dataset_id,
    normalised_score,
    scenario_constants,
)

__all__ = [
    "NOISY_EXPERT_STD",
    "QUALITIES",
    "SCENARIOS",
    "BenchmarkDataset",
    "Scenario",
    "build_dataset",
    "build_suite",
    "dataset_id",
    "normalised_score",
    "scenario_constants",
]
