"""Time the real OR-Gym 0.5.0 InvManagement-v1 environment (baseline for benchmarks).

Runs INSIDE the throwaway venv made by ``scripts/orgym/make_venv.sh``:

    .orgym-venv/bin/python scripts/orgym/bench_orgym.py --episodes 200

It builds one ``InvManagementLostSalesEnv`` with OR-Gym's default chain
(30 periods, I0=[100,100,200], L=[3,5,10], ...) and a user-given demand path
(``dist=5``; Poisson(20) integers from ``np.random.default_rng(seed)``), then
times ``reset()`` + ``periods`` calls of ``step(action)`` with a fixed action
for each episode. Environment construction and one warm-up episode are not
timed. Prints exactly one JSON line on stdout:

    {"orgym_steps_per_second": float, "episodes": int, "steps": int, "seconds": float}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
from or_gym.envs.supply_chain.inventory_management import InvManagementLostSalesEnv


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=200, help="timed episodes (default: %(default)s)")
    ap.add_argument("--periods", type=int, default=30, help="periods per episode (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="demand Generator seed (default: %(default)s)")
    ap.add_argument("--action", type=float, nargs=3, default=[20.0, 20.0, 20.0],
                    metavar=("A0", "A1", "A2"), help="fixed order per stage (default: 20 20 20)")
    args = ap.parse_args(argv)
    if args.episodes < 1 or args.periods < 1:
        ap.error("--episodes and --periods must be positive")

    warnings.simplefilter("ignore")  # gym 0.19 warns about Box precision
    rng = np.random.default_rng(args.seed)
    demand = [float(x) for x in rng.poisson(20, size=args.periods)]
    env = InvManagementLostSalesEnv(periods=args.periods, dist=5, user_D=demand)
    action = np.array(args.action, dtype=np.float64)

    def episode() -> None:
        env.reset()
        done = False
        while not done:
            _, _, done, _ = env.step(action)

    episode()  # warm-up, not timed
    start = time.perf_counter()
    for _ in range(args.episodes):
        episode()
    seconds = time.perf_counter() - start

    steps = args.episodes * args.periods
    print(json.dumps({
        "orgym_steps_per_second": steps / seconds,
        "episodes": args.episodes,
        "steps": steps,
        "seconds": seconds,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
