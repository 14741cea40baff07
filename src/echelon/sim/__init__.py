"""The simulator: chain parameters, demand, the batched core and the Gymnasium env."""

from echelon.sim.config import ChainConfig
from echelon.sim.core import ChainState, StepOutput, observation, reset, step
from echelon.sim.demand import (
    Binomial,
    DemandPath,
    DiscreteUniform,
    Geometric,
    Poisson,
    run_streams,
)

__all__ = [
    "Binomial",
    "ChainConfig",
    "ChainState",
    "DemandPath",
    "DiscreteUniform",
    "Geometric",
    "Poisson",
    "StepOutput",
    "observation",
    "reset",
    "run_streams",
    "step",
]
