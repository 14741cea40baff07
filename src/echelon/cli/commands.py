"""The handlers of the ``echelon`` subcommands: each reads its parsed arguments, calls the
packages that own the work, and prints a human summary or JSON (``--json``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from echelon._io import check_output
from echelon.evaluation import rollout, summarize
from echelon.policies import EchelonBaseStock, RequestMode
from echelon.policies.search import SearchConfig, run_search
from echelon.sim import ChainConfig, run_streams
from echelon.sim.rollout import rollout_in_blocks


def _dumps(data) -> str:
    """JSON with NaN and infinities as null (``json.dumps`` would write invalid JSON)."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value
    return json.dumps(clean(data), allow_nan=False)


def _interval(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "95% CI n/a (one episode)"
    return f"95% CI [{low:.2f}, {high:.2f}]"


def _add_chain_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env", choices=("v1", "v0"), default="v1",
        help="InvManagement-v1 (lost sales, default) or -v0 (backlog)",
    )


def _chain(args: argparse.Namespace) -> ChainConfig:
    return ChainConfig(backlog=args.env == "v0")


def _cmd_simulate(args: argparse.Namespace) -> int:
    config = _chain(args)
    if len(args.z) != config.stages:
        raise ValueError(f"--z needs {config.stages} levels (one per stage), got {len(args.z)}")
    policy = EchelonBaseStock(config, np.array(args.z, dtype=np.float64), RequestMode(args.mode))
    _check_episodes(config, args.episodes)
    rng = np.random.default_rng(run_streams(args.seed).test)
    demand = config.demand.sample(rng, args.episodes, config.periods)
    start = time.perf_counter()
    # One level set for every episode: blocks of episodes give the one-batch results, faster.
    result = rollout_in_blocks(config, lambda block: policy, demand)
    seconds = time.perf_counter() - start
    summary = summarize(result.profit)
    report = {
        "policy": args.policy,
        "z": list(args.z),
        "mode": args.mode,
        "env": f"InvManagement-{args.env}",
        "seed": args.seed,
        **summary.to_dict(),
        "undiscounted_mean": float(result.undiscounted_profit.mean()),
        "service_level": float(result.service_level.mean()),
        "seconds": seconds,
    }
    if args.json:
        print(_dumps(report))
    else:
        z = " ".join(f"{v:g}" for v in args.z)
        print(
            f"{args.policy} z=[{z}] ({args.mode}) on InvManagement-{args.env}, "
            f"{summary.n} episodes, seed {args.seed}\n"
            f"  profit (discounted, OR-Gym reward): mean {summary.mean:.2f}"
            f"{f'  std {summary.std:.2f}' if math.isfinite(summary.std) else ''}"
            f"  {_interval(summary.ci_low, summary.ci_high)}\n"
            f"  undiscounted profit: mean {report['undiscounted_mean']:.2f}"
            f"  service level: {report['service_level']:.3f}  ({seconds:.2f} s)"
        )
    return 0


def _check_episodes(config: ChainConfig, episodes: int) -> None:
    """Refuses an ``--episodes`` whose paths and rollout would not fit in memory."""
    from echelon._limits import check_memory
    from echelon.sim.demand import demand_bytes
    from echelon.sim.rollout import rollout_bytes

    check_memory(f"{episodes:,} episodes", demand_bytes(episodes, config.periods)
                 + rollout_bytes(config, episodes), reduce="--episodes")


def _cmd_search(args: argparse.Namespace) -> int:
    config = _chain(args)
    if args.space == "paper" and args.family != "base-stock":
        raise ValueError("--space paper is the paper's base-stock grid; use --family base-stock")
    settings = SearchConfig(space=args.space, family=args.family, mode=args.mode,
                            episodes=args.episodes, top_k=args.top)
    start = time.perf_counter()
    result = run_search(config, settings, run_streams(args.seed).search, progress=not args.json)
    seconds = time.perf_counter() - start
    if args.json:
        print(_dumps([c.to_dict() for c in result.ranked]))
        return 0
    family, mode = settings.family, settings.mode
    where = ("the search paths (the paper's protocol)" if args.space == "paper"
             else f"{result.rank_episodes} separate ranking paths")
    print(
        f"{family.value} ({mode.value}) on InvManagement-{args.env}, {args.space} space: "
        f"{result.evaluated:,} settings on {result.search_episodes} paths, seed {args.seed}, "
        f"{seconds:.1f} s\nbest {len(result.ranked)}, mean profit on {where}:"
    )
    for rank_no, cand in enumerate(result.ranked, 1):
        params = "  ".join(f"{k}={v}" for k, v in cand.params.items())
        extra = f"  (search {cand.search_mean:.2f})" if cand.search_mean is not None else ""
        print(f"  {rank_no}. {params}  mean {cand.mean:.2f}  std {cand.std:.2f}  "
              f"se {cand.se:.2f}{extra}")
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from echelon import pipeline
    from echelon.data import save

    overrides = list(args.set)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.episodes is not None:
        overrides.append(f"collect.episodes={args.episodes}")
    if args.noise_std is not None:
        overrides.append(f"collect.noise_std={args.noise_std}")
    run = pipeline.resolve(args.preset, overrides)
    out = Path(args.out) if args.out else Path("runs") / run.name / "dataset.h5"
    check_output(out, inputs=_preset_files(args.preset), overwrite=args.overwrite,
                 example="dataset.h5")
    pipeline.check_sizes(run)
    start = time.perf_counter()
    result = pipeline.search_stage(run, progress=not args.json)
    data = pipeline.collect_stage(run, result)
    save(data, out)
    seconds = time.perf_counter() - start
    summary = data.summary()
    if args.json:
        print(_dumps({"path": str(out), "seconds": seconds, **summary}))
    else:
        print(f"wrote {out}: {len(data):,} transitions, {data.episodes:,} episodes "
              f"({seconds:.1f} s)")
        _print_summary(summary)
    return 0


