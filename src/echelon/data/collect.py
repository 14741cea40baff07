"""Collection of offline datasets: behaviour policies played on collection demand paths."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echelon._limits import check_memory, memory_limit
from echelon.data.dataset import _LOG_FIELDS, _TRANSITION_FIELDS, OfflineDataset, from_trajectory
from echelon.policies.base import Policy
from echelon.policies.base_stock import RequestMode
from echelon.policies.families import Family, HeuristicSpec, Params
from echelon.policies.mixture import Mixture
from echelon.policies.noise import GaussianNoise
from echelon.policies.search import Candidate
from echelon.sim.config import ChainConfig
from echelon.sim.demand import child_seeds
from echelon.sim.rollout import rollout, rollout_bytes


@dataclass(frozen=True, init=False)
class Behaviour:
    """One heuristic behaviour policy of a mixture, as found by a search: a named, weighted
    :class:`~echelon.policies.families.HeuristicSpec`.

    Built as ``Behaviour(name, family, params, mode, weight)`` (family and mode as enums or
    their values), or from a spec with :meth:`from_spec`.

    Raises:
        ValueError: If the weight is not > 0, or the family or mode is unknown.
    """

    name: str
    """A label, e.g. ``paper-grid-1``."""
    spec: HeuristicSpec
    """The heuristic: family, request mode and parameters."""
    weight: float
    """Relative probability that an episode follows it, > 0."""

    def __init__(self, name: str, family: Family, params: Params,
                 mode: RequestMode = RequestMode.CLIP, weight: float = 1.0) -> None:
        if not np.isfinite(weight) or weight <= 0:
            raise ValueError(f"behaviour {name!r}: weight must be > 0, got {weight!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "spec", HeuristicSpec(family, mode, params))
        object.__setattr__(self, "weight", weight)

    @classmethod
    def from_spec(cls, name: str, spec: HeuristicSpec, weight: float = 1.0) -> Behaviour:
        return cls(name, spec.family, spec.params, spec.mode, weight)

    @classmethod
    def from_candidate(cls, name: str, family: Family, candidate: Candidate, mode: RequestMode,
                       weight: float = 1.0) -> Behaviour:
        return cls(name, family, candidate.params, mode, weight)

    @classmethod
    def from_dict(cls, data: dict) -> Behaviour:
        """Inverse of :meth:`to_dict` (a dataset's ``behaviour_policies`` entry)."""
        return cls.from_spec(data["name"], HeuristicSpec.from_dict(data), data["weight"])

    @property
    def family(self) -> Family:
        return self.spec.family

    @property
    def params(self) -> Params:
        return self.spec.params

    @property
    def mode(self) -> RequestMode:
        return self.spec.mode

    def policy(self, config: ChainConfig) -> Policy:
        return self.spec.policy(config)

    def to_dict(self, noise_std: float) -> dict:
        spec = self.spec.to_dict()
        return {"name": self.name, "family": spec["family"], "params": spec["params"],
                "mode": spec["mode"], "weight": self.weight, "noise_std": noise_std}


@dataclass(frozen=True)
class CollectConfig:
    """How a dataset is collected."""

    episodes: int = 2000
    """Episodes to log (each T transitions), >= 1."""
    noise_std: float = 0.0
    """Std of Gaussian noise added to every behaviour order, in units, >= 0."""
    weights: tuple[float, ...] = ()
    """Relative weights of the search's top settings as behaviours (empty: equal weights)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if any(not np.isfinite(w) or w <= 0 for w in self.weights):
            raise ValueError(f"collect.weights must all be > 0, got {list(self.weights)}")
        if isinstance(self.episodes, bool) or not isinstance(self.episodes, int) or self.episodes < 1:
            raise ValueError(f"collect.episodes must be an integer >= 1, got {self.episodes!r}")
        if not np.isfinite(self.noise_std) or self.noise_std < 0:
            raise ValueError(f"collect.noise_std must be >= 0, got {self.noise_std!r}")


def collect_bytes(config: ChainConfig, episodes: int) -> int:
    """Peak memory of :func:`collect` for E episodes, in bytes.

    While the dataset is built, the demand paths (E, T), the recorded rollout
    (:func:`~echelon.sim.rollout.rollout_bytes`) and the dataset itself coexist: M = E x T rows
    of the schema of :mod:`echelon.data.dataset` (observations and next observations of
    ``observation_size`` values, actions, rewards, flags, ids and the ``log/*`` arrays), plus
    what the dataset's validation allocates (measured: about one float64 copy and one mask of
    the observations).
    """
    width, stages = config.observation_size, config.stages
    row = sum(np.dtype(dtype).itemsize * math.prod(trailing(width, stages))
              for dtype, trailing in (*_TRANSITION_FIELDS.values(), *_LOG_FIELDS.values()))
    validation = 9 * width + 64  # and int64 differences of the ids
    rows = episodes * config.periods
    return (8 * rows + rollout_bytes(config, episodes, record=True) + rows * (row + validation))


def collect(
    config: ChainConfig,
    behaviours: Sequence[Behaviour],
    settings: CollectConfig,
    seed: np.random.SeedSequence,
    *,
    seeds_info: dict | None = None,
) -> OfflineDataset:
    """Logs episodes of a mixture of behaviour policies.

    Each episode's behaviour is drawn with probability proportional to its weight (and
    recorded); demand paths, the draw and the noise come from three independent children of
    ``seed``, the run's collection stream, so test paths (another stream) never overlap them.

    Args:
        config: The chain.
        behaviours: The mixture's components.
        settings: Episode count and behaviour noise.
        seed: The collection stream.
        seeds_info: Recorded in the dataset's ``seeds`` attribute (e.g. the run seed).

    Returns:
        The dataset, M = episodes x periods transitions.

    Raises:
        SizeLimitError: If the collection would exceed the memory limit (``echelon._limits``),
            checked before anything is drawn; the message says how many episodes fit.
    """
    if not behaviours:
        raise ValueError("collection needs at least one behaviour policy")
    demand_seed, pick_seed, noise_seed = child_seeds(seed, 3)
    episodes, periods = settings.episodes, config.periods
    fit = memory_limit() // collect_bytes(config, 1)
    check_memory(f"collecting {episodes:,} episodes of {periods:,} periods",
                 collect_bytes(config, episodes),
                 reduce=f"collect.episodes (about {fit:,} fit) or chain.periods")
    demand = config.demand.sample(np.random.default_rng(demand_seed), episodes, periods)
    weights = np.array([b.weight for b in behaviours], dtype=np.float64)
    assignment = np.random.default_rng(pick_seed).choice(
        len(behaviours), size=episodes, p=weights / weights.sum()
    )
    policy = Mixture([b.policy(config) for b in behaviours], assignment)
    if settings.noise_std > 0:
        policy = GaussianNoise(policy, settings.noise_std, np.random.default_rng(noise_seed))
    trajectory = rollout(config, policy, demand, record=True).trajectory

    return from_trajectory(
        config,
        trajectory,
        assignment,
        behaviour_policies=[b.to_dict(settings.noise_std) for b in behaviours],
        seeds={"collect_entropy": str(seed.entropy), "collect_spawn_key": list(seed.spawn_key),
               **(seeds_info or {})},
        source={"kind": "simulated", "episodes": episodes, "noise_std": settings.noise_std},
    )
