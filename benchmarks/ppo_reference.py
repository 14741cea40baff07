"""The online-RL reference: SB3 PPO trained on the batched vector env, evaluated on held-out paths.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ppo_reference.py --steps 1000000
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ppo_reference.py --steps 10000 --episodes 200

Trains Stable-Baselines3's PPO (``MlpPolicy``, SB3's defaults except ``n_steps``, on the CPU)
for ``--steps`` environment steps (one period of one sub-env is one step) on ``--num-envs``
sub-envs of ``echelon/InvManagement-v1`` with its defaults, through :class:`echelon.sb3.Sb3VecEnv`.
Then evaluates the deterministic policy with echelon's evaluator on ``--episodes`` held-out
demand paths drawn from the run seed's test stream (``run_streams(seed).test``, the paths
``echelon simulate --seed SEED`` uses), beside the paper's base-stock z* = [80, 180, 40] (raw
requests) on the same paths, and prints each mean discounted profit (OR-Gym's episode reward)
with its 95% confidence interval, and the paired difference. Training episodes draw from the
run's train stream, so they never share a path with the test.

Needs the ``sb3`` extra (``pip install 'echelon[sb3]'``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from stable_baselines3 import PPO

from echelon.evaluation.evaluate import evaluate_policy
from echelon.evaluation.kinds import PolicyKind
from echelon.evaluation.stats import summarize
from echelon.policies import EchelonBaseStock, RequestMode
from echelon.sb3 import Sb3Policy, Sb3VecEnv
from echelon.sim import ChainConfig, run_streams

PAPER_Z = (80.0, 180.0, 40.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, required=True, help="training budget, env steps")
    parser.add_argument("--num-envs", type=int, default=16, help="sub-envs stepped together")
    parser.add_argument("--n-steps", type=int, default=256,
                        help="PPO rollout length per sub-env (SB3's default is 2048)")
    parser.add_argument("--episodes", type=int, default=1000, help="held-out test paths")
    parser.add_argument("--seed", type=int, default=0, help="run seed (training and test streams)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    for name in ("steps", "num_envs", "n_steps", "episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")

    config = ChainConfig()
    streams = run_streams(args.seed)
    env = Sb3VecEnv(args.num_envs, config=config)
    env.seed(int(np.random.default_rng(streams.train).integers(2**31)))
    model = PPO("MlpPolicy", env, n_steps=args.n_steps, batch_size=64, seed=args.seed,
                device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    seconds = time.perf_counter() - start

    test_paths = config.demand.sample(np.random.default_rng(streams.test), args.episodes,
                                      config.periods)
    ppo = evaluate_policy(config, "PPO", PolicyKind.AGENT, Sb3Policy(model, config), test_paths)
    base_stock = evaluate_policy(
        config, "base-stock z*", PolicyKind.BASELINE,
        EchelonBaseStock(config, np.array(PAPER_Z), RequestMode.RAW), test_paths,
    )
    figures = {
        "steps": int(model.num_timesteps),
        "num_envs": args.num_envs,
        "n_steps": args.n_steps,
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        "train_seconds": seconds,
        "train_steps_per_second": model.num_timesteps / seconds,
        "episodes": args.episodes,
        "ppo": summarize(ppo.profit).to_dict(),
        "base_stock_z_star": summarize(base_stock.profit).to_dict(),
        "ppo_minus_base_stock": summarize(ppo.profit - base_stock.profit).to_dict(),
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"PPO (SB3 MlpPolicy) on InvManagement-v1 defaults: {figures['steps']:,} env steps "
          f"on {args.num_envs} sub-envs in {seconds:.1f} s "
          f"({figures['train_steps_per_second']:,.0f} steps/s, {figures['torch_threads']} torch "
          f"thread{'s' * (figures['torch_threads'] > 1)})")
    print(f"discounted profit on {args.episodes:,} held-out paths (seed {args.seed}), mean "
          f"[95% CI]")
    for label, key in (("PPO", "ppo"), (f"base-stock z* = {list(PAPER_Z)}", "base_stock_z_star"),
                       ("PPO - base-stock (paired)", "ppo_minus_base_stock")):
        row = figures[key]
        print(f"  {label:<34} {row['mean']:9.2f}  [{row['ci_low']:.2f}, {row['ci_high']:.2f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