def _preset_files(preset: str) -> tuple[str, ...]:
    from echelon.presets import PRESETS

    return () if preset in PRESETS else (preset,)


def _print_summary(summary: dict) -> None:
    print(f"  {summary['transitions']:,} transitions in {summary['episodes']:,} episodes; "
          f"observation size {summary['observation_size']}, {summary['action_size']} actions; "
          f"mean return {summary['mean_return']:.2f}")
    print("  returns per behaviour policy:")
    for p in summary["behaviour_policies"]:
        mean = "n/a" if p["mean_return"] is None else f"{p['mean_return']:.2f}"
        std = "" if p["std_return"] is None else f"  std {p['std_return']:.2f}"
        print(f"    [{p['id']}] {p['name']} {p['params'] or ''}: {p['episodes']} episodes, "
              f"mean {mean}{std}")
    fmt = lambda xs: "[" + ", ".join(f"{x:g}" for x in xs) + "]"  # noqa: E731
    print(f"  action range: min {fmt(summary['action_min'])}  max {fmt(summary['action_max'])}")
    print(f"  observation range: min {fmt(summary['observation_min'])}")
    print(f"                     max {fmt(summary['observation_max'])}")


def _cmd_dataset_inspect(args: argparse.Namespace) -> int:
    from echelon.data import load

    data = load(args.file)
    summary = data.summary()
    if args.json:
        print(_dumps({"path": args.file, **summary}))
    else:
        print(f"{args.file}: schema v{data_schema_version()}")
        _print_summary(summary)
    return 0


def _cmd_benchmark_build(args: argparse.Namespace) -> int:
    from echelon.benchmark import QUALITIES, SCENARIOS, build_suite
    from echelon.benchmark.datasets import MANIFEST

    chosen = {}
    for option, registry in (("scenarios", SCENARIOS), ("qualities", QUALITIES)):
        names = [name.strip() for name in getattr(args, option).split(",") if name.strip()]
        unknown = [name for name in names if name not in registry]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(f"--{option} must list distinct names of {list(registry)}, got "
                             f"{getattr(args, option)!r}")
        chosen[option] = names
    if "mixed" in chosen["qualities"] and args.episodes < 3:
        raise ValueError(f"--episodes must be >= 3 for the mixed quality (one episode of each "
                         f"kind), got {args.episodes}")
    check_output(args.out, folder=True, overwrite=args.overwrite,
                 finished=lambda folder: (folder / MANIFEST).exists(), example=MANIFEST)
    manifest = build_suite(args.out, scenarios=chosen["scenarios"],
                           qualities=chosen["qualities"], episodes=args.episodes,
                           test_episodes=args.test_episodes,
                           log=(lambda line: None) if args.json else print)
    if args.json:
        print(_dumps(manifest))
    else:
        print(f"built {len(manifest['datasets'])} datasets in {args.out} "
              f"({Path(args.out) / MANIFEST}); export one to Minari with echelon dataset "
              f"export-minari {Path(args.out) / manifest['datasets'][0]['file']}")
    return 0


