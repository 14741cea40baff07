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
2. **score**: each agent's mean discounted profit on its scenario's held-out test paths (drawn
   as :func:`echelon.benchmark.datasets.scenario_constants` drew them: the test stream of the
   scenario's run seed, the manifest's ``test_episodes`` of them), normalised with the
   manifest's constants (:func:`echelon.benchmark.datasets.normalised_score`) against the
   perfect-information bound and against the best tuned heuristic. Beside them, each dataset's
   best behaviour policy on the same paths (the random one scores ``J_random``).
3. **aggregate**: per algorithm, the (seeds, datasets) array of normalised scores summarised by
   the IQM, mean, median and optimality gap (to 100), each with a stratified-bootstrap 95%
   interval (datasets are the strata), the probability of improvement of every algorithm over
   every other, and the score distribution (:data:`PROFILE_THRESHOLDS`).
4. **write** ``<out>/results.json`` (every score with its dataset, algorithm and seed; the
   aggregates) and ``<out>/report.md``, atomically.

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
    "quick": {"algorithms": ("iql", "bc"), "seeds": 5, "preset": "quick", "epochs": 5},
    "full": {"algorithms": ("iql", "bc", "td3bc", "cql"), "seeds": 5, "preset": "default"},
}
"""The named runs of a suite (:class:`BenchmarkSettings` fields): ``quick``, five seeds of IQL
and BC for 5 epochs of the ``quick`` preset (the whole suite's 150 agents took 9.7 minutes on
two cores, README); ``full``, five seeds of IQL, BC, TD3+BC and CQL with each algorithm's
published settings (the ``default`` preset: 100 epochs), 300 agents of 100 epochs (estimated at
about 12 hours on two cores; not run)."""


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

    def __post_init__(self) -> None:
        from echelon.agents.presets import AGENT_PRESETS
        from echelon.agents.registry import ALGORITHMS

        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        names = self.algorithms
        if (not names or len(set(names)) != len(names)
                or any(name not in ALGORITHMS for name in names)):
            raise ValueError(f"algorithms must list distinct names of {list(ALGORITHMS)}, got "
                             f"{','.join(map(str, names)) or 'none'}")
        for name, value in (("seeds", self.seeds), ("n_bootstrap", self.n_bootstrap),
                            *((("epochs", self.epochs),) if self.epochs is not None else ())):
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
                  address: str | None = None, resources: Any = None, overwrite: bool = False,
                  progress: bool = False, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Trains, scores and aggregates every algorithm of ``settings`` on a suite (see the module).

    Args:
        suite: The folder of a built suite (``benchmark.json`` and its datasets).
        out: The run's folder: ``agents/``, ``results.json`` and ``report.md``.
        settings: The algorithms, seeds and training budget (default: ``BenchmarkSettings()``).
        executor: Where the training runs (a key of ``echelon.run.executor.EXECUTORS``).
        address: For ``ray``: the cluster's address.
        resources: Each training task's ``echelon.run.executor.Resources``.
        overwrite: Move agents and results of other inputs to ``<out>/replaced/<n>/`` and
            redo them, instead of refusing.
        progress: Progress bars while training (in this process only).
        log: Where the progress lines go.

    Returns:
        What ``results.json`` holds.

    Raises:
        ValueError: If the suite is not readable (:func:`read_suite`), ``out`` may not be
            written, or holds agents or results of other inputs (without ``overwrite``).
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
    files = [suite / entry["file"] for entry in manifest["datasets"]]
    target = _check_out(out, files)
    variants = settings.variants()
    sources = [_source(entry, file, load(file), variants, settings.seeds, target)
               for entry, file in zip(manifest["datasets"], files, strict=True)]
    inputs = _digest("benchmark", manifest, [job.digest for s in sources for job in s.jobs],
                     asdict(settings))
    folder = RunFolder(target, force=overwrite)
    _check_earlier(folder, sources, inputs, overwrite)
    log(f"[1/3] train: {', '.join(settings.algorithms)} x seeds 0..{settings.seeds - 1} on "
        f"{len(files)} datasets of {suite} ({settings.preset} preset"
        f"{f', epochs {settings.epochs}' if settings.epochs else ''})")
    runner = LazyExecutor(executor, address=address,
                          run_folder=target.resolve() if executor != "local" else None)
    try:
        train_sources(sources, folder, executor=runner, resources=resources, progress=progress,
                      log=log)
    finally:
        runner.close()
    log(f"[2/3] score: every agent and each dataset's best behaviour on its scenario's "
        f"held-out test paths (run time so far {minutes(time.perf_counter() - started)})")
    datasets, scores = _score(manifest, sources, target)
    log(f"[3/3] aggregate: {settings.n_bootstrap} stratified-bootstrap replicates per interval")
    results = {"suite": str(suite), "digest": inputs, "settings": asdict(settings),
               "datasets": datasets, "scores": scores,
               **aggregate(scores, [d["id"] for d in datasets], settings)}
    write_json(target / RESULTS, results)
    atomic_write_text(target / REPORT, report_markdown(results))
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


