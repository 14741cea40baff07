"""Policies on the batched core: the protocol, heuristics, LP planners and parameter search."""

from echelon.policies.base import Policy
from echelon.policies.base_stock import (
    DecentralizedBaseStock,
    DecentralizedTimeAwareBaseStock,
    EchelonBaseStock,
    LocalBaseStock,
    ReorderPointOrderUpTo,
    RequestMode,
    TimeAwareBaseStock,
)
from echelon.policies.decentralized import DecentralizedPolicy, StageBaseStock, decentralized_agents
from echelon.policies.families import FAMILIES, Family, HeuristicSpec
from echelon.policies.lp import perfect_information_bound
from echelon.policies.mixture import Mixture
from echelon.policies.noise import GaussianNoise
from echelon.policies.receding import RecedingHorizonLP, RollingScenarioLP, ShrinkingHorizonLP
from echelon.policies.replay import PlanReplay

__all__ = [
    "FAMILIES",
    "DecentralizedBaseStock",
    "DecentralizedPolicy",
    "DecentralizedTimeAwareBaseStock",
    "EchelonBaseStock",
    "Family",
    "GaussianNoise",
    "HeuristicSpec",
    "LocalBaseStock",
    "Mixture",
    "PlanReplay",
    "Policy",
    "RecedingHorizonLP",
    "ReorderPointOrderUpTo",
    "RequestMode",
    "RollingScenarioLP",
    "ShrinkingHorizonLP",
    "StageBaseStock",
    "TimeAwareBaseStock",
    "decentralized_agents",
    "perfect_information_bound",
]
