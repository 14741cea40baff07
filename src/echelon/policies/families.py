"""The heuristic families, one registry entry each, and :class:`HeuristicSpec`, one heuristic.

A family is a parametric set of policies. Its members are parameter vectors (P,), or (N, P) with
one row per episode, so that many settings run in one batch; a vector is written out as named
per-stage lists (the ``params`` of search results, datasets and policy files). Each entry of
:data:`FAMILIES` says everything the rest of the package needs: the vector's size, the names of
its lists and the conversion both ways, the policy it builds, the wide search bounds, and where
:func:`~echelon.policies.search.optimize` starts its search. Adding a family is one member of
:class:`Family` and one entry here.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from echelon.policies.base import Policy
from echelon.policies.base_stock import (
    DecentralizedBaseStock,
    DecentralizedTimeAwareBaseStock,
    EchelonBaseStock,
    LocalBaseStock,
    ReorderPointOrderUpTo,
    RequestMode,
    TimeAwareBaseStock,
    TimeVaryingBaseStock,
)
from echelon.policies.pattern import pattern_search
from echelon.sim.config import ChainConfig

Params = dict[str, list[float]]
"""Named per-stage parameter lists, e.g. ``{"z": [80.0, 180.0, 40.0]}``."""


class Family(enum.Enum):
    """A parametric family of heuristic policies (its entry: ``FAMILIES[family]``)."""

    BASE_STOCK = "base-stock"
    """Echelon base-stock: levels z (S values)."""
    TIME_AWARE = "time-aware"
    """Echelon base-stock with a last ordering period per stage: z, then last_order_period."""
    SS = "ss"
    """(s, S) on echelon position: reorder points s, then order-up-to levels S."""
    LOCAL = "local"
    """Local (installation) base-stock: levels z (S values) of each stage's own position."""
    DECENTRALIZED = "decentralized"
    """Decentralized base-stock: levels z (S values) of the position each stage sees (its
    on-hand and its own recent requests)."""
    DECENTRALIZED_TIME_AWARE = "decentralized-time-aware"
    """Decentralized base-stock with a last ordering period per stage: z, then
    last_order_period."""
    TIME_VARYING = "time-varying"
    """Echelon base-stock with its own levels in each third of the horizon: z1, z2, z3 (an
    adaptive baseline for seasonal or trending demand)."""

    def size(self, stages: int) -> int:
        """Length P of a parameter vector for a chain of S stages."""
        return FAMILIES[self].blocks * stages


class Scores(Protocol):
    """The search's memo of mean profits on its fixed paths (``search._Scores``)."""

    def __call__(self, vectors: np.ndarray) -> np.ndarray: ...

    def top(self, k: int) -> np.ndarray: ...


@dataclass(frozen=True)
class SearchStart:
    """What a family's search starts from: the base-stock search that every search runs first."""

    config: ChainConfig
    scores: Scores
    """Scores (K, P) vectors of the family on the search paths, each once."""
    levels: np.ndarray
    """(M, S) the best base-stock levels found."""
    coarse: np.ndarray
    """(K, S) the coarse grid of base-stock levels."""
    spacing: np.ndarray
    """(S,) the coarse grid's spacing."""
    starts: int
    """How many of the best points start the family's pattern search."""


@dataclass(frozen=True)
class HeuristicFamily:
    """Everything about one family that does not depend on a particular setting."""

    keys: tuple[str, ...]
    """The per-stage lists of its ``params``, in the order their blocks fill the vector."""
    to_params: Callable[[list[float], int], Params]
    """A vector's values (P floats) and S as named lists."""
    from_params: Callable[[Params], np.ndarray]
    """Inverse of ``to_params``, once the keys are known to be there."""
    build: Callable[[ChainConfig, np.ndarray, RequestMode], Policy]
    """The policy of (P,) or (N, P) vectors already checked to have P values."""
    bounds: Callable[[ChainConfig], tuple[np.ndarray, np.ndarray]]
    """(P,) lower and (P,) upper bounds wide enough for any sensible setting."""
    start: Callable[[SearchStart], np.ndarray] | None = None
    """Scores the family's starting points and returns the (P,) initial steps of its pattern
    search; None for base-stock, whose search is the one every search runs first."""
    start_batch: Callable[[ChainConfig], int] = lambda config: 0
    """The most settings ``start`` scores at once from 3 starts, where that is more than the
    coarse grid's (for the memory check)."""

    @property
    def blocks(self) -> int:
        """Per-stage blocks of a vector: P = blocks x S."""
        return len(self.keys)


