"""Neural policies trained through the dynamics, against the best heuristic and the exact optimum.

    .venv/bin/python benchmarks/bench_neural.py                         # everything (about an hour on 2 cores)
    .venv/bin/python benchmarks/bench_neural.py --seeds 2 --steps 100 --small-chains none   # a smoke run
    .venv/bin/python benchmarks/bench_neural.py --parts warm-start --out warm.json           # one part

One run, four parts, every policy scored in the NumPy core on whole units:

1. **From the paper's logs, on the v1 defaults.** The paper preset's grid search and 2,000-episode
   mixture of its top-5 experts (run seed 0), the demand fitted to them by censored maximum
   likelihood; for each architecture and training seed, a neural policy trained in the fitted model
   and one trained on the true law (the reference). Peers on the same held-out paths of the run's
   test stream: the tuned time-aware base-stock (tuned as the reproduction tunes it) and the
   perfect-information bound. Reported: mean profit, the paired difference to the time-aware
   base-stock with a two-level bootstrap interval (training seeds and paths), share of the bound,
   and the fitted-law policy's gap to the true-law one.
2. **Training time and profit against the number of training paths** (batch size at a fixed step
   count), seed 0, in the fitted model.
3. **Straight-through against continuous requests** (seed 0), and **a warm start** from the
   BC actor trained on the same logs (seed 0).
4. **Small chains with a known optimum** (``examples/chains/*.json``): the dynamic programme's
   optimum, the tuned base-stock and time-aware heuristics, neural policies from the true law and
   from logs collected on that chain (the top-5 base-stock experts of a wide search, 2,000
   episodes), IQL and BC trained on the same logs, and the perfect-information bound, on 10,000
   common paths: shares of the optimum, and the gap to the bound split into the value of
   information (bound - optimum) and the policy's own gap (optimum - policy).

Targets (issue): above the tuned time-aware base-stock with a paired 95% interval above zero across
>= 5 seeds on 1,000 paths; >= 95.5% of the bound; the fitted-law policy within 0.3% of the true-law
one; within 0.5% of the DP optimum on the small chains; one seed in under 5 minutes on 2 cores.

Writes ``--out`` (JSON, default ``benchmarks/results/neural.json``) and logs each job as it ends.
Training jobs run in ``--workers`` processes with one thread each.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _neural_job(job: dict) -> dict:
    """Trains one neural policy and scores it on the test paths (in a worker process)."""
    from echelon.models.neural import NeuralSettings, train_neural
    from echelon.sim import ChainConfig
    from echelon.sim.rollout import rollout

    chain = ChainConfig.from_dict(job["train_chain"])
    world = ChainConfig.from_dict(job["chain"])
    teacher = None
    if job.get("teacher"):
        from echelon.agents.policy import AgentPolicy

        teacher = AgentPolicy(job["teacher"], world, device="cpu")
    plan = train_neural(chain, NeuralSettings(**job["settings"]), None, teacher=teacher)
    done = {**{k: v for k, v in job.items()
               if k not in ("paths", "train_chain", "chain", "teacher")},
            "seconds": plan.seconds, "validation_profit": plan.validation_profit,
            "best_step": plan.best_step}
    if "paths" not in job:  # the caller scores it
        return {**done, "network": plan.network}
    return {**done, "profit": rollout(world, plan.policy(world), np.asarray(job["paths"])).profit.tolist()}


def _agent_job(job: dict) -> dict:
    """Trains one offline RL agent on a dataset and scores it on the test paths."""
    from echelon.agents.presets import agent_preset
    from echelon.agents.trainer import train
    from echelon.data import load

    algo_config, train_config = agent_preset(job["algorithm"], "quick", seed=job["seed"],
                                             device="cpu")
    result = train(load(job["dataset"]), job["algorithm"], algo_config, train_config, job["out"])
    return {"name": job["name"], "seconds": result.seconds, "checkpoint": str(result.checkpoint)}


def _logged(results, log):
    for done in results:
        log(f"  {done['part']} {done['architecture']} seed {done['seed']} {done['law']} law"
            f"{' batch ' + str(done.get('batch')) if 'batch' in done else ''}"
            f"{' units ' + done['units'] if 'units' in done else ''}: "
            f"{np.mean(done['profit']):.2f} ({done['seconds']:.0f} s)")
        yield done


def _settings(args, **changes) -> dict:
    from echelon.models.neural import NeuralSettings

    values = {"steps": args.steps, "batch": args.batch}
    values.update(changes)
    return NeuralSettings(**values).to_dict()


def _compare(scores: np.ndarray, peer: np.ndarray, rng) -> dict:
    """Mean of (seeds, paths) scores and its paired difference to a peer, two-level bootstrap."""
    from echelon.evaluation import stats

    mean, (low, high) = stats.seeds_and_paths_ci(scores, rng)
    diff, (dlow, dhigh) = stats.seeds_and_paths_ci(scores - peer[None, :], rng)
    return {"mean": mean, "ci": [low, high], "seed_means": scores.mean(axis=1).tolist(),
            "vs_peer": diff, "vs_peer_ci": [dlow, dhigh]}


def paper_logs_part(args, pool, log) -> dict:
    from echelon.data import save
    from echelon.evaluation.evaluate import evaluate_bound
    from echelon.models import fit_demand, fitted_chain
    from echelon.policies.families import HeuristicSpec
    from echelon.run import stages
    from echelon.run.config import resolve
    from echelon.sim.rollout import rollout

    run = resolve("paper", [f"evaluate.episodes={args.paths}",
                            f"evaluate.paper_episodes={min(100, args.paths)}"])
    started = time.perf_counter()
    search = stages.search_stage(run)
    data = stages.collect_stage(run, search)
    fit = fit_demand(data, "poisson")
    model = fitted_chain(data, fit)
    tuned = stages.tune_baselines(run)["time-aware"]
    paths = stages.held_out_paths(run)
    time_aware = rollout(run.chain, HeuristicSpec.from_dict(tuned).policy(run.chain), paths).profit
    bound = evaluate_bound(run.chain, paths).profit
    log(f"paper's logs: fitted Poisson mean {fit.params['mean']:.3f}; tuned time-aware "
        f"{time_aware.mean():.2f}, bound {bound.mean():.2f} on {len(paths)} paths "
        f"({time.perf_counter() - started:.0f} s)")
    parts = set(args.parts)
    jobs = []
    if "seeds" in parts:
        for architecture in args.architectures:
            for seed in range(args.seeds):
                for law, chain in (("fitted", model), ("true", run.chain)):
                    jobs.append({"part": "seeds", "architecture": architecture, "seed": seed,
                                 "law": law, "train_chain": chain.to_dict(),
                                 "settings": _settings(args, architecture=architecture, seed=seed)})
    if "paths" in parts:
        for batch in args.batch_sweep:
            jobs.append({"part": "paths", "architecture": args.sweep_architecture, "seed": 0,
                         "law": "fitted", "batch": batch, "train_chain": model.to_dict(),
                         "settings": _settings(args, architecture=args.sweep_architecture,
                                               batch=batch)})
    other_units = "straight-through" if args.units == "continuous" else "continuous"
    for architecture in args.architectures if "units" in parts else ():
        jobs.append({"part": "units", "architecture": architecture, "seed": 0, "law": "fitted",
                     "units": other_units, "train_chain": model.to_dict(),
                     "settings": _settings(args, architecture=architecture, units=other_units)})
    # Each part's seed-0 run with the default settings, for the warm start to be compared with.
    if "warm-start" in parts and "seeds" not in parts:
        for architecture in args.architectures:
            jobs.append({"part": "cold", "architecture": architecture, "seed": 0, "law": "fitted",
                         "train_chain": model.to_dict(),
                         "settings": _settings(args, architecture=architecture)})
    for job in jobs:
        job.update(chain=run.chain.to_dict(), paths=paths)
    with tempfile.TemporaryDirectory() as scratch:
        if "warm-start" in parts:
            dataset = save(data, Path(scratch) / "logs.h5")
            (bc,) = pool.map(_agent_job, [{"name": "bc", "algorithm": "bc", "seed": 0,
                                           "dataset": str(dataset),
                                           "out": str(Path(scratch) / "bc")}])
            for architecture in args.architectures:
                jobs.append({"part": "warm start", "architecture": architecture, "seed": 0,
                             "law": "fitted", "teacher": bc["checkpoint"],
                             "train_chain": model.to_dict(), "chain": run.chain.to_dict(),
                             "paths": paths, "settings": _settings(args, architecture=architecture)})
        results = list(_logged(pool.map(_neural_job, jobs), log))

    rng = np.random.default_rng(np.random.SeedSequence([0, 0xBE4C]))
    summary: dict = {"fit_mean": fit.params["mean"], "paths": len(paths),
                     "time_aware": {"mean": float(time_aware.mean()), "params": tuned["params"]},
                     "bound": float(bound.mean()), "architectures": {}}

    def scores(part: str, architecture: str, law: str = "fitted") -> np.ndarray:
        runs = sorted((r for r in results if r["part"] == part and r["law"] == law
                       and r["architecture"] == architecture), key=lambda r: r["seed"])
        return np.array([r["profit"] for r in runs])

    def one(part: str, architecture: str) -> dict:
        (run,) = [r for r in results if r["part"] == part and r["architecture"] == architecture]
        return {"mean": float(np.mean(run["profit"])), "seconds": run["seconds"],
                "validation_profit": run["validation_profit"], "best_step": run["best_step"]}

    for architecture in args.architectures:
        rows: dict = {}
        if "seeds" in parts:
            for law in ("fitted", "true"):
                runs = scores("seeds", architecture, law)
                rows[law] = {**_compare(runs, time_aware, rng),
                             "share_of_bound": float(runs.mean() / bound.mean()),
                             "seconds": [r["seconds"] for r in results if r["part"] == "seeds"
                                         and r["law"] == law and r["architecture"] == architecture]}
            fitted, true = scores("seeds", architecture), scores("seeds", architecture, "true")
            gap, (low, high) = stats_interval(100 * (fitted - true) / abs(true.mean()), rng)
            rows["fitted_minus_true_percent"] = {"mean": gap, "ci": [low, high]}
        cold = (float(scores("seeds", architecture)[0].mean()) if "seeds" in parts
                else one("cold", architecture)["mean"] if "warm-start" in parts else None)
        if "units" in parts:
            rows["units"] = {"default": args.units, "default_seed0_mean": cold,
                             other_units: one("units", architecture)}
        if "warm-start" in parts:
            rows["warm_start"] = {**one("warm start", architecture), "cold_seed0_mean": cold}
        summary["architectures"][architecture] = rows
    summary["paths_sweep"] = [
        {"batch": r["batch"], "steps": args.steps, "training_paths": r["batch"] * args.steps,
         "mean": float(np.mean(r["profit"])), "validation_profit": r["validation_profit"],
         "seconds": r["seconds"]}
        for r in results if r["part"] == "paths"]
    summary["seconds"] = time.perf_counter() - started
    return summary


def stats_interval(scores: np.ndarray, rng) -> tuple[float, tuple[float, float]]:
    """Mean of (seeds, paths) values with its two-level bootstrap interval."""
    from echelon.evaluation import stats

    mean, interval = stats.seeds_and_paths_ci(scores, rng)
    return mean, interval


def small_chains_part(args, pool, log) -> list[dict]:
    from echelon.data import save
    from echelon.models import fit_demand, fitted_chain
    from echelon.models.optimum import optimum_comparison, policy_value, solve_optimum
    from echelon.policies.families import HeuristicSpec
    from echelon.policies.base_stock import RequestMode
    from echelon.policies.search import Family, SearchConfig, Space
    from echelon.run import stages
    from echelon.run.config import resolve
    from echelon.agents.policy import AgentPolicy
    from echelon.models.neural import NeuralPolicy
    from echelon.sim import ChainConfig

    out = []
    for file in args.small_chains:
        chain = ChainConfig.from_dict(json.loads(Path(file).read_text()))
        started = time.perf_counter()
        result = solve_optimum(chain)
        run = dataclasses.replace(
            resolve("quick", [f"collect.episodes={args.small_logs}"]), chain=chain,
            search=SearchConfig(space=Space.WIDE, family=Family.BASE_STOCK, mode=RequestMode.CLIP,
                                episodes=200, top_k=5))
        data = stages.collect_stage(run, stages.search_stage(run))
        model = fitted_chain(data, fit_demand(data, "poisson"))
        with tempfile.TemporaryDirectory() as scratch:
            dataset = save(data, Path(scratch) / "logs.h5")
            jobs = [{"part": "small", "architecture": architecture, "seed": 0, "law": law,
                     "train_chain": train_chain.to_dict(), "chain": chain.to_dict(),
                     "settings": _settings(args, architecture=architecture)}
                    for architecture in args.architectures
                    for law, train_chain in (("true", chain), ("fitted", model))]
            agents = [{"name": f"{algorithm} from logs (seed 0)", "algorithm": algorithm,
                       "seed": 0, "dataset": str(dataset), "out": str(Path(scratch) / algorithm)}
                      for algorithm in ("iql", "bc")]
            policies = {}
            for done in pool.map(_neural_job, jobs):
                source = "true law" if done["law"] == "true" else "from logs"
                policies[f"neural {done['architecture']} ({source})"] = NeuralPolicy(
                    done["network"], chain)
            for done in pool.map(_agent_job, agents):
                policies[done["name"]] = AgentPolicy(done["checkpoint"], chain, device="cpu")
            comparison = optimum_comparison(chain, args.small_paths, 0, policies, result=result)
        optimum = comparison["optimum"]["value"]
        bound = comparison["perfect_information"]["mean"]
        rows = {}
        for name, row in comparison["policies"].items():
            rows[name] = {"mean": row["mean"], "share_of_optimum": row["share"],
                          "share_ci": row["share_ci"], "policy_gap": optimum - row["mean"],
                          "difference_to_optimal": row["difference"],
                          "difference_se": row["difference_se"]}
        # A policy of the state alone has an exact value, found by the DP's forward propagation.
        exact = {**{name: policy for name, policy in policies.items()
                    if not policy.reads_observation},
                 **{family: HeuristicSpec(Family(family), RequestMode.CLIP,
                                          comparison["policies"][family]["params"]).policy(chain)
                    for family in ("base-stock", "time-aware")}}
        for name, policy in exact.items():
            try:
                value = policy_value(chain, policy)
            except ValueError as error:  # a policy that leaves the solved table (orders too much)
                rows[name]["exact_error"] = str(error)
                continue
            rows[name].update(exact_value=value, exact_share=value / optimum)
        entry = {"chain": str(Path(file).relative_to(ROOT)) if Path(file).is_relative_to(ROOT)
                 else str(file), "optimum": optimum, "bound": bound,
                 "value_of_information": bound - optimum, "dp_seconds": result.seconds,
                 "policies": rows, "seconds": time.perf_counter() - started}
        log(f"{entry['chain']}: optimum {optimum:.3f}, bound {bound:.3f} (value of information "
            f"{bound - optimum:.3f}); " + "; ".join(
                f"{name} {100 * r['share_of_optimum']:.2f}%" for name, r in rows.items()))
        out.append(entry)
    return out


def _relative(path: str) -> str:
    """A path inside the repository as the repository sees it (results travel between machines)."""
    return str(Path(path).resolve().relative_to(ROOT)) if Path(path).resolve().is_relative_to(ROOT) \
        else str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="default: the planner's")
    parser.add_argument("--batch", type=int, default=None, help="default: the planner's")
    parser.add_argument("--units", default=None)
    parser.add_argument("--architectures", default="mlp,levels")
    parser.add_argument("--paths", type=int, default=1000, help="held-out paths (v1 defaults)")
    parser.add_argument("--batch-sweep", default="64,256,1024")
    parser.add_argument("--sweep-architecture", default="levels")
    parser.add_argument("--small-chains", default="examples/chains/*.json",
                        help="a glob of chain files, or none")
    parser.add_argument("--small-paths", type=int, default=10_000)
    parser.add_argument("--small-logs", type=int, default=2000)
    parser.add_argument("--parts", default="seeds,paths,units,warm-start,small",
                        help="which parts to run (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "neural.json"))
    args = parser.parse_args()
    from echelon.models.neural import NeuralSettings

    defaults = NeuralSettings()
    args.steps = args.steps or defaults.steps
    args.batch = args.batch or defaults.batch
    args.units = args.units or defaults.units
    args.architectures = [a for a in args.architectures.split(",") if a]
    args.batch_sweep = [int(b) for b in args.batch_sweep.split(",") if b]
    args.parts = [p for p in args.parts.split(",") if p]
    args.small_chains = ([] if args.small_chains == "none" or "small" not in args.parts
                         else sorted(str(p) for p in ROOT.glob(args.small_chains)))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _one_thread()

    def log(line: str) -> None:
        print(line, flush=True)

    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"),
                             initializer=_one_thread) as pool:
        paper = ({"seeds", "paths", "units", "warm-start"} & set(args.parts))
        settings = {**vars(args), "out": _relative(args.out),
                    "small_chains": [_relative(c) for c in args.small_chains]}
        results = {"date": time.strftime("%Y-%m-%d"), "settings": settings,
                   "paper_logs": paper_logs_part(args, pool, log) if paper else None,
                   "small_chains": small_chains_part(args, pool, log)}
    results["seconds"] = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from echelon._io import atomic_write_json

    atomic_write_json(out, results)
    log(f"wrote {out} ({results['seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
