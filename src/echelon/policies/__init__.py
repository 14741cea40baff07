"""Policies on the batched core: the protocol, heuristics, LP planners and parameter search."""

from echelon.policies.base import Policy
from echelon.policies.base_stock import (
    EchelonBaseStock,
    LocalBaseStock,
    ReorderPointOrderUpTo,
    RequestMode,
    TimeAwareBaseStock,
)
from echelon.policies.lp import ShrinkingHorizonLP, perfect_information_bound
from echelon.policies.mixture import Mixture
from echelon.policies.noise import GaussianNoise

__all__ = [
    "EchelonBaseStock",
    "GaussianNoise",
    "LocalBaseStock",
    "Mixture",
    "Policy",
    "ReorderPointOrderUpTo",
    "RequestMode",
    "ShrinkingHorizonLP",
    "TimeAwareBaseStock",
    "perfect_information_bound",
]
