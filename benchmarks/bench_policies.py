"""The heuristic leaderboard: every tuned policy against the perfect-information bound.

    .venv/bin/python benchmarks/bench_policies.py               # 1,000 held-out paths
    .venv/bin/python benchmarks/bench_policies.py --test-episodes 200 --json

Policies are tuned on the run's search stream (``--search-episodes`` paths to search on and as
many to rank on) and all evaluated on the same held-out paths of its test stream (common random
numbers). The peer is the perfect-information LP bound on those paths: each policy's mean is
printed as a share of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from echelon.evaluation.stats import summarize
from echelon.policies import EchelonBaseStock, RequestMode, ShrinkingHorizonLP
from echelon.policies.lp import perfect_information_bound
from echelon.policies.search import Family, SearchConfig, Space, from_params, make_policy, run_search
from echelon.sim import ChainConfig, run_streams
from echelon.sim.rollout import rollout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-episodes", type=int, default=500)
    parser.add_argument("--test-episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    config = ChainConfig()
    streams = run_streams(args.seed)
    test = config.demand.sample(np.random.default_rng(streams.test), args.test_episodes,
                                config.periods)
    rows: list[tuple[str, str, np.ndarray, float]] = []

    def add(label: str, params: str, policy, seconds: float = 0.0) -> None:
        start = time.perf_counter()
        profit = rollout(config, policy, test).profit
        rows.append((label, params, profit, seconds + time.perf_counter() - start))

    searches = [
        ("paper grid best (raw)", Space.PAPER, Family.BASE_STOCK, RequestMode.RAW, 100),
        ("paper grid best (clip)", Space.PAPER, Family.BASE_STOCK, RequestMode.CLIP, 100),
        ("tuned base-stock (raw)", Space.WIDE, Family.BASE_STOCK, RequestMode.RAW, args.search_episodes),
        ("tuned base-stock (clip)", Space.WIDE, Family.BASE_STOCK, RequestMode.CLIP, args.search_episodes),
        ("tuned (s, S) (clip)", Space.WIDE, Family.SS, RequestMode.CLIP, args.search_episodes),
        ("tuned time-aware base-stock (clip)", Space.WIDE, Family.TIME_AWARE, RequestMode.CLIP,
         args.search_episodes),
    ]
    for label, space, family, mode, episodes in searches:
        start = time.perf_counter()
        settings = SearchConfig(space=space, family=family, mode=mode, episodes=episodes, top_k=1)
        best = run_search(config, settings, streams.search).best
        policy = make_policy(config, family, from_params(family, best.params), mode)
        params = " ".join(f"{k}={v}" for k, v in best.params.items())
        add(label, params, policy, time.perf_counter() - start)
    paper_z = np.array([80.0, 180.0, 40.0])
    add("paper's z* = [80, 180, 40] (clip)", "z=[80, 180, 40]",
        EchelonBaseStock(config, paper_z, RequestMode.CLIP))
    add("shrinking-horizon LP (mean forecast)", "", ShrinkingHorizonLP(config))
    start = time.perf_counter()
    bound = perfect_information_bound(config, test)
    rows.append(("perfect-information bound", "", bound, time.perf_counter() - start))

    table = []
    for label, params, profit, seconds in rows:
        s = summarize(profit)
        table.append({"policy": label, "params": params, "mean": s.mean, "std": s.std,
                      "ci_low": s.ci_low, "ci_high": s.ci_high,
                      "share_of_bound": s.mean / bound.mean(), "seconds": seconds})
    if args.json:
        print(json.dumps({"test_episodes": args.test_episodes, "seed": args.seed, "rows": table}))
        return 0
    print(f"InvManagement-v1, {args.test_episodes} held-out paths (seed {args.seed}); peer: the "
          "perfect-information bound")
    print("| policy | parameters | mean | std | 95% CI | share of bound |\n|---|---|---:|---:|---|---:|")
    for r in table:
        print(f"| {r['policy']} | {r['params']} | {r['mean']:.2f} | {r['std']:.2f} | "
              f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}] | {100 * r['share_of_bound']:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
