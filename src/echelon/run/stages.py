"""The stages of a run, each a function of the run's config and the earlier stages' results.

    search   -> the paper's grid (the behaviour policies)
    collect  -> the mixture-of-experts dataset
    tune     -> strong heuristics tuned on the search stream
    train    -> one agent per variant and seed
    model    -> the demand fit and the plans made in the fitted model
    evaluate -> every policy on the same held-out test paths

:func:`echelon.run.reproduce.reproduce` runs them in order, caching each in the run folder.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from echelon.data.collect import Behaviour, collect
from echelon.data.dataset import OfflineDataset
from echelon.policies.search import SearchConfig, SearchResult, run_search
from echelon.run.baselines import BASELINES, TUNED
from echelon.run.config import SWEEP_TRAIN_FIELDS, RunConfig, parse_sweep
from echelon.run.folder import RunFolder, digest, stage_digest, write_json
from echelon.sim.demand import child_seeds, run_streams

def check_sizes(run: RunConfig) -> None:
    """Refuses a run whose collection or evaluation would not fit in memory, before any stage
    (the search comes first and would otherwise run in vain).

    Raises:
        SizeLimitError: Naming the setting to reduce.
    """
    from echelon._limits import check_memory
    from echelon.data.collect import collect_bytes
    from echelon.sim.demand import demand_bytes
    from echelon.sim.rollout import rollout_bytes

    chain, episodes = run.chain, run.collect.episodes
    check_memory(f"collecting {episodes:,} episodes of {chain.periods:,} periods",
                 collect_bytes(chain, episodes), reduce="collect.episodes or chain.periods")
    tests = run.evaluate.episodes
    check_memory(f"evaluating on {tests:,} held-out paths of {chain.periods:,} periods",
                 demand_bytes(tests, chain.periods) + rollout_bytes(chain, tests),
                 reduce="evaluate.episodes or chain.periods")


def search_stage(run: RunConfig, *, progress: bool = False) -> SearchResult:
    """Stage 1: the heuristic search on the run's search stream."""
    return run_search(run.chain, run.search, run_streams(run.seed).search, progress=progress)


def behaviours_from_search(run: RunConfig, result: SearchResult) -> list[Behaviour]:
    """The behaviour mixture: the search's top settings, with ``collect.weights`` (the paper's
    recipe: equal weights).

    Raises:
        ValueError: If ``collect.weights`` does not have one weight per top setting.
    """
    prefix = f"{run.search.space.value}-{result.family.value}"
    weights = run.collect.weights or (1.0,) * len(result.ranked)
    if len(weights) != len(result.ranked):
        raise ValueError(f"collect.weights has {len(weights)} weights for the search's "
                         f"{len(result.ranked)} best settings (search.top_k)")
    return [
        Behaviour(f"{prefix}-{rank}", result.family, candidate.params, result.mode, weight)
        for rank, (candidate, weight) in enumerate(zip(result.ranked, weights), 1)
    ]


def collect_stage(run: RunConfig, result: SearchResult) -> OfflineDataset:
    """Stage 2: the mixture-of-experts dataset on the run's collection stream."""
    return collect(
        run.chain,
        behaviours_from_search(run, result),
        run.collect,
        run_streams(run.seed).collect,
        seeds_info={"run_seed": run.seed, "stream": "collect"},
    )



@dataclass(frozen=True)
class AgentVariant:
    """One algorithm configuration the pipeline trains (once per training seed)."""

    name: str
    """Folder-safe label, e.g. ``iql`` or ``iql-expectile0.5``."""
    algorithm: str
    algo_config: Any
    train_config: Any
    """``TrainConfig`` without the seed (set per run)."""

    def for_seed(self, seed: int) -> tuple[str, Any]:
        return f"{self.name}-s{seed}", dataclasses.replace(self.train_config, seed=seed)


