"""The strong baselines a run compares against: one registry entry each.

A baseline is tuned (a heuristic family searched on the run's search stream, never on test
paths), a planner (a policy built from the chain alone), the perfect-information bound, or the
paper's best grid expert (always evaluated, as the first of the behaviour policies). Adding a
baseline is one entry here: ``evaluate.baselines``, ``echelon evaluate --baselines``, the tuning
and the evaluation stages read this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from echelon.sim.config import ChainConfig


def _shrinking_horizon_lp(chain: ChainConfig) -> Any:
    from echelon.policies.lp import ShrinkingHorizonLP

    return ShrinkingHorizonLP(chain)


def _neural_true_law(chain: ChainConfig) -> Any:
    """The neural planner's reference: a network trained on the chain's true demand law (its
    default settings and seed 0; minutes on a CPU)."""
    from echelon.models.neural import NeuralSettings, train_neural

    return train_neural(chain, NeuralSettings(**_NEURAL), None).policy(chain)


_NEURAL = {"architecture": "levels", "seed": 0}


@dataclass(frozen=True)
class Baseline:
    """How one baseline is made and named."""

    label: str
    """Its name in tables and figures."""
    tuned_family: str | None = None
    """A heuristic family (``echelon.policies.search.Family`` value) tuned by a wide search."""
    planner: Callable[[ChainConfig], Any] | None = None
    """Builds the policy from the chain, for baselines that need no tuning."""
    params: dict[str, Any] = field(default_factory=dict)
    """What defines a planner, saved with its results."""
    bound: bool = False
    """The perfect-information bound (an LP per path, not a policy)."""
    default: bool = True
    """Among the baselines a run and ``echelon evaluate`` compare against unless told otherwise
    (False for those that take minutes to make)."""


BASELINES: dict[str, Baseline] = {
    "paper-best": Baseline("best expert of the paper's grid"),
    "tuned": Baseline("tuned base-stock", tuned_family="base-stock"),
    "time-aware": Baseline("tuned time-aware base-stock", tuned_family="time-aware"),
    "slp": Baseline("shrinking-horizon LP", planner=_shrinking_horizon_lp,
                    params={"forecast": "mean"}),
    "oracle": Baseline("perfect-information bound", bound=True),
    "neural": Baseline("neural policy (true demand law)", planner=_neural_true_law,
                       params={"neural": _NEURAL}, default=False),
    # Each stage acting on its own local observation (on-hand and recent requests), as the
    # decentralized agents do: the heuristic they are compared with.
    "decentralized": Baseline("tuned decentralized base-stock", tuned_family="decentralized",
                              default=False),
    "decentralized-time-aware": Baseline("tuned decentralized time-aware base-stock",
                                         tuned_family="decentralized-time-aware", default=False),
    # Levels of their own in each third of the horizon: an adaptive baseline for demand that
    # moves with time (the seasonal and regime presets).
    "time-varying": Baseline("tuned time-varying base-stock", tuned_family="time-varying",
                             default=False),
}

DEFAULT_BASELINES = tuple(name for name, baseline in BASELINES.items() if baseline.default)
"""The baselines compared against when none are named."""

TUNED = [name for name, baseline in BASELINES.items() if baseline.tuned_family]
"""The tuned baselines in registry order; the i-th is searched on child 2 + i of the search
stream (children 0 and 1 serve the behaviour search)."""
