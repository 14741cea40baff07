"""Simulator throughput: echelon's batched core against OR-Gym 0.5.0's env, in one run.

    .venv/bin/python benchmarks/bench_sim.py            # builds .orgym-venv on first use
    .venv/bin/python benchmarks/bench_sim.py --no-orgym # echelon only, no ratio

Measures episode-steps per second (one period of one episode is one step):

* ``core.step`` on one batch of N = 1, 1,000 and 100,000 episodes with fixed orders;
* the same 100,000 episodes through ``rollout_blocks`` (cache-sized blocks, 1 and 2 threads),
  the driver the parameter search uses;
* OR-Gym 0.5.0's ``InvManagement-v1`` stepping one episode at a time (the peer), timed by
  ``scripts/orgym/bench_orgym.py`` inside its own virtual environment;
* the paper's whole base-stock grid, 14^3 = 2,744 configurations x 100 episodes, in both
  request modes.

Each figure is the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from echelon.policies import EchelonBaseStock, RequestMode
from echelon.sim import ChainConfig, core
from echelon.sim.rollout import rollout_blocks

ROOT = Path(__file__).resolve().parents[1]


class FixedOrders:
    """The same orders in every period (what the OR-Gym peer is timed with)."""

    reads_observation = False

    def __init__(self, episodes: int) -> None:
        self.orders = np.full((episodes, 3), 20.0)

    def act(self, obs, state):
        return self.orders


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def core_steps_per_second(config: ChainConfig, episodes: int, repeats: int) -> float:
    demand = config.demand.sample(np.random.default_rng(0), episodes, config.periods)
    orders = np.full((episodes, config.stages), 20.0)
    episodes_per_run = max(1, 20_000 // episodes)

    def run() -> None:
        for _ in range(episodes_per_run):
            state = core.reset(config, demand)
            while not state.done:
                state, _ = core.step(config, state, orders)

    return episodes_per_run * episodes * config.periods / best_of(repeats, run)


def blocked_steps_per_second(config: ChainConfig, episodes: int, workers: int, repeats: int) -> float:
    demand = config.demand.sample(np.random.default_rng(0), episodes, config.periods)

    def run() -> None:
        rollout_blocks(
            config, lambda block: FixedOrders(block.stop - block.start), demand, workers=workers
        )

    return episodes * config.periods / best_of(repeats, run)


def paper_grid_seconds(config: ChainConfig, mode: RequestMode, repeats: int) -> tuple[float, list, float]:
    levels = np.array(list(itertools.product(range(40, 301, 20), repeat=3)), dtype=np.float64)
    paths = config.demand.sample(np.random.default_rng(0), 100, config.periods)
    per_episode = np.repeat(levels, len(paths), axis=0)
    demand = np.tile(paths, (len(levels), 1))
    result = {}

    def run() -> None:
        profit = rollout_blocks(
            config, lambda block: EchelonBaseStock(config, per_episode[block], mode), demand
        )
        result["means"] = profit.reshape(len(levels), len(paths)).mean(axis=1)

    seconds = best_of(repeats, run)
    best = int(np.argmax(result["means"]))
    return seconds, levels[best].tolist(), float(result["means"][best])


def orgym_steps_per_second(episodes: int) -> float | None:
    venv_python = ROOT / ".orgym-venv" / "bin" / "python"
    if not venv_python.exists():
        print("building the OR-Gym venv (scripts/orgym/make_venv.sh) ...", file=sys.stderr)
        subprocess.run(["bash", str(ROOT / "scripts/orgym/make_venv.sh")], check=True)
    out = subprocess.run(
        [str(venv_python), str(ROOT / "scripts/orgym/bench_orgym.py"), "--episodes", str(episodes)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["orgym_steps_per_second"]


def main() -> int:
    parser = argparse.ArgumentParser(description="echelon core vs OR-Gym 0.5.0 throughput")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-orgym", action="store_true", help="skip the OR-Gym peer")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    config = ChainConfig()
    figures: dict[str, float | list | None] = {}
    figures["orgym_env"] = None if args.no_orgym else orgym_steps_per_second(500)
    for n in (1, 1_000, 100_000):
        figures[f"core_n{n}"] = core_steps_per_second(config, n, args.repeats)
    for workers in (1, 2):
        figures[f"blocks_n100000_w{workers}"] = blocked_steps_per_second(
            config, 100_000, workers, args.repeats
        )
    for mode in RequestMode:
        seconds, best, mean = paper_grid_seconds(config, mode, args.repeats)
        figures[f"paper_grid_{mode.value}_seconds"] = seconds
        figures[f"paper_grid_{mode.value}_best"] = best
        figures[f"paper_grid_{mode.value}_best_mean"] = mean

    if args.json:
        print(json.dumps(figures))
        return 0
    peer = figures["orgym_env"]
    print("episode-steps per second (best of %d)" % args.repeats)
    rows = [("OR-Gym 0.5.0 env, one episode at a time", "orgym_env")] + [
        (f"echelon core.step, one batch of N = {n:,}", f"core_n{n}") for n in (1, 1_000, 100_000)
    ] + [
        (f"echelon rollout_blocks, N = 100,000, {w} thread{'s' * (w > 1)}", f"blocks_n100000_w{w}")
        for w in (1, 2)
    ]
    for label, key in rows:
        value = figures[key]
        if value is None:
            continue
        ratio = f"{value / peer:8.0f}x OR-Gym" if peer else ""
        print(f"  {label:<52} {value:>14,.0f}  {ratio}")
    for mode in RequestMode:
        print(
            f"paper grid (2,744 x 100 episodes, {mode.value}): "
            f"{figures[f'paper_grid_{mode.value}_seconds']:.3f} s, best z = "
            f"{figures[f'paper_grid_{mode.value}_best']} "
            f"(mean {figures[f'paper_grid_{mode.value}_best_mean']:.2f} on these 100 paths)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