def agent_variants(run: RunConfig) -> list[AgentVariant]:
    """The algorithms of ``run.train`` with their overrides, then the sweep's extra variants."""
    from echelon.agents.presets import agent_preset

    stage = run.train
    extra = {"device": stage.device, "precision": stage.precision,
             "sales_history": stage.sales_history, "time_feature": stage.time_feature,
             **({"epochs": stage.epochs} if stage.epochs else {})}
    variants: list[AgentVariant] = []

    def base(algorithm: str):
        algo, train = agent_preset(algorithm, stage.preset, **extra)
        return dataclasses.replace(algo, **_tuples(stage.overrides.get(algorithm, {}))), train

    for algorithm in stage.algorithms:
        algo, train = base(algorithm)
        variants.append(AgentVariant(algorithm, algorithm, algo, train))
    for item in stage.sweep:
        algorithm, name, values = parse_sweep(item)
        algo, train = base(algorithm)
        for value in values:
            if name in SWEEP_TRAIN_FIELDS:  # what the agent sees, not how it learns
                variant, settings = algo, dataclasses.replace(train, **{name: value})
            else:
                variant, settings = dataclasses.replace(algo, **{name: value}), train
            if any(v.algorithm == algorithm and v.algo_config == variant
                   and v.train_config == settings for v in variants):
                continue  # the sweep point is already trained (e.g. the preset's own value)
            label = (f"{value:g}" if isinstance(value, float)
                     else f"-{value}" if isinstance(value, str) else f"{value}")
            variants.append(AgentVariant(f"{algorithm}-{name}{label}", algorithm, variant,
                                         settings))
    return variants


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


class TrainedAgent(NamedTuple):
    """One trained agent: what the evaluation, the report and the CLI know of it."""

    variant: str
    """The variant's label, e.g. ``iql`` or ``iql-expectile0.5``."""
    algorithm: str
    """A key of ``echelon.agents.ALGORITHMS``."""
    seed: int
    """Its training seed."""
    checkpoint: Path
    """Its ``checkpoint.pt``."""


@dataclass(frozen=True)
class TrainJob:
    """One agent to train: a variant at one seed, into its own folder."""

    variant: AgentVariant
    seed: int
    folder: Path
    """``agents/<variant>-s<seed>`` of the run folder."""
    digest: str
    """The hash of its inputs (the dataset's digest, the algorithm and both configs)."""

    @property
    def train_config(self) -> Any:
        return self.variant.for_seed(self.seed)[1]

    @property
    def agent(self) -> TrainedAgent:
        from echelon.agents.trainer import CHECKPOINT_NAME

        return TrainedAgent(self.variant.name, self.variant.algorithm, self.seed,
                            self.folder / CHECKPOINT_NAME)


def train_jobs(variants: list[AgentVariant], seeds: tuple[int, ...], run_folder: Path,
               dataset_digest: str) -> list[TrainJob]:
    """Every variant at every seed, in that order, each in ``agents/<variant>-s<seed>``."""
    jobs = []
    for variant in variants:
        for seed in seeds:
            name, config = variant.for_seed(seed)
            jobs.append(TrainJob(variant, seed, run_folder / "agents" / name,
                                 digest("train", dataset_digest, variant.algorithm,
                                        variant.algo_config, config)))
    return jobs


class TrainSource(NamedTuple):
    """A dataset and the agents to train on it."""

    data: OfflineDataset
    """The dataset (the local executor's tasks use it as it is)."""
    path: Path | None
    """Its file, as the executor's workers see it (needed by executors other than local)."""
    jobs: list[TrainJob]
    """From :func:`train_jobs`."""


