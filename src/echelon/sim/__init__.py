"""The simulator: chain parameters, demand, the batched core and the Gymnasium env."""

from echelon.sim.config import ChainConfig
from echelon.sim.core import ChainState, StepOutput, observation, reset, step
from echelon.sim.demand import (
    Binomial,
    BlockBootstrap,
    DemandPath,
    DiscreteUniform,
    Geometric,
    LogAR1,
    MarkovModulated,
    MeanCurve,
    NegativeBinomial,
    Poisson,
    mean_curve,
    run_streams,
)

__all__ = [
    "Binomial",
    "BlockBootstrap",
    "ChainConfig",
    "ChainState",
    "DemandPath",
    "DiscreteUniform",
    "Geometric",
    "LogAR1",
    "MarkovModulated",
    "MeanCurve",
    "NegativeBinomial",
    "Poisson",
    "StepOutput",
    "mean_curve",
    "observation",
    "reset",
    "run_streams",
    "step",
]
