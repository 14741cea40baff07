"""Parity with d3rlpy 2.8.1: echelon's IQL and BC against d3rlpy's on the same data, same
preprocessing and same settings, every policy scored by echelon's evaluator on the same paths.

    .venv/bin/python benchmarks/parity_d3rlpy.py                # 10 seeds of IQL and BC
    .venv/bin/python benchmarks/parity_d3rlpy.py --seeds 2 --algorithms iql --epochs 2
    .venv/bin/python benchmarks/parity_d3rlpy.py --data-scaling  # both scaled over the logs

The dataset is the paper's (``echelon collect --preset paper``: 2,000 episodes of its top-5
grid experts), or ``--dataset FILE`` (any echelon dataset, e.g. one of ``echelon benchmark
build``). For each seed, echelon trains with its ``default`` agent settings for ``--epochs``
(20: the quick preset), holding out 10% of episodes drawn from the seed; d3rlpy, in its own
virtual environment (``scripts/d3rlpy/make_venv.sh``, built on first use), trains on exactly
that seed's training episodes with echelon's observation statistics and action bounds, the
same networks, rates, batch and schedule, for the same number of gradient steps
(``scripts/d3rlpy/train_d3rlpy.py``). d3rlpy's greedy policy comes back as TorchScript (its
scalers inside) and acts through echelon's batched core like any policy; its orders are clipped
to the env's bounds, as echelon's agents' are.

Each echelon seed and each d3rlpy seed play the same ``--episodes`` held-out paths (the run's
test stream). The comparison per algorithm is the mean over seeds and paths of echelon minus
d3rlpy (seed i of one beside seed i of the other, independent trainings), with a two-level
bootstrap interval (seeds and paths resampled), and a Welch test on the per-seed means.
``--data-scaling`` adds an IQL arm where both scale actions over the logged orders' range per
stage (d3rlpy's min-max scaler fitted to the data, its usual practice; echelon's
``train --action-scaling data``) instead of the env's bounds.

The two trainings of a seed run side by side, one thread each. Writes
``benchmarks/results/parity_d3rlpy.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from echelon import pipeline
from echelon._io import atomic_write_text
from echelon.agents import AgentPolicy, train
from echelon.agents.preprocessing import Preprocessing, split_episodes
from echelon.agents.presets import agent_preset
from echelon.data.dataset import OfflineDataset
from echelon.evaluation.stats import seeds_and_paths_ci, welch_test
from echelon.sim.demand import run_streams
from echelon.sim.rollout import rollout

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".d3rlpy-venv" / "bin" / "python"
BOOTSTRAP_SEED = 20261204


class TorchScriptPolicy:
    """A policy saved by d3rlpy's ``save_policy`` (raw observations in, orders out) as a batched
    echelon policy; orders are clipped to the env's bounds."""

    reads_observation = True

    def __init__(self, path: Path, high: np.ndarray) -> None:
        self.module = torch.jit.load(str(path), map_location="cpu")
        self.high = np.asarray(high, dtype=np.float64)

    def act(self, obs: np.ndarray | None, state) -> np.ndarray:
        with torch.no_grad():
            orders = self.module(torch.as_tensor(obs, dtype=torch.float32)).numpy()
        return np.clip(orders.astype(np.float64), 0.0, self.high)


def write_split(data: OfflineDataset, seed: int, time_feature: bool, path: Path) -> None:
    """Seed ``seed``'s training episodes as echelon trains on them, with its preprocessing."""
    train_eps, _ = split_episodes(data.episodes, 0.1, seed)
    rows = np.flatnonzero(np.isin(data.episode_ids, train_eps))
    prep = Preprocessing.fit(data, rows, time_feature=time_feature)
    np.savez(path, observations=data.observations[rows], actions=data.actions[rows],
             rewards=data.rewards[rows], terminals=data.terminations[rows],
             timeouts=data.truncations[rows], obs_mean=prep.obs_mean, obs_std=prep.obs_std,
             action_low=prep.action_low, action_high=prep.action_high)


def ensure_venv() -> None:
    if not VENV_PYTHON.exists():
        print("building the d3rlpy venv (scripts/d3rlpy/make_venv.sh) ...", file=sys.stderr)
        subprocess.run(["bash", str(ROOT / "scripts/d3rlpy/make_venv.sh")], check=True)


def train_pair(data: OfflineDataset, algorithm: str, seed: int, epochs: int, work: Path,
               actions: str) -> tuple[Path, Path, dict[str, float]]:
    """echelon's and d3rlpy's trainings of one seed, side by side (one thread each)."""
    algo, config = agent_preset(algorithm, "default", epochs=epochs, device="cpu", seed=seed,
                                action_scaling=actions)
    split = work / f"split-{seed}.npz"
    if not split.exists():
        write_split(data, seed, config.time_feature, split)
    # The same number of gradient steps as echelon's epochs make on this split.
    train_rows = int(np.isin(data.episode_ids, split_episodes(data.episodes, 0.1, seed)[0]).sum())
    steps = epochs * -(-train_rows // config.batch_size)
    hidden = algo.hidden[0]
    peer = work / f"d3rlpy-{algorithm}-{actions}-{seed}.pt"
    command = [str(VENV_PYTHON), str(ROOT / "scripts/d3rlpy/train_d3rlpy.py"), str(split),
               "--algo", algorithm, "--seed", str(seed), "--steps", str(steps),
               "--batch", str(config.batch_size), "--hidden", str(hidden),
               "--lr", str(algo.learning_rate), "--actions", actions, "--threads", "1",
               "--out", str(peer)]
    # A policy already in --work is reused: both trainings are deterministic given the seed.
    process = None if peer.exists() else subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = work / f"echelon-{algorithm}-{actions}-{seed}"
    seconds = {}
    if not (folder / "checkpoint.pt").exists():
        torch.set_num_threads(1)
        result = train(data, algorithm, algo, config, folder)
        if result.steps != steps:
            raise RuntimeError(f"echelon made {result.steps} steps, d3rlpy was given {steps}")
        seconds["echelon"] = result.seconds
    if process is not None:
        out, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"d3rlpy training failed:\n{err[-3000:]}")
        seconds["d3rlpy"] = json.loads(out.strip().splitlines()[-1])["seconds"]
    return folder, peer, seconds


