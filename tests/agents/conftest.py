"""Fixtures shared by the agent tests: a small chain, a dataset on it, and a trained checkpoint."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from echelon.agents import TrainConfig, algorithm_config, train
from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.policies.search import Family
from echelon.sim.config import ChainConfig


@pytest.fixture(scope="module")
def chain() -> ChainConfig:
    """Ten periods, short lead times: observations of size 9, three stages."""
    return ChainConfig(periods=10, lead_time=(1, 2, 2), initial_inventory=(40.0, 60.0, 80.0))


@pytest.fixture(scope="module")
def dataset(chain):
    """30 episodes of 10 periods: 27 train episodes (270 transitions), 3 held out."""
    behaviour = Behaviour("z", Family.BASE_STOCK, {"z": [60.0, 100.0, 140.0]})
    return collect(chain, [behaviour], CollectConfig(episodes=30, noise_std=10.0),
                   np.random.SeedSequence(0))


@pytest.fixture(scope="module")
def checkpoint(dataset, tmp_path_factory):
    """A BC agent of two hidden layers of 32, trained for 2 epochs on ``dataset``."""
    folder = tmp_path_factory.mktemp("bc")
    settings = TrainConfig(epochs=2, batch_size=64, device="cpu")
    return train(dataset, "bc", algorithm_config("bc", {"hidden": (32, 32)}), settings,
                 folder).checkpoint


@pytest.fixture
def kill_after_epochs():
    """A function that runs a training child and kills it part-way (:func:`_kill_after_epochs`)."""
    return _kill_after_epochs


def _kill_after_epochs(code: str, args: list[str], metrics: Path, epochs: int) -> None:
    """Runs ``python -c code args...`` and SIGKILLs it once ``metrics`` (a ``metrics.csv``) has
    ``epochs`` rows, as when a machine dies: no cleanup. Fails if it ended on its own first."""
    child = subprocess.Popen([sys.executable, "-c", code, *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while child.poll() is None and time.monotonic() < deadline:
            if metrics.exists() and len(metrics.read_text().splitlines()) - 1 >= epochs:
                break
            time.sleep(0.002)
        assert child.poll() is None, f"the run ended before it was killed: {child.stderr.read()}"
    finally:
        child.kill()
        child.wait()
        child.stderr.close()
