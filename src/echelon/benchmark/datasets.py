"""The benchmark's datasets: for each scenario, logs of graded behaviour quality, built
deterministically, and the constants that normalise a policy's score on that scenario.

Scenarios (:data:`SCENARIOS`) are run presets: ``v1`` (OR-Gym's ``InvManagement-v1`` defaults,
the ``quick`` preset's chain and seed), ``seasonal`` and ``regime``. Qualities
(:data:`QUALITIES`):

* ``random``: every stage orders a whole number of units uniformly in 0 .. its capacity;
* ``paper``: the paper's experts, the top 5 of its base-stock grid searched on raw requests
  (on ``v1`` with the preset's 2,000 episodes this is the ``quick`` run's own dataset);
* ``expert``: the top 5 time-aware base-stock policies of a wide search (clipped requests, 200
  search paths);
* ``noisy-expert``: the same with N(0, 10^2) noise on every order (half the mean demand);
* ``mixed``: an even mix of ``random``, ``paper`` and ``expert`` episodes.

Each dataset is an echelon dataset file whose ``source`` names its id
``echelon/<scenario>-<quality>-v0`` (:func:`dataset_id`, also its default Minari id), and whose
``behaviour_policies`` and ``seeds`` say how it was made. Every draw comes from the scenario
preset's run seed: the searches from its search stream, the logs from children of its
collection stream (``paper`` from the stream itself), the test paths and the random policy's
score from its test stream.

Normalised score (:func:`normalised_score`): ``100 (J - J_random) / (J_bound - J_random)`` with
``J_random`` the random behaviour's mean profit and ``J_bound`` the perfect-information bound's,
both on the scenario's held-out test paths (:func:`scenario_constants`), so 0 is random ordering
and 100 the bound; the same against ``J_heuristic``, the best expert's mean on those paths, says
how far a policy is from the best tuned heuristic.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from echelon._io import atomic_write_json
from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import OfflineDataset, concatenate, from_trajectory
from echelon.data.dataset_file import save
from echelon.policies.families import Family
from echelon.policies.lp import perfect_information_plan
from echelon.policies.random_orders import UniformOrders
from echelon.policies.search import RequestMode, SearchConfig, Space, run_search
from echelon.sim.demand import child_seeds, run_streams
from echelon.sim.rollout import rollout

if TYPE_CHECKING:  # the run's configuration imports the agents (torch): only when a suite is built
    from echelon.run.config import RunConfig

VERSION = 0
"""The suite's version: the ``-v0`` of every dataset id."""
NOISY_EXPERT_STD = 10.0
"""Standard deviation of the noise on the noisy experts' orders, in units (half the mean demand
of every scenario)."""
EXPERT_SEARCH = SearchConfig(space=Space.WIDE, family=Family.TIME_AWARE, mode=RequestMode.CLIP,
                             episodes=200, top_k=5)
"""How the ``expert`` behaviours are found (the best tuned heuristic's family)."""
MANIFEST = "benchmark.json"
_RANDOM_SPEC = {"name": "random", "family": "random", "params": {"low": 0, "high": "capacity"},
                "mode": "raw", "weight": 1.0, "noise_std": 0.0}
_BRANCH = 0xBE  # the spawn-key branch of the benchmark's streams under a run's streams


@dataclass(frozen=True)
class Scenario:
    """A benchmark scenario: a chain and its demand, from a run preset."""

    name: str
    preset: str
    description: str

    def run(self, overrides: Sequence[str] = ()) -> RunConfig:
        """The preset's run configuration (its chain, seed and search)."""
        from echelon.run.config import resolve

        return resolve(self.preset, list(overrides))


SCENARIOS: dict[str, Scenario] = {
    "v1": Scenario("v1", "quick", "OR-Gym's InvManagement-v1: Poisson(20) demand, lost sales"),
    "seasonal": Scenario("seasonal", "seasonal", "a 10-period season, +-50% around 20, with "
                         "negative binomial counts"),
    "regime": Scenario("regime", "regime", "Poisson demand of rate 10 or 30, switching with "
                       "probability 0.1 a period"),
}


class _Behaviours:
    """A scenario's searched behaviours, found once and shared by its qualities."""

    def __init__(self, run: RunConfig, expert_search: SearchConfig | None = None) -> None:
        self.run, self.expert_search = run, expert_search or EXPERT_SEARCH
        self._paper: list[Behaviour] | None = None
        self._expert: list[Behaviour] | None = None

    @property
    def paper(self) -> list[Behaviour]:
        if self._paper is None:
            from echelon.run.stages import behaviours_from_search, search_stage

            self._paper = behaviours_from_search(self.run, search_stage(self.run))
        return self._paper

    @property
    def expert(self) -> list[Behaviour]:
        if self._expert is None:
            search = self.expert_search
            result = run_search(self.run.chain, search, run_streams(self.run.seed).search)
            self._expert = [Behaviour(f"expert-time-aware-{rank}", result.family,
                                      candidate.params, result.mode)
                            for rank, candidate in enumerate(result.ranked, 1)]
        return self._expert


