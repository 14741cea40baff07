"""``reproduce``: every stage of a run in order, into its run folder.

    search   -> search.json       the paper's grid (the behaviour policies)
    collect  -> dataset.h5        the mixture-of-experts dataset
    tune     -> baselines.json    strong heuristics tuned on the search stream
    train    -> agents/<variant>-s<seed>/checkpoint.pt, metrics.csv
    decentralized -> stages/<reward>/*.h5, agents/decentralized/*  per-stage logs and agents
    model    -> model.json        the demand fit and the plans in the fitted model
    evaluate -> eval.json         every policy on the same held-out test paths
    report   -> figures/*.png, report.md (with references.json: rows made outside the run)

Each stage is skipped when its output exists for the same inputs, so an interrupted run resumes
where it stopped (a half-trained agent from its last epoch).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from echelon.policies.search import SearchResult
from echelon.run import stages
from echelon.run.baselines import TUNED
from echelon.run.config import RunConfig
from echelon.run.decentralized import decentralized_agents, decentralized_view
from echelon.run.executor import LazyExecutor, Resources, check_executor
from echelon.run.folder import RunFolder, digest, open_run_folder, read_json, write_json



def reproduce(
    run: RunConfig, out: str | os.PathLike, *, progress: bool = True, log=print,
    force: bool = False, executor: str = "local", address: str | None = None,
    references: Sequence[str | os.PathLike] = (),
) -> Path:
    """Runs every stage into ``out``, skipping those already done with the same inputs.

    Nothing is written before the whole configuration is valid; a folder holding a run with
    other settings is refused, or moved aside with ``force`` (see :func:`open_run_folder`).

    Args:
        run: The resolved configuration.
        out: The run folder.
        progress: Progress bars and lines.
        log: Where the stages' lines go.
        force: Rerun changed stages in a folder of another run (what they replace is kept).
        executor: Where the training tasks run: ``local`` (this process) or ``ray``
            (:mod:`echelon.run.executor`); the results are the same files either way.
        address: The Ray cluster to join (default ``RAY_ADDRESS``, else a local instance).
        references: Reference rows (``benchmarks/ppo_reference.py --out``) scored on this
            run's held-out paths, for the report; kept in ``references.json``, so that a rerun
            without them keeps them (a rerun with others sets the old list aside).

    Returns:
        The path of ``report.md``.

    Raises:
        RunFolderError: If ``out`` holds another run (and not ``force``) or is no run folder.
        ValueError: If the executor is unknown, an address is given to the local one, or a
            reference is not one of this run's paths.
        RayNotInstalled: If the ray executor is asked for without Ray installed.
        ExecutorError: If a training task fails for good on the ray executor.
    """
    from echelon.data.dataset_file import load, save

    check_executor(executor, address)

    variants = stages.agent_variants(run)  # validates every algorithm setting before any write
    stages.check_sizes(run)
    rows = []
    if references:
        from echelon.benchmark.run import read_run_reference

        rows = [read_run_reference(path, run) for path in references]
    folder = open_run_folder(run, out, force=force, log=log)
    if rows:
        _keep_references(folder, rows)
    started = time.perf_counter()
    stage_count = 8

    def header(index: int, name: str, detail: str = "") -> None:
        log(f"[{index}/{stage_count}] {name}{': ' + detail if detail else ''} "
            f"(run time so far {stages.minutes(time.perf_counter() - started)})")

    # 1. search
    search_digest = digest("search", run.chain, run.search, run.seed)
    header(1, "search", f"{run.search.space.value} {run.search.family.value} "
           f"({run.search.mode.value}) on {run.search.episodes} paths")

    def run_search_stage() -> SearchResult:
        result = stages.search_stage(run, progress=progress)
        log(f"  best {result.best.params} mean {result.best.mean:.2f}")
        return result

    search = folder.cached("search", search_digest, "search.json", run_search_stage,
                           lambda path, result: write_json(path, result.to_dict()),
                           lambda path: SearchResult.from_dict(read_json(path)), log)

    # 2. collect
    collect_digest = digest("collect", search_digest, run.collect)
    header(2, "collect", f"{run.collect.episodes} episodes of the top {len(search.ranked)}")
    data = folder.cached("collect", collect_digest, "dataset.h5",
                         lambda: stages.collect_stage(run, search), lambda path, d: save(d, path), load, log)

    # 3. tune the strong baselines
    tune_digest = digest("tune", run.chain, run.seed, run.evaluate.tuning_episodes,
                          sorted(set(run.evaluate.baselines) & set(TUNED)))
    header(3, "tune baselines", f"wide searches on {run.evaluate.tuning_episodes} paths")

    def run_tune_stage() -> dict[str, Any]:
        tuned = stages.tune_baselines(run, progress=progress)
        log("  " + ", ".join(f"{k} {v['rank_mean']:.2f}" for k, v in tuned.items()))
        return tuned

    baselines = folder.cached("tune", tune_digest, "baselines.json", run_tune_stage, write_json,
                              read_json, log)

    # 6. the model-based route (its neural plans are tasks of the executor too)
    model_digest = digest("model", collect_digest, run.model, run.evaluate.episodes)

    def run_model_stage(runner, resources) -> dict[str, Any] | None:
        header(6, "model-based route", f"fit {run.model.law} demand to the logs, plan in the model"
               if run.model.enabled else "disabled")
        if not run.model.enabled:
            return None
        return folder.cached("model", model_digest, "model.json",
                              lambda: stages.model_stage(run, data, search, folder=folder,
                                                         data_digest=collect_digest,
                                                         progress=progress, executor=runner,
                                                         resources=resources, log=log),
                              write_json, read_json, log, needs=_plan_weights)

    # 4. train, then 5. the decentralized view
    train_started = time.perf_counter()
    jobs = stages.train_jobs(variants, run.train.seeds, folder.path, collect_digest)
    header(4, "train", f"{len(jobs)} agents: {', '.join(v.name for v in variants)} x seeds "
               f"{list(run.train.seeds)} ({run.train.preset} preset)")
    # Started at its first task, so that a run with nothing left to train starts no cluster.
    runner = LazyExecutor(executor, address=address,
                          run_folder=folder.path.resolve() if executor != "local" else None)
    resources = Resources(**run.train.resources)
    try:
        agents = stages.train_agents(data, jobs, folder, ensemble=run.train.ensemble,
                                     executor=runner, resources=resources,
                                     dataset_path=folder.path / "dataset.h5", progress=progress,
                                     log=log)
        log(f"  ({time.perf_counter() - train_started:.1f} s)")
        view = run.decentralized
        header(5, "decentralized view", f"per-stage logs and agents: "
               f"{', '.join(view.chosen_algorithms(run.train))} x rewards {list(view.rewards)} x "
               f"seeds {list(view.chosen_seeds(run.train))}" if view.enabled else "disabled")
        decentralized = (decentralized_agents(run, folder, data, variants, collect_digest,
                                              executor=runner, resources=resources,
                                              progress=progress, log=log)
                         if view.enabled else [])
        model = run_model_stage(runner, resources)
    finally:
        runner.close()
    models: dict[str, Any] = model["policies"] if model is not None else {}
    train_digest = digest("agents", [job.digest for job in jobs])

    # 7. evaluate
    eval_digest = digest("evaluate", search_digest, tune_digest, train_digest, model_digest,
                          run.evaluate, run.chain, run.seed, run.decentralized)
    header(7, "evaluate", f"every policy on {run.evaluate.episodes} held-out paths")

    def run_evaluate_stage() -> dict[str, Any]:
        evaluation = stages.evaluate_stage(run, folder.path, search, baselines, agents, models=models,
                                           decentralized=decentralized, log=log)
        log(f"  {len(evaluation['policies'])} policies")
        return evaluation

    evaluation = folder.cached("evaluate", eval_digest, "eval.json", run_evaluate_stage,
                               write_json, read_json, log)

    # 8. figures and report (cheap: always redone)
    header(8, "figures and report")
    from echelon.agents.trainer import AgentPolicy
    from echelon.evaluation.report import write_report
    from echelon.run.baselines import BASELINES
    from echelon.sim.rollout import rollout

    inventory = None
    iql = [a for a in agents if a.variant == "iql"]
    if iql:  # Figure 4: the first IQL seed and the best expert on the first test path
        path = stages.held_out_paths(run)[:1]
        policies = (AgentPolicy(iql[0].checkpoint, run.chain, device="cpu"),
                    stages.behaviours_from_search(run, search)[0].policy(run.chain))
        on_hand = [rollout(run.chain, p, path, record=True).trajectory["on_hand"][0] for p in policies]
        inventory = (on_hand[0], on_hand[1], (f"iql seed {iql[0].seed}", "best expert"), path[0])
    reference = BASELINES["time-aware"].label
    neural_inventory, neural_orders = _neural_figures(run, folder.path, evaluation, baselines,
                                                      reference)
    report = write_report(run, folder.path, evaluation, search, baselines, agents, inventory,
                          model if run.model.enabled else None, reference=reference,
                          neural_inventory=neural_inventory, neural_orders=neural_orders,
                          decentralized_view=decentralized_view(run, folder.path, evaluation,
                                                                search, baselines, agents,
                                                                decentralized),
                          references=_kept_references(folder.path, log))
    log(f"done in {stages.minutes(time.perf_counter() - started)}: {report}")
    return report


# The states of this many held-out paths show what a neural policy learned (a few thousand
# points per panel: dense enough to see the rule, sparse enough to see the points).
_NEURAL_MAP_PATHS = 50


class _PositionRecorder:
    """A policy that notes the echelon inventory position of every state it is asked to act in."""

    def __init__(self, chain, policy) -> None:
        self.chain, self.policy = chain, policy
        self.reads_observation = policy.reads_observation
        self.positions: list = []  # one (N, S) array per period

    def act(self, obs, state):
        from echelon.sim.core import echelon_inventory_position

        self.positions.append(echelon_inventory_position(self.chain, state))
        return self.policy.act(obs, state)


def _neural_figures(run: RunConfig, folder: Path, evaluation: dict[str, Any],
                    baselines: dict[str, Any], reference: str) -> tuple[tuple | None, dict | None]:
    """Step 7's data for the neural figures: the best neural policy from the logs against the
    tuned time-aware base-stock on the first held-out path, and its orders against the echelon
    position on the first paths; (None, None) without a neural policy from the logs.

    Returns:
        ``write_report``'s ``neural_inventory`` (None without the tuned time-aware base-stock)
        and ``neural_orders``.
    """
    import numpy as np

    from echelon.evaluation.evaluate import PolicyResult
    from echelon.evaluation.report import best_neural_from_logs
    from echelon.models.planning import policy_from_spec
    from echelon.policies.families import HeuristicSpec
    from echelon.sim.rollout import rollout

    best = best_neural_from_logs([PolicyResult.from_dict(p) for p in evaluation["policies"]])
    if best is None:
        return None, None
    paths = stages.held_out_paths(run)[:_NEURAL_MAP_PATHS]
    neural = _PositionRecorder(run.chain, policy_from_spec(best.params["spec"], run.chain,
                                                           base=folder))
    trajectory = rollout(run.chain, neural, paths, record=True).trajectory
    orders = {"positions": np.stack(neural.positions, axis=1), "orders": trajectory["action"],
              "label": best.name}
    if "time-aware" not in baselines:
        return None, orders
    tuned = HeuristicSpec.from_dict(baselines["time-aware"])
    on_hand = rollout(run.chain, tuned.policy(run.chain), paths[:1],
                      record=True).trajectory["on_hand"]
    orders.update(reference_levels=tuned.params["z"],
                  reference_last_order_period=tuned.params["last_order_period"],
                  reference_label=reference)
    return (trajectory["on_hand"][0], on_hand[0], (best.name, reference), paths[0]), orders


def _plan_weights(model: dict[str, Any]) -> list[str]:
    """The weight files of the model stage's neural plans (relative to the run folder)."""
    return [spec["weights"] for spec in model.get("policies", {}).values()
            if isinstance(spec, dict) and "weights" in spec]


REFERENCES_FILE = "references.json"


def _keep_references(folder: RunFolder, rows: list[dict[str, Any]]) -> None:
    """Writes the run's reference rows; a different list written before is set aside."""
    path = folder.path / REFERENCES_FILE
    if path.exists():
        try:
            if read_json(path) == rows:
                return
        except (OSError, ValueError):
            pass
        folder.set_aside(REFERENCES_FILE)
    write_json(path, rows)


def _kept_references(folder: Path, log) -> list[dict[str, Any]]:
    """The reference rows kept in the run folder ([] if none; a damaged file is noted)."""
    path = folder / REFERENCES_FILE
    if not path.exists():
        return []
    try:
        rows = read_json(path)
    except (OSError, ValueError) as error:
        rows = error
    keys = ("name", "description", "profits")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and all(k in r for k in keys)
                                             for r in rows):
        log(f"  {path}: not a list of reference rows; the report leaves them out")
        return []
    return rows
