"""The online-RL reference: SB3 PPO trained on the batched vector env, evaluated on held-out paths.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ppo_reference.py --steps 1000000
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ppo_reference.py --steps 10000 --episodes 200
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ppo_reference.py --steps 1000000 --seeds 3 \
        --suite suite --scenario v1 --out ppo-v1.json   # a row for echelon benchmark run

Trains Stable-Baselines3's PPO (``MlpPolicy``, SB3's defaults except ``n_steps``, on the CPU)
for ``--steps`` environment steps (one period of one sub-env is one step) on ``--num-envs``
sub-envs of ``echelon/InvManagement-v1`` with its defaults, through :class:`echelon.sb3.Sb3VecEnv`,
once per training seed ``0 .. --seeds - 1``. As SB3's documentation advises for continuous
actions, the policy acts in [-1, 1] (mapped linearly onto each stage's order range [0,
capacity]), and ``VecNormalize`` standardises observations and rewards with running statistics
(frozen for the evaluation); ``--raw`` trains on the env's own spaces instead. Then evaluates each deterministic policy with
echelon's evaluator on ``--episodes`` held-out demand paths drawn from the run seed's test
stream (``run_streams(seed).test``, the paths ``echelon simulate --seed SEED`` uses), beside the
paper's base-stock z* = [80, 180, 40] (raw requests) on the same paths, and prints each mean
discounted profit (OR-Gym's episode reward) with its 95% confidence interval (over paths, for
each seed), and the paired difference. Training episodes draw from the run's train stream, so
they never share a path with the test.

With ``--suite DIR`` (a suite from ``echelon benchmark build``) the chain, run seed and test
paths are those of the suite's ``--scenario``, and ``--out FILE`` receives a reference row for
``echelon benchmark run DIR --reference FILE``: the mean profit of each seed on the scenario's
held-out paths, scored there beside the algorithms learned from the logs.

Needs the ``sb3`` extra (``pip install 'echelon[sb3]'``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnvWrapper, VecNormalize

from echelon._io import atomic_write_text
from echelon.evaluation.evaluate import evaluate_policy
from echelon.evaluation.kinds import PolicyKind
from echelon.evaluation.stats import summarize
from echelon.policies import EchelonBaseStock, RequestMode
from echelon.sb3 import Sb3Policy, Sb3VecEnv
from echelon.sim import ChainConfig, run_streams
from echelon.sim.demand import child_seeds

PAPER_Z = (80.0, 180.0, 40.0)


class UnitActions(VecEnvWrapper):
    """The sub-envs' orders as actions in [-1, 1]: -1 orders nothing, 1 each stage's capacity."""

    def __init__(self, venv) -> None:
        self.high = np.asarray(venv.action_space.high, dtype=np.float64)
        self.low = np.asarray(venv.action_space.low, dtype=np.float64)
        unit = spaces.Box(-1.0, 1.0, shape=venv.action_space.shape, dtype=np.float32)
        super().__init__(venv, action_space=unit)

    def orders(self, actions: np.ndarray) -> np.ndarray:
        unit = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(self.orders(actions))

    def step_wait(self):
        return self.venv.step_wait()

    def reset(self) -> np.ndarray:
        return self.venv.reset()


class NormalisedPolicy:
    """A PPO model trained behind :class:`UnitActions` and ``VecNormalize``, as an echelon
    policy: observations standardised with the frozen running statistics, actions mapped back
    to orders."""

    reads_observation = True

    def __init__(self, model: PPO, normalise: VecNormalize, unit: UnitActions) -> None:
        self.model, self.normalise, self.unit = model, normalise, unit

    def act(self, obs: np.ndarray | None, state) -> np.ndarray:
        actions, _ = self.model.predict(self.normalise.normalize_obs(obs), deterministic=True)
        return self.unit.orders(actions)


def train_ppo(config: ChainConfig, seed: int, train_seed: np.random.SeedSequence, steps: int,
              num_envs: int, n_steps: int, raw: bool = False) -> tuple[object, int, float]:
    """One PPO training of ``steps`` env steps; its sub-envs' demand comes from ``train_seed``.

    Returns:
        The trained policy (an echelon policy), the steps taken and the training's seconds.
    """
    env = Sb3VecEnv(num_envs, config=config)
    env.seed(int(np.random.default_rng(train_seed).integers(2**31)))
    if raw:
        venv = env
    else:
        unit = UnitActions(env)
        venv = VecNormalize(unit, norm_obs=True, norm_reward=True, gamma=0.99)
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=64, seed=seed, device="cpu",
                verbose=0)
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes a temp folder
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - start
    if raw:
        return Sb3Policy(model, config), int(model.num_timesteps), seconds
    venv.training = False
    return NormalisedPolicy(model, venv, unit), int(model.num_timesteps), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, required=True, help="training budget, env steps")
    parser.add_argument("--num-envs", type=int, default=16, help="sub-envs stepped together")
    parser.add_argument("--n-steps", type=int, default=256,
                        help="PPO rollout length per sub-env (SB3's default is 2048)")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds 0 .. N-1")
    parser.add_argument("--episodes", type=int, default=1000,
                        help="held-out test paths (with --suite: the scenario's)")
    parser.add_argument("--seed", type=int, default=0,
                        help="run seed (training and test streams; with --suite: the scenario's)")
    parser.add_argument("--suite", help="a built benchmark suite: its scenario's chain and paths")
    parser.add_argument("--scenario", default="v1", help="the suite's scenario (default: v1)")
    parser.add_argument("--out", help="with --suite: write the reference row here")
    parser.add_argument("--raw", action="store_true",
                        help="train on the env's own action range and unnormalised "
                        "observations and rewards")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    for name in ("steps", "num_envs", "n_steps", "episodes", "seeds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if bool(args.suite) != bool(args.out):
        parser.error("--suite and --out go together")

    config = ChainConfig()
    if args.suite:
        from echelon.benchmark import SCENARIOS
        from echelon.benchmark.run import REFERENCE_KIND, held_out_paths, read_suite

        try:
            manifest = read_suite(args.suite)
        except ValueError as error:
            parser.error(str(error))
        if args.scenario not in manifest["scenarios"]:
            parser.error(f"--scenario must be one of {list(manifest['scenarios'])}")
        constants = manifest["scenarios"][args.scenario]
        config = SCENARIOS[args.scenario].run().chain
        args.seed, args.episodes = constants["run_seed"], constants["test_episodes"]
        test_paths = held_out_paths(config, args.seed, args.episodes)
    else:
        test_paths = config.demand.sample(np.random.default_rng(run_streams(args.seed).test),
                                          args.episodes, config.periods)
    streams = run_streams(args.seed)
    base_stock = evaluate_policy(
        config, "base-stock z*", PolicyKind.BASELINE,
        EchelonBaseStock(config, np.array(PAPER_Z), RequestMode.RAW), test_paths,
    )
    runs = []
    for seed, train_seed in zip(range(args.seeds), child_seeds(streams.train, args.seeds),
                                strict=True):
        policy, steps, seconds = train_ppo(config, seed, train_seed, args.steps, args.num_envs,
                                           args.n_steps, raw=args.raw)
        ppo = evaluate_policy(config, "PPO", PolicyKind.AGENT, policy, test_paths)
        runs.append({"seed": seed, "steps": steps, "train_seconds": seconds,
                     "train_steps_per_second": steps / seconds,
                     "ppo": summarize(ppo.profit).to_dict(),
                     "ppo_minus_base_stock": summarize(ppo.profit - base_stock.profit).to_dict()})
        print(f"  seed {seed}: {runs[-1]['ppo']['mean']:.2f} after {runs[-1]['steps']:,} steps "
              f"({seconds:.0f} s)", file=sys.stderr)
    profits = [run["ppo"]["mean"] for run in runs]
    figures = {
        "steps": args.steps, "num_envs": args.num_envs, "n_steps": args.n_steps,
        "spaces": "raw" if args.raw else "actions in [-1, 1], VecNormalize",
        "seed": args.seed, "torch_threads": torch.get_num_threads(), "episodes": args.episodes,
        "runs": runs, "ppo_mean_over_seeds": float(np.mean(profits)),
        "base_stock_z_star": summarize(base_stock.profit).to_dict(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.suite:
        reference = {
            "kind": REFERENCE_KIND, "name": "PPO (Stable-Baselines3), online",
            "description": f"SB3 PPO (MlpPolicy, its defaults but n_steps {args.n_steps}"
                           f"{'' if args.raw else '; actions in [-1, 1], VecNormalize'}) trained "
                           f"online in the simulator for {args.steps:,} env steps per seed on "
                           f"{args.num_envs} sub-envs, {args.seeds} seed"
                           f"{'s' * (args.seeds != 1)}, acting deterministically "
                           "(benchmarks/ppo_reference.py)",
            "scenario": args.scenario, "run_seed": args.seed, "test_episodes": args.episodes,
            "profits": profits, "figures": figures,
        }
        atomic_write_text(Path(args.out), json.dumps(reference, indent=2) + "\n")
        print(f"reference row written to {args.out}", file=sys.stderr)
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"PPO (SB3 MlpPolicy) on {args.scenario if args.suite else 'InvManagement-v1 defaults'}: "
          f"{args.steps:,} env steps per seed on {args.num_envs} sub-envs "
          f"({np.mean([r['train_steps_per_second'] for r in runs]):,.0f} steps/s, "
          f"{figures['torch_threads']} torch thread{'s' * (figures['torch_threads'] > 1)})")
    print(f"discounted profit on {args.episodes:,} held-out paths (run seed {args.seed}), mean "
          "[95% CI over paths]")
    rows = [(f"PPO seed {r['seed']}", r["ppo"]) for r in runs]
    rows += [(f"PPO seed {r['seed']} - base-stock (paired)", r["ppo_minus_base_stock"])
             for r in runs]
    rows.insert(len(runs), (f"base-stock z* = {list(PAPER_Z)}", figures["base_stock_z_star"]))
    for label, row in rows:
        print(f"  {label:<36} {row['mean']:9.2f}  [{row['ci_low']:.2f}, {row['ci_high']:.2f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
