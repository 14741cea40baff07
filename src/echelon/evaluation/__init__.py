"""Evaluation of policies on common held-out demand paths, and its statistics."""

from echelon.evaluation.stats import Summary, summarize
from echelon.sim.rollout import Rollout, rollout

__all__ = ["Rollout", "Summary", "rollout", "summarize"]
