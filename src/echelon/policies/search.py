"""Parameter search for the heuristic families, on common random numbers.

Two searches:

* :func:`grid_search`, the paper's exhaustive grid: every configuration on the same demand
  paths, ranked by mean profit (z in {40, 60, ..., 300}^3 gives the 2,744 configurations).
* :func:`optimize`, which finds the best member of a family over wide bounds: a coarse grid,
  then a batched pattern search on the integer lattice (the whole 3^P neighbourhood of the
  incumbents, or the 2P compass moves when that is too large, with steps halved until they
  reach one unit), all on one fixed set of training paths; the best candidates are then ranked
  afresh on separate paths, so the reported means carry no selection bias.

Configurations and episodes are evaluated together as one batch (``rollout_blocks``).
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from echelon._limits import check_memory
from echelon._progress import progress as progress_bar
from echelon.policies.base_stock import RequestMode
from echelon.policies.families import (  # the family registry, re-exported here for callers
    FAMILIES,
    Family,
    SearchStart,
    from_params,
    make_policy,
    to_params,
    wide_bounds,
)
from echelon.policies.pattern import coarse_grid, pattern_search
from echelon.sim.config import ChainConfig
from echelon.sim.demand import check_paths, child_seeds, demand_bytes
from echelon.sim.rollout import DEFAULT_BLOCK_SIZE, rollout_blocks, rollout_bytes

# Most demand values (episodes x periods) tiled for one call of rollout_blocks: 262,144 episodes
# of 30 periods (60 MiB); longer horizons get fewer episodes per call.
_VALUES_PER_CALL = 262_144 * 30
# Bytes per scored vector beyond its profits: the tuple keys and means of _Scores (measured 620
# at the peak of a call for P = 6).
_BYTES_PER_CANDIDATE = 640
# The paper's base-stock levels per stage: 40, 60, ..., 300 (14 values, 14^3 = 2,744 settings).
PAPER_LEVELS = range(40, 301, 20)


def search_bytes(config: ChainConfig, candidates: int, episodes: int, *, workers: int = 2) -> int:
    """Peak memory of scoring ``candidates`` parameter vectors on ``episodes`` paths, in bytes.

    The profits (K, E) and the bookkeeping of each vector, one call's tiled demand and
    per-episode vectors (at most 7.9 million demand values), and the rollout blocks in flight
    (one per worker); the demand paths themselves are excluded.
    """
    periods = config.periods
    width = max(entry.blocks for entry in FAMILIES.values()) * config.stages  # the widest family
    per_call = max(1, _VALUES_PER_CALL // (episodes * periods)) * episodes if episodes else 0
    tiled = min(candidates * episodes, per_call)
    block = min(DEFAULT_BLOCK_SIZE, max(tiled, 1))
    return (8 * candidates * episodes + _BYTES_PER_CANDIDATE * candidates
            + 8 * tiled * (periods + width + 2) + workers * rollout_bytes(config, block))


def _check_scoring(config: ChainConfig, candidates: int, episodes: int, workers: int) -> None:
    check_memory(f"scoring {candidates:,} parameter settings on {episodes:,} demand paths of "
                 f"{config.periods:,} periods",
                 search_bytes(config, candidates, episodes, workers=workers),
                 reduce="search.episodes, the number of settings or periods")


def evaluate(
    config: ChainConfig,
    family: Family,
    vectors: np.ndarray,
    paths: np.ndarray,
    mode: RequestMode = RequestMode.CLIP,
    *,
    workers: int = 2,
    on_chunk: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Profit of every parameter vector on every path (common random numbers).

    Args:
        config: The chain.
        family: The policy family.
        vectors: (K, P) parameter vectors.
        paths: (E, T) demand paths, the same for every vector.
        mode: How shortfalls become requests.
        workers: Threads.
        on_chunk: Called with the number of vectors done after each chunk (progress).

    Returns:
        (K, E) discounted episode profits.

    Raises:
        SizeLimitError: If scoring would exceed the memory limit (``echelon._limits``).
    """
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    paths = check_paths(paths, config.periods)
    _check_scoring(config, len(vectors), len(paths), workers)
    per_call = max(1, _VALUES_PER_CALL // (len(paths) * config.periods))
    out = np.empty((len(vectors), len(paths)))
    for start in range(0, len(vectors), per_call):
        chunk = vectors[start : start + per_call]
        per_episode = np.repeat(chunk, len(paths), axis=0)
        profit = rollout_blocks(
            config,
            lambda block: make_policy(config, family, per_episode[block], mode),
            np.tile(paths, (len(chunk), 1)),
            workers=workers,
        )
        out[start : start + len(chunk)] = profit.reshape(len(chunk), len(paths))
        if on_chunk is not None:
            on_chunk(len(chunk))
    return out


class Space(enum.Enum):
    """Where a search looks."""

    PAPER = "paper"
    """The paper's exhaustive base-stock grid, ranked on the search paths themselves."""
    WIDE = "wide"
    """:func:`optimize` over :func:`wide_bounds`, ranked on separate paths."""


@dataclass(frozen=True)
class SearchConfig:
    """A heuristic parameter search, as a preset's ``[search]`` table states it."""

    space: Space = Space.PAPER
    """``paper`` (the 14^3 base-stock grid) or ``wide`` (coarse grid + pattern search)."""
    family: Family = Family.BASE_STOCK
    """The heuristic family searched."""
    mode: RequestMode = RequestMode.RAW
    """How shortfalls become requests (the paper's experts: ``raw``)."""
    episodes: int = 100
    """Demand paths each setting is scored on (and, for ``wide``, as many to rank on), >= 1."""
    top_k: int = 5
    """How many of the best settings are kept, >= 1."""

    def __post_init__(self) -> None:
        for name, kind in (("space", Space), ("family", Family), ("mode", RequestMode)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                allowed = [k.value for k in kind]
                raise ValueError(f"search.{name} must be one of {allowed}, got {getattr(self, name)!r}") from None
        for name in ("episodes", "top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"search.{name} must be an integer >= 1, got {value!r}")
        if self.space is Space.PAPER and self.family is not Family.BASE_STOCK:
            raise ValueError("search.space 'paper' is the paper's base-stock grid: family must be 'base-stock'")


def run_search(
    config: ChainConfig, settings: SearchConfig, seed: np.random.SeedSequence, *,
    progress: bool = False, workers: int = 2,
) -> SearchResult:
    """Runs a configured search on paths drawn from ``seed`` (the run's search stream).

    The search paths come from the stream's first child and the ranking paths of the ``wide``
    space from its second, so the two never overlap.
    """
    search_seed, rank_seed = child_seeds(seed, 2)
    episodes, periods = settings.episodes, config.periods
    # Checked before anything is drawn: the search and ranking paths, and the largest batch of
    # settings scored at once (the paper's grid; else the coarse grid of about 4,096 points, or
    # the time-aware sweep of every last ordering period from 3 starts).
    paths_bytes = demand_bytes(episodes, periods) * (1 if settings.space is Space.PAPER else 2)
    if settings.space is Space.PAPER:
        batch = len(PAPER_LEVELS) ** config.stages
    else:
        batch = max(4096, FAMILIES[settings.family].start_batch(config))
    check_memory(f"a {settings.space.value} search on {episodes:,} demand paths of {periods:,} "
                 f"periods", paths_bytes + search_bytes(config, batch, episodes, workers=workers),
                 reduce="search.episodes or periods")
    draw = config.demand.sample
    paths = draw(np.random.default_rng(search_seed), settings.episodes, config.periods)
    if settings.space is Space.PAPER:
        return grid_search(config, paths, grid=paper_grid(config.stages), mode=settings.mode,
                           top_k=settings.top_k, progress=progress, workers=workers)
    rank = draw(np.random.default_rng(rank_seed), settings.episodes, config.periods)
    return optimize(config, settings.family, paths, rank, mode=settings.mode,
                    top_k=settings.top_k, progress=progress, workers=workers)


@dataclass(frozen=True)
class Candidate:
    """One parameter setting with its profit statistics on the ranking paths."""

    params: dict[str, list[float]]
    mean: float
    std: float
    se: float
    search_mean: float | None = None
    """Mean on the search (training) paths, when ranked on separate paths."""

    def to_dict(self) -> dict:
        out = {"params": self.params, "mean": self.mean, "std": self.std, "se": self.se}
        if self.search_mean is not None:
            out["search_mean"] = self.search_mean
        return out


@dataclass(frozen=True)
class SearchResult:
    """The ranked candidates of a search, best first, and how they were found."""

    family: Family
    mode: RequestMode
    ranked: list[Candidate]
    evaluated: int
    """Number of distinct parameter vectors evaluated on the search paths."""
    search_episodes: int
    rank_episodes: int
    info: dict = field(default_factory=dict)

    @property
    def best(self) -> Candidate:
        return self.ranked[0]

    @classmethod
    def from_dict(cls, data: dict) -> SearchResult:
        """Inverse of :meth:`to_dict`."""
        ranked = [Candidate(params=c["params"], mean=c["mean"], std=c["std"], se=c["se"],
                            search_mean=c.get("search_mean")) for c in data["ranked"]]
        info = {k: v for k, v in data.items() if k not in
                ("family", "mode", "evaluated", "search_episodes", "rank_episodes", "ranked")}
        return cls(family=Family(data["family"]), mode=RequestMode(data["mode"]), ranked=ranked,
                   evaluated=data["evaluated"], search_episodes=data["search_episodes"],
                   rank_episodes=data["rank_episodes"], info=info)

    def to_dict(self) -> dict:
        return {
            "family": self.family.value,
            "mode": self.mode.value,
            "evaluated": self.evaluated,
            "search_episodes": self.search_episodes,
            "rank_episodes": self.rank_episodes,
            **self.info,
            "ranked": [c.to_dict() for c in self.ranked],
        }


def _candidates(
    family: Family, vectors: np.ndarray, profits: np.ndarray, search_means: np.ndarray | None
) -> list[Candidate]:
    means = profits.mean(axis=1)
    stds = profits.std(axis=1, ddof=1) if profits.shape[1] > 1 else np.full(len(means), math.nan)
    ses = stds / math.sqrt(profits.shape[1])
    order = np.argsort(-means, kind="stable")
    return [
        Candidate(
            params=to_params(family, vectors[i]),
            mean=float(means[i]),
            std=float(stds[i]),
            se=float(ses[i]),
            search_mean=None if search_means is None else float(search_means[i]),
        )
        for i in order
    ]


def paper_grid(stages: int = 3, levels: range = PAPER_LEVELS) -> np.ndarray:
    """The paper's grid: every combination of base-stock levels, shaped (len(levels)^S, S).

    Raises:
        SizeLimitError: If the grid would exceed the memory limit (14^S points grow fast).
    """
    size = len(levels) ** stages
    # Each point is a Python tuple (40 + 8S bytes) in a list (8) before its row of the array (8S).
    check_memory(f"the paper's grid of {size:,} settings for {stages} stages",
                 size * (48 + 16 * stages), reduce="the number of stages")
    return np.array(list(itertools.product(levels, repeat=stages)), dtype=np.float64)


def grid_search(
    config: ChainConfig,
    paths: np.ndarray,
    *,
    family: Family = Family.BASE_STOCK,
    grid: np.ndarray | None = None,
    mode: RequestMode = RequestMode.CLIP,
    top_k: int = 5,
    progress: bool = False,
    workers: int = 2,
) -> SearchResult:
    """Exhaustive search: every grid point on the same paths, ranked by mean profit.

    Args:
        config: The chain.
        paths: (E, T) demand paths every configuration faces.
        family: The policy family of the grid's vectors.
        grid: (K, P) parameter vectors; the paper's base-stock grid by default.
        mode: How shortfalls become requests (the paper's experts used ``RAW``).
        top_k: How many of the best configurations to return, >= 1.
        progress: Show a progress bar on stderr.
        workers: Threads.

    Returns:
        The top ``top_k`` configurations with mean, std and standard error on ``paths``.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    grid = paper_grid(config.stages) if grid is None else np.atleast_2d(grid)
    with progress_bar(total=len(grid), desc=f"grid {family.value}", unit="cfg", enabled=progress) as bar:
        profits = evaluate(config, family, grid, paths, mode, workers=workers, on_chunk=bar.update)
    best = np.argsort(-profits.mean(axis=1), kind="stable")[:top_k]
    return SearchResult(
        family=family,
        mode=mode,
        ranked=_candidates(family, grid[best], profits[best], None),
        evaluated=len(grid),
        search_episodes=len(paths),
        rank_episodes=len(paths),
        info={"space": "grid"},
    )


class _Scores:
    """Mean profit of parameter vectors on the fixed search paths, each evaluated once."""

    def __init__(self, config, family, paths, mode, workers, bar) -> None:
        self.args = (config, family)
        self.paths, self.mode, self.workers, self.bar = paths, mode, workers, bar
        self.means: dict[tuple[float, ...], float] = {}

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        keys = [tuple(v) for v in vectors]
        new = np.array(sorted({k for k in keys if k not in self.means}))
        if len(new):
            profits = evaluate(*self.args, new, self.paths, self.mode, workers=self.workers,
                               on_chunk=self.bar.update)
            self.means.update(zip(map(tuple, new), profits.mean(axis=1)))
            best = max(self.means.values())
            self.bar.set_postfix(best=f"{best:.2f}")
        return np.array([self.means[k] for k in keys])

    def top(self, k: int, *, distinct: bool = False) -> np.ndarray:
        """The k best vectors; with ``distinct``, one per exact mean (settings with the same
        mean on every common path behave alike there, e.g. a cut-off after a stage's last
        order anyway)."""
        ranked = sorted(self.means, key=self.means.get, reverse=True)
        if distinct:
            seen: set[float] = set()
            ranked = [v for v in ranked if not (self.means[v] in seen or seen.add(self.means[v]))]
        return np.array(ranked[:k])


def optimize(
    config: ChainConfig,
    family: Family,
    search_paths: np.ndarray,
    rank_paths: np.ndarray,
    *,
    mode: RequestMode = RequestMode.CLIP,
    top_k: int = 5,
    starts: int = 3,
    coarse_budget: int = 4096,
    progress: bool = False,
    workers: int = 2,
) -> SearchResult:
    """Finds the best policies of a family over wide bounds.

    Every search first optimises base-stock levels: a coarse grid over :func:`wide_bounds`,
    then a pattern search from its best ``starts`` points. Another family then starts from
    there, as its registry entry says (``HeuristicFamily.start``; e.g. time-aware: the best
    levels with no ordering cut-off and the coarse grid with lead-time cut-offs, then a sweep of
    each stage's last ordering period; (s, S): the best levels as s = S), and a joint pattern
    search over its own parameters follows. The best ``top_k`` distinct vectors found on
    ``search_paths`` are ranked on ``rank_paths``.

    Args:
        config: The chain.
        family: The policy family.
        search_paths: (E, T) demand paths the search optimises on (common random numbers).
        rank_paths: (E', T) separate paths for the final ranking.
        mode: How shortfalls become requests.
        top_k: How many ranked candidates to return, >= 1.
        starts: How many coarse-grid points start a pattern search, >= 1.
        coarse_budget: About how many points the coarse grid has.
        progress: Show a progress bar on stderr.
        workers: Threads.

    Returns:
        The ranked candidates, with their means on the ranking paths and on the search paths.
    """
    if top_k < 1 or starts < 1:
        raise ValueError(f"top_k and starts must be >= 1, got {top_k}, {starts}")
    search_paths = check_paths(search_paths, config.periods)
    rank_paths = check_paths(rank_paths, config.periods)
    stages = config.stages
    with progress_bar(desc=f"search {family.value}", unit="cfg", enabled=progress) as bar:
        base = _Scores(config, Family.BASE_STOCK, search_paths, mode, workers, bar)
        lower, upper = wide_bounds(config, Family.BASE_STOCK)
        coarse = coarse_grid(lower, upper, coarse_budget)
        base(coarse)
        spacing = (upper - lower) / max(2, round(coarse_budget ** (1.0 / stages)) - 1)
        pattern_search(base, base.top(starts), spacing / 2.0, lower, upper)
        scores = base
        start = FAMILIES[family].start
        if start is not None:
            scores = _Scores(config, family, search_paths, mode, workers, bar)
            lower, upper = wide_bounds(config, family)
            step = start(SearchStart(config, scores, base.top(starts), coarse, spacing, starts))
            pattern_search(scores, scores.top(starts), step, lower, upper)
        finalists = scores.top(top_k, distinct=True)
        search_means = scores(finalists)
    ranked_profits = evaluate(config, family, finalists, rank_paths, mode, workers=workers)
    return SearchResult(
        family=family,
        mode=mode,
        ranked=_candidates(family, finalists, ranked_profits, search_means),
        evaluated=len(scores.means) + (len(base.means) if scores is not base else 0),
        search_episodes=len(search_paths),
        rank_episodes=len(rank_paths),
        info={"space": "wide"},
    )


__all__ = [
    "PAPER_LEVELS",
    "Candidate",
    "Family",
    "SearchConfig",
    "SearchResult",
    "Space",
    "evaluate",
    "from_params",
    "grid_search",
    "make_policy",
    "optimize",
    "paper_grid",
    "pattern_search",
    "run_search",
    "search_bytes",
    "to_params",
    "wide_bounds",
]