def _cmd_benchmark_run(args: argparse.Namespace) -> int:
    from echelon.agents.registry import ALGORITHMS
    from echelon.benchmark import BenchmarkSettings, run_benchmark

    names = None
    if args.algorithms is not None:
        names = tuple(name.strip() for name in args.algorithms.split(",") if name.strip())
        if not names or len(set(names)) != len(names) or any(n not in ALGORITHMS for n in names):
            raise ValueError(f"--algorithms must list distinct names of {list(ALGORITHMS)}, "
                             f"got {args.algorithms!r}")
    planners = None
    if args.planners is not None:
        from echelon.benchmark.planners import PLANNERS

        planners = () if args.planners.strip() == "none" else tuple(
            name.strip() for name in args.planners.split(",") if name.strip())
        if len(set(planners)) != len(planners) or any(n not in PLANNERS for n in planners):
            raise ValueError(f"--planners must list distinct names of {list(PLANNERS)}, or "
                             f"'none', got {args.planners!r}")
    settings = BenchmarkSettings.of_suite(args.suite, algorithms=names, seeds=args.seeds,
                                          preset=args.preset, epochs=args.epochs,
                                          planners=planners, plan_episodes=args.plan_episodes,
                                          plan_steps=args.plan_steps)
    out = Path(args.out) if args.out else Path(args.folder) / "run"
    results = run_benchmark(args.folder, out, settings, executor=args.executor,
                            address=args.address, references=args.reference,
                            overwrite=args.overwrite, progress=not args.json,
                            log=_quiet if args.json else print)
    if args.json:
        print(_dumps(results))
        return 0
    agents = sum("agent" in s for s in results["scores"])
    plans = len(results["scores"]) - agents
    print(f"{agents} agents{f' and {plans} plans' if plans else ''} on "
          f"{len(results['datasets'])} datasets; IQM of the normalised score (100: the "
          "perfect-information bound), 95% CI:")
    width = max(len(name) for name in results["aggregates"]["bound"])
    for name, row in results["aggregates"]["bound"].items():
        iqm = row["iqm"]
        print(f"  {name:<{width}} {iqm['point']:6.1f} [{iqm['ci_low']:.1f}, {iqm['ci_high']:.1f}]")
    print(f"results: {out / 'results.json'}\nreport: {out / 'report.md'}")
    return 0


def _cmd_dataset_export_minari(args: argparse.Namespace) -> int:
    from echelon.data import export_minari, load

    data = load(args.file)
    if args.id is None:  # a benchmark dataset's own id, else the mixture's
        benchmark = data.source.get("benchmark")
        args.id = (benchmark.get("id") if isinstance(benchmark, dict) else None) \
            or "echelon/invmanagement-mixture-v0"
    where = export_minari(data, args.id, data_path=args.data_path, overwrite=args.overwrite)
    if args.json:
        print(_dumps({"id": args.id, "path": str(where), "episodes": data.episodes}))
    else:
        print(f"exported {data.episodes:,} episodes of {args.file} as Minari dataset {args.id} "
              f"({where}); load it with minari.load_dataset({args.id!r})")
    return 0


def _cmd_dataset_import(args: argparse.Namespace) -> int:
    from echelon.data import import_log, save

    chain = _chain_file(args.chain) if args.chain else _chain(args)
    out = Path(args.out) if args.out else Path(args.log).with_suffix(".h5")
    inputs = (args.log, *([args.chain] if args.chain else []))
    check_output(out, inputs=inputs, overwrite=args.overwrite, example="dataset.h5")
    data = import_log(args.log, chain)
    save(data, out)
    summary = data.summary()
    if args.json:
        print(_dumps({"path": str(out), **summary}))
    else:
        print(f"imported {args.log} into {out}: rewards recomputed with the "
              f"InvManagement-{'v0' if chain.backlog else 'v1'} chain")
        _print_summary(summary)
    return 0


def _cmd_dataset_split_stages(args: argparse.Namespace) -> int:
    from echelon.data import load
    from echelon.data.stage_split import STAGES_FILE, save_stage_split, split_stages

    from echelon.sim.stage_view import agent_names

    data = load(args.file)
    written = [STAGES_FILE, *(f"{name}.h5" for name in agent_names(data.chain.stages))]
    out = check_output(args.out, folder=True, inputs=(args.file,), overwrite=args.overwrite,
                       finished=lambda folder: any((folder / name).exists() for name in written))
    for name in written[1:]:  # nor may any per-stage file be the input
        check_output(out / name, inputs=(args.file,), overwrite=True)
    datasets = split_stages(data, args.reward)
    manifest = save_stage_split(datasets, out, source_file=args.file)
    stages = [{"agent": d.source["agent"], "path": str(out / f"{d.source['agent']}.h5"),
               "observation_size": d.chain.observation_size, "transitions": len(d),
               "mean_return": float(d.episode_returns().mean())} for d in datasets]
    if args.json:
        print(_dumps({"manifest": str(manifest), "reward": args.reward, "stages": stages}))
        return 0
    print(f"split {args.file} ({data.episodes:,} episodes) into {len(stages)} per-stage datasets "
          f"with the {args.reward} reward: {manifest}")
    for stage in stages:
        print(f"  {stage['agent']:<13} {stage['path']}  observation {stage['observation_size']} "
              f"values, mean return {stage['mean_return']:.2f}")
    return 0