def train_agents(data: OfflineDataset, jobs: list[TrainJob], folder: RunFolder, *,
                 ensemble: int | str = "auto", executor: Any = None, resources: Any = None,
                 dataset_path: Path | None = None, progress: bool = False,
                 log=print) -> list[TrainedAgent]:
    """The training stage: the jobs grouped into ensembles of one variant's seeds, each
    group one task of the executor.

    A job whose folder holds a finished agent of the same inputs is skipped, and one holding a
    half-trained agent of the same inputs resumes from its last epoch; an agent of other inputs
    is moved aside with the run folder's ``force`` and refused without. The remaining jobs of
    each variant train together (:func:`echelon.agents.trainer.train_ensemble`), at most
    ``ensemble`` seeds at a time (0: all of them), which gives each the weights it would have
    alone to float32 tolerance.

    Args:
        data: The dataset (the local executor's tasks use it as it is).
        jobs: From :func:`train_jobs`.
        folder: The run folder.
        ensemble: Seeds per ensemble; 0 for all seeds of a variant, 1 for one at a time,
            ``auto`` for :func:`ensemble_size`.
        executor: An :class:`echelon.run.executor.Executor`; None trains in this process.
            Other executors' tasks read the dataset from ``dataset_path``.
        resources: Each task's :class:`echelon.run.executor.Resources`.
        dataset_path: The dataset file, as the executor's workers see it.
        progress: Progress bars (in this process only).
        log: Where the stage's lines go.

    Returns:
        The agents, in the order of ``jobs``.

    Raises:
        RunFolderError: If a job's folder holds an agent of other inputs (without ``force``).
        ValueError: If ``ensemble`` is negative, or an executor other than local is given no
            ``dataset_path``.
    """
    train_sources([TrainSource(data, dataset_path, jobs)], folder, ensemble=ensemble,
                  executor=executor, resources=resources, progress=progress, log=log)
    return [job.agent for job in jobs]


def train_sources(sources: list[TrainSource], folder: RunFolder, *, ensemble: int | str = "auto",
                  executor: Any = None, resources: Any = None, progress: bool = False,
                  log=print) -> None:
    """:func:`train_agents` for jobs on several datasets (the per-stage logs), whose tasks all
    go to the executor at once, so that its workers stay busy across datasets.

    Arguments and errors as :func:`train_agents`.
    """
    from echelon.agents.trainer import CHECKPOINT_NAME, load_checkpoint
    from echelon.run.executor import LocalExecutor, Resources, Task

    if ensemble != "auto" and (isinstance(ensemble, bool) or not isinstance(ensemble, int)
                               or ensemble < 0):
        raise ValueError(f"train.ensemble must be auto or an integer >= 0, got {ensemble!r}")
    executor = executor if executor is not None else LocalExecutor()
    local = executor.name == LocalExecutor.name
    if not local and any(source.path is None for source in sources):
        raise ValueError("the dataset's path is needed by an executor other than local")
    resources = resources if resources is not None else Resources()
    planned = {job.folder: _planned_steps(len(source.data), job.train_config)
               for source in sources for job in source.jobs}
    resumed: set[Path] = set()  # their time covers part of their steps: no rate from them
    tasks, groups = [], []
    index, count = 0, len(planned)
    for data, dataset_path, jobs in sources:
        todo: list[TrainJob] = []
        for job in jobs:
            index += 1
            # Relative to agents/: iql-s0, or decentralized/iql-local-s0/retailer for a stage's.
            name = os.path.relpath(job.folder, folder.path / "agents")
            config, checkpoint = job.train_config, job.folder / CHECKPOINT_NAME
            stage_file = job.folder / "stage.json"
            resume = stage_digest(stage_file) == job.digest
            if resume and checkpoint.exists() and load_checkpoint(checkpoint)["epoch"] == config.epochs:
                log(f"  [{index}/{count}] {name}: done earlier, skipped")
                continue
            if not resume and checkpoint.exists():  # trained with other inputs
                folder.clear(f"agent {name}", job.digest, os.path.relpath(job.folder, folder.path),
                             recorded="other inputs")
            if resume and checkpoint.exists():
                log(f"  [{index}/{count}] {name}: resuming")
                resumed.add(job.folder)
            write_json(stage_file, {"digest": job.digest})
            todo.append(job)
        mine = _groups(todo, ensemble, spread=not local and not resources.gpus)
        groups += mine
        tasks += [Task(_group_name(group), train_group,
                       (data if local else str(Path(dataset_path).resolve()),
                        group[0].variant.algorithm, group[0].variant.algo_config,
                        [job.train_config for job in group],
                        [str(job.folder if local else job.folder.resolve()) for job in group],
                        progress and local),
                       resources)
                  for group in mine]
    if local:
        # One task after another here, with a time estimate from the groups done so far.
        rates: dict[tuple[str, int], float] = {}  # member-steps per second per algorithm and size
        for position, (task, group) in enumerate(zip(tasks, groups, strict=True)):
            left = [(sum(planned[j.folder] for j in g), (g[0].variant.algorithm, len(g)))
                    for g in groups[position:]]
            known = [steps / rates[key] for steps, key in left if key in rates]
            estimate = (f", about {minutes(sum(known))} left for the groups timed so far"
                        if known else "")
            steps = sum(planned[j.folder] for j in group)
            log(f"  {task.name}: {len(group)} x {planned[group[0].folder]:,} steps"
                f"{' as one ensemble' if len(group) > 1 else ''}{estimate}")
            results = executor.run([task], log=log)[0]
            if not any(job.folder in resumed for job in group):
                rates[(group[0].variant.algorithm, len(group))] = steps / max(results[0][1], 1e-9)
    elif tasks:
        log(f"  {len(tasks)} tasks on the {executor.name} executor "
            f"({_count(resources.cpus, 'CPU')}, {_count(resources.gpus, 'GPU')} each): "
            + ", ".join(task.name for task in tasks))
        executor.run(tasks, log=log)


