"""The ``echelon`` command: one subcommand per stage, a human summary or JSON with ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np

from echelon.evaluation import rollout, summarize
from echelon.policies import EchelonBaseStock, RequestMode
from echelon.sim import ChainConfig, run_streams


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
        print(json.dumps(report))
    else:
        z = " ".join(f"{v:g}" for v in args.z)
        print(
            f"{args.policy} z=[{z}] ({args.mode}) on InvManagement-{args.env}, "
            f"{summary.n} episodes, seed {args.seed}\n"
            f"  profit (discounted, OR-Gym reward): mean {summary.mean:.2f}  std {summary.std:.2f}"
            f"  95% CI [{summary.ci_low:.2f}, {summary.ci_high:.2f}]\n"
            f"  undiscounted profit: mean {report['undiscounted_mean']:.2f}"
            f"  service level: {report['service_level']:.3f}  ({seconds:.2f} s)"
        )
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="echelon",
        description="Offline learning and honest evaluation of multi-echelon inventory policies.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser(
        "simulate", help="run a heuristic policy on held-out demand paths and summarise profit"
    )
    simulate.add_argument("--policy", choices=("base-stock",), default="base-stock")
    simulate.add_argument(
        "--z", type=float, nargs="+", default=[80.0, 180.0, 40.0],
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``echelon`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as error:
        print(f"echelon {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