def _chain_file(path: str) -> ChainConfig:
    """A ``--chain`` JSON file of ChainConfig fields."""
    try:
        fields = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"--chain {path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--chain {path}: not a JSON file: {error}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"--chain {path}: must hold a JSON object of chain fields, got "
                         f"{type(fields).__name__}")
    try:
        return ChainConfig.from_dict(fields)
    except (ValueError, TypeError) as error:
        raise ValueError(f"--chain {path}: {error}") from None


def data_schema_version() -> int:
    from echelon.data import SCHEMA_VERSION

    return SCHEMA_VERSION


def _cmd_oracle(args: argparse.Namespace) -> int:
    from echelon.policies.lp import ShrinkingHorizonLP, perfect_information_bound

    config = _chain(args)
    _check_episodes(config, args.episodes)
    rng = np.random.default_rng(run_streams(args.seed).test)
    demand = config.demand.sample(rng, args.episodes, config.periods)
    start = time.perf_counter()
    bound = perfect_information_bound(config, demand)
    report = {"env": f"InvManagement-{args.env}", "seed": args.seed,
              "seconds": time.perf_counter() - start, **summarize(bound).to_dict()}
    if args.slp:
        start = time.perf_counter()
        slp = rollout(config, ShrinkingHorizonLP(config), demand).profit
        report["shrinking_horizon"] = {
            **summarize(slp).to_dict(), "seconds": time.perf_counter() - start,
            "share_of_bound": float(slp.mean() / bound.mean()),
        }
    if args.json:
        print(_dumps(report))
        return 0
    print(f"perfect-information bound on InvManagement-{args.env}, {args.episodes} held-out "
          f"paths, seed {args.seed} ({report['seconds']:.2f} s)\n"
          f"  mean {report['mean']:.2f}  std {report['std']:.2f}  "
          f"95% CI [{report['ci_low']:.2f}, {report['ci_high']:.2f}]")
    if args.slp:
        s = report["shrinking_horizon"]
        print(f"shrinking-horizon LP policy (mean-demand forecast) on the same paths "
              f"({s['seconds']:.2f} s)\n  mean {s['mean']:.2f}  std {s['std']:.2f}  "
              f"95% CI [{s['ci_low']:.2f}, {s['ci_high']:.2f}]  "
              f"{100 * s['share_of_bound']:.1f}% of the bound")
    return 0


def _saved_policies(config: ChainConfig, policies: list[str], agents: list[str]) -> dict:
    """Planned policies and trained agents (decentralized ones too) by name, each checked to act
    in ``config``."""
    from echelon.agents.decentralized import load_agent
    from echelon.models.planning import load_policy
    from echelon.run.saved import saved_agent

    out = {}
    for path in policies:
        out[f"planned {Path(path).name}"] = load_policy(path, config)
    for path in agents:
        agent, chain = saved_agent(path)
        differences = [key for key, _, _ in chain.differences(config)]
        if differences:
            raise ValueError(f"--agent {path}: trained for another chain ({differences} differ)")
        out[agent.variant] = load_agent(agent.checkpoint, config, device="cpu")
    return out


def _cmd_optimum(args: argparse.Namespace) -> int:
    from echelon.models.optimum import optimum_comparison

    config = _chain_file(args.chain)
    _check_episodes(config, args.episodes)
    extra = _saved_policies(config, args.policy, args.agent)
    report = optimum_comparison(config, args.episodes, args.seed, extra, progress=not args.json)
    report = {"chain": args.chain, **report}
    if args.json:
        print(_dumps(report))
        return 0
    best = report["optimum"]
    print(f"exact optimum of {args.chain}: expected discounted profit {best['value']:.3f}\n"
          f"  dynamic programme: {best['states']:,} states x {best['request_vectors']:,} request "
          f"vectors, caps on the inventory positions {best['caps']} (reached at most "
          f"{best['max_position']}), {best['seconds']:.1f} s")
    print(f"on {args.episodes:,} common demand paths of the test stream, seed {args.seed} "
          f"(mean, 95% CI, share of the optimum):")
    rows = {**report["policies"], "perfect information": report["perfect_information"]}
    width = max(len(name) for name in rows)
    for name, row in rows.items():
        params = "  ".join(f"{k}={v}" for k, v in row.get("params", {}).items())
        print(f"  {name:<{width}}  {row['mean']:9.3f}  {_interval(row['ci_low'], row['ci_high'])}"
              f"  {100 * row['share']:6.2f}% [{100 * row['share_ci'][0]:.2f}, "
              f"{100 * row['share_ci'][1]:.2f}]{'  ' + params if params else ''}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from echelon.agents import TrainingDiverged
    from echelon.agents.presets import agent_preset
    from echelon.data import load
    from echelon.run.executor import check_executor

    check_executor(args.executor, args.address)
    seeds = list(args.seeds) if args.seeds else [args.seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must be distinct, got {seeds}")
    overrides = {"device": args.device, "precision": args.precision,
                 "sales_history": args.sales_history, "time_feature": args.time_feature,
                 "action_scaling": args.action_scaling}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    configs = []
    for seed in seeds:
        algo_config, train_config = agent_preset(args.algorithm, args.preset, seed=seed, **overrides)
        configs.append(train_config)
    if args.decentralized is not None:
        if args.sales_history:
            raise ValueError("--sales-history must be 0 with --decentralized: a stage sees its "
                             "own orders and stock, not the retail sales")
        return _train_decentralized(args, algo_config, configs)
    if args.seeds:
        parent = Path(args.out) if args.out else Path(args.dataset).parent / "agents"
        outs = [parent / f"{args.algorithm}-s{seed}" for seed in seeds]
    else:
        outs = [Path(args.out) if args.out
                else Path(args.dataset).parent / "agents" / f"{args.algorithm}-s{args.seed}"]
    for out in outs:
        check_output(out, folder=True, inputs=(args.dataset,))
    data = load(args.dataset)
    try:
        results = _train_seeds(args, data, algo_config, configs, outs, args.dataset)
    except TrainingDiverged as error:
        print(f"echelon: error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(_dumps([{"seed": config.seed, "checkpoint": str(result.checkpoint),
                       "seconds": result.seconds, "steps": result.steps,
                       "last_epoch": result.metrics[-1] if result.metrics else {}}
                      for config, result in zip(configs, results, strict=True)]
                     if args.seeds else
                     {"checkpoint": str(results[0].checkpoint), "seconds": results[0].seconds,
                      "steps": results[0].steps,
                      "last_epoch": results[0].metrics[-1] if results[0].metrics else {}}))
        return 0
    for config, result in zip(configs, results, strict=True):
        _print_trained(args, config.seed, args.dataset, result)
    return 0


