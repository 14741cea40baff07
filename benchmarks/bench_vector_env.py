"""Vector env throughput: the batched vector env against Gymnasium's SyncVectorEnv of single envs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_vector_env.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_vector_env.py \
        --out benchmarks/results/vector_env.json

Measures sub-env steps per second (one period of one sub-env is one step) of
``InvManagementVectorEnv`` (one core call per step for all N sub-envs) and of
``gymnasium.vector.SyncVectorEnv`` over N bare ``InvManagementEnv`` (no ``gym.make`` wrappers,
the peer's fastest form), both in the default next-step autoreset mode, for N = 1, 16 and 256.
Both run the same random actions (uniform over the action box, fixed seed, drawn before timing)
for about ``--steps`` sub-env steps per run, across several episodes and their autoresets.
Each figure is the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from gymnasium.vector import SyncVectorEnv

from echelon.sim import ChainConfig
from echelon.sim.env import InvManagementEnv
from echelon.sim.vector import InvManagementVectorEnv

NUM_ENVS = (1, 16, 256)


def steps_per_second(env, actions: np.ndarray, repeats: int) -> float:
    """Sub-env steps per second of ``env`` playing ``actions`` (steps, N, S), best of repeats."""
    times = []
    for _ in range(repeats):
        env.reset(seed=0)
        start = time.perf_counter()
        for action in actions:
            env.step(action)
        times.append(time.perf_counter() - start)
    return actions.shape[0] * actions.shape[1] / min(times)


def measure(num_envs: int, steps: int, repeats: int) -> dict[str, float]:
    config = ChainConfig()
    per_run = max(2 * (config.periods + 1), steps // num_envs)
    rng = np.random.default_rng(0)
    actions = rng.uniform(0.0, np.asarray(config.capacity), size=(per_run, num_envs, config.stages))
    ours = steps_per_second(InvManagementVectorEnv(num_envs), actions, repeats)
    sync = SyncVectorEnv([InvManagementEnv for _ in range(num_envs)])
    peer = steps_per_second(sync, actions, repeats)
    return {"echelon_vector": ours, "sync_vector": peer, "ratio": ours / peer}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="sub-env steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    figures = {
        "date": datetime.date.today().isoformat(),
        "command": "benchmarks/bench_vector_env.py " + " ".join(sys.argv[1:]),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "steps_per_run": args.steps,
        "repeats": args.repeats,
        "sub_env_steps_per_second": {
            str(n): measure(n, args.steps, args.repeats) for n in NUM_ENVS
        },
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=1) + "\n")
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"sub-env steps per second (best of {args.repeats}, random actions, v1 defaults)")
    print(f"  {'N':>5}  {'InvManagementVectorEnv':>22}  {'SyncVectorEnv':>14}  {'ratio':>7}")
    for n, row in figures["sub_env_steps_per_second"].items():
        print(f"  {n:>5}  {row['echelon_vector']:>22,.0f}  {row['sync_vector']:>14,.0f}  "
              f"{row['ratio']:>6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