# On a CPU, ensembles of networks wider than this trained slower than their seeds one at a time
# (benchmarks/bench_train.py on 2 cores: 0.8 to 1.0x at 1024 units, 1.0 to 1.6x at 256).
CPU_ENSEMBLE_MAX_WIDTH = 512


def ensemble_size(variant: AgentVariant, ensemble: int | str, *, spread: bool = False) -> int:
    """How many seeds of ``variant`` train together: ``ensemble`` itself (0: all), or for
    ``auto``: with ``spread`` (an executor of several workers, no GPUs asked for), one seed per
    task, which keeps every worker busy; else all of them (0), unless on a CPU for networks
    wider than :data:`CPU_ENSEMBLE_MAX_WIDTH`, then one at a time."""
    if ensemble != "auto":
        return ensemble
    if spread:
        return 1
    from echelon.agents.config import resolve_device

    device = resolve_device(variant.train_config.device)
    widest = max(getattr(variant.algo_config, "hidden", ()) or (0,))
    return 1 if device.type == "cpu" and widest > CPU_ENSEMBLE_MAX_WIDTH else 0


def _count(value: float, unit: str) -> str:
    return f"{value:g} {unit}{'' if value == 1 else 's'}"


def _groups(jobs: list[TrainJob], ensemble: int | str, *,
            spread: bool = False) -> list[list[TrainJob]]:
    """The jobs by variant, in order, in chunks of :func:`ensemble_size` (0: no limit)."""
    by_variant: dict[str, list[TrainJob]] = {}
    for job in jobs:
        by_variant.setdefault(job.variant.name, []).append(job)
    groups = []
    for members in by_variant.values():
        size = ensemble_size(members[0].variant, ensemble, spread=spread) or len(members)
        groups += [members[i:i + size] for i in range(0, len(members), size)]
    return groups


def _group_name(group: list[TrainJob]) -> str:
    seeds = [job.seed for job in group]
    contiguous = len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    shown = f"{seeds[0]}..{seeds[-1]}" if contiguous else ",".join(map(str, seeds))
    return f"{group[0].variant.name}-s{shown}"


def train_group(source: OfflineDataset | str, algorithm: str, algo_config: Any,
                configs: list[Any], outs: list[str], progress: bool = False) -> list[tuple[int, float]]:
    """One task of the training stage: an ensemble of one variant's seeds, resumed where its
    members' folders hold checkpoints (the stage has checked that they are this run's).

    Args:
        source: The dataset, or the path of its file (read once per worker process).
        algorithm, algo_config: The variant.
        configs, outs: Each member's ``TrainConfig`` and folder.
        progress: Progress bars.

    Returns:
        Each member's (steps, seconds).
    """
    from echelon.agents.trainer import train_ensemble

    data = source if isinstance(source, OfflineDataset) else _dataset(source)
    results = train_ensemble(data, algorithm, algo_config, configs, [Path(o) for o in outs],
                             resume=True, progress=progress)
    return [(result.steps, result.seconds) for result in results]


def _dataset(path: str) -> OfflineDataset:
    """The dataset file, read once per worker process while it stays unchanged."""
    status = os.stat(path)
    return _load_dataset(path, status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=2)