def _print_trained(args: argparse.Namespace, seed: int, dataset, result, agent: str = "") -> None:
    last = result.metrics[-1] if result.metrics else {}
    losses = "  ".join(f"{k} {v:.4g}" for k, v in last.items() if k.endswith("_loss"))
    print(f"trained {args.algorithm} ({args.preset} preset, seed {seed}){agent} on {dataset}: "
          f"{result.steps:,} steps in {result.seconds:.1f} s\n  {losses}\n"
          f"  checkpoint: {result.checkpoint}\n  metrics: {result.checkpoint.parent / 'metrics.csv'}")


def _trained_dict(result) -> dict:
    return {"checkpoint": str(result.checkpoint), "seconds": result.seconds, "steps": result.steps,
            "last_epoch": result.metrics[-1] if result.metrics else {}}


def _train_decentralized(args: argparse.Namespace, algo_config, configs) -> int:
    """``train --decentralized``: one agent per stage of a per-stage split, each on its own
    stage's file with the same algorithm, preset and seeds (independent learners), into
    ``<out>/<agent>``; a manifest in each seed's folder joins them (``echelon evaluate --agent``
    reads it)."""
    from echelon.agents import TrainingDiverged
    from echelon.agents.checkpoint import CHECKPOINT_NAME
    from echelon.agents.decentralized import write_manifest
    from echelon.data.stage_split import load_stage_split

    split = load_stage_split(args.decentralized)
    root = Path(args.decentralized)
    root = root if root.is_dir() else root.parent
    if args.seeds:
        parent = Path(args.out) if args.out else root / "agents"
        folders = [parent / f"{args.algorithm}-decentralized-s{config.seed}" for config in configs]
    else:
        folders = [Path(args.out) if args.out
                   else root / "agents" / f"{args.algorithm}-decentralized-s{args.seed}"]
    for folder in folders:
        for name in split.names:
            check_output(folder / name, folder=True, inputs=split.files)
    datasets = split.datasets()  # every stage's file checked before any training
    try:
        results = [_train_seeds(args, data, algo_config, configs, [f / name for f in folders], file)
                   for data, name, file in zip(datasets, split.names, split.files, strict=True)]
    except TrainingDiverged as error:
        print(f"echelon: error: {error}", file=sys.stderr)
        return 1
    manifests = [write_manifest(folder, split.chain, args.algorithm, split.reward,
                                [folder / name / CHECKPOINT_NAME for name in split.names],
                                split.names)
                 for folder in folders]
    if args.json:
        reports = [{"seed": config.seed, "manifest": str(manifest),
                    "stages": [{"stage": i, "agent": name, **_trained_dict(stage[s])}
                               for i, (name, stage) in enumerate(zip(split.names, results))]}
                   for s, (config, manifest) in enumerate(zip(configs, manifests, strict=True))]
        print(_dumps(reports if args.seeds else reports[0]))
        return 0
    for s, (config, folder, manifest) in enumerate(zip(configs, folders, manifests, strict=True)):
        for name, file, stage in zip(split.names, split.files, results, strict=True):
            _print_trained(args, config.seed, file, stage[s], f" for the {name}")
        print(f"manifest of the {len(split.names)} agents: {manifest}\n  evaluate with: "
              f"echelon evaluate --agent {folder}")
    return 0


