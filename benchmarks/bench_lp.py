"""LP throughput: the perfect-information bound against a naive per-path LP, in one run.

    .venv/bin/python benchmarks/bench_lp.py
    .venv/bin/python benchmarks/bench_lp.py --paths 200 --shlp-paths 20 --json

On the default chain (InvManagement-v1) with Poisson(20) paths from ``default_rng(0)``:

* ``perfect_information_bound`` on ``--paths`` paths (the sparse structure built once, only the
  demand bounds changing per path): seconds, LPs per second, mean bound and its 95% interval;
* the peer: the same LP built from scratch for every path as dense matrices and handed to
  ``scipy.optimize.linprog(method="highs")``, timed on ``--peer-paths`` paths and extrapolated;
  its optima are checked against ours on those paths;
* the shrinking-horizon LP policy on ``--shlp-paths`` paths: mean discounted profit and seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from scipy.optimize import linprog

from echelon.evaluation.stats import summarize
from echelon.policies.lp import ShrinkingHorizonLP, perfect_information_bound
from echelon.sim.config import ChainConfig
from echelon.sim.rollout import rollout


def naive_bound(config: ChainConfig, path: np.ndarray) -> float:
    """The lost-sales (v1) LP of one path, built densely from scratch: the peer."""
    periods, stages = config.periods, config.stages
    n_x = periods * stages
    n_vars = 2 * n_x + periods  # x, s, I
    a_eq = np.zeros((n_x, n_vars))
    b_eq = np.zeros(n_x)
    a_ub = np.zeros((periods * (stages - 1), n_vars))
    b_ub = np.zeros(periods * (stages - 1))
    cost = np.zeros(n_vars)
    bounds = []
    for n in range(periods):
        discount = config.alpha**n
        for i in range(stages):
            row, inv = n * stages + i, n_x + periods + n * stages + i
            a_eq[row, inv] = 1.0
            if n > 0:
                a_eq[row, inv - stages] = -1.0
            else:
                b_eq[row] = config.initial_inventory[i]
            if n >= config.lead_time[i]:
                a_eq[row, (n - config.lead_time[i]) * stages + i] = -1.0
            a_eq[row, n_x + n if i == 0 else n * stages + i - 1] = 1.0
            cost[inv] = discount * config.holding_cost[i]
            if i > 0:
                ub = n * (stages - 1) + i - 1
                a_ub[ub, n * stages + i - 1] = 1.0
                if n > 0:
                    a_ub[ub, inv - stages] = -1.0
                else:
                    b_ub[ub] = config.initial_inventory[i]
        cost[n * stages + stages - 1] = discount * config.replenishment_cost[-1]
        cost[n_x + n] = -discount * (config.price + config.unfulfilled_penalty[0])
    bounds = (
        [(0.0, c) for _ in range(periods) for c in config.capacity]
        + [(0.0, d) for d in path]
        + [(0.0, None)] * n_x
    )
    result = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds,
                     method="highs")
    if result.status != 0:
        raise RuntimeError(f"naive LP failed: {result.message}")
    discounts = config.alpha ** np.arange(periods)
    return -result.fun - config.unfulfilled_penalty[0] * float(discounts @ path)


def main() -> int:
    parser = argparse.ArgumentParser(description="perfect-information LP throughput")
    parser.add_argument("--paths", type=int, default=1000, help="bound LPs to time")
    parser.add_argument("--peer-paths", type=int, default=50, help="naive LPs to time")
    parser.add_argument("--shlp-paths", type=int, default=100, help="shrinking-horizon episodes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    config = ChainConfig()
    demand = config.demand.sample(np.random.default_rng(0), args.paths, config.periods)

    start = time.perf_counter()
    bound = perfect_information_bound(config, demand)
    bound_seconds = time.perf_counter() - start
    summary = summarize(bound)

    peer_paths = demand[: args.peer_paths]
    start = time.perf_counter()
    peer = np.array([naive_bound(config, path) for path in peer_paths])
    peer_seconds = (time.perf_counter() - start) * args.paths / len(peer_paths)
    peer_gap = float(np.max(np.abs(peer - bound[: len(peer_paths)])))

    shlp_paths = demand[: args.shlp_paths]
    start = time.perf_counter()
    shlp = rollout(config, ShrinkingHorizonLP(config), shlp_paths).profit
    shlp_seconds = time.perf_counter() - start
    shlp_summary = summarize(shlp)
    bound_same_paths = float(bound[: args.shlp_paths].mean())

    figures = {
        "bound_paths": args.paths,
        "bound_seconds": bound_seconds,
        "bound_lps_per_second": args.paths / bound_seconds,
        "bound_mean": summary.mean,
        "bound_ci95": [summary.ci_low, summary.ci_high],
        "peer_paths_timed": len(peer_paths),
        "peer_seconds_extrapolated": peer_seconds,
        "speedup_vs_peer": peer_seconds / bound_seconds,
        "peer_max_abs_difference": peer_gap,
        "shlp_paths": args.shlp_paths,
        "shlp_seconds": shlp_seconds,
        "shlp_mean": shlp_summary.mean,
        "shlp_ci95": [shlp_summary.ci_low, shlp_summary.ci_high],
        "bound_mean_on_shlp_paths": bound_same_paths,
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print("default chain (InvManagement-v1), Poisson(20) paths from default_rng(0)")
    print(
        f"perfect-information bound, {args.paths:,} LPs: {bound_seconds:.2f} s "
        f"({args.paths / bound_seconds:,.0f} LPs/s); mean {summary.mean:.2f} "
        f"(95% CI {summary.ci_low:.2f} .. {summary.ci_high:.2f})"
    )
    print(
        f"peer, naive dense linprog per path ({len(peer_paths)} timed, extrapolated to "
        f"{args.paths:,}): {peer_seconds:.2f} s; ours is {peer_seconds / bound_seconds:.1f}x "
        f"faster (max |difference| of optima {peer_gap:.1e})"
    )
    print(
        f"shrinking-horizon LP, {args.shlp_paths} episodes: {shlp_seconds:.2f} s; mean "
        f"{shlp_summary.mean:.2f} (95% CI {shlp_summary.ci_low:.2f} .. {shlp_summary.ci_high:.2f}); "
        f"bound on the same paths {bound_same_paths:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