def _load_dataset(path: str, modified: int, size: int) -> OfflineDataset:
    from echelon.data.dataset_file import load

    return load(path)


def _planned_steps(transitions: int, config: Any) -> int:
    train_rows = transitions * (1.0 - config.validation_fraction)
    return config.epochs * int(np.ceil(train_rows / config.batch_size))


def minutes(seconds: float) -> str:
    """``45 s`` or ``3.2 min``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"



def tune_baselines(run: RunConfig, *, progress: bool = False) -> dict[str, Any]:
    """The strong heuristics, tuned on the run's search stream (never on test paths)."""
    from echelon.policies.base_stock import RequestMode
    from echelon.policies.families import Family, HeuristicSpec
    from echelon.policies.search import Space

    streams = child_seeds(run_streams(run.seed).search, 2 + len(TUNED))[2:]
    out: dict[str, Any] = {}
    for name, stream in zip(TUNED, streams):
        if name not in run.evaluate.baselines:
            continue
        family = Family(BASELINES[name].tuned_family)
        settings = SearchConfig(space=Space.WIDE, family=family, mode=RequestMode.CLIP,
                                episodes=run.evaluate.tuning_episodes, top_k=1)
        result = run_search(run.chain, settings, stream, progress=progress)
        spec = HeuristicSpec(family, RequestMode.CLIP, result.best.params)
        out[name] = {**spec.to_dict(), "rank_mean": result.best.mean, "evaluated": result.evaluated}
    return out


def fit_logs(data: OfflineDataset, settings: Any, *,
             log=print) -> tuple[Any, list[dict[str, Any]], Any]:
    """Fits the demand law of the run's ``model`` settings to a dataset's censored logs.

    ``settings.law`` is an i.i.d. law, ``curve`` (a seasonal and trend mean of
    ``settings.season`` periods, ``settings.counts`` counts) or ``regimes`` (a Markov-modulated
    Poisson of ``settings.regimes`` regimes).

    Returns:
        The fit, every candidate law with its AIC (the i.i.d. laws and the fitted engine, best
        first), and the dataset's chain with the fitted demand (the model to plan in).
    """
    from echelon.models import compare_laws, fit_demand, fitted_chain

    laws = [{"law": f.name, "aic": f.aic, "mean": f.params["mean"],
             "goodness_of_fit_p": f.goodness_of_fit.p_value} for f in compare_laws(data)]
    if settings.law == "curve":
        from echelon.models.curve_fit import fit_curve

        fit = fit_curve(data, settings.season, counts=settings.counts)
        laws = sorted([*laws, {"law": fit.name, "aic": fit.aic, "mean": fit.params["mean"],
                               "goodness_of_fit_p": fit.period_check.p_value}],
                      key=lambda law: law["aic"])
        log(f"  fitted {fit.name}: level {fit.params['level']:.2f}, amplitude "
            f"{fit.params['amplitude']:.2f}, trend {fit.params['trend']:+.4f}; {fit.censored:,} "
            f"of {fit.observations:,} periods censored\n    {fit.period_check.summary()}")
        model = data.chain.replace(demand=fit.law)
    elif settings.law == "regimes":
        from echelon.models.regime_fit import fit_regimes

        fit = fit_regimes(data, settings.regimes)
        laws = sorted([*laws, {"law": fit.name, "aic": fit.aic, "mean": fit.params["mean"],
                               "goodness_of_fit_p": fit.period_check.p_value}],
                      key=lambda law: law["aic"])
        log(f"  fitted {fit.name}: rates {', '.join(f'{r:.2f}' for r in fit.law.rates)}; "
            f"{fit.censored:,} of {fit.observations:,} periods censored\n    "
            f"{fit.period_check.summary()}")
        model = data.chain.replace(demand=fit.law)
    else:
        fit = fit_demand(data, settings.law)
        log(f"  fitted {fit.name} mean {fit.params['mean']:.2f} (naive "
            f"{fit.naive.params['mean'] if fit.naive else float('nan'):.2f}); {fit.censored:,} of "
            f"{fit.observations:,} periods censored")
        model = fitted_chain(data, fit)
    return fit, laws, model


