"""Policies on the batched core: the protocol, heuristics and their parameter search."""

from echelon.policies.base import Policy
from echelon.policies.base_stock import EchelonBaseStock, RequestMode

__all__ = ["EchelonBaseStock", "Policy", "RequestMode"]
