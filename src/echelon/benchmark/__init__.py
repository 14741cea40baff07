"""An offline-RL benchmark of inventory control: datasets of graded behaviour quality on each
scenario, and the constants their scores are normalised by (:mod:`.datasets`); algorithms
trained, scored and aggregated on a suite (:mod:`.run`)."""

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
from echelon.benchmark.run import BenchmarkSettings, read_suite, run_benchmark

__all__ = [
    "NOISY_EXPERT_STD",
    "QUALITIES",
    "SCENARIOS",
    "BenchmarkDataset",
    "BenchmarkSettings",
    "Scenario",
    "build_dataset",
    "build_suite",
    "dataset_id",
    "normalised_score",
    "read_suite",
    "run_benchmark",
    "scenario_constants",
]
