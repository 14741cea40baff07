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