# --- the entries ------------------------------------------------------------------------------


def _levels_to_params(values: list[float], stages: int) -> Params:
    return {"z": values}


def _lists(*keys: str) -> Callable[[Params], np.ndarray]:
    def from_params(params: Params) -> np.ndarray:
        return np.concatenate([np.asarray(params[key], dtype=np.float64) for key in keys])

    return from_params


def _level_bounds(config: ChainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Levels from 0 (the stage never orders) to three times the mean demand over the echelon's
    cumulative lead time plus one period (and the largest initial inventory)."""
    cumulative = np.cumsum(config.lead_time) + 1
    high = np.ceil(3.0 * max(config.demand.mean, 1.0) * cumulative + max(config.initial_inventory))
    return np.zeros(config.stages), high


def _time_aware_params(values: list[float], stages: int) -> Params:
    return {"z": values[:stages], "last_order_period": [int(v) for v in values[stages:]]}


def _time_aware_bounds(config: ChainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Levels as base-stock; last ordering periods from -1 (never) to T-1 (always)."""
    low, high = _level_bounds(config)
    return (np.concatenate([low, np.full(config.stages, -1.0)]),
            np.concatenate([high, np.full(config.stages, config.periods - 1.0)]))


def _time_aware_start(start: SearchStart) -> np.ndarray:
    """The best base-stock levels ordering to the end, and the coarse grid with each stage
    stopping when an order could no longer reach the retailer before the horizon (last = T-1
    minus the lead times from that stage down); then a sweep of each stage's cut-off."""
    config, scores, levels, coarse = start.config, start.scores, start.levels, start.coarse
    stages = config.stages
    reach = np.maximum(config.periods - 1.0 - np.cumsum(config.lead_time), -1.0)
    scores(np.hstack([levels, np.full((len(levels), stages), config.periods - 1.0)]))
    scores(np.hstack([coarse, np.tile(reach, (len(coarse), 1))]))
    seeds = scores.top(start.starts)
    for stage in range(stages):  # sweep each stage's cut-off, others fixed
        sweep = np.repeat(seeds, config.periods + 1, axis=0)
        sweep[:, stages + stage] = np.tile(np.arange(-1.0, config.periods), len(seeds))
        scores(sweep)
        seeds = scores.top(start.starts)
    return np.concatenate([np.full(stages, 8.0), np.full(stages, 2.0)])


def _ss_params(values: list[float], stages: int) -> Params:
    """The vector holds s and the gap S - s, which keeps S >= s during the search."""
    return {"s": values[:stages], "S": [s + g for s, g in zip(values[:stages], values[stages:])]}


def _ss_from_params(params: Params) -> np.ndarray:
    s = np.asarray(params["s"], dtype=np.float64)
    return np.concatenate([s, np.asarray(params["S"], dtype=np.float64) - s])


def _ss_bounds(config: ChainConfig) -> tuple[np.ndarray, np.ndarray]:
    low, high = _level_bounds(config)
    return np.concatenate([low, low]), np.concatenate([high, high])


def _ss_start(start: SearchStart) -> np.ndarray:
    """The best base-stock levels as s = S."""
    stages = start.config.stages
    start.scores(np.hstack([start.levels, np.zeros((len(start.levels), stages))]))
    return np.concatenate([np.full(stages, 8.0), start.spacing])


def _local_start(start: SearchStart) -> np.ndarray:
    """The coarse grid, and the best echelon levels as local ones: an echelon position is the
    sum of the local positions from the retailer up, so z_i - z_{i-1} (at least 0)."""
    start.scores(start.coarse)
    start.scores(np.maximum(np.diff(start.levels, axis=1, prepend=0.0), 0.0))
    return start.spacing / 2.0


class _NoCutOff:
    """Scores (K, S) levels as time-aware vectors that order to the end (last period T-1)."""

    def __init__(self, scores: Scores, config: ChainConfig) -> None:
        self.scores = scores
        self.always = np.full(config.stages, config.periods - 1.0)

    def __call__(self, levels: np.ndarray) -> np.ndarray:
        return self.scores(np.hstack([levels, np.tile(self.always, (len(levels), 1))]))

    def top(self, k: int) -> np.ndarray:
        """The levels of the k best vectors scored (only levels are scored before the cut-offs)."""
        return self.scores.top(k)[:, : len(self.always)]


def _decentralized_time_aware_start(start: SearchStart) -> np.ndarray:
    """The decentralized levels ordering to the end, found as the decentralized family's search
    finds them (its start, :func:`_local_start`, then a pattern search of the levels alone);
    then the cut-offs as :func:`_time_aware_start` finds them, from those levels.

    Ordering to the end, the family is the decentralized one, so its search explores every
    setting the decentralized search does and can only do as well on the search paths.
    """
    levels = _NoCutOff(start.scores, start.config)
    step = _local_start(dataclasses.replace(start, scores=levels))
    lower, upper = _level_bounds(start.config)
    found = pattern_search(levels, levels.top(start.starts), step, lower, upper)
    return _time_aware_start(dataclasses.replace(start, levels=found))


def _time_aware_family(policy: type, start: Callable[[SearchStart], np.ndarray]) -> HeuristicFamily:
    """The entry of a time-aware family: levels z, then a last ordering period per stage."""
    return HeuristicFamily(
        keys=("z", "last_order_period"), to_params=_time_aware_params,
        from_params=_lists("z", "last_order_period"),
        build=lambda config, vectors, mode: policy(
            config, vectors[..., : config.stages], vectors[..., config.stages :], mode),
        bounds=_time_aware_bounds, start=start,
        start_batch=lambda config: 3 * (config.periods + 1),
    )


# The time-varying family's blocks: thirds of the horizon (ten periods of OR-Gym's 30), few
# enough for its 3 S levels to be searched like the other families' 2 S parameters.
LEVEL_BLOCKS = 3


def _block_params(values: list[float], stages: int) -> Params:
    return {f"z{b + 1}": values[b * stages : (b + 1) * stages] for b in range(LEVEL_BLOCKS)}


def _block_bounds(config: ChainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each block's levels within the base-stock levels' bounds."""
    low, high = _level_bounds(config)
    return np.tile(low, LEVEL_BLOCKS), np.tile(high, LEVEL_BLOCKS)


def _block_start(start: SearchStart) -> np.ndarray:
    """The best base-stock levels in every block, and the coarse grid likewise."""
    start.scores(np.tile(start.levels, LEVEL_BLOCKS))
    start.scores(np.tile(start.coarse, LEVEL_BLOCKS))
    return np.tile(start.spacing / 2.0, LEVEL_BLOCKS)


FAMILIES: dict[Family, HeuristicFamily] = {
    Family.BASE_STOCK: HeuristicFamily(
        keys=("z",), to_params=_levels_to_params, from_params=_lists("z"),
        build=lambda config, vectors, mode: EchelonBaseStock(config, vectors, mode),
        bounds=_level_bounds,
    ),
    Family.TIME_AWARE: _time_aware_family(TimeAwareBaseStock, _time_aware_start),
    Family.SS: HeuristicFamily(
        keys=("s", "S"), to_params=_ss_params, from_params=_ss_from_params,
        build=lambda config, vectors, mode: ReorderPointOrderUpTo(
            config, vectors[..., : config.stages],
            vectors[..., : config.stages] + vectors[..., config.stages :], mode),
        bounds=_ss_bounds, start=_ss_start,
    ),
    Family.LOCAL: HeuristicFamily(
        keys=("z",), to_params=_levels_to_params, from_params=_lists("z"),
        build=lambda config, vectors, mode: LocalBaseStock(config, vectors, mode),
        bounds=_level_bounds, start=_local_start,
    ),
    # A stage's seen position is its local position while its requests are filled: the local
    # family's start fits.
    Family.DECENTRALIZED: HeuristicFamily(
        keys=("z",), to_params=_levels_to_params, from_params=_lists("z"),
        build=lambda config, vectors, mode: DecentralizedBaseStock(config, vectors, mode),
        bounds=_level_bounds, start=_local_start,
    ),
    Family.DECENTRALIZED_TIME_AWARE: _time_aware_family(DecentralizedTimeAwareBaseStock,
                                                         _decentralized_time_aware_start),
    Family.TIME_VARYING: HeuristicFamily(
        keys=tuple(f"z{b + 1}" for b in range(LEVEL_BLOCKS)), to_params=_block_params,
        from_params=_lists(*(f"z{b + 1}" for b in range(LEVEL_BLOCKS))),
        build=lambda config, vectors, mode: TimeVaryingBaseStock(
            config, vectors, LEVEL_BLOCKS, mode),
        bounds=_block_bounds, start=_block_start,
    ),
}
"""The registry: every family's entry."""


# --- vectors, params and policies -------------------------------------------------------------


def to_params(family: Family, vector: np.ndarray) -> Params:
    """A parameter vector as named per-stage lists (the ``params`` of the JSON output)."""
    values = [float(v) for v in vector]
    entry = FAMILIES[family]
    return entry.to_params(values, len(values) // entry.blocks)


def from_params(family: Family, params: Params) -> np.ndarray:
    """Inverse of :func:`to_params`.

    Raises:
        ValueError: If a key the family needs is missing.
    """
    entry = FAMILIES[family]
    missing = [key for key in entry.keys if key not in params]
    if missing:
        raise ValueError(f"{family.value} parameters need {list(entry.keys)}, missing {missing}")
    return entry.from_params(params)


def make_policy(
    config: ChainConfig, family: Family, vectors: np.ndarray, mode: RequestMode = RequestMode.CLIP
) -> Policy:
    """The family's policy for parameter vectors shaped (P,) or (N, P), one row per episode."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.shape[-1] != family.size(config.stages):
        raise ValueError(
            f"{family.value} parameter vectors need {family.size(config.stages)} values for "
            f"{config.stages} stages, got shape {vectors.shape}"
        )
    return FAMILIES[family].build(config, vectors, mode)


def wide_bounds(config: ChainConfig, family: Family) -> tuple[np.ndarray, np.ndarray]:
    """Search bounds wide enough for any sensible setting of the family.

    Levels run from 0 (the stage never orders) to three times the mean demand over the
    echelon's cumulative lead time plus one period; last ordering periods from -1 (never) to
    T-1 (always).

    Returns:
        (P,) lower and (P,) upper bounds.
    """
    return FAMILIES[family].bounds(config)


@dataclass(frozen=True)
class HeuristicSpec:
    """One heuristic policy: its family, how shortfalls become requests, and its parameters.

    Saved as ``{"family": ..., "mode": ..., "params": {...}}`` (the ``baselines.json`` entries,
    and within datasets' behaviour policies and ``policy.json``).
    """

    family: Family
    """The heuristic family (a :class:`Family` or its value)."""
    mode: RequestMode
    """How shortfalls become requests (a :class:`RequestMode` or its value)."""
    params: Params
    """Its parameters as named per-stage lists (``{"z": [...]}``, ...)."""

    def __post_init__(self) -> None:
        for name, kind in (("family", Family), ("mode", RequestMode)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                allowed = [k.value for k in kind]
                raise ValueError(f"heuristic {name} must be one of {allowed}, "
                                 f"got {getattr(self, name)!r}") from None

    def vector(self) -> np.ndarray:
        """(P,) the parameter vector of the search.

        Raises:
            ValueError: If a key the family needs is missing.
        """
        return from_params(self.family, self.params)

    def policy(self, chain: ChainConfig) -> Policy:
        """The heuristic acting in ``chain``.

        Raises:
            ValueError: If the parameters do not fit the family or the chain.
        """
        return make_policy(chain, self.family, self.vector(), self.mode)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family.value, "mode": self.mode.value, "params": self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeuristicSpec:
        """Inverse of :meth:`to_dict`; other keys (e.g. a baseline's ``rank_mean``) are ignored.

        Raises:
            ValueError: If ``data`` is not a dict, lacks a key, or names an unknown family or mode.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a heuristic spec must be a JSON object, got {type(data).__name__}")
        needed = ("family", "mode", "params")
        missing = [key for key in needed if key not in data]
        if missing:
            raise ValueError(f"a heuristic spec needs {list(needed)}, missing {missing}")
        return cls(data["family"], data["mode"], data["params"])


__all__ = [
    "FAMILIES",
    "Family",
    "HeuristicFamily",
    "HeuristicSpec",
    "Params",
    "SearchStart",
    "from_params",
    "make_policy",
    "to_params",
    "wide_bounds",
]
