"""Fixtures shared across test packages."""

import numpy as np
import pytest

from echelon.data import Behaviour, CollectConfig, collect, save
from echelon.policies.search import Family
from echelon.sim import ChainConfig


@pytest.fixture(scope="session")
def small_logs(tmp_path_factory):
    """A small dataset file: 30 episodes of two base-stock behaviours on OR-Gym's defaults."""
    behaviours = [Behaviour("lean", Family.BASE_STOCK, {"z": [60.0, 160.0, 40.0]}),
                  Behaviour("rich", Family.BASE_STOCK, {"z": [100.0, 220.0, 40.0]})]
    data = collect(ChainConfig(), behaviours, CollectConfig(episodes=30), np.random.SeedSequence(3))
    return save(data, tmp_path_factory.mktemp("data") / "logs.h5")


@pytest.fixture(scope="module")
def reproduce_quick(tmp_path_factory):
    """Runs the quick preset with overrides into a new folder: (run, folder, report, log lines)."""
    from echelon import pipeline

    def reproduce(overrides: list[str]):
        out = tmp_path_factory.mktemp("run")
        lines: list[str] = []
        run = pipeline.resolve("quick", overrides)
        report = pipeline.reproduce(run, out, progress=False, log=lines.append)
        return run, out, report, lines

    return reproduce
