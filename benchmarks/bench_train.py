"""Training throughput: echelon's IQL against d3rlpy 2.8.1's IQL on the same dataset, in one run,
and seeds trained together as ensembles against the same seeds trained one after another.

    .venv/bin/python benchmarks/bench_train.py            # builds .d3rlpy-venv on first use
    .venv/bin/python benchmarks/bench_train.py --no-d3rlpy
    .venv/bin/python benchmarks/bench_train.py --parts ensembles

Both train IQL with the paper's settings (gamma 0.99, tau 0.7, beta 1.0, learning rate 3e-6,
batch 512) on the paper's dataset (``echelon collect --preset paper``), with two hidden layers of
256 and of 1024 units, on this machine's CPU threads. Gradient steps per second are measured over
whole epochs of ``train`` for echelon (batching included) and over ``fit`` for d3rlpy (its
sampling included); the paper preset's time (100 epochs) is projected from the 1024-unit rate.
d3rlpy runs in its own virtual environment (scripts/d3rlpy/make_venv.sh) because it pins its
own Gymnasium.

The executors part trains four IQL seeds (quick preset, 5 epochs on the paper's dataset) three
ways, one after another, as one ensemble, and one task per seed on the processes executor, and
compares their agent-steps per second over the whole trainings (worker start-up included).

The ensembles part trains K = 1, 5 and 10 seeds of one variant with ``train_ensemble`` for three
epochs on 500 episodes of the paper's dataset and reports agent-steps per second of the last
two (member gradient steps over their wall time, each member's validation and checkpoint
included; the first epoch and the set-up are left out as one-time costs). Its peer is K sequential runs,
whose agent-steps per second are those of one run alone (K = 1, measured in the same run): K
runs one after another take K times as long for K times the steps. Measured for IQL with the
paper's settings (batch 512) at hidden 256 and 1024, and for IQL and BC as the quick preset
trains them (hidden 256, batch 256).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from echelon import pipeline
from echelon.agents import train
from echelon.agents.trainer import train_ensemble
from echelon.agents.presets import agent_preset
from echelon.data import save

ROOT = Path(__file__).resolve().parents[1]


def echelon_rate(data, hidden: int, epochs: int, precision: str = "float32") -> tuple[float, int]:
    algo, config = agent_preset("iql", "paper", epochs=epochs, device="cpu", precision=precision)
    algo = dataclasses.replace(algo, hidden=(hidden, hidden))
    with tempfile.TemporaryDirectory() as out:
        result = train(data, "iql", algo, config, out)
    return result.steps / result.seconds, result.steps


def d3rlpy_rate(dataset_path: Path, hidden: int, steps: int) -> float:
    python = ROOT / ".d3rlpy-venv" / "bin" / "python"
    if not python.exists():
        print("building the d3rlpy venv (scripts/d3rlpy/make_venv.sh) ...", file=sys.stderr)
        subprocess.run(["bash", str(ROOT / "scripts/d3rlpy/make_venv.sh")], check=True)
    out = subprocess.run(
        [str(python), str(ROOT / "scripts/d3rlpy/bench_d3rlpy.py"), str(dataset_path),
         "--hidden", str(hidden), "--steps", str(steps), "--threads", str(torch.get_num_threads())],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["d3rlpy_steps_per_second"]


ENSEMBLE_CASES = (  # (label, algorithm, agent preset, hidden)
    ("iql paper settings, hidden 256", "iql", "paper", 256),
    ("iql paper settings, hidden 1024", "iql", "paper", 1024),
    ("iql quick preset (hidden 256, batch 256)", "iql", "quick", 256),
    ("bc quick preset (hidden 256, batch 256)", "bc", "quick", 256),
)


def ensemble_rate(data, algorithm: str, preset: str, hidden: int, members: int) -> float:
    """Agent-steps per second of ``members`` seeds trained together, over epochs 2 and 3."""
    algo, config = agent_preset(algorithm, preset, epochs=3, device="cpu")
    algo = dataclasses.replace(algo, hidden=(hidden, hidden))
    configs = [dataclasses.replace(config, seed=seed) for seed in range(members)]
    with tempfile.TemporaryDirectory() as out:
        results = train_ensemble(data, algorithm, algo, configs,
                                 [Path(out) / f"s{seed}" for seed in range(members)])
    first, _, last = results[0].metrics
    steps = last["step"] - first["step"]
    return members * steps / (last["seconds"] - first["seconds"])


def ensembles(figures: dict) -> None:
    run = pipeline.resolve("paper", ["collect.episodes=500"])
    data = pipeline.collect_stage(run, pipeline.search_stage(run))
    for label, algorithm, preset, hidden in ENSEMBLE_CASES:
        rates = {k: ensemble_rate(data, algorithm, preset, hidden, k) for k in (1, 5, 10)}
        figures["ensembles"][label] = {
            "agent_steps_per_second": rates,
            "speedup_vs_sequential": {k: rates[k] / rates[1] for k in rates},
        }


def executor_rates(figures: dict, seeds: int = 4, epochs: int = 5) -> None:
    """Agent-steps per second of ``seeds`` IQL seeds (quick preset) trained whole, three ways:
    one after another in this process, as one ensemble in this process, and as one task each on
    the processes executor (one-thread workers, as many as cores). Wall time of the whole
    trainings, worker start-up included."""
    from echelon.data import save
    from echelon.run.executor import Resources, Task, make_executor
    from echelon.run.stages import train_group

    run = pipeline.resolve("paper")
    data = pipeline.collect_stage(run, pipeline.search_stage(run))
    algo, config = agent_preset("iql", "quick", epochs=epochs, device="cpu")
    configs = [dataclasses.replace(config, seed=seed) for seed in range(seeds)]
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(save(data, Path(tmp) / "dataset.h5"))
        ways = {
            "sequential (this process)": ("local", [[i] for i in range(seeds)]),
            "one ensemble (this process)": ("local", [list(range(seeds))]),
            "processes executor, one task per seed": ("processes", [[i] for i in range(seeds)]),
        }
        for label, (name, groups) in ways.items():
            out = Path(tmp) / label.split()[0]
            tasks = [Task(f"s{group}", train_group,
                          (path, "iql", algo, [configs[i] for i in group],
                           [str(out / f"s{i}") for i in group]), Resources(cpus=1))
                     for group in groups]
            executor = make_executor(name)
            start = time.perf_counter()
            results = executor.run(tasks, log=lambda *a: None)
            seconds = time.perf_counter() - start
            rows[label] = sum(steps for result in results for steps, _ in result) / seconds
    figures["executors"] = {"seeds": seeds, "agent_steps_per_second": rows,
                            "speedup_vs_sequential": {k: v / rows["sequential (this process)"]
                                                      for k, v in rows.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-d3rlpy", action="store_true", help="skip the peer")
    parser.add_argument("--parts", default="peer,ensembles,executors",
                        help="comma-separated: peer (against d3rlpy), ensembles, executors "
                        "(default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"peer", "ensembles", "executors"}:
        parser.error(f"--parts takes peer, ensembles and executors, got {args.parts!r}")

    figures: dict = {"threads": torch.get_num_threads(), "ensembles": {}}
    if "ensembles" in parts:
        ensembles(figures)
    if "executors" in parts:
        executor_rates(figures)
    if "peer" not in parts:
        return _print(figures, args.json)
    run = pipeline.resolve("paper")
    data = pipeline.collect_stage(run, pipeline.search_stage(run))
    return _peer(data, figures, args)


def _print(figures: dict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(figures))
        return 0
    if figures["ensembles"]:
        print(f"agent-steps per second, K seeds as one ensemble against K sequential runs, "
              f"{figures['threads']} CPU threads")
        for label, row in figures["ensembles"].items():
            rates, speedups = row["agent_steps_per_second"], row["speedup_vs_sequential"]
            shown = "  ".join(f"K={k}: {rates[k]:7.1f} ({speedups[k]:.2f}x)" for k in rates)
            print(f"  {label}: {shown}")
    if "executors" in figures:
        row = figures["executors"]
        print(f"agent-steps per second, {row['seeds']} IQL seeds (quick preset) trained whole")
        for label, rate in row["agent_steps_per_second"].items():
            print(f"  {label}: {rate:7.1f} ({row['speedup_vs_sequential'][label]:.2f}x)")
    return 0


def _peer(data, figures: dict, args) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = save(data, Path(tmp) / "dataset.h5")
        for hidden, epochs in ((256, 2), (1024, 1)):
            start = time.perf_counter()
            rate, steps = echelon_rate(data, hidden, epochs)
            figures[f"echelon_h{hidden}"] = rate
            figures[f"d3rlpy_h{hidden}"] = None if args.no_d3rlpy else d3rlpy_rate(path, hidden, steps)
            figures[f"seconds_h{hidden}"] = time.perf_counter() - start
        figures["echelon_h1024_bfloat16"], _ = echelon_rate(data, 1024, 1, "bfloat16")
    _, paper = agent_preset("iql", "paper")
    steps_per_epoch = -(-int(len(data) * (1 - paper.validation_fraction)) // paper.batch_size)
    figures["paper_steps"] = paper.epochs * steps_per_epoch
    figures["paper_minutes_projected"] = figures["paper_steps"] / figures["echelon_h1024"] / 60
    figures["paper_minutes_projected_bfloat16"] = (
        figures["paper_steps"] / figures["echelon_h1024_bfloat16"] / 60
    )
    if args.json:
        return _print(figures, True)
    _print(figures, False)
    print(f"IQL gradient steps per second, batch 512, {figures['threads']} CPU threads")
    for hidden in (256, 1024):
        ours, peer = figures[f"echelon_h{hidden}"], figures[f"d3rlpy_h{hidden}"]
        ratio = f"  d3rlpy 2.8.1 {peer:7.1f}  ratio {ours / peer:.2f}x" if peer else ""
        print(f"  hidden {hidden:>4}: echelon {ours:7.1f}{ratio}")
    print(f"  hidden 1024, bfloat16 autocast: echelon {figures['echelon_h1024_bfloat16']:7.1f}")
    print(f"paper preset (one IQL agent): {figures['paper_steps']:,} steps, projected "
          f"{figures['paper_minutes_projected']:.1f} min in float32, "
          f"{figures['paper_minutes_projected_bfloat16']:.1f} min with bfloat16 autocast")
    return 0


if __name__ == "__main__":
    sys.exit(main())