def model_stage(run: RunConfig, data: OfflineDataset, search: SearchResult, *,
                folder: RunFolder | None = None, data_digest: str = "", progress: bool = False,
                executor: Any = None, resources: Any = None, log=print) -> dict[str, Any]:
    """The model-based route: fit demand to the logs, plan in the fitted model.

    Plans use the run's training stream (they learn from the logs, as the agents do): the
    fitted-model time-aware policy, the same planner given the true law (the benchmark of a
    perfect model), the rolling-horizon scenario LP drawing from the fitted law, and the neural
    policies of ``model.neural`` trained through the fitted model (and, with
    ``neural_reference``, on the true law), each in ``plans/<name>/`` of ``folder``. With
    ``misspecification``, two more logs are made with the same behaviour policies where the
    Poisson assumption fails (:mod:`echelon.models.misspecification`).

    With an executor other than local, the neural policies still to train are its tasks (each
    with ``resources``), all at once; their folders are the same.

    Returns:
        What ``model.json`` holds: the fits, the policy specs (a neural spec's weights are
        relative to the run folder), and the misspecification study.

    Raises:
        ValueError: If neural policies are asked for without a run folder to keep them in.
    """
    from echelon.models import plan_time_aware, rolling_lp_spec
    from echelon.models.misspecification import misspecification_study
    from echelon.models.neural import NETWORK_NAME
    from echelon.run.executor import LocalExecutor, Task

    settings = run.model
    plan_seed, true_seed, rolling_seed, logs_seed, neural_seed = child_seeds(
        child_seeds(run_streams(run.seed).train, 2)[1], 5
    )
    fit, laws, model = fit_logs(data, settings, log=log)
    planned = plan_time_aware(model, plan_seed, settings.plan_episodes, progress=progress)
    truth = plan_time_aware(run.chain, true_seed, settings.plan_episodes, progress=progress)
    policies = {"time-aware (fitted model)": planned.spec,
                "time-aware (true demand law)": truth.spec}
    if settings.scenarios:
        seed = int(rolling_seed.generate_state(1)[0])
        policies["rolling scenario LP (fitted model)"] = rolling_lp_spec(model.demand, settings.scenarios, seed)
    if settings.neural and folder is None:
        raise ValueError("model.neural: neural policies need a run folder to keep their weights in")
    worlds = [("fitted model", "fitted", model)]
    if settings.neural_reference:
        worlds.append(("true demand law", "true-law", run.chain))
    plans = [(f"neural {architecture} ({label})", f"neural-{architecture}-{slug}", chain,
              architecture, data_digest if slug == "fitted" else "")
             for architecture in settings.neural for label, slug, chain in worlds]
    if plans and executor is not None and executor.name != LocalExecutor.name:
        # Every plan still to train becomes one task; the finished ones are read back here.
        pending = {}
        for key, name, chain, architecture, fitted_to in plans:
            prepared = prepare_neural(folder, name, chain, architecture, settings,
                                      int(neural_seed.generate_state(1)[0]), fitted_to, log=log)
            if isinstance(prepared, dict):
                policies[key] = prepared
            else:
                pending[key] = prepared
        if pending:
            log(f"  {len(pending)} neural plans on the {executor.name} executor")
            tasks = [Task(f"plan {job.name}", train_plan,
                          (job.chain.to_dict(), job.settings, str(job.out.resolve())), resources)
                     for job in pending.values()]
            for (key, job), result in zip(pending.items(), executor.run(tasks, log=log), strict=True):
                log(f"    {job.name}: validation profit {result['validation_profit']:.2f} (step "
                    f"{result['best_step']}), {minutes(result['seconds'])}")
                policies[key] = {**result["spec"], "weights": f"{job.relative}/{NETWORK_NAME}"}
        policies = {key: policies[key] for key in [*[k for k in policies if not k.startswith("neural ")],
                                                      *[p[0] for p in plans]]}
    else:
        for key, name, chain, architecture, fitted_to in plans:
            policies[key] = plan_neural(folder, name, chain, architecture, settings,
                                        int(neural_seed.generate_state(1)[0]), fitted_to,
                                        progress=progress, log=log)
    out: dict[str, Any] = {"fit": fit.to_dict(), "laws": laws, "policies": policies,
                           "fitted_chain": model.to_dict(), "misspecification": []}
    if not settings.misspecification:
        return out
    out["misspecification"] = misspecification_study(
        run.chain, behaviours_from_search(run, search), run.collect, law=settings.law,
        plan_episodes=settings.plan_episodes, test_episodes=run.evaluate.episodes,
        seed=logs_seed, log=log,
    )
    return out


