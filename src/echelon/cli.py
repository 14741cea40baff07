"""The ``echelon`` command: one subcommand per stage, a human summary or JSON with ``--json``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from echelon._io import check_output
from echelon.evaluation import rollout, summarize
from echelon.policies import EchelonBaseStock, RequestMode
from echelon.policies.search import Family, SearchConfig, run_search
from echelon.sim import ChainConfig, run_streams


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
    result = rollout(config, policy, demand)
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
    summary = _dataset_summary(data)
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


def _dataset_summary(data) -> dict:
    returns, behaviour = data.episode_returns(), data.episode_behaviour()
    policies = []
    for k, spec in enumerate(data.behaviour_policies or [{"name": "unknown"}]):
        mine = returns[behaviour == (k if data.behaviour_policies else -1)]
        policies.append({
            "id": k if data.behaviour_policies else -1,
            "name": spec.get("name"),
            "params": spec.get("params"),
            "episodes": int(len(mine)),
            "mean_return": float(mine.mean()) if len(mine) else None,
            "std_return": float(mine.std(ddof=1)) if len(mine) > 1 else None,
        })
    return {
        "transitions": len(data),
        "episodes": data.episodes,
        "observation_size": data.chain.observation_size,
        "action_size": data.chain.stages,
        "mean_return": float(returns.mean()),
        "behaviour_policies": policies,
        "action_min": data.actions.min(axis=0).tolist(),
        "action_max": data.actions.max(axis=0).tolist(),
        "observation_min": data.observations.min(axis=0).tolist(),
        "observation_max": data.observations.max(axis=0).tolist(),
        "source": data.source,
    }


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
    summary = _dataset_summary(data)
    if args.json:
        print(_dumps({"path": args.file, **summary}))
    else:
        print(f"{args.file}: schema v{data_schema_version()}")
        _print_summary(summary)
    return 0


def _cmd_dataset_export_minari(args: argparse.Namespace) -> int:
    from echelon.data import export_minari, load

    data = load(args.file)
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
    summary = _dataset_summary(data)
    if args.json:
        print(_dumps({"path": str(out), **summary}))
    else:
        print(f"imported {args.log} into {out}: rewards recomputed with the "
              f"InvManagement-{'v0' if chain.backlog else 'v1'} chain")
        _print_summary(summary)
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


def _cmd_train(args: argparse.Namespace) -> int:
    from echelon.agents import TrainingDiverged, train
    from echelon.agents.presets import agent_preset
    from echelon.data import load

    overrides = {"seed": args.seed, "device": args.device, "precision": args.precision}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    algo_config, train_config = agent_preset(args.algorithm, args.preset, **overrides)
    out = Path(args.out) if args.out else Path(args.dataset).parent / "agents" / f"{args.algorithm}-s{args.seed}"
    check_output(out, folder=True, inputs=(args.dataset,))
    data = load(args.dataset)
    try:
        result = train(data, args.algorithm, algo_config, train_config, out, resume=args.resume,
                       progress=not args.json)
    except TrainingDiverged as error:
        print(f"echelon: error: {error}", file=sys.stderr)
        return 1
    last = result.metrics[-1] if result.metrics else {}
    if args.json:
        print(_dumps({"checkpoint": str(result.checkpoint), "seconds": result.seconds,
                          "steps": result.steps, "last_epoch": last}))
    else:
        losses = "  ".join(f"{k} {v:.4g}" for k, v in last.items() if k.endswith("_loss"))
        print(f"trained {args.algorithm} ({args.preset} preset, seed {args.seed}) on {args.dataset}: "
              f"{result.steps:,} steps in {result.seconds:.1f} s\n  {losses}\n"
              f"  checkpoint: {result.checkpoint}\n  metrics: {result.checkpoint.parent / 'metrics.csv'}")
    return 0


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
                                log=(lambda *a: None) if args.quiet else print)
    if args.quiet:
        print(report)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from echelon import pipeline
    from echelon.agents.trainer import CHECKPOINT_NAME, load_checkpoint
    from echelon.evaluation.evaluate import Kind, PolicyResult
    from echelon.evaluation.stats import paired_comparison, share_of_bound

    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()] if args.baselines else []
    overrides = [f"evaluate.episodes={args.episodes}",
                 f"evaluate.paper_episodes={min(100, args.episodes)}",
                 f"evaluate.baselines={json.dumps(baselines)}"]
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    run = pipeline.resolve("paper", overrides)
    agents = []
    chains: dict[str, ChainConfig] = {}
    for directory in args.agent:
        path = Path(directory)
        checkpoint = path / CHECKPOINT_NAME if path.is_dir() else path
        saved = load_checkpoint(checkpoint)
        agents.append((path.name if path.is_dir() else path.parent.name, saved["algorithm"],
                       saved["train_config"]["seed"], checkpoint.resolve()))
        chains[str(checkpoint)] = ChainConfig.from_dict(saved["chain"])
    run = dataclasses.replace(run, chain=_agents_chain(chains, _chain(args) if args.env else None))
    from echelon.models import load_spec
    from echelon.models.planning import load_policy

    for path in args.policy:
        load_policy(path, run.chain)  # refuses a damaged spec before any work
    models = {f"planned {Path(p).name}": load_spec(p) for p in args.policy}
    search = pipeline.search_stage(run)
    tuned = pipeline.tune_baselines(run)
    evaluation = pipeline.evaluate_stage(run, Path.cwd(), search, tuned, agents, models=models,
                                         log=(lambda *a: None) if args.json else print)
    results = [PolicyResult.from_dict(p) for p in evaluation["policies"]]
    expert = next(r for r in results if r.kind is Kind.BEST_EXPERT)
    bound = next((r for r in results if r.kind is Kind.BOUND), None)
    rng = np.random.default_rng(np.random.SeedSequence([run.seed, 0xE7A1]))
    rows = []
    for r in results:
        s = summarize(r.profit)
        row = {"name": r.name, "kind": r.kind.value, **s.to_dict(),
               "undiscounted_mean": float(r.undiscounted_profit.mean()),
               "service_level": float(r.service_level.mean())}
        if bound is not None:
            row["share_of_bound"] = share_of_bound(r.profit, bound.profit).ratio_of_means
        if r is not expert:
            c = paired_comparison(r.profit, expert.profit, rng)
            row["vs_best_expert"] = c.to_dict()
        rows.append(row)
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


def _agents_chain(chains: dict[str, ChainConfig], asked: ChainConfig | None) -> ChainConfig:
    """The chain an evaluation runs on: the one every agent was trained for.

    Raises:
        ValueError: If agents were trained for different chains, or ``--env`` asks for another.
    """
    from echelon.pipeline import config_differences

    if not chains:
        return asked or ChainConfig()
    (first_file, first), *others = chains.items()
    for file, chain in [*others, *([("--env", asked)] if asked else [])]:
        differences = config_differences(first.to_dict(), chain.to_dict())
        if differences:
            shown = "; ".join(d.replace(" there,", f" for {first_file},").replace(" now", f" for {file}")
                              for d in differences[:6])
            raise ValueError(f"agents are evaluated on the chain they were trained for, and these "
                             f"differ: {shown}")
    return first


def _cmd_fit_demand(args: argparse.Namespace) -> int:
    from echelon.data import load
    from echelon.models import compare_laws, fit_demand

    data = load(args.dataset)
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
        flag = "  MISFIT" if fit.goodness_of_fit.p_value < 0.01 else ""
        print(f"  {fit.name:<9} mean {fit.params['mean']:.3f} [{mean_ci[0]:.3f}, {mean_ci[1]:.3f}]  "
              f"{naive}  AIC {fit.aic:.1f}  fit p {fit.goodness_of_fit.p_value:.3g}{flag}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from echelon.data import load
    from echelon.models import fit_demand, fitted_chain, plan_time_aware, rolling_lp_spec, save_spec

    from echelon.models.planning import SPEC_FILE

    check_output(args.out, folder=True, inputs=(args.dataset,), overwrite=args.overwrite,
                 finished=lambda folder: (folder / SPEC_FILE).exists())
    data = load(args.dataset)
    fit = fit_demand(data, args.law)
    model = fitted_chain(data, fit)
    seed = np.random.SeedSequence([args.seed, 0x91A7])
    if args.family == "time-aware":
        spec = plan_time_aware(model, seed, args.episodes, progress=not args.json).spec
    else:
        spec = rolling_lp_spec(model.demand, args.scenarios, int(seed.generate_state(1)[0]))
    path = save_spec(spec, args.out)
    if args.json:
        print(_dumps({"policy": str(path), "spec": spec, "fit": fit.to_dict()}))
    else:
        print(f"fitted {fit.name} demand, mean {fit.params['mean']:.2f} ({fit.censored:,} censored "
              f"periods); planned {args.family} in that model\n  policy: {path}\n  evaluate it "
              f"with: echelon evaluate --policy {args.out}")
    return 0


def _integer_in(low: int, high: int | None, text: str) -> int:
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer {allowed}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"must be an integer {allowed}, got {text}")
    return value


def _positive_int(text: str) -> int:
    return _integer_in(1, None, text)


def _seed(text: str) -> int:
    from echelon.pipeline import MAX_TRAIN_SEED

    return _integer_in(0, MAX_TRAIN_SEED, text)


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with our one-line refusal: ``echelon: error: ...`` and exit 2, no usage dump."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        command = self.prog.removeprefix("echelon").strip()
        where = f"echelon {command} --help" if command else "echelon --help"
        self.exit(2, f"echelon: error: {' '.join(message.split())} (see '{where}')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="echelon",
        description="Offline learning and honest evaluation of multi-echelon inventory policies.",
    )
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of a failure (also: {DEBUG_ENV}=1)")
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser(
        "simulate", help="run a heuristic policy on held-out demand paths and summarise profit"
    )
    simulate.add_argument("--policy", choices=("base-stock",), default="base-stock")
    simulate.add_argument(
        "--z", type=_finite_float, nargs="+", default=[80.0, 180.0, 40.0],
        help="echelon base-stock levels, one per stage from the retailer up (default: 80 180 40)",
    )
    simulate.add_argument(
        "--mode", choices=[m.value for m in RequestMode], default=RequestMode.CLIP.value,
        help="clip requests to what upstream can ship (default) or request the raw shortfall",
    )
    simulate.add_argument("--episodes", type=_positive_int, default=1000)
    simulate.add_argument("--seed", type=_seed, default=0)
    simulate.add_argument("--json", action="store_true", help="print one JSON object")
    _add_chain_options(simulate)
    simulate.set_defaults(handler=_cmd_simulate)

    search = commands.add_parser(
        "search", help="tune a heuristic family on common demand paths and rank the best"
    )
    search.add_argument("--family", choices=[f.value for f in Family], default="base-stock")
    search.add_argument(
        "--space", choices=("paper", "wide"), default="wide",
        help="paper: the paper's 14^3 base-stock grid; wide: coarse grid + pattern search "
        "over wide bounds, ranked on separate paths (default)",
    )
    search.add_argument("--mode", choices=[m.value for m in RequestMode], default="clip")
    search.add_argument("--episodes", type=_positive_int, default=200,
                        help="demand paths to search on (and as many to rank on)")
    search.add_argument("--top", type=_positive_int, default=5, help="candidates to list")
    search.add_argument("--seed", type=_seed, default=0)
    search.add_argument("--json", action="store_true", help="print the ranked list as JSON")
    _add_chain_options(search)
    search.set_defaults(handler=_cmd_search)

    oracle = commands.add_parser(
        "oracle", help="the perfect-information LP bound (and the shrinking-horizon LP policy)"
    )
    oracle.add_argument("--episodes", type=_positive_int, default=1000)
    oracle.add_argument("--seed", type=_seed, default=0)
    oracle.add_argument("--slp", action="store_true",
                        help="also run the shrinking-horizon LP policy on the same paths")
    oracle.add_argument("--json", action="store_true")
    _add_chain_options(oracle)
    oracle.set_defaults(handler=_cmd_oracle)

    fit = commands.add_parser(
        "fit-demand", help="estimate the demand law from a dataset's sales and on-hand (censored MLE)"
    )
    fit.add_argument("dataset")
    fit.add_argument("--law", choices=("poisson", "binomial", "uniform", "geometric", "all"),
                     default="all", help="one law, or all of them ranked by AIC (default)")
    fit.add_argument("--json", action="store_true")
    fit.set_defaults(handler=_cmd_fit_demand)

    plan = commands.add_parser(
        "plan", help="fit demand to a dataset, then plan a policy in the known dynamics"
    )
    plan.add_argument("dataset")
    plan.add_argument("--family", choices=("time-aware", "rolling-lp"), default="time-aware")
    plan.add_argument("--out", required=True, help="folder for policy.json")
    plan.add_argument("--law", choices=("poisson", "binomial", "uniform", "geometric"), default="poisson")
    plan.add_argument("--episodes", type=_positive_int, default=500,
                      help="model paths to plan on (time-aware)")
    plan.add_argument("--scenarios", type=_positive_int, default=16,
                      help="demand scenarios per period (rolling-lp)")
    plan.add_argument("--seed", type=_seed, default=0)
    plan.add_argument("--overwrite", action="store_true", help="replace a policy.json in --out")
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(handler=_cmd_plan)

    train = commands.add_parser("train", help="train an offline RL agent on a dataset file")
    train.add_argument("algorithm", choices=("iql", "bc", "td3bc", "td3", "cql"))
    train.add_argument("--dataset", required=True, help="an echelon dataset file (.h5)")
    train.add_argument("--preset", choices=("paper", "default", "quick"), default="default")
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--epochs", type=_positive_int, help="override the preset's epochs")
    train.add_argument("--out", help="run folder (default: <dataset folder>/agents/<algo>-s<seed>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    train.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                       help="bfloat16 autocast for the hidden layers: faster, less precise")
    train.add_argument("--json", action="store_true")
    train.set_defaults(handler=_cmd_train)

    reproduce = commands.add_parser(
        "reproduce", help="the whole pipeline: search, dataset, training, evaluation, report"
    )
    reproduce.add_argument("--preset", default="quick", help="quick, paper, or a TOML file")
    reproduce.add_argument("--out", help="run folder (default: runs/<preset name>)")
    reproduce.add_argument("--seed", type=_seed, help="override the preset's run seed")
    reproduce.add_argument("--sweep", action="append", metavar="ALGO.FIELD=V1,V2",
                           help="train extra variants, e.g. --sweep iql.tau=0.5,0.7,0.9")
    reproduce.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help="override any preset field, e.g. --set train.seeds=[0,1,2]")
    reproduce.add_argument("--quiet", action="store_true", help="print only the report's path")
    reproduce.add_argument("--force", action="store_true",
                           help="if --out holds a run, move it aside to <out>.old-<n> and start again")
    reproduce.set_defaults(handler=_cmd_reproduce)

    evaluate = commands.add_parser(
        "evaluate", help="trained agents and strong baselines on the same held-out paths"
    )
    evaluate.add_argument("--agent", nargs="*", default=[], metavar="DIR",
                          help="agent folders (or checkpoint files) from echelon train")
    evaluate.add_argument("--policy", nargs="*", default=[], metavar="DIR",
                          help="planned policies (folders with policy.json from echelon plan)")
    evaluate.add_argument("--baselines", default="paper-best,tuned,time-aware,slp,oracle",
                          help="comma-separated: paper-best, tuned, time-aware, slp, oracle")
    evaluate.add_argument("--episodes", type=_positive_int, default=1000)
    evaluate.add_argument("--seed", type=_seed, default=0)
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument(
        "--env", choices=("v1", "v0"),
        help="the chain (default: the agents' chain, else InvManagement-v1)",
    )
    evaluate.set_defaults(handler=_cmd_evaluate)

    collect = commands.add_parser(
        "collect", help="search the behaviour policies of a preset and log their episodes"
    )
    collect.add_argument("--preset", default="paper", help="quick, paper, or a TOML file")
    collect.add_argument("--out", help="dataset file (default: runs/<preset>/dataset.h5)")
    collect.add_argument("--seed", type=_seed, help="override the preset's seed")
    collect.add_argument("--episodes", type=_positive_int, help="override collect.episodes")
    collect.add_argument("--noise-std", type=_finite_float, help="override collect.noise_std")
    collect.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    collect.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override any preset field, e.g. --set search.top_k=3")
    collect.add_argument("--json", action="store_true")
    collect.set_defaults(handler=_cmd_collect)

    dataset = commands.add_parser("dataset", help="inspect, export and import datasets")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    inspect = dataset_commands.add_parser("inspect", help="size, returns per behaviour, ranges")
    inspect.add_argument("file")
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(handler=_cmd_dataset_inspect)
    export = dataset_commands.add_parser(
        "export-minari", help="write a Minari dataset that minari.load_dataset reads offline"
    )
    export.add_argument("file")
    export.add_argument("--id", default="echelon/invmanagement-mixture-v0",
                        help="Minari id, namespace/name-vN (default: %(default)s)")
    export.add_argument("--data-path", help="Minari's datasets folder (default: MINARI_DATASETS_PATH "
                        "or ~/.minari/datasets)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing dataset id")
    export.add_argument("--json", action="store_true")
    export.set_defaults(handler=_cmd_dataset_export_minari)
    importer = dataset_commands.add_parser(
        "import", help="turn a per-period CSV history into a dataset (docs/log-format.md)"
    )
    importer.add_argument("log", help="the CSV file")
    importer.add_argument("--out", help="dataset file (default: the CSV's name with .h5)")
    importer.add_argument("--chain", help="a JSON file of ChainConfig fields (default: OR-Gym's)")
    importer.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    importer.add_argument("--json", action="store_true")
    _add_chain_options(importer)
    importer.set_defaults(handler=_cmd_dataset_import)
    return parser


DEBUG_ENV = "ECHELON_DEBUG"


def _message(error: BaseException) -> str:
    """One line for a failure: what went wrong, naming the file, field or argument."""
    if isinstance(error, OSError) and not isinstance(error, BrokenPipeError):
        where = f"{error.filename}: " if error.filename else ""
        text = f"{where}{error.strerror or error}"
    elif isinstance(error, (ValueError, ImportError)):
        text = str(error)
    elif isinstance(error, MemoryError):
        text = (f"out of memory ({error or 'no detail'}); reduce the sizes asked for (episodes, "
                "periods), or lower ECHELON_MEMORY_LIMIT_GIB so that such jobs are refused early")
    else:  # not a refusal of ours: a defect, to be reported with its traceback
        text = (f"unexpected {type(error).__name__}: {error} (this is a bug in echelon; rerun with "
                f"--debug or {DEBUG_ENV}=1 for the traceback and report it)")
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``echelon`` command.

    Every failure prints one line, ``echelon: error: ...``, and exits 2 (Ctrl-C: 130; a closed
    pipe, as in ``echelon ... | head``: quietly, 141). ``--debug`` or ``ECHELON_DEBUG=1`` lets the
    traceback through instead.
    """
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("echelon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if debug:
            raise
        # Python would complain again when it flushes stdout at exit; point it at nothing.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except Exception as error:
        if debug:
            raise
        print(f"echelon: error: {_message(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