def _train_seeds(args: argparse.Namespace, data, algo_config, configs, outs, dataset_path):
    """The seeds' trainings: in ensembles of ``--ensemble`` here, or as tasks of ``--executor``
    (whose workers read the dataset from ``dataset_path``)."""
    from echelon.agents.trainer import TrainResult, load_checkpoint, train_ensemble
    from echelon.run.executor import make_executor
    from echelon.run.stages import train_group

    size = args.ensemble or len(configs)
    chunks = [range(i, min(i + size, len(configs))) for i in range(0, len(configs), size)]
    if args.executor == "local":
        results = []
        for chunk in chunks:
            results += train_ensemble(data, args.algorithm, algo_config, [configs[i] for i in chunk],
                                      [outs[i] for i in chunk], resume=args.resume,
                                      progress=not args.json)
        return results
    from echelon.agents.checkpoint import CHECKPOINT_NAME, CheckpointError
    from echelon.run.executor import Task

    for out in outs:  # the workers always resume; refuse here what the local trainer refuses
        if (out / CHECKPOINT_NAME).exists() and not args.resume:
            raise CheckpointError(f"{out / CHECKPOINT_NAME} exists; pass --resume to continue "
                                  "that run, or choose another folder")
    outs = [out.resolve() for out in outs]
    runner = make_executor(args.executor, address=args.address, run_folder=outs[0].parent)
    try:
        tasks = [Task(f"{args.algorithm}-s{','.join(str(configs[i].seed) for i in chunk)}",
                      train_group, (str(Path(dataset_path).resolve()), args.algorithm, algo_config,
                                    [configs[i] for i in chunk], [str(outs[i]) for i in chunk]))
                 for chunk in chunks]
        timings = [t for result in runner.run(tasks, log=print if not args.json else _quiet)
                   for t in result]
    finally:
        runner.close()
    return [TrainResult(out / CHECKPOINT_NAME, load_checkpoint(out)["metrics"], seconds, steps)
            for out, (steps, seconds) in zip(outs, timings, strict=True)]


def _quiet(*args) -> None:
    pass


def _run_config(args: argparse.Namespace, preset: str):
    from echelon import pipeline

    overrides = list(getattr(args, "set", []))
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if getattr(args, "sweep", None):
        overrides.append(f"train.sweep={json.dumps(list(args.sweep))}")
    return pipeline.resolve(preset, overrides)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from echelon import pipeline

    run = _run_config(args, args.preset)
    out = Path(args.out) if args.out else Path("runs") / run.name
    report = pipeline.reproduce(run, out, progress=not args.quiet, force=args.force,
                                log=(lambda *a: None) if args.quiet else print,
                                executor=args.executor, address=args.address,
                                references=args.reference)
    if args.quiet:
        print(report)
    return 0


def _cmd_robustness(args: argparse.Namespace) -> int:
    from echelon import pipeline
    from echelon._io import atomic_write_json
    from echelon.evaluation.robustness import parse_shifts, robustness_rows
    from echelon.run.robustness import ROBUSTNESS_FILE, robustness

    folder = Path(args.run_dir)
    if not (folder / "config.toml").is_file():
        raise ValueError(f"{folder}: no config.toml; give the folder of a finished run "
                         "(echelon reproduce --out RUN_DIR)")
    shifts = parse_shifts(args.shifts)
    target = check_output(folder / ROBUSTNESS_FILE, overwrite=args.overwrite,
                          example=ROBUSTNESS_FILE)
    run = pipeline.resolve(folder / "config.toml")
    quiet = args.json
    data = robustness(run, folder, shifts, episodes=args.episodes,
                      log=_quiet if quiet else print)
    atomic_write_json(target, data)
    # The report gets its Robustness section: every stage of the run is done, so only the
    # figures and the report are redone.
    report = pipeline.reproduce(run, folder, progress=False, log=_quiet)
    if quiet:
        print(_dumps({"robustness": str(target), "report": str(report), **data}))
        return 0
    labels, shares, differences = robustness_rows(data["worlds"])
    print(f"{len(labels)} policies in {len(data['worlds'])} shifted worlds, {data['episodes']} "
          f"paths each: share of each world's perfect-information bound")
    for world, column in zip(data["worlds"], shares.T, strict=True):
        finite = column[np.isfinite(column)]
        best = labels[int(np.nanargmax(column))] if finite.size else "none"
        print(f"  {world['label']:<30} best {best} ({100 * np.nanmax(column):.1f}%)"
              if finite.size else f"  {world['label']:<30} no policy could act")
    print(f"written: {target}; the report's Robustness section: {report}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from echelon.evaluation.summary import comparison_rows
    from echelon.run.saved import evaluate_saved

    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()] if args.baselines else []
    run, results = evaluate_saved(args.agent, args.policy, baselines=baselines,
                                  episodes=args.episodes, seed=args.seed,
                                  chain=_chain(args) if args.env else None,
                                  log=(lambda *a: None) if args.json else print)
    rows = comparison_rows(results, np.random.default_rng(np.random.SeedSequence([run.seed, 0xE7A1])))
    if args.json:
        print(_dumps({"episodes": args.episodes, "seed": run.seed, "policies": rows}))
        return 0
    print(f"{len(results)} policies on {args.episodes} held-out paths (seed {run.seed}); paired "
          f"differences to the best expert on the same paths")
    for row in sorted(rows, key=lambda r: -r["mean"]):
        share = f"  {100 * row['share_of_bound']:5.1f}% of bound" if "share_of_bound" in row else ""
        diff = row.get("vs_best_expert")
        versus = (f"  vs expert {diff['mean_difference']:+.2f} [{diff['ci_low']:+.2f}, "
                  f"{diff['ci_high']:+.2f}]") if diff else ""
        print(f"  {row['name']:<34} {row['mean']:8.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
              f"{share}{versus}")
    return 0