class NeuralJob(NamedTuple):
    """A neural policy of the model stage still to train, its folder ready."""

    name: str
    chain: Any
    settings: Any
    """Its ``NeuralSettings``."""
    out: Path
    relative: str
    """``plans/<name>``, relative to the run folder."""
    resume: bool


def prepare_neural(folder: RunFolder, name: str, chain: Any, architecture: str, settings: Any,
                   seed: int, data_digest: str, *, log=print) -> dict[str, Any] | NeuralJob:
    """The spec of a neural policy finished earlier with the same inputs, or its folder
    readied for training (one of other inputs is moved aside with ``force``, refused without).

    Arguments as :func:`plan_neural`.
    """
    from echelon.models.neural import NETWORK_NAME, NeuralSettings
    from echelon.models.planning import SPEC_FILE, load_spec

    neural = NeuralSettings(architecture=architecture, steps=settings.neural_steps,
                            batch=settings.neural_batch, seed=seed,
                            sales_history=settings.neural_sales_history)
    relative = f"plans/{name}"
    out = folder.path / relative
    inputs = digest("neural", chain, neural, data_digest)
    stage_file = out / "stage.json"
    resume = stage_digest(stage_file) == inputs
    if resume and (out / SPEC_FILE).exists() and (out / NETWORK_NAME).exists():
        log(f"  {name}: done earlier, skipped")
        return {**load_spec(out), "weights": f"{relative}/{NETWORK_NAME}"}
    if not resume and out.exists():  # trained with other inputs
        folder.clear(f"plan {name}", inputs, relative, recorded="other inputs")
    log(f"  {name}: {neural.steps:,} steps on batches of {neural.batch:,} paths"
        f"{' (resuming)' if resume else ''}")
    out.mkdir(parents=True, exist_ok=True)
    write_json(stage_file, {"digest": inputs})
    return NeuralJob(name, chain, neural, out, relative, resume)


def plan_neural(folder: RunFolder, name: str, chain: Any, architecture: str, settings: Any,
                seed: int, data_digest: str, *, progress: bool = False,
                log=print) -> dict[str, Any]:
    """One neural policy of the model stage, trained (or resumed) in ``plans/<name>/``.

    A folder of the same inputs resumes where it stopped, or is reused when finished; one of
    other inputs is moved aside with the run folder's ``force`` and refused without.

    Args:
        folder: The run folder.
        name: The plan's folder name under ``plans/``.
        chain: The chain trained in (the fitted model, or the true chain).
        architecture: A key of ``ARCHITECTURES``.
        settings: The run's ``ModelStageConfig``.
        seed: The neural policy's seed.
        data_digest: The dataset's digest when ``chain`` was fitted to it.

    Returns:
        The policy's spec, its weights relative to the run folder.
    """
    from echelon.models.neural import NETWORK_NAME, train_neural

    job = prepare_neural(folder, name, chain, architecture, settings, seed, data_digest, log=log)
    if isinstance(job, dict):
        return job
    plan = train_neural(chain, job.settings, job.out, resume=job.resume, progress=progress)
    log(f"    validation profit {plan.validation_profit:.2f} (step {plan.best_step}), "
        f"{minutes(plan.seconds)}")
    return {**plan.spec, "weights": f"{job.relative}/{NETWORK_NAME}"}