def _source(entry: dict[str, Any], file: Path, data: Any, variants: list[AgentVariant],
            seeds: int, out: Path) -> TrainSource:
    """The agents to train on one dataset, each with the digest of its inputs."""
    from echelon.agents.preprocessing import dataset_fingerprint
    from echelon.run.stages import TrainJob, TrainSource

    data_digest = _digest("dataset", dataset_fingerprint(data), data.chain)
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
                    f"seeds, preset or epochs); nothing was changed. Use another --out, or "
                    f"--overwrite to run here (what is replaced moves to {aside})")
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
           out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each dataset's best behaviour and each agent's mean profit on the scenario's test paths,
    with their normalised scores."""
    from echelon.agents.decentralized import load_agent
    from echelon.data.collect import Behaviour
    from echelon.sim.rollout import rollout

    paths: dict[str, np.ndarray] = {}
    behaviour_profit: dict[tuple[str, str], float] = {}  # (scenario, spec): shared by qualities
    datasets, scores = [], []
    for entry, source in zip(manifest["datasets"], sources, strict=True):
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
                    for name in settings.algorithms}
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


def report_markdown(results: dict[str, Any]) -> str:
    """``report.md``: per-dataset scores beside the best behaviour, the aggregates, the
    probability of improvement and the score distribution, for each normalisation."""
    settings, datasets, scores = results["settings"], results["datasets"], results["scores"]
    algorithms = settings["algorithms"]
    episodes = sorted({d["test_episodes"] for d in datasets})
    epochs = settings["epochs"]
    budget = f" for {epochs} epoch{'s' * (epochs != 1)}" if epochs else ""
    lines = [
        f"# Offline-RL benchmark: {results['suite']}", "",
        f"{', '.join(algorithms)} trained with the `{settings['preset']}` preset{budget} at seeds "
        f"0..{settings['seeds'] - 1} on each of the suite's {len(datasets)} datasets; every agent "
        f"and each dataset's best behaviour policy (without its logging noise) scored on the "
        f"scenario's {', '.join(map(str, episodes))} held-out test paths.", "",
        "Normalised score: `100 (J - J_random) / (J_ref - J_random)` of the mean discounted "
        "profit J, so 0 is random ordering and 100 the reference: the perfect-information bound "
        "(`J_bound`), or the best tuned heuristic (`J_heuristic`). Intervals are 95% "
        f"stratified-bootstrap intervals ({settings['n_bootstrap']} replicates; seeds resampled "
        "within each dataset).",
    ]
    for against, text in _AGAINST_TEXT.items():
        lines += ["", f"## Normalised score against {text}", "",
                  "### Per dataset: mean [min, max] over seeds", "",
                  "| dataset | best behaviour | " + " | ".join(algorithms) + " |",
                  "|---|---|" + "---|" * len(algorithms)]
        for dataset in datasets:
            best = dataset["best_behaviour"]
            cells = []
            for name in algorithms:
                values = [s["score"][against] for s in scores
                          if s["dataset"] == dataset["id"] and s["algorithm"] == name]
                cells.append(f"{np.mean(values):.1f} [{min(values):.1f}, {max(values):.1f}]")
            lines.append(f"| {dataset['id']} | {best['score'][against]:.1f} ({best['name']}) | "
                         + " | ".join(cells) + " |")
        lines += ["", "### Across datasets x seeds", "",
                  "| algorithm | " + " | ".join(label for label, _ in AGGREGATES.values()) + " |",
                  "|---|" + "---|" * len(AGGREGATES)]
        for name in algorithms:
            row = results["aggregates"][against][name]
            lines.append(f"| {name} | " + " | ".join(_cell(row[key]) for key in AGGREGATES)
                         + " |")
        lines += ["", f"Optimality gap: `{TARGET:g} - mean(min(score, {TARGET:g}))`, lower is "
                  "better.", "", "### Probability of improvement, P(row > column)", "",
                  "| | " + " | ".join(algorithms) + " |", "|---|" + "---|" * len(algorithms)]
        pairs = {(p["x"], p["y"]): p for p in results["probability_of_improvement"][against]}
        for x in algorithms:
            lines.append(f"| {x} | " + " | ".join("-" if x == y else _cell(pairs[x, y], 2)
                                                   for y in algorithms) + " |")
        profile = results["performance_profile"][against]
        shown = [i for i, tau in enumerate(profile["thresholds"]) if tau % 20 == 0]
        lines += ["", "### Score distribution: share of runs scoring above each threshold", "",
                  "| algorithm | " + " | ".join(f"> {profile['thresholds'][i]:g}" for i in shown)
                  + " |", "|---|" + "---|" * len(shown)]
        for name in algorithms:
            lines.append(f"| {name} | " + " | ".join(f"{profile[name][i]:.2f}" for i in shown)
                         + " |")
        lines.append("")
        lines.append(f"(Every 5 points in {RESULTS}.)")
    return "\n".join(lines) + "\n"


__all__ = [
    "AGAINST",
    "AGGREGATES",
    "PROFILE_THRESHOLDS",
    "REPORT",
    "RESULTS",
    "SUITES",
    "BenchmarkSettings",
    "aggregate",
    "read_suite",
    "report_markdown",
    "run_benchmark",
    "score_matrix",
    "held_out_paths",
]
