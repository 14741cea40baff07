"""Offline-RL algorithms on a built suite: every algorithm and seed trained on every dataset,
scored on the scenario's held-out test paths, and aggregated across datasets as rliable does.

``run_benchmark(suite, out, settings)`` does, in order:

1. **train**: every algorithm of ``settings`` at seeds ``0 .. seeds-1`` on every dataset of the
   suite's manifest, into ``<out>/agents/<dataset file stem>/<algo>-s<seed>/``, by the run's
   training stage (:func:`echelon.run.stages.train_sources`: its ensembles, executors and
   cache). An agent whose folder records the same inputs (the dataset's transitions and chain,
   the algorithm and both configs) and whose checkpoint holds every epoch is reused; a
   half-trained one resumes; one of other inputs is refused, or with ``overwrite`` moved to
   ``<out>/replaced/<n>/``.
2. **plan** (with ``settings.planners``): each model-based planner of
   :mod:`echelon.benchmark.planners` fits the scenario's demand law to each dataset's logs and
   plans in the fitted model, into ``<out>/plans/<dataset file stem>/<planner>.json`` (reused
   when its inputs are the same).
3. **score**: each agent's and each plan's mean discounted profit on its scenario's held-out
   test paths (drawn as :func:`echelon.benchmark.datasets.scenario_constants` drew them: the
   test stream of the scenario's run seed, the manifest's ``test_episodes`` of them),
   normalised with the
   manifest's constants (:func:`echelon.benchmark.datasets.normalised_score`) against the
   perfect-information bound and against the best tuned heuristic. Beside them, each dataset's
   best behaviour policy on the same paths (the random one scores ``J_random``).
4. **aggregate**: per method (algorithm or planner), the (seeds, datasets) array of
   normalised scores summarised by the IQM, mean, median and optimality gap (to 100), each
   with a stratified-bootstrap 95% interval (datasets are the strata), the probability of
   improvement of every method over every other, and the score distribution
   (:data:`PROFILE_THRESHOLDS`).
5. **write** ``<out>/results.json`` (every score with its dataset, method and seed; the
   aggregates; the reference rows given, e.g. online RL trained with the simulator,
   :func:`read_reference`), ``<out>/report.md`` and the performance profiles
   ``<out>/score_profile.png``, atomically.

The results record a digest of their inputs (the manifest, every agent's inputs, the settings):
a rerun with the same inputs rewrites the same results; results of other inputs are refused,
or with ``overwrite`` moved aside first. Nothing finished is deleted.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from echelon._io import atomic_write_text, check_output
from echelon.benchmark.datasets import MANIFEST, normalised_score
from echelon.evaluation.stats import (
    aggregate_mean,
    aggregate_median,
    interquartile_mean,
    optimality_gap,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap_ci,
)

if TYPE_CHECKING:  # the training machinery imports torch: only when a benchmark runs
    from echelon.run.stages import AgentVariant, TrainSource

RESULTS = "results.json"
REPORT = "report.md"
AGAINST: dict[str, str] = {"bound": "J_bound", "heuristic": "J_heuristic"}
"""The normalisations, by name: 100 is the perfect-information bound, or the best tuned
heuristic (the manifest's constant of that name); 0 is random ordering for both."""
TARGET = 100.0
"""The normalised score of the bound (or heuristic): the optimality gap is measured to it."""
AGGREGATES: dict[str, tuple[str, Callable[[np.ndarray], float]]] = {
    "iqm": ("IQM", interquartile_mean),
    "mean": ("mean", aggregate_mean),
    "median": ("median", aggregate_median),
    "optimality_gap": ("optimality gap", functools.partial(optimality_gap, gamma=TARGET)),
}
"""The aggregates of a (seeds, datasets) array, by key: (table heading, function)."""
PROFILE_THRESHOLDS = np.linspace(0.0, TARGET, 21)
"""Where the score distribution is read: every 5 points from random ordering to the target."""
_BOOTSTRAP_SEED = 0xBE5  # each interval's stream is this and a hash of its labels (see _rng)
SUITES: dict[str, dict[str, Any]] = {
    "quick": {"algorithms": ("iql", "bc"), "seeds": 5, "preset": "quick", "epochs": 5,
              "planners": ("time-aware",)},
    "full": {"algorithms": ("iql", "bc", "td3bc", "cql"), "seeds": 5, "preset": "default",
             "planners": ("time-aware",)},
}
"""The named runs of a suite (:class:`BenchmarkSettings` fields): ``quick``, five seeds of IQL
and BC for 5 epochs of the ``quick`` preset (the whole suite's 150 agents took 9.7 minutes on
two cores, README); ``full``, five seeds of IQL, BC, TD3+BC and CQL with each algorithm's
published settings (the ``default`` preset: 100 epochs), 300 agents of 100 epochs (estimated at
about 12 hours on two cores; not run). Both plan the fitted-model time-aware base-stock on each
dataset (15 plans took 3.8 minutes)."""


@dataclass(frozen=True)
class BenchmarkSettings:
    """What a benchmark run trains, and how its scores are summarised."""

    algorithms: tuple[str, ...] = ("iql", "bc")
    """Keys of ``echelon.agents.ALGORITHMS``, each trained on every dataset."""
    seeds: int = 3
    """Training seeds per algorithm and dataset: ``0 .. seeds-1``, >= 1."""
    preset: str = "default"
    """The agents' training preset (a key of ``echelon.agents.presets.AGENT_PRESETS``)."""
    epochs: int | None = None
    """Overrides the preset's epochs (None: the preset's)."""
    n_bootstrap: int = 2000
    """Replicates of each stratified-bootstrap interval, >= 1."""
    planners: tuple[str, ...] = ()
    """Keys of :data:`echelon.benchmark.planners.PLANNERS`: model-based planners fitted to each
    dataset's logs, scored beside the agents (one plan per dataset)."""
    plan_episodes: int | None = None
    """Overrides the scenario presets' ``model.plan_episodes`` (None: the presets')."""
    plan_steps: int | None = None
    """Overrides the scenario presets' ``model.neural_steps`` (None: the presets')."""

    def __post_init__(self) -> None:
        from echelon.agents.presets import AGENT_PRESETS
        from echelon.agents.registry import ALGORITHMS
        from echelon.benchmark.planners import PLANNERS

        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        object.__setattr__(self, "planners", tuple(self.planners))
        names = self.algorithms
        if (not names or len(set(names)) != len(names)
                or any(name not in ALGORITHMS for name in names)):
            raise ValueError(f"algorithms must list distinct names of {list(ALGORITHMS)}, got "
                             f"{','.join(map(str, names)) or 'none'}")
        if (len(set(self.planners)) != len(self.planners)
                or any(name not in PLANNERS for name in self.planners)):
            raise ValueError(f"planners must list distinct names of {list(PLANNERS)}, got "
                             f"{','.join(map(str, self.planners))}")
        optional = [(key, getattr(self, key)) for key in ("epochs", "plan_episodes", "plan_steps")
                    if getattr(self, key) is not None]
        for name, value in (("seeds", self.seeds), ("n_bootstrap", self.n_bootstrap), *optional):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.preset not in AGENT_PRESETS:
            raise ValueError(f"preset must be one of {list(AGENT_PRESETS)}, got {self.preset!r}")

    @classmethod
    def of_suite(cls, name: str, **overrides: Any) -> BenchmarkSettings:
        """The settings of a named suite (:data:`SUITES`), with the given fields replaced (None
        keeps the suite's)."""
        if name not in SUITES:
            raise ValueError(f"suite must be one of {list(SUITES)}, got {name!r}")
        chosen = {**SUITES[name], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**chosen)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a dict (``planners``, ``plan_episodes`` and ``plan_steps`` only when
        set, so that runs made before them keep their digest)."""
        from echelon._fields import settings_dict

        return settings_dict(self, ("planners", "plan_episodes", "plan_steps"))

    def methods(self) -> list[str]:
        """What the results score, by name: the algorithms, then the planners' labels."""
        from echelon.benchmark.planners import PLANNERS

        return [*self.algorithms, *(PLANNERS[name].label for name in self.planners)]

    def variants(self) -> list[AgentVariant]:
        """One training variant per algorithm: the preset's configs, with ``epochs``."""
        from echelon.agents.presets import agent_preset
        from echelon.run.stages import AgentVariant

        extra = {"epochs": self.epochs} if self.epochs is not None else {}
        return [AgentVariant(name, name, *agent_preset(name, self.preset, **extra))
                for name in self.algorithms]


def read_suite(folder: str | os.PathLike) -> dict[str, Any]:
    """A built suite's manifest, checked: its datasets' files exist and each names a scenario
    with finite normalising constants.

    Raises:
        ValueError: Naming the folder, the file or the field that is missing or wrong.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"{path}: no such suite folder; build one with echelon benchmark build "
                         f"--out {path}")
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise ValueError(f"{path}: no {MANIFEST}, so not a benchmark suite; build one with "
                         "echelon benchmark build --out DIR")
    try:
        manifest = json.loads(manifest_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{manifest_file}: not a JSON file: {error}") from None
    datasets = manifest.get("datasets") if isinstance(manifest, dict) else None
    scenarios = manifest.get("scenarios") if isinstance(manifest, dict) else None
    if not isinstance(datasets, list) or not datasets or not isinstance(scenarios, dict):
        raise ValueError(f"{manifest_file}: needs a non-empty list 'datasets' and a table "
                         "'scenarios'; rebuild the suite")
    for name, scenario in scenarios.items():
        where = f"{manifest_file}: scenarios.{name}"
        if not isinstance(scenario, dict):
            raise ValueError(f"{where} must be a table")
        for key in ("J_random", "J_bound", "J_heuristic"):
            value = scenario.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"{where}.{key} must be a finite number, got {value!r}")
        for key, least in (("run_seed", 0), ("test_episodes", 1)):
            value = scenario.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{where}.{key} must be an integer >= {least}, got {value!r}")
        if not scenario["J_bound"] > scenario["J_random"] \
                or not scenario["J_heuristic"] > scenario["J_random"]:
            raise ValueError(f"{where}: J_bound and J_heuristic must exceed J_random for scores "
                             "to be normalised by them")
    files = set()
    for index, entry in enumerate(datasets):
        where = f"{manifest_file}: datasets[{index}]"
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str)
                                                  for k in ("id", "file", "scenario")):
            raise ValueError(f"{where} needs the strings id, file and scenario")
        if entry["scenario"] not in scenarios:
            raise ValueError(f"{where}.scenario {entry['scenario']!r} is not among its scenarios "
                             f"{list(scenarios)}")
        if Path(entry["file"]).name != entry["file"] or entry["file"] in files:
            raise ValueError(f"{where}.file must be a distinct file name in the suite's folder, "
                             f"got {entry['file']!r}")
        files.add(entry["file"])
        if not (path / entry["file"]).is_file():
            raise ValueError(f"{path / entry['file']}: no such file ({where}.file)")
    return manifest


REFERENCE_KIND = "echelon-benchmark-reference"
"""The ``kind`` of a reference file (:func:`read_reference`)."""


def read_reference(path: str | os.PathLike, manifest: dict[str, Any]) -> dict[str, Any]:
    """A reference row for a suite's report, checked against the suite: a policy made outside
    the logs (online RL trained with the simulator), scored on a scenario's held-out paths.

    The file is a JSON object: ``kind`` (:data:`REFERENCE_KIND`), ``name``, ``description``
    (its budget and settings), ``scenario`` (a scenario of the suite), ``run_seed`` and
    ``test_episodes`` (the scenario's, so that the paths are the suite's), and ``profits``: the
    mean discounted profit on those paths of each training seed.

    Raises:
        ValueError: Naming the file and the field that is missing or wrong.
    """
    file = Path(path)
    ref = _reference_fields(file)
    scenario = manifest["scenarios"].get(ref["scenario"])
    if scenario is None:
        raise ValueError(f"--reference {file}: scenario {ref['scenario']!r} is not among the "
                         f"suite's {list(manifest['scenarios'])}")
    for key in ("run_seed", "test_episodes"):
        if ref.get(key) != scenario[key]:
            raise ValueError(f"--reference {file}: {key} {ref.get(key)!r} is not the suite's "
                             f"{scenario[key]!r} for {ref['scenario']}: it was scored on other "
                             "paths")
    return ref


def read_run_reference(path: str | os.PathLike, run: Any) -> dict[str, Any]:
    """A reference row (as :func:`read_reference` reads) for the report of ``echelon
    reproduce``: its scenario's chain, and its run seed and test episodes, must be the run's, so
    that it was scored on the run's held-out paths.

    Raises:
        ValueError: Naming the file and the field that is missing or wrong.
    """
    from echelon.benchmark.datasets import SCENARIOS

    file = Path(path)
    ref = _reference_fields(file)
    scenario = SCENARIOS.get(ref["scenario"])
    if scenario is None:
        raise ValueError(f"--reference {file}: scenario {ref['scenario']!r} is not one of "
                         f"{list(SCENARIOS)}")
    if scenario.run().chain != run.chain:
        raise ValueError(f"--reference {file}: it was scored in the {ref['scenario']} scenario's "
                         "chain, which is not this run's")
    for key, value in (("run_seed", run.seed), ("test_episodes", run.evaluate.episodes)):
        if ref[key] != value:
            raise ValueError(f"--reference {file}: {key} {ref[key]!r} is not this run's "
                             f"{value!r}: it was scored on other paths")
    return ref


def _reference_fields(file: Path) -> dict[str, Any]:
    """The fields every reference has, each checked on its own."""
    try:
        ref = json.loads(file.read_text())
    except OSError as error:
        raise ValueError(f"--reference {file}: cannot be read: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--reference {file}: not a JSON file: {error}") from None
    if not isinstance(ref, dict) or ref.get("kind") != REFERENCE_KIND:
        raise ValueError(f"--reference {file}: not a benchmark reference (its kind must be "
                         f"{REFERENCE_KIND!r}; benchmarks/ppo_reference.py --suite writes one)")
    for key in ("name", "description", "scenario"):
        if not isinstance(ref.get(key), str) or not ref[key]:
            raise ValueError(f"--reference {file}: {key} must be a non-empty string")
    for key in ("run_seed", "test_episodes"):
        value = ref.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"--reference {file}: {key} must be an integer >= 0, got {value!r}")
    profits = ref.get("profits")
    if (not isinstance(profits, list) or not profits
            or not all(isinstance(p, (int, float)) and not isinstance(p, bool)
                       and math.isfinite(p) for p in profits)):
        raise ValueError(f"--reference {file}: profits must be a non-empty list of finite numbers "
                         "(one per training seed)")
    return {key: ref[key] for key in ("name", "description", "scenario", "run_seed",
                                      "test_episodes", "profits")}


def _scored_reference(ref: dict[str, Any], manifest: dict[str, Any],
                      scores: list[dict[str, Any]]) -> dict[str, Any]:
    """A reference with its normalised scores per seed, beside each method's mean score on the
    reference's scenario (over its datasets and seeds)."""
    constants = manifest["scenarios"][ref["scenario"]]
    ids = {d["id"] for d in manifest["datasets"] if d["scenario"] == ref["scenario"]}
    methods: dict[str, dict[str, list[float]]] = {}
    for s in scores:
        if s["dataset"] in ids:
            for against in AGAINST:
                methods.setdefault(s["algorithm"], {}).setdefault(against, []).append(
                    s["score"][against])
    return {**ref, "score": {against: [normalised_score(p, constants, against=key)
                                       for p in ref["profits"]]
                             for against, key in AGAINST.items()},
            "scenario_means": {name: {against: float(np.mean(values))
                                      for against, values in by.items()}
                               for name, by in methods.items()}}


PROFILE_FIGURE = "score_profile.png"


def _profile_figure(results: dict[str, Any], out: Path) -> str:
    """The performance profiles of every method, against the bound and the heuristic."""
    from echelon.evaluation.figures import save_figure, score_profiles

    profiles = results["performance_profile"]
    panels = {f"against {_AGAINST_TEXT[against]}": {name: profiles[against][name]
                                                     for name in results["methods"]}
              for against in AGAINST}
    fig, _ = score_profiles(panels, profiles["bound"]["thresholds"])
    save_figure(fig, out / PROFILE_FIGURE)
    return PROFILE_FIGURE


def held_out_paths(chain: Any, run_seed: int, episodes: int) -> np.ndarray:
    """A scenario's held-out test paths, drawn as its constants' were
    (:func:`echelon.benchmark.datasets.scenario_constants`): the first ``episodes`` of its run
    seed's test stream.

    Returns:
        (episodes, T) demand paths.
    """
    from echelon.sim.demand import run_streams

    rng = np.random.default_rng(run_streams(run_seed).test)
    return chain.demand.sample(rng, episodes, chain.periods)


def run_benchmark(suite: str | os.PathLike, out: str | os.PathLike,
                  settings: BenchmarkSettings | None = None, *, executor: str = "local",
                  address: str | None = None, resources: Any = None,
                  references: Sequence[str | os.PathLike] = (), overwrite: bool = False,
                  progress: bool = False, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Trains, scores and aggregates every algorithm of ``settings`` on a suite (see the module).

    Args:
        suite: The folder of a built suite (``benchmark.json`` and its datasets).
        out: The run's folder: ``agents/``, ``results.json`` and ``report.md``.
        settings: The algorithms, seeds and training budget (default: ``BenchmarkSettings()``).
        executor: Where the training runs (a key of ``echelon.run.executor.EXECUTORS``).
        address: For ``ray``: the cluster's address.
        resources: Each training task's ``echelon.run.executor.Resources``.
        references: Files of reference rows (:func:`read_reference`), e.g. online RL trained
            with the simulator (``benchmarks/ppo_reference.py --suite``).
        overwrite: Move agents, plans and results of other inputs to ``<out>/replaced/<n>/`` and
            redo them, instead of refusing.
        progress: Progress bars while training (in this process only).
        log: Where the progress lines go.

    Returns:
        What ``results.json`` holds.

    Raises:
        ValueError: If the suite is not readable (:func:`read_suite`), a reference is not
            (:func:`read_reference`), ``out`` may not be written, or holds agents, plans or
            results of other inputs (without ``overwrite``).
    """
    from echelon.data.dataset_file import load
    from echelon.run.executor import LazyExecutor, check_executor
    from echelon.run.folder import RunFolder, write_json
    from echelon.run.stages import minutes, train_sources

    settings = settings if settings is not None else BenchmarkSettings()
    check_executor(executor, address)
    started = time.perf_counter()
    suite = Path(suite)
    manifest = read_suite(suite)
    refs = [read_reference(path, manifest) for path in references]
    files = [suite / entry["file"] for entry in manifest["datasets"]]
    target = _check_out(out, files)
    variants = settings.variants()
    data = [load(file) for file in files]
    data_digests = [_data_digest(d) for d in data]
    sources = [_source(entry, file, d, digest, variants, settings.seeds, target)
               for entry, file, d, digest in zip(manifest["datasets"], files, data, data_digests,
                                                 strict=True)]
    inputs = _digest("benchmark", manifest, [job.digest for s in sources for job in s.jobs],
                     settings.to_dict(), *([refs] if refs else []))
    folder = RunFolder(target, force=overwrite)
    _check_earlier(folder, sources, inputs, overwrite)
    steps = 4 if settings.planners else 3
    log(f"[1/{steps}] train: {', '.join(settings.algorithms)} x seeds 0..{settings.seeds - 1} on "
        f"{len(files)} datasets of {suite} ({settings.preset} preset"
        f"{f', epochs {settings.epochs}' if settings.epochs else ''})")
    runner = LazyExecutor(executor, address=address,
                          run_folder=target.resolve() if executor != "local" else None)
    try:
        train_sources(sources, folder, executor=runner, resources=resources, progress=progress,
                      log=log)
    finally:
        runner.close()
    plans: list[dict[str, dict[str, Any]]] = [{} for _ in sources]
    if settings.planners:
        from echelon.benchmark.planners import plan_dataset

        log(f"[2/{steps}] plan: {', '.join(settings.planners)} in the demand model fitted to "
            f"each dataset's logs (run time so far {minutes(time.perf_counter() - started)})")
        scenarios = manifest["scenarios"]
        plans = [plan_dataset(entry, source.data, scenarios[entry["scenario"]]["preset"],
                              settings.planners, folder, digest,
                              plan_episodes=settings.plan_episodes, plan_steps=settings.plan_steps,
                              overwrite=overwrite, log=log)
                 for entry, source, digest in zip(manifest["datasets"], sources, data_digests,
                                                  strict=True)]
    log(f"[{steps - 1}/{steps}] score: every agent{', plan' if settings.planners else ''} and "
        f"each dataset's best behaviour on its scenario's held-out test paths (run time so far "
        f"{minutes(time.perf_counter() - started)})")
    datasets, scores = _score(manifest, sources, plans, target)
    log(f"[{steps}/{steps}] aggregate: {settings.n_bootstrap} stratified-bootstrap replicates "
        "per interval")
    results = {"suite": str(suite), "digest": inputs, "settings": asdict(settings),
               "methods": settings.methods(), "datasets": datasets, "scores": scores,
               **aggregate(scores, [d["id"] for d in datasets], settings),
               "references": [_scored_reference(ref, manifest, scores) for ref in refs]}
    write_json(target / RESULTS, results)
    figure = _profile_figure(results, target)
    atomic_write_text(target / REPORT, report_markdown(results, figure))
    log(f"done in {minutes(time.perf_counter() - started)}: {target / RESULTS}, {target / REPORT}")
    return results


def _digest(*parts: Any) -> str:
    from echelon.run.folder import digest

    return digest(*parts)


def _check_out(out: str | os.PathLike, inputs: Sequence[Path]) -> Path:
    """``out`` as a folder that may be written: new, empty, or a benchmark run's."""
    target = check_output(out, folder=True, inputs=tuple(inputs))
    if (target.is_dir() and any(target.iterdir()) and not (target / RESULTS).is_file()
            and not (target / "agents").is_dir()):
        raise ValueError(f"--out {target} holds files but no {RESULTS} or agents/: it is not a "
                         "benchmark run's folder, and nothing in it is touched; choose another "
                         "--out")
    return target


def _source(entry: dict[str, Any], file: Path, data: Any, data_digest: str,
            variants: list[AgentVariant], seeds: int, out: Path) -> TrainSource:
    """The agents to train on one dataset (``data_digest``: :func:`_data_digest` of it), each
    with the digest of its inputs."""
    from echelon.run.stages import TrainJob, TrainSource

    stem = Path(entry["file"]).stem
    jobs = []
    for variant in variants:
        # Named after the dataset too, so that the training's log tells the tasks apart.
        named = dataclasses.replace(variant, name=f"{stem}/{variant.name}")
        for seed in range(seeds):
            name, config = variant.for_seed(seed)
            jobs.append(TrainJob(named, seed, out / "agents" / stem / name,
                                 _digest("train", data_digest, variant.algorithm,
                                         variant.algo_config, config)))
    return TrainSource(data, file, jobs)


def _data_digest(data: Any) -> str:
    """The digest of a dataset's transitions and chain (what its agents and plans are of)."""
    from echelon.agents.preprocessing import dataset_fingerprint

    return _digest("dataset", dataset_fingerprint(data), data.chain)


def _check_earlier(folder: Any, sources: list[TrainSource], inputs: str, overwrite: bool) -> None:
    """Refuses, before anything is written, results and agents of other inputs in ``out``
    (with ``overwrite``: sets the results aside; the training stage sets the agents aside)."""
    from echelon.agents.checkpoint import CHECKPOINT_NAME
    from echelon.run.folder import RunFolderError, stage_digest

    aside = f"{folder.path / 'replaced'}/<n>/"
    results = folder.path / RESULTS
    if results.exists():
        try:
            recorded = json.loads(results.read_text()).get("digest")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded != inputs:
            if not overwrite:
                raise RunFolderError(
                    f"{results} holds the results of other inputs (another suite, algorithms, "
                    f"seeds, preset, epochs, planners or references); nothing was changed. Use "
                    f"another --out, or --overwrite to run here (what is replaced moves to "
                    f"{aside})")
            folder.set_aside(RESULTS, REPORT)
    for source in sources:
        for job in source.jobs:
            if ((job.folder / CHECKPOINT_NAME).exists() and not overwrite
                    and stage_digest(job.folder / "stage.json") != job.digest):
                raise RunFolderError(
                    f"{job.folder}: an agent trained with other inputs (another build of the "
                    f"dataset, preset or epochs); nothing was changed. Use another --out, or "
                    f"--overwrite to train it again (the old agent moves to {aside})")


def _score(manifest: dict[str, Any], sources: list[TrainSource],
           plans: list[dict[str, dict[str, Any]]],
           out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each dataset's best behaviour, each agent's and each plan's mean profit on the
    scenario's test paths, with their normalised scores. A plan scores as its planner's label
    at seed 0 (one plan per dataset)."""
    from echelon.agents.decentralized import load_agent
    from echelon.benchmark.planners import PLANNERS
    from echelon.data.collect import Behaviour
    from echelon.models.planning import policy_from_spec
    from echelon.sim.rollout import rollout

    paths: dict[str, np.ndarray] = {}
    behaviour_profit: dict[tuple[str, str], float] = {}  # (scenario, spec): shared by qualities
    datasets, scores = [], []
    for entry, source, planned in zip(manifest["datasets"], sources, plans, strict=True):
        scenario = entry["scenario"]
        constants, chain = manifest["scenarios"][scenario], source.data.chain
        if scenario not in paths:
            paths[scenario] = held_out_paths(chain, constants["run_seed"],
                                             constants["test_episodes"])

        def normalised(profit: float) -> dict[str, float]:
            return {name: normalised_score(profit, constants, against=key)
                    for name, key in AGAINST.items()}

        best: dict[str, Any] | None = None
        for spec in source.data.behaviour_policies:
            if spec["family"] == "random":  # the constants' own random orders on these paths
                profit = float(constants["J_random"])
            else:
                # The heuristic without its logging noise: the policy the noise perturbed.
                key = (scenario, json.dumps({k: spec[k] for k in ("family", "mode", "params")},
                                            sort_keys=True))
                if key not in behaviour_profit:
                    policy = Behaviour.from_dict(spec).policy(chain)
                    behaviour_profit[key] = float(rollout(chain, policy, paths[scenario])
                                                  .profit.mean())
                profit = behaviour_profit[key]
            if best is None or profit > best["profit"]:
                best = {"name": spec["name"], "profit": profit, "score": normalised(profit)}
        datasets.append({"id": entry["id"], "file": entry["file"], "scenario": scenario,
                         "quality": entry.get("quality"),
                         "test_episodes": constants["test_episodes"], "best_behaviour": best})
        for job in source.jobs:
            agent = load_agent(job.agent.checkpoint, chain, device="cpu")
            profit = float(rollout(chain, agent, paths[scenario]).profit.mean())
            scores.append({"dataset": entry["id"], "algorithm": job.variant.algorithm,
                           "seed": job.seed, "profit": profit, "score": normalised(profit),
                           "agent": os.path.relpath(job.folder, out)})
        for name, plan in planned.items():
            policy = policy_from_spec(plan["spec"], chain, base=plan["base"])
            profit = float(rollout(chain, policy, paths[scenario]).profit.mean())
            scores.append({"dataset": entry["id"], "algorithm": PLANNERS[name].label, "seed": 0,
                           "profit": profit, "score": normalised(profit), "plan": plan["file"],
                           "fitted_law": plan["fit"]["law"]})
    return datasets, scores


def score_matrix(scores: list[dict[str, Any]], datasets: Sequence[str], algorithm: str,
                 against: str) -> np.ndarray:
    """One algorithm's normalised scores as rliable reads them: (seeds, datasets).

    Raises:
        ValueError: If some dataset lacks a seed that another has.
    """
    seeds = sorted({s["seed"] for s in scores if s["algorithm"] == algorithm})
    table = {(s["seed"], s["dataset"]): s["score"][against]
             for s in scores if s["algorithm"] == algorithm}
    missing = [(seed, d) for seed in seeds for d in datasets if (seed, d) not in table]
    if missing or not seeds:
        raise ValueError(f"{algorithm}: no score for seed {missing[0][0]} on {missing[0][1]}"
                         if missing else f"{algorithm}: no scores")
    return np.array([[table[seed, d] for d in datasets] for seed in seeds])


def _rng(*labels: str) -> np.random.Generator:
    """An interval's own stream: it does not move when other algorithms join the run."""
    return np.random.default_rng([_BOOTSTRAP_SEED, *(zlib.crc32(label.encode())
                                                     for label in labels)])


def aggregate(scores: list[dict[str, Any]], datasets: Sequence[str],
              settings: BenchmarkSettings) -> dict[str, Any]:
    """The aggregates of every algorithm across datasets x seeds, for each normalisation.

    Returns:
        ``aggregates[against][algorithm][key]`` (point and interval of each of
        :data:`AGGREGATES`), ``probability_of_improvement[against]`` (one row per ordered pair
        ``x``, ``y``: P(X > Y) with its interval) and ``performance_profile[against]`` (the
        thresholds and each algorithm's share of runs above them).
    """
    out: dict[str, Any] = {"aggregates": {}, "probability_of_improvement": {},
                           "performance_profile": {}}
    replicates = settings.n_bootstrap
    for against in AGAINST:
        matrices = {name: score_matrix(scores, datasets, name, against)
                    for name in settings.methods()}
        out["aggregates"][against] = {
            name: {key: stratified_bootstrap_ci(function, matrix, n_bootstrap=replicates,
                                                rng=_rng(against, name, key)).to_dict()
                   for key, (_, function) in AGGREGATES.items()}
            for name, matrix in matrices.items()}
        out["probability_of_improvement"][against] = [
            {"x": x, "y": y, **stratified_bootstrap_ci(
                probability_of_improvement, matrices[x], matrices[y], n_bootstrap=replicates,
                rng=_rng(against, x, y, "probability_of_improvement")).to_dict()}
            for x in matrices for y in matrices if x != y]
        out["performance_profile"][against] = {
            "thresholds": PROFILE_THRESHOLDS.tolist(),
            **{name: performance_profile(matrix, PROFILE_THRESHOLDS).tolist()
               for name, matrix in matrices.items()}}
    return out


# --- The report -----------------------------------------------------------------------------------


def _cell(estimate: dict[str, float], digits: int = 1) -> str:
    return (f"{estimate['point']:.{digits}f} [{estimate['ci_low']:.{digits}f}, "
            f"{estimate['ci_high']:.{digits}f}]")


_AGAINST_TEXT = {"bound": "the perfect-information bound", "heuristic": "the best tuned heuristic"}


def report_markdown(results: dict[str, Any], figure: str | None = None) -> str:
    """``report.md``: per-dataset scores beside the best behaviour, the aggregates, the
    probability of improvement and the score distribution, for each normalisation; then the
    reference rows, and the performance-profile ``figure`` (a file beside the report) if given."""
    settings, datasets, scores = results["settings"], results["datasets"], results["scores"]
    algorithms = settings["algorithms"]
    methods = results.get("methods", algorithms)
    planners = [m for m in methods if m not in algorithms]
    episodes = sorted({d["test_episodes"] for d in datasets})
    epochs = settings["epochs"]
    budget = f" for {epochs} epoch{'s' * (epochs != 1)}" if epochs else ""
    lines = [
        f"# Offline-RL benchmark: {results['suite']}", "",
        f"{', '.join(algorithms)} trained with the `{settings['preset']}` preset{budget} at seeds "
        f"0..{settings['seeds'] - 1} on each of the suite's {len(datasets)} datasets; every agent "
        f"and each dataset's best behaviour policy (without its logging noise) scored on the "
        f"scenario's {', '.join(map(str, episodes))} held-out test paths.",
    ]
    if planners:
        lines += ["", f"Model-based from the same logs: {', '.join(planners)}: the scenario's "
                  "demand law fitted to each dataset's censored logs, the policy planned in the "
                  "fitted model (one plan per dataset, so its intervals carry no seed spread)."]
    lines += [
        "", "Normalised score: `100 (J - J_random) / (J_ref - J_random)` of the mean discounted "
        "profit J, so 0 is random ordering and 100 the reference: the perfect-information bound "
        "(`J_bound`), or the best tuned heuristic (`J_heuristic`). Intervals are 95% "
        f"stratified-bootstrap intervals ({settings['n_bootstrap']} replicates; seeds resampled "
        "within each dataset).",
    ]
    for against, text in _AGAINST_TEXT.items():
        lines += ["", f"## Normalised score against {text}", "",
                  "### Per dataset: mean [min, max] over seeds", "",
                  "| dataset | best behaviour | " + " | ".join(methods) + " |",
                  "|---|---|" + "---|" * len(methods)]
        for dataset in datasets:
            best = dataset["best_behaviour"]
            cells = []
            for name in methods:
                values = [s["score"][against] for s in scores
                          if s["dataset"] == dataset["id"] and s["algorithm"] == name]
                cells.append(f"{np.mean(values):.1f}" if len(values) == 1 else
                             f"{np.mean(values):.1f} [{min(values):.1f}, {max(values):.1f}]")
            lines.append(f"| {dataset['id']} | {best['score'][against]:.1f} ({best['name']}) | "
                         + " | ".join(cells) + " |")
        lines += ["", "### Across datasets x seeds", "",
                  "| method | " + " | ".join(label for label, _ in AGGREGATES.values()) + " |",
                  "|---|" + "---|" * len(AGGREGATES)]
        for name in methods:
            row = results["aggregates"][against][name]
            lines.append(f"| {name} | " + " | ".join(_cell(row[key]) for key in AGGREGATES)
                         + " |")
        lines += ["", f"Optimality gap: `{TARGET:g} - mean(min(score, {TARGET:g}))`, lower is "
                  "better.", "", "### Probability of improvement, P(row > column)", "",
                  "| | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        pairs = {(p["x"], p["y"]): p for p in results["probability_of_improvement"][against]}
        for x in methods:
            lines.append(f"| {x} | " + " | ".join("-" if x == y else _cell(pairs[x, y], 2)
                                                   for y in methods) + " |")
        profile = results["performance_profile"][against]
        shown = [i for i, tau in enumerate(profile["thresholds"]) if tau % 20 == 0]
        lines += ["", "### Score distribution: share of runs scoring above each threshold", "",
                  "| method | " + " | ".join(f"> {profile['thresholds'][i]:g}" for i in shown)
                  + " |", "|---|" + "---|" * len(shown)]
        for name in methods:
            lines.append(f"| {name} | " + " | ".join(f"{profile[name][i]:.2f}" for i in shown)
                         + " |")
        lines.append("")
        lines.append(f"(Every 5 points in {RESULTS}.)")
    if figure:
        lines += ["", "## Performance profiles", "", f"![Score distributions]({figure})"]
    references = results.get("references") or []
    if references:
        lines += ["", "## References: policies made with the simulator, not from the logs", "",
                  "| reference | scenario | profit, mean [min, max] over seeds | vs bound | "
                  "vs heuristic | best method from the logs on the scenario (vs bound) |",
                  "|---|---|---|---|---|---|"]
        for ref in references:
            profits = ref["profits"]
            means = ref["scenario_means"]
            best = max(means, key=lambda name: means[name]["bound"]) if means else None
            best_text = f"{best}: {means[best]['bound']:.1f}" if best else "-"
            lines.append(
                f"| {ref['name']} | {ref['scenario']} | {np.mean(profits):.2f} "
                f"[{min(profits):.2f}, {max(profits):.2f}] | "
                f"{np.mean(ref['score']['bound']):.1f} | {np.mean(ref['score']['heuristic']):.1f} "
                f"| {best_text} |")
        lines += [""] + [f"- {ref['name']}: {ref['description']}" for ref in references]
    return "\n".join(lines) + "\n"


__all__ = [
    "AGAINST",
    "AGGREGATES",
    "PROFILE_FIGURE",
    "PROFILE_THRESHOLDS",
    "REFERENCE_KIND",
    "REPORT",
    "RESULTS",
    "SUITES",
    "BenchmarkSettings",
    "aggregate",
    "read_reference",
    "read_run_reference",
    "read_suite",
    "report_markdown",
    "run_benchmark",
    "score_matrix",
    "held_out_paths",
]
