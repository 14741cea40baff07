"""The ``echelon`` command: one subcommand per stage, a human summary or JSON with ``--json``.

Every failure prints one line, ``echelon: error: ...``, and exits 2; see :func:`main`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

from echelon.cli.commands import (
    _add_chain_options,
    _cmd_benchmark_build,
    _cmd_benchmark_run,
    _cmd_collect,
    _cmd_dataset_export_minari,
    _cmd_dataset_import,
    _cmd_dataset_inspect,
    _cmd_dataset_split_stages,
    _cmd_evaluate,
    _cmd_fit_demand,
    _cmd_oracle,
    _cmd_optimum,
    _cmd_plan,
    _cmd_reproduce,
    _cmd_robustness,
    _cmd_search,
    _cmd_simulate,
    _cmd_train,
)
from echelon.policies import RequestMode
from echelon.policies.search import Family
from echelon.sim.stage_view import StageReward


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


def _non_negative_int(text: str) -> int:
    return _integer_in(0, None, text)


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


def _options(*adders) -> argparse.ArgumentParser:
    """A parent parser holding shared options, for ``add_parser(parents=[...])``."""
    parent = _Parser(add_help=False)
    for add in adders:
        add(parent)
    return parent


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def _seed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=_seed, default=0, help="the run seed (default: 0)")


def _episodes_option(default: int, what: str = "held-out demand paths"):
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--episodes", type=_positive_int, default=default,
                            help=f"{what} (default: {default})")
    return add


def _preset_options(default: str):
    def add(parser: argparse.ArgumentParser) -> None:
        from echelon.presets import PRESETS

        parser.add_argument("--preset", default=default,
                            help=f"{', '.join(PRESETS)}, or a TOML file (default: {default})")
        parser.add_argument("--seed", type=_seed, help="override the preset's run seed")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override any preset field, e.g. --set train.seeds=[0,1,2]")
    return add


def _executor_options(parser: argparse.ArgumentParser) -> None:
    from echelon.run.executor import EXECUTORS

    parser.add_argument("--executor", choices=tuple(EXECUTORS), default="local",
                        help="where training and the neural plans run: local (this process), "
                        "processes (a pool of one-task-per-core workers on this machine) or ray "
                        "(a Ray cluster; pip install 'echelon[ray]') (default: local)")
    parser.add_argument("--address", help="with --executor ray: the cluster to join (default: "
                        "RAY_ADDRESS, else a local Ray instance sized to this machine)")


def _overwrite_option(what: str):
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--overwrite", action="store_true", help=f"replace {what}")
    return add


def build_parser() -> argparse.ArgumentParser:
    """The ``echelon`` command; choices come from the registries (algorithms, presets, laws,
    families, baselines)."""
    from echelon.agents.presets import PRESETS as AGENT_PRESETS
    from echelon.agents.registry import ALGORITHMS
    from echelon.models.demand_fit import LAWS
    from echelon.models.neural import ARCHITECTURES, NeuralSettings
    from echelon.evaluation.robustness import SHIFTS
    from echelon.run.config import BASELINES, DEFAULT_BASELINES

    parser = _Parser(
        prog="echelon",
        description="Offline learning and honest evaluation of multi-echelon inventory policies.",
    )
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of a failure (also: {DEBUG_ENV}=1)")
    commands = parser.add_subparsers(dest="command", required=True)
    json_, seed, chain = _options(_json_option), _options(_seed_option), _options(_add_chain_options)
    modes = [m.value for m in RequestMode]

    def command(name: str, handler, help: str, *parents: argparse.ArgumentParser):
        sub = commands.add_parser(name, help=help, parents=list(parents))
        sub.set_defaults(handler=handler)
        return sub

    simulate = command("simulate", _cmd_simulate,
                       "run a heuristic policy on held-out demand paths and summarise profit",
                       _options(_episodes_option(1000)), seed, json_, chain)
    simulate.add_argument("--policy", choices=("base-stock",), default="base-stock")
    simulate.add_argument(
        "--z", type=_finite_float, nargs="+", default=[80.0, 180.0, 40.0],
        help="echelon base-stock levels, one per stage from the retailer up (default: 80 180 40)",
    )
    simulate.add_argument(
        "--mode", choices=modes, default=RequestMode.CLIP.value,
        help="clip requests to what upstream can ship (default) or request the raw shortfall",
    )

    search = command("search", _cmd_search,
                     "tune a heuristic family on common demand paths and rank the best",
                     _options(_episodes_option(200, "demand paths to search on (and as many to "
                                                    "rank on)")), seed, json_, chain)
    search.add_argument("--family", choices=[f.value for f in Family], default="base-stock")
    search.add_argument(
        "--space", choices=("paper", "wide"), default="wide",
        help="paper: the paper's 14^3 base-stock grid; wide: coarse grid + pattern search "
        "over wide bounds, ranked on separate paths (default)",
    )
    search.add_argument("--mode", choices=modes, default="clip")
    search.add_argument("--top", type=_positive_int, default=5, help="candidates to list")

    oracle = command("oracle", _cmd_oracle,
                     "the perfect-information LP bound (and the shrinking-horizon LP policy)",
                     _options(_episodes_option(1000)), seed, json_, chain)
    oracle.add_argument("--slp", action="store_true",
                        help="also run the shrinking-horizon LP policy on the same paths")

    optimum = command("optimum", _cmd_optimum,
                      "the exact optimum of a small lost-sales chain (dynamic programming) beside "
                      "tuned heuristics and the perfect-information bound",
                      _options(_episodes_option(10_000)), seed, json_)
    optimum.add_argument("--chain", required=True,
                         help="a JSON file of ChainConfig fields (lost sales, small capacities)")
    optimum.add_argument("--policy", nargs="*", default=[], metavar="DIR",
                         help="planned policies to score too (folders from echelon plan)")
    optimum.add_argument("--agent", nargs="*", default=[], metavar="DIR",
                         help="trained agents to score too (folders from echelon train)")

    fit = command("fit-demand", _cmd_fit_demand,
                  "estimate the demand law from a dataset's sales and on-hand (censored MLE)", json_)
    fit.add_argument("dataset")
    fit.add_argument("--law", choices=(*LAWS, "all", "curve", "regimes"), default="all",
                     help="one law, all of them ranked by AIC (default; with --season and "
                     "--regimes the engines too), curve: a level, a season of --season periods "
                     "and a trend (the curve engine), or regimes: Poisson demand switching "
                     "between --regimes hidden regimes")
    fit.add_argument("--regimes", type=_positive_int,
                     help="with --law regimes (or all): the number of regimes, in [2, 6]")
    fit.add_argument("--season", type=_non_negative_int,
                     help="with --law curve (or all): the season's length in periods (0: none)")
    fit.add_argument("--counts", choices=("poisson", "negative-binomial"), default="poisson",
                     help="with --law curve (or all): the counts around the curve (default: "
                     "poisson)")

    plan = command("plan", _cmd_plan, "fit demand to a dataset, then plan a policy in the known "
                   "dynamics", seed, json_, _options(_overwrite_option("a policy.json in --out")))
    plan.add_argument("dataset")
    plan.add_argument("--family", choices=("time-aware", "rolling-lp", "neural"),
                      default="time-aware")
    plan.add_argument("--out", required=True, help="folder for policy.json")
    plan.add_argument("--law", choices=tuple(LAWS), default="poisson")
    plan.add_argument("--episodes", type=_positive_int, default=500,
                      help="model paths to plan on (time-aware)")
    plan.add_argument("--scenarios", type=_positive_int, default=16,
                      help="demand scenarios per period (rolling-lp)")
    neural = plan.add_argument_group("neural", "a network trained through the fitted model's "
                                     "dynamics (--family neural)")
    neural.add_argument("--architecture", choices=tuple(ARCHITECTURES),
                        default=NeuralSettings.architecture,
                        help="; ".join(f"{k}: {v.description}" for k, v in ARCHITECTURES.items()))
    neural.add_argument("--steps", type=_positive_int, default=NeuralSettings.steps,
                        help="Adam steps (default: %(default)s)")
    neural.add_argument("--batch", type=_positive_int, default=NeuralSettings.batch,
                        help="demand paths per step (default: %(default)s)")
    neural.add_argument("--units", choices=("continuous", "straight-through"),
                        default=NeuralSettings.units,
                        help="requests in training: continuous, or floored with a straight-"
                        "through gradient (default: %(default)s)")
    neural.add_argument("--sales-history", type=_non_negative_int, default=0, metavar="K",
                        help="the last K periods' retail sales among the network's inputs, "
                        "0 .. T (default: 0)")
    neural.add_argument("--warm-start", metavar="AGENT_DIR",
                        help="first fit the network to a trained agent's orders (e.g. the BC "
                        "agent of the same logs, from echelon train)")
    neural.add_argument("--resume", action="store_true",
                        help="continue an interrupted training in --out")

    executor = _options(_executor_options)
    train = command("train", _cmd_train, "train an offline RL agent on a dataset file, or one "
                    "agent per stage on a per-stage split (--decentralized)", seed, json_, executor)
    train.add_argument("algorithm", choices=tuple(ALGORITHMS))
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="an echelon dataset file (.h5)")
    source.add_argument("--decentralized", metavar="DIR",
                        help="a per-stage split (from echelon dataset split-stages): one agent "
                        "per stage on its own file (independent learners), each into "
                        "<out>/<agent>, joined by <out>/decentralized.json (default out: "
                        "DIR/agents/<algo>-decentralized-s<seed>)")
    train.add_argument("--preset", choices=tuple(AGENT_PRESETS), default="default")
    train.add_argument("--epochs", type=_positive_int, help="override the preset's epochs")
    train.add_argument("--seeds", type=_seed, nargs="+", metavar="SEED",
                       help="train several seeds (instead of --seed), each into "
                       "<out>/<algo>-s<seed>, as one ensemble (see --ensemble)")
    train.add_argument("--ensemble", type=_non_negative_int, default=0, metavar="N",
                       help="with --seeds: at most N seeds per ensemble, 1 for one at a time "
                       "(default: 0, all together)")
    train.add_argument("--out", help="run folder (default: <dataset folder>/agents/<algo>-s<seed>; "
                       "with --seeds, the folder holding one per seed, default <dataset folder>/agents)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    train.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                       help="bfloat16 autocast for the hidden layers: faster, less precise")
    train.add_argument("--sales-history", type=_non_negative_int, default=0, metavar="K",
                       help="append the last K periods' retail sales (from the log) to the "
                       "observation, 0 .. T (default: 0); the agent then reads them when it acts")
    train.add_argument("--time-feature", action="store_true",
                       help="append the period n/T to the observation")
    from echelon.agents.config import ACTION_SCALINGS

    train.add_argument("--action-scaling", choices=ACTION_SCALINGS, default="bounds",
                       help="orders map to [-1, 1] over the env's bounds [0, capacity] or over "
                       "the logged orders' range per stage, as d3rlpy's min-max scaler does "
                       "(default: bounds)")

    reproduce = command("reproduce", _cmd_reproduce,
                        "the whole pipeline: search, dataset, training, evaluation, report",
                        _options(_preset_options("quick")), executor)
    reproduce.add_argument("--out", help="run folder (default: runs/<preset name>)")
    reproduce.add_argument("--sweep", action="append", metavar="ALGO.FIELD=V1,V2",
                           help="train extra variants, e.g. --sweep iql.tau=0.5,0.7,0.9")
    reproduce.add_argument("--reference", action="append", default=[], metavar="FILE",
                           help="a row made outside the run on its held-out paths, for the "
                           "report (benchmarks/ppo_reference.py --out; repeatable)")
    reproduce.add_argument("--quiet", action="store_true", help="print only the report's path")
    reproduce.add_argument("--force", action="store_true",
                           help="if --out holds a run with other settings, rerun the changed "
                           "stages there, moving what they replace to <out>/replaced/<n>/")

    evaluate = command("evaluate", _cmd_evaluate,
                       "trained agents and strong baselines on the same held-out paths",
                       _options(_episodes_option(1000)), seed, json_)
    evaluate.add_argument("--agent", nargs="*", default=[], metavar="DIR",
                          help="agent folders (or checkpoint files) from echelon train, "
                          "decentralized ones (with decentralized.json) too")
    evaluate.add_argument("--policy", nargs="*", default=[], metavar="DIR",
                          help="planned policies (folders with policy.json from echelon plan)")
    evaluate.add_argument("--baselines", default=",".join(DEFAULT_BASELINES),
                          help=f"comma-separated, of: {', '.join(BASELINES)} (default: "
                          f"{','.join(DEFAULT_BASELINES)}; neural trains a network on the true "
                          "demand law, a few minutes)")
    evaluate.add_argument("--env", choices=("v1", "v0"),
                          help="the chain (default: the agents' chain, else InvManagement-v1)")

    robust = command("robustness", _cmd_robustness,
                     "every policy of a finished run in shifted worlds (demand, lead times, "
                     "capacities, season), against the heuristic re-tuned for each", json_,
                     _options(_overwrite_option("the run's robustness.json")))
    robust.add_argument("run_dir", help="the folder of a finished run (echelon reproduce --out)")
    robust.add_argument("--shifts", default="default",
                        help=f"default, or comma-separated of: {', '.join(SHIFTS)} (default: "
                        "default, all of them)")
    robust.add_argument("--episodes", type=_positive_int,
                        help="held-out paths per world (default: the run's evaluate.episodes)")

    collect = command("collect", _cmd_collect,
                      "search the behaviour policies of a preset and log their episodes",
                      _options(_preset_options("paper")), json_,
                      _options(_overwrite_option("an existing --out file")))
    collect.add_argument("--out", help="dataset file (default: runs/<preset>/dataset.h5)")
    collect.add_argument("--episodes", type=_positive_int, help="override collect.episodes")
    collect.add_argument("--noise-std", type=_finite_float, help="override collect.noise_std")

    from echelon.benchmark import QUALITIES, SCENARIOS

    benchmark = commands.add_parser("benchmark", help="the offline-RL benchmark: build its "
                                    "datasets, run algorithms on them")
    benchmark_commands = benchmark.add_subparsers(dest="benchmark_command", required=True)
    build = benchmark_commands.add_parser(
        "build", help="build the datasets of graded behaviour quality per scenario, and the "
        "constants that normalise their scores", parents=[json_])
    build.add_argument("--out", required=True, help="folder for <scenario>-<quality>.h5 and "
                       "benchmark.json")
    build.add_argument("--scenarios", default=",".join(SCENARIOS),
                       help=f"comma-separated, of: {', '.join(SCENARIOS)} (default: all)")
    build.add_argument("--qualities", default=",".join(QUALITIES),
                       help=f"comma-separated, of: {', '.join(QUALITIES)} (default: all)")
    build.add_argument("--episodes", type=_positive_int, default=2000,
                       help="episodes per dataset (default: %(default)s)")
    build.add_argument("--test-episodes", type=_positive_int,
                       help="held-out paths for the normalising constants (default: each "
                       "scenario preset's evaluate.episodes)")
    build.add_argument("--overwrite", action="store_true", help="replace a built suite in --out")
    build.set_defaults(handler=_cmd_benchmark_build)

    bench_run = benchmark_commands.add_parser(
        "run", help="train algorithms on every dataset of a suite, score them on the held-out "
        "test paths and aggregate across datasets (IQM, probability of improvement, ...)",
        parents=[json_, executor])
    bench_run.add_argument("folder", metavar="SUITE",
                           help="a suite's folder (from echelon benchmark build)")
    from echelon.benchmark.run import SUITES

    bench_run.add_argument("--suite", choices=tuple(SUITES), default="quick",
                           help="what is trained: " + "; ".join(
                               f"{name}: {', '.join(suite['algorithms'])} x {suite['seeds']} "
                               f"seeds, {suite['preset']} preset"
                               + (f", {suite['epochs']} epochs" if suite.get("epochs") else "")
                               + (f", planners {', '.join(suite['planners'])}"
                                  if suite.get("planners") else "")
                               for name, suite in SUITES.items())
                           + " (default: %(default)s); the options below override it")
    bench_run.add_argument("--algorithms",
                           help=f"comma-separated, of: {', '.join(ALGORITHMS)}")
    bench_run.add_argument("--seeds", type=_positive_int, metavar="N",
                           help="training seeds 0..N-1 per algorithm and dataset")
    bench_run.add_argument("--epochs", type=_positive_int, help="override the preset's epochs")
    bench_run.add_argument("--preset", choices=tuple(AGENT_PRESETS),
                           help="the agents' training preset")
    from echelon.benchmark.planners import PLANNERS

    bench_run.add_argument("--planners", metavar="NAMES",
                           help="model-based planners fitted to each dataset's logs, "
                           f"comma-separated, of: {', '.join(PLANNERS)}; 'none' for none "
                           "(default: the suite's)")
    bench_run.add_argument("--plan-episodes", type=_positive_int, metavar="N",
                           help="model paths each planner searches on (default: each scenario "
                           "preset's model.plan_episodes)")
    bench_run.add_argument("--plan-steps", type=_positive_int, metavar="N",
                           help="training steps of each neural planner (default: each scenario "
                           "preset's model.neural_steps)")
    bench_run.add_argument("--reference", action="append", default=[], metavar="FILE",
                           help="a reference row scored on a scenario's test paths (e.g. from "
                           "benchmarks/ppo_reference.py --suite); repeatable")
    bench_run.add_argument("--out", help="folder for agents/, results.json and report.md "
                           "(default: SUITE/run)")
    bench_run.add_argument("--overwrite", action="store_true",
                           help="redo agents, plans and results of other inputs in --out (the old "
                           "ones move to <out>/replaced/<n>/)")
    bench_run.set_defaults(handler=_cmd_benchmark_run)

    dataset = commands.add_parser("dataset", help="inspect, export and import datasets")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    inspect = dataset_commands.add_parser("inspect", help="size, returns per behaviour, ranges",
                                          parents=[json_])
    inspect.add_argument("file")
    inspect.set_defaults(handler=_cmd_dataset_inspect)
    export = dataset_commands.add_parser(
        "export-minari", help="write a Minari dataset that minari.load_dataset reads offline",
        parents=[json_],
    )
    export.add_argument("file")
    export.add_argument("--id", help="Minari id, namespace/name-vN (default: a benchmark "
                        "dataset's own id, else echelon/invmanagement-mixture-v0)")
    export.add_argument("--data-path", help="Minari's datasets folder (default: MINARI_DATASETS_PATH "
                        "or ~/.minari/datasets)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing dataset id")
    export.set_defaults(handler=_cmd_dataset_export_minari)
    importer = dataset_commands.add_parser(
        "import", help="turn a per-period CSV history into a dataset (docs/log-format.md)",
        parents=[json_, chain, _options(_overwrite_option("an existing --out file"))],
    )
    importer.add_argument("log", help="the CSV file")
    importer.add_argument("--out", help="dataset file (default: the CSV's name with .h5)")
    importer.add_argument("--chain", help="a JSON file of ChainConfig fields (default: OR-Gym's)")
    importer.set_defaults(handler=_cmd_dataset_import)
    split = dataset_commands.add_parser(
        "split-stages", help="the per-stage datasets each company of a decentralized chain "
        "would hold: its local observations, own orders and own reward", parents=[json_],
    )
    split.add_argument("file", help="a dataset file of the whole chain (collected or imported)")
    split.add_argument("--out", required=True, help="folder for <agent>.h5 per stage and "
                       "stages.json")
    split.add_argument("--reward", choices=[r.value for r in StageReward], default="local",
                       help="each stage's reward: local, the paper's -(h I + k LS); profit, its "
                       "share of the chain's profit; team, the chain's profit (default: local)")
    split.add_argument("--overwrite", action="store_true", help="replace a split in --out")
    split.set_defaults(handler=_cmd_dataset_split_stages)
    return parser


DEBUG_ENV = "ECHELON_DEBUG"


def _refusals() -> tuple[type, ...]:
    """Failures that are no defect besides ValueError and ImportError: a task that failed for
    good on an executor, and a training whose loss diverged (if the trainer was loaded at all)."""
    from echelon.run.executor import ExecutorError

    trainer = sys.modules.get("echelon.agents.trainer")
    return (ExecutorError, *((trainer.TrainingDiverged,) if trainer is not None else ()))


def _message(error: BaseException) -> str:
    """One line for a failure: what went wrong, naming the file, field or argument."""
    if isinstance(error, OSError) and not isinstance(error, BrokenPipeError):
        where = f"{error.filename}: " if error.filename else ""
        text = f"{where}{error.strerror or error}"
    elif isinstance(error, (ValueError, ImportError, *_refusals())):
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