def _cmd_fit_demand(args: argparse.Namespace) -> int:
    from echelon.data import load
    from echelon.models import compare_laws, fit_demand

    every = args.law == "all"
    if args.law == "curve" and args.season is None:
        raise ValueError("--law curve needs --season")
    if args.season is not None and args.law not in ("curve", "all"):
        raise ValueError("--season goes with --law curve or all")
    if args.counts != "poisson" and (args.law not in ("curve", "all") or args.season is None):
        raise ValueError("--counts applies to --law curve (or all with --season) only")
    if args.law == "regimes" and args.regimes is None:
        raise ValueError("--law regimes needs --regimes")
    if args.regimes is not None and args.law not in ("regimes", "all"):
        raise ValueError("--regimes goes with --law regimes or all")
    if args.regimes is not None and not 2 <= args.regimes <= 6:
        raise ValueError(f"--regimes must be an integer in [2, 6], got {args.regimes}")
    data = load(args.dataset)
    if every and (args.season is not None or args.regimes is not None):
        return _compare_engines(args, data, compare_laws(data))
    if args.law == "regimes":
        from echelon.models.regime_fit import fit_regimes

        fit = fit_regimes(data, args.regimes)
        if args.json:
            print(_dumps(fit.to_dict()))
            return 0
        print(f"{args.dataset}: {fit.observations:,} periods, {fit.censored:,} sold out; "
              f"{fit.name}, AIC {fit.aic:.1f}, long-run mean {fit.params['mean']:.3f}")
        for i, (rate, row) in enumerate(zip(fit.law.rates, fit.law.transition, strict=True)):
            print(f"  regime {i}: rate {rate:.3f}{_bracket(fit.ci.get(f'rates[{i}]'))}, stays "
                  f"{row[i]:.3f}{_bracket(fit.ci.get(f'transition[{i}][{i}]'))}, next regime "
                  + " ".join(f"{p:.3f}" for p in row))
        print(f"  {fit.period_check.summary()}")
        return 0
    if args.law == "curve":
        from echelon.models.curve_fit import fit_curve

        fit = fit_curve(data, args.season, counts=args.counts)
        if args.json:
            print(_dumps(fit.to_dict()))
            return 0
        print(f"{args.dataset}: {fit.observations:,} periods, {fit.censored:,} sold out; "
              f"{fit.name}, AIC {fit.aic:.1f}")
        for name, value in fit.params.items():
            print(f"  {name:<10} {value:.4g}{_bracket(fit.ci.get(name))}")
        print(f"  {fit.period_check.summary()}")
        return 0
    fits = compare_laws(data) if args.law == "all" else [fit_demand(data, args.law)]
    if args.json:
        print(_dumps([fit.to_dict() for fit in fits]))
        return 0
    first = fits[0]
    print(f"{args.dataset}: {first.observations:,} periods, {first.censored:,} sold out "
          f"(demand censored there; {first.method} logs)")
    for fit in fits:
        mean_ci = fit.ci.get("mean", (float("nan"), float("nan")))
        naive = (f"naive {fit.naive.params['mean']:.2f}" if fit.naive else f"naive: {fit.naive_error}")
        flag = "  MISFIT" if fit.goodness_of_fit.misspecified else ""
        print(f"  {fit.name:<17} mean {fit.params['mean']:.3f} [{mean_ci[0]:.3f}, {mean_ci[1]:.3f}]  "
              f"{naive}  AIC {fit.aic:.1f}  fit p {fit.goodness_of_fit.p_value:.3g}{flag}")
    return 0