def compare(ours: np.ndarray, peer: np.ndarray, label: str) -> dict[str, object]:
    """echelon minus d3rlpy: (seeds, paths) profits of each, seed i beside seed i."""
    rng = np.random.default_rng([BOOTSTRAP_SEED, len(label)])
    difference = seeds_and_paths_ci(ours - peer, rng, n_bootstrap=10_000)
    welch = welch_test(ours.mean(axis=1), peer.mean(axis=1))
    return {"echelon_mean": float(ours.mean()), "d3rlpy_mean": float(peer.mean()),
            "echelon_seed_means": ours.mean(axis=1).tolist(),
            "d3rlpy_seed_means": peer.mean(axis=1).tolist(),
            "difference": difference.point, "interval": list(difference.interval),
            "welch_p": welch.p_value}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--algorithms", default="iql,bc")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=500, help="held-out test paths")
    parser.add_argument("--dataset", help="an echelon dataset file (default: the paper's)")
    parser.add_argument("--data-scaling", action="store_true",
                        help="add an IQL arm with actions scaled over the logged orders' range")
    parser.add_argument("--work", help="keep the trained policies here (default: a temp folder)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/parity_d3rlpy.json"))
    args = parser.parse_args()
    algorithms = [a for a in args.algorithms.split(",") if a]
    if not set(algorithms) <= {"iql", "bc"} or args.seeds < 2 or args.epochs < 1:
        parser.error("--algorithms takes iql and/or bc; --seeds must be >= 2, --epochs >= 1")
    ensure_venv()

    start = time.perf_counter()
    run = pipeline.resolve("paper")
    if args.dataset:
        from echelon.data.dataset_file import load
        data = load(args.dataset)
    else:
        data = pipeline.collect_stage(run, pipeline.search_stage(run))
    chain = data.chain
    paths = chain.demand.sample(np.random.default_rng(run_streams(run.seed).test),
                                args.episodes, chain.periods)
    arms = [(a, "bounds") for a in algorithms]
    if args.data_scaling and "iql" in algorithms:
        arms.append(("iql", "data"))
    print(f"dataset: {data.episodes:,} episodes; {len(arms)} arms x {args.seeds} seeds, "
          f"{args.epochs} epochs; {args.episodes} test paths", file=sys.stderr)

    profits: dict[str, dict[str, list[np.ndarray]]] = {}
    timing: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for algorithm, actions in arms:
            for seed in range(args.seeds):
                folder, peer, seconds = train_pair(data, algorithm, seed, args.epochs, work, actions)
                for who, s in seconds.items():
                    timing.setdefault(f"{who} {algorithm}", []).append(s)
                label = f"{algorithm}, actions {actions}"
                arm = profits.setdefault(label, {"echelon": [], "d3rlpy": []})
                arm["echelon"].append(rollout(chain, AgentPolicy(folder, chain), paths).profit)
                arm["d3rlpy"].append(
                    rollout(chain, TorchScriptPolicy(peer, chain.capacity), paths).profit)
                print(f"  {label} seed {seed}: echelon {arm['echelon'][-1].mean():.2f}, "
                      f"d3rlpy {arm['d3rlpy'][-1].mean():.2f} ({time.perf_counter() - start:.0f} s)",
                      file=sys.stderr)

    results = {label: compare(np.array(arm["echelon"]), np.array(arm["d3rlpy"]), label)
               for label, arm in profits.items()}
    figures = {
        "what": "echelon minus d3rlpy 2.8.1, same data, preprocessing, settings and test paths",
        "dataset": args.dataset or "the paper's (echelon collect --preset paper)",
        "episodes": data.episodes, "seeds": args.seeds, "epochs": args.epochs,
        "test_paths": args.episodes, "agent_settings": "default (hidden 256, lr 3e-4, batch 256)",
        "results": results,
        "training_seconds_mean": {k: float(np.mean(v)) for k, v in timing.items()},
        "threads": 1, "wall_seconds": time.perf_counter() - start,
        "date": time.strftime("%Y-%m-%d"),
    }
    atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
    print(f"{'arm':<22} {'echelon':>9} {'d3rlpy':>9} {'difference [95% CI]':>28} {'Welch p':>8}")
    for label, r in results.items():
        lo, hi = r["interval"]
        print(f"{label:<22} {r['echelon_mean']:>9.2f} {r['d3rlpy_mean']:>9.2f} "
              f"{r['difference']:>+9.2f} [{lo:+.2f}, {hi:+.2f}] {r['welch_p']:>8.3f}")
    print(f"written to {os.path.relpath(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
