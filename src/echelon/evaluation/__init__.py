"""Evaluation of policies on common held-out demand paths, and its statistics."""

from echelon.evaluation.rollout import Rollout, rollout
from echelon.evaluation.stats import Summary, summarize

__all__ = ["Rollout", "Summary", "rollout", "summarize"]