def _random(run: RunConfig, behaviours: _Behaviours, episodes: int,
            stream: np.random.SeedSequence) -> OfflineDataset:
    demand_seed, order_seed = child_seeds(stream, 2)
    paths = run.chain.demand.sample(np.random.default_rng(demand_seed), episodes, run.chain.periods)
    policy = UniformOrders(run.chain, np.random.default_rng(order_seed))
    trajectory = rollout(run.chain, policy, paths, record=True).trajectory
    return from_trajectory(
        run.chain, trajectory, np.zeros(episodes, dtype=np.int64),
        behaviour_policies=[dict(_RANDOM_SPEC)],
        seeds={"collect_entropy": str(stream.entropy), "collect_spawn_key": list(stream.spawn_key),
               "run_seed": run.seed},
        source={"kind": "simulated", "episodes": episodes, "noise_std": 0.0})


def _experts(which: str, noise: float) -> Callable[..., OfflineDataset]:
    def build(run: RunConfig, behaviours: _Behaviours, episodes: int,
              stream: np.random.SeedSequence) -> OfflineDataset:
        return collect(run.chain, getattr(behaviours, which),
                       CollectConfig(episodes=episodes, noise_std=noise), stream,
                       seeds_info={"run_seed": run.seed})
    return build


def _mixed(run: RunConfig, behaviours: _Behaviours, episodes: int,
           stream: np.random.SeedSequence) -> OfflineDataset:
    if episodes < 3:
        raise ValueError(f"a mixed dataset needs at least 3 episodes (one of each kind), got "
                         f"{episodes}")
    counts = [episodes // 3 + (k < episodes % 3) for k in range(3)]
    builds = (_random, _experts("paper", 0.0), _experts("expert", 0.0))
    parts = [build(run, behaviours, count, part)
             for build, count, part in zip(builds, counts, child_seeds(stream, 3), strict=True)]
    return concatenate(parts, source={"kind": "simulated", "episodes": episodes,
                                      "noise_std": 0.0, "parts": ["random", "paper", "expert"]})


@dataclass(frozen=True)
class Quality:
    """A grade of behaviour: how its logs are made."""

    name: str
    description: str
    build: Callable[[RunConfig, _Behaviours, int, np.random.SeedSequence], OfflineDataset]


QUALITIES: dict[str, Quality] = {
    "random": Quality("random", "uniform random orders within capacity", _random),
    "paper": Quality("paper", "the paper's experts: the top 5 of its base-stock grid (raw "
                     "requests)", _experts("paper", 0.0)),
    "expert": Quality("expert", "the top 5 tuned time-aware base-stock policies",
                      _experts("expert", 0.0)),
    "noisy-expert": Quality("noisy-expert", f"the same with N(0, {NOISY_EXPERT_STD:g}^2) noise "
                            "on every order", _experts("expert", NOISY_EXPERT_STD)),
    "mixed": Quality("mixed", "an even mix of random, paper and expert episodes", _mixed),
}


def dataset_id(scenario: str, quality: str) -> str:
    """The dataset's id, ``echelon/<scenario>-<quality>-v0`` (its Minari id too)."""
    return f"echelon/{scenario}-{quality}-v{VERSION}"


def _stream(run: RunConfig, quality: str) -> np.random.SeedSequence:
    """The collection stream of a quality: the run's own for ``paper`` (its dataset is the
    preset's), a child of it on the benchmark's branch for the others."""
    stream = run_streams(run.seed).collect
    if quality == "paper":
        return stream
    index = list(QUALITIES).index(quality)
    return np.random.SeedSequence(stream.entropy, spawn_key=(*stream.spawn_key, _BRANCH, index))


@dataclass(frozen=True)
class BenchmarkDataset:
    """One built dataset and what the suite's table says of it."""

    id: str
    scenario: str
    quality: str
    data: OfflineDataset

    def summary(self) -> dict[str, Any]:
        returns, behaviour = self.data.episode_returns(), self.data.episode_behaviour()
        names = [spec["name"] for spec in self.data.behaviour_policies]
        return {"id": self.id, "scenario": self.scenario, "quality": self.quality,
                "file": f"{self.scenario}-{self.quality}.h5", "episodes": self.data.episodes,
                "transitions": len(self.data), "mean_return": float(returns.mean()),
                "behaviours": {name: float(returns[behaviour == k].mean())
                               for k, name in enumerate(names) if np.any(behaviour == k)}}


def build_dataset(scenario: str, quality: str, episodes: int, *,
                  overrides: Sequence[str] = (), behaviours: _Behaviours | None = None,
                  expert_search: SearchConfig | None = None) -> BenchmarkDataset:
    """Builds one dataset of the suite.

    Args:
        scenario: A key of :data:`SCENARIOS`.
        quality: A key of :data:`QUALITIES`.
        episodes: Episodes to log, >= 1 (>= 3 for ``mixed``).
        overrides: ``key=value`` overrides of the scenario's preset (smaller searches in tests).
        behaviours: The scenario's searched behaviours, shared between its datasets.
        expert_search: How the ``expert`` behaviours are searched (:data:`EXPERT_SEARCH`).

    Raises:
        ValueError: If the scenario, quality or episode count is not allowed.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {list(SCENARIOS)}, got {scenario!r}")
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {list(QUALITIES)}, got {quality!r}")
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    run = SCENARIOS[scenario].run(overrides)
    behaviours = behaviours or _Behaviours(run, expert_search)
    data = QUALITIES[quality].build(run, behaviours, episodes, _stream(run, quality))
    name = dataset_id(scenario, quality)
    data = dataclasses.replace(data, source={
        **data.source, "benchmark": {"id": name, "scenario": scenario, "quality": quality,
                                     "preset": SCENARIOS[scenario].preset,
                                     "description": QUALITIES[quality].description}})
    return BenchmarkDataset(name, scenario, quality, data)


def scenario_constants(scenario: str, behaviours: _Behaviours, *,
                       test_episodes: int | None = None) -> dict[str, Any]:
    """The constants a score on a scenario is normalised by, on its held-out test paths.

    Returns:
        ``J_random`` (the random behaviour's mean profit), ``J_bound`` (the perfect-information
        bound's), ``J_heuristic`` (the best expert's) and ``heuristic`` (its parameters), with
        the number of test paths.
    """
    run = behaviours.run
    test = run_streams(run.seed).test
    # The run's held-out paths (``held_out_paths``): its test stream, evaluate.episodes of them.
    paths = run.chain.demand.sample(np.random.default_rng(test), test_episodes or
                                    run.evaluate.episodes, run.chain.periods)
    order_rng = np.random.default_rng(np.random.SeedSequence(
        test.entropy, spawn_key=(*test.spawn_key, _BRANCH)))
    random = rollout(run.chain, UniformOrders(run.chain, order_rng), paths).profit.mean()
    best = behaviours.expert[0]
    heuristic = rollout(run.chain, best.policy(run.chain), paths).profit.mean()
    bound = perfect_information_plan(run.chain, paths).profit.mean()
    return {"test_episodes": len(paths), "J_random": float(random), "J_bound": float(bound),
            "J_heuristic": float(heuristic),
            "heuristic": {"name": best.name, **best.spec.to_dict()}}


def normalised_score(profit: float, constants: dict[str, Any], *,
                     against: str = "J_bound") -> float:
    """``100 (J - J_random) / (J_against - J_random)``: 0 for random orders, 100 for the bound
    (``against="J_bound"``) or for the best expert (``against="J_heuristic"``)."""
    low, high = constants["J_random"], constants[against]
    return 100.0 * (profit - low) / (high - low)


def build_suite(out: str | Path, *, scenarios: Sequence[str] = tuple(SCENARIOS),
                qualities: Sequence[str] = tuple(QUALITIES), episodes: int = 2000,
                test_episodes: int | None = None, overrides: Sequence[str] = (),
                expert_search: SearchConfig | None = None,
                log: Callable[[str], Any] = lambda line: None) -> dict[str, Any]:
    """Builds the suite's datasets into ``out`` and writes its manifest ``benchmark.json``.

    Each dataset is ``<scenario>-<quality>.h5``; the manifest lists them (id, file, sizes, mean
    return per behaviour) and each scenario's constants (:func:`scenario_constants`). Files are
    written atomically; the caller checks that ``out`` may be written (``check_output``).

    Returns:
        The manifest.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"version": VERSION, "episodes": episodes, "scenarios": {},
                                "datasets": []}
    for scenario in scenarios:
        start = time.perf_counter()
        run = SCENARIOS[scenario].run(overrides)
        behaviours = _Behaviours(run, expert_search)
        for quality in qualities:
            built = build_dataset(scenario, quality, episodes, overrides=overrides,
                                  behaviours=behaviours, expert_search=expert_search)
            save(built.data, folder / f"{scenario}-{quality}.h5")
            manifest["datasets"].append(built.summary())
            log(f"  {built.id}: {built.data.episodes:,} episodes, mean return "
                f"{manifest['datasets'][-1]['mean_return']:.2f}")
        constants = scenario_constants(scenario, behaviours, test_episodes=test_episodes)
        manifest["scenarios"][scenario] = {"preset": SCENARIOS[scenario].preset,
                                           "description": SCENARIOS[scenario].description,
                                           "run_seed": run.seed, **constants}
        log(f"  {scenario}: J_random {constants['J_random']:.2f}, J_heuristic "
            f"{constants['J_heuristic']:.2f}, J_bound {constants['J_bound']:.2f} on "
            f"{constants['test_episodes']} test paths ({time.perf_counter() - start:.0f} s)")
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest


__all__ = [
    "EXPERT_SEARCH",
    "MANIFEST",
    "NOISY_EXPERT_STD",
    "QUALITIES",
    "SCENARIOS",
    "BenchmarkDataset",
    "Quality",
    "Scenario",
    "build_dataset",
    "build_suite",
    "dataset_id",
    "normalised_score",
    "scenario_constants",
]
