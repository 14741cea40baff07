"""The roles a policy plays in a comparison (no plotting here, so evaluation needs no matplotlib)."""

from __future__ import annotations

from enum import StrEnum


class PolicyKind(StrEnum):
    """The role of a policy in a comparison; it sets the policy's colour in every figure."""

    AGENT = "agent"
    DECENTRALIZED = "decentralized agent"
    BEST_EXPERT = "best expert"
    EXPERT = "expert"
    BASELINE = "baseline"
    MODEL = "model-based"
    BOUND = "bound"