def _compare_engines(args: argparse.Namespace, data, laws: list) -> int:
    """``fit-demand --law all`` with engines: the i.i.d. laws and the engines asked for, one
    AIC ranking (every fit maximises the same censored likelihood of the same periods)."""
    engines = []
    if args.season is not None:
        from echelon.models.curve_fit import fit_curve

        engines.append(fit_curve(data, args.season, counts=args.counts))
    if args.regimes is not None:
        from echelon.models.regime_fit import fit_regimes

        engines.append(fit_regimes(data, args.regimes))
    if args.json:
        print(_dumps({"laws": [fit.to_dict() for fit in laws],
                      "engines": [fit.to_dict() for fit in engines]}))
        return 0
    rows = [(fit.aic, fit.name, fit.params["mean"], fit.goodness_of_fit.p_value, "fit p")
            for fit in laws]
    rows += [(fit.aic, fit.name, fit.params["mean"], fit.period_check.p_value, "period-check p")
             for fit in engines]
    print(f"{args.dataset}: {laws[0].observations:,} periods, {laws[0].censored:,} sold out; "
          "laws and engines by AIC (smaller is better):")
    width = max(len(name) for _, name, *_ in rows)
    for aic, name, mean, p, test in sorted(rows):
        print(f"  {name:<{width}}  AIC {aic:10.1f}  mean {mean:8.3f}  {test} {p:.3g}")
    return 0


def _bracket(interval: tuple[float, float] | None) -> str:
    """An engine fit's interval, to follow its estimate ("" without one)."""
    return "" if interval is None else f" [{interval[0]:.4g}, {interval[1]:.4g}]"


def _cmd_plan(args: argparse.Namespace) -> int:
    from echelon.data import load
    from echelon.models import fit_demand, fitted_chain, plan_time_aware, rolling_lp_spec, save_spec
    from echelon.models.planning import SPEC_FILE

    neural = args.family == "neural"
    for name in ("architecture", "steps", "batch", "units", "sales_history", "resume",
                 "warm_start"):
        if not neural and getattr(args, name) != _neural_defaults()[name]:
            raise ValueError(f"--{name.replace('_', '-')} applies to --family neural only")
    check_output(args.out, folder=True, inputs=(args.dataset,), overwrite=args.overwrite,
                 finished=lambda folder: (folder / SPEC_FILE).exists())
    data = load(args.dataset)
    fit = fit_demand(data, args.law)
    model = fitted_chain(data, fit)
    seed = np.random.SeedSequence([args.seed, 0x91A7])
    if neural:
        from echelon.models.neural import NeuralPlanDiverged, NeuralSettings, train_neural

        settings = NeuralSettings(architecture=args.architecture, steps=args.steps,
                                  batch=args.batch, units=args.units, seed=args.seed,
                                  sales_history=args.sales_history)
        extra = {"fit": {"law": fit.name, "params": fit.params}}
        teacher = None
        if args.warm_start:
            teacher = _saved_policies(data.chain, [], [args.warm_start])
            teacher = next(iter(teacher.values()))
            extra["warm_start"] = str(Path(args.warm_start).resolve())
        try:
            plan = train_neural(model, settings, args.out, resume=args.resume,
                                replace=args.overwrite, progress=not args.json,
                                extra_spec=extra, teacher=teacher)
        except NeuralPlanDiverged as error:
            print(f"echelon: error: {error}", file=sys.stderr)
            return 1
        spec, path = plan.spec, Path(args.out) / SPEC_FILE
        done = (f"trained the {args.architecture} network ({plan.best_step} steps kept, "
                f"{plan.seconds:.0f} s); validation profit in the model {plan.validation_profit:.2f}")
    elif args.family == "time-aware":
        spec = plan_time_aware(model, seed, args.episodes, progress=not args.json).spec
        path, done = save_spec(spec, args.out), f"planned {args.family} in that model"
    else:
        spec = rolling_lp_spec(model.demand, args.scenarios, int(seed.generate_state(1)[0]))
        path, done = save_spec(spec, args.out), f"planned {args.family} in that model"
    if args.json:
        print(_dumps({"policy": str(path), "spec": spec, "fit": fit.to_dict()}))
    else:
        print(f"fitted {fit.name} demand, mean {fit.params['mean']:.2f} ({fit.censored:,} censored "
              f"periods); {done}\n  policy: {path}\n  evaluate it "
              f"with: echelon evaluate --policy {args.out}")
    return 0


def _neural_defaults() -> dict:
    """The neural options' defaults, to refuse them with another family."""
    from echelon.models.neural import NeuralSettings

    return {"architecture": NeuralSettings.architecture, "steps": NeuralSettings.steps, "batch": NeuralSettings.batch,
            "units": NeuralSettings.units, "sales_history": NeuralSettings.sales_history,
            "resume": False, "warm_start": None}