def train_plan(chain: dict[str, Any], settings: Any, out: str) -> dict[str, Any]:
    """A neural policy's training as an executor's task: resumed from the checkpoint in ``out``
    if there is one (a retry after a lost worker), else from the start.

    Returns:
        Its spec, validation profit, best step and seconds.
    """
    from echelon.models.neural import train_neural
    from echelon.sim.config import ChainConfig

    # The stage has checked that a checkpoint there is this plan's; resume continues it.
    plan = train_neural(ChainConfig.from_dict(chain), settings, Path(out), resume=True)
    return {"spec": plan.spec, "validation_profit": plan.validation_profit,
            "best_step": plan.best_step, "seconds": plan.seconds}


def held_out_paths(run: RunConfig) -> np.ndarray:
    """The run's held-out test paths (its test stream; never used to search, collect or train)."""
    rng = np.random.default_rng(run_streams(run.seed).test)
    return run.chain.demand.sample(rng, run.evaluate.episodes, run.chain.periods)


def evaluate_stage(run: RunConfig, folder: Path, search: SearchResult, baselines: dict[str, Any],
                   agents: list[TrainedAgent], *, models: dict[str, Any] | None = None,
                   decentralized: list[Any] = (), log=print) -> dict[str, Any]:
    """Every policy on the same test paths; returns what ``eval.json`` holds.

    ``models`` maps the names of model-based policies to their specs (``model.json``);
    ``decentralized`` holds the joint agents of the decentralized view
    (:class:`echelon.run.decentralized.DecentralizedAgent`).
    """
    from echelon.agents.decentralized import load_agent
    from echelon.evaluation.evaluate import Kind, evaluate_bound, evaluate_policy
    from echelon.policies.families import HeuristicSpec

    paths = held_out_paths(run)
    results = []
    for rank, behaviour in enumerate(behaviours_from_search(run, search)):
        kind = Kind.BEST_EXPERT if rank == 0 else Kind.EXPERT
        label = f"best expert {behaviour.name}" if rank == 0 else f"expert {behaviour.name}"
        results.append(evaluate_policy(run.chain, label, kind, behaviour.policy(run.chain), paths,
                                       {"family": behaviour.family.value, "mode": behaviour.mode.value,
                                        **behaviour.params}))
    for name, saved in baselines.items():
        spec = HeuristicSpec.from_dict(saved)
        results.append(evaluate_policy(run.chain, BASELINES[name].label, Kind.BASELINE,
                                       spec.policy(run.chain), paths,
                                       {"family": spec.family.value, "mode": spec.mode.value,
                                        **spec.params}))
    for name in run.evaluate.baselines:
        baseline = BASELINES[name]
        if baseline.planner is not None:
            log(f"  {baseline.label} on the test paths ...")
            results.append(evaluate_policy(run.chain, baseline.label, Kind.BASELINE,
                                           baseline.planner(run.chain), paths, dict(baseline.params)))
    for variant, algorithm, seed, path in agents:
        results.append(evaluate_policy(run.chain, f"{variant} seed {seed}", Kind.AGENT,
                                       load_agent(path, run.chain, device="cpu"), paths,
                                       {"variant": variant, "algorithm": algorithm, "seed": seed,
                                        "checkpoint": os.path.relpath(path, folder)}))
    for variant, algorithm, reward, seed, joint in decentralized:
        results.append(evaluate_policy(run.chain, f"{variant} seed {seed}", Kind.DECENTRALIZED,
                                       load_agent(joint, run.chain, device="cpu"), paths,
                                       {"variant": variant, "algorithm": algorithm,
                                        "reward": reward, "seed": seed,
                                        "checkpoint": os.path.relpath(joint, folder)}))
    for name, spec in (models or {}).items():
        from echelon.models import policy_from_spec

        log(f"  {name} on the test paths ...")
        results.append(evaluate_policy(run.chain, name, Kind.MODEL,
                                       policy_from_spec(spec, run.chain, base=folder),
                                       paths, {"spec": spec}))
    for name in run.evaluate.baselines:
        if BASELINES[name].bound:
            log(f"  {BASELINES[name].label} on the test paths ...")
            results.append(evaluate_bound(run.chain, paths))
    return {
        "test_paths": {"seed": run.seed, "stream": "test", "episodes": int(len(paths)),
                       "paper_episodes": run.evaluate.paper_episodes},
        "policies": [r.to_dict() for r in results],
    }

