"""Algorithms on a benchmark suite: every dataset x algorithm x seed trained and scored, scores as
a direct evaluation gives them, aggregates with their intervals, reruns that reuse the agents,
and the command's refusals."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import shutil

import numpy as np
import pytest

from echelon.agents import AgentPolicy
from echelon.benchmark import SCENARIOS, build_suite
from echelon.benchmark.datasets import EXPERT_SEARCH
from echelon.benchmark.run import AGGREGATES, REPORT, RESULTS, score_matrix
from echelon.cli import main
from echelon.data import load
from echelon.data.collect import Behaviour
from echelon.evaluation.stats import interquartile_mean, optimality_gap
from echelon.policies.lp import perfect_information_plan
from echelon.sim import run_streams
from echelon.sim.rollout import rollout

ALGORITHMS, SEEDS = ("bc", "iql"), (0, 1)


def _run(argv: list[str]) -> dict:
    """``echelon benchmark run ... --json``: its exit status must be 0; returns its JSON."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*argv, "--json"]) == 0
    return json.loads(printed.getvalue())


def _argv(suite, out, *extra: str) -> list[str]:
    return ["benchmark", "run", str(suite), "--algorithms", ",".join(ALGORITHMS), "--seeds",
            str(len(SEEDS)), "--epochs", "1", "--preset", "quick", "--executor", "local",
            "--out", str(out), *extra]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    manifest = build_suite(out, scenarios=["v1"], qualities=["random", "paper"], episodes=6,
                           test_episodes=5, overrides=["search.episodes=5"],
                           expert_search=dataclasses.replace(EXPERT_SEARCH, episodes=5))
    return out, manifest


@pytest.fixture(scope="module")
def ran(suite, tmp_path_factory):
    folder, manifest = suite
    out = tmp_path_factory.mktemp("run")
    return out, _run(_argv(folder, out))


def test_every_dataset_algorithm_and_seed_is_scored(suite, ran):
    _, manifest = suite
    out, results = ran
    ids = [entry["id"] for entry in manifest["datasets"]]
    expected = set(itertools.product(ids, ALGORITHMS, SEEDS))
    assert {(s["dataset"], s["algorithm"], s["seed"]) for s in results["scores"]} == expected
    assert len(results["scores"]) == len(expected)
    assert json.loads((out / RESULTS).read_text()) == results
    for score in results["scores"]:
        stem = next(e["file"] for e in manifest["datasets"] if e["id"] == score["dataset"])[:-3]
        assert score["agent"] == f"agents/{stem}/{score['algorithm']}-s{score['seed']}"
        assert (out / score["agent"] / "checkpoint.pt").is_file()
    report = (out / REPORT).read_text()
    assert all(name in report for name in ids) and "Probability of improvement" in report


def test_scores_match_a_direct_evaluation(suite, ran):
    folder, manifest = suite
    out, results = ran
    constants = manifest["scenarios"]["v1"]
    chain = SCENARIOS["v1"].run().chain
    # The held-out paths, drawn by hand as the constants were: the run seed's test stream.
    rng = np.random.default_rng(run_streams(constants["run_seed"]).test)
    paths = chain.demand.sample(rng, constants["test_episodes"], chain.periods)
    assert perfect_information_plan(chain, paths).profit.mean() == pytest.approx(
        constants["J_bound"], rel=1e-12)
    low, bound, heuristic = (constants[k] for k in ("J_random", "J_bound", "J_heuristic"))

    agent = AgentPolicy(out / "agents" / "v1-paper" / "iql-s1" / "checkpoint.pt", chain)
    profit = rollout(chain, agent, paths).profit.mean()
    score = next(s for s in results["scores"] if s["dataset"] == "echelon/v1-paper-v0"
                 and s["algorithm"] == "iql" and s["seed"] == 1)
    assert score["profit"] == pytest.approx(profit, rel=1e-12)
    assert score["score"]["bound"] == pytest.approx(100 * (profit - low) / (bound - low), rel=1e-9)
    assert score["score"]["heuristic"] == pytest.approx(100 * (profit - low) / (heuristic - low),
                                                        rel=1e-9)

    # The paper dataset's best behaviour: its best expert on the same paths, without noise.
    data = load(folder / "v1-paper.h5")
    best = max(rollout(chain, Behaviour.from_dict(spec).policy(chain), paths).profit.mean()
               for spec in data.behaviour_policies)
    rows = {row["id"]: row["best_behaviour"] for row in results["datasets"]}
    assert rows["echelon/v1-paper-v0"]["profit"] == pytest.approx(best, rel=1e-12)
    assert rows["echelon/v1-paper-v0"]["score"]["bound"] == pytest.approx(
        100 * (best - low) / (bound - low), rel=1e-9)
    assert rows["echelon/v1-random-v0"]["score"] == {"bound": 0.0, "heuristic": 0.0}


def test_aggregates_hold_their_points_in_their_intervals(ran):
    _, results = ran
    ids = [row["id"] for row in results["datasets"]]
    for against, table in results["aggregates"].items():
        for name in ALGORITHMS:
            matrix = score_matrix(results["scores"], ids, name, against)
            assert matrix.shape == (len(SEEDS), len(ids))
            row = table[name]
            assert set(row) == set(AGGREGATES)
            assert all(e["ci_low"] <= e["point"] <= e["ci_high"] for e in row.values())
            assert row["iqm"]["point"] == pytest.approx(interquartile_mean(matrix), rel=1e-12)
            assert row["mean"]["point"] == pytest.approx(matrix.mean(), rel=1e-12)
            assert row["optimality_gap"]["point"] == pytest.approx(
                optimality_gap(matrix, 100.0), rel=1e-12)
            profile = np.array(results["performance_profile"][against][name])
            assert np.all(np.diff(profile) <= 0) and profile[0] == np.mean(matrix > 0.0)
        pairs = {(p["x"], p["y"]): p for p in results["probability_of_improvement"][against]}
        assert set(pairs) == {("bc", "iql"), ("iql", "bc")}
        assert all(p["ci_low"] <= p["point"] <= p["ci_high"] for p in pairs.values())
        assert pairs["bc", "iql"]["point"] + pairs["iql", "bc"]["point"] == pytest.approx(1.0)


def test_a_rerun_reuses_the_agents(suite, ran):
    folder, _ = suite
    out, results = ran
    checkpoints = sorted(out.glob("agents/*/*/checkpoint.pt"))
    assert len(checkpoints) == len(results["scores"])
    before = [path.stat().st_mtime_ns for path in checkpoints]
    assert _run(_argv(folder, out)) == results
    assert [path.stat().st_mtime_ns for path in checkpoints] == before


def test_other_inputs_are_refused_then_set_aside(suite, ran, tmp_path, capsys):
    folder, _ = suite
    out = tmp_path / "run"
    shutil.copytree(ran[0], out)
    other = ["benchmark", "run", str(folder), "--algorithms", "bc", "--seeds", "1", "--epochs",
             "2", "--preset", "quick", "--out", str(out)]
    assert main(other) == 2
    assert "results of other inputs" in capsys.readouterr().err
    (out / RESULTS).unlink()  # an interrupted run: no results, agents of other epochs
    assert main(other) == 2
    assert "agent trained with other inputs" in capsys.readouterr().err
    checkpoint = out / "agents" / "v1-random" / "bc-s0" / "checkpoint.pt"
    old = checkpoint.read_bytes()
    results = _run([*other, "--overwrite"])
    assert {(s["algorithm"], s["seed"]) for s in results["scores"]} == {("bc", 0)}
    assert (out / "replaced" / "1" / "agents" / "v1-random" / "bc-s0" / "checkpoint.pt"
            ).read_bytes() == old
    assert checkpoint.read_bytes() != old


@pytest.mark.parametrize("case", ["unknown algorithm", "missing suite", "no manifest"])
def test_bad_input_is_one_line_and_exit_2(case, suite, tmp_path, capsys):
    folder = {"unknown algorithm": suite[0], "missing suite": tmp_path / "nowhere",
              "no manifest": tmp_path}[case]
    algorithms = "iql,sac" if case == "unknown algorithm" else "iql"
    assert main(["benchmark", "run", str(folder), "--algorithms", algorithms, "--seeds", "1",
                 "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("echelon: error: ")
    assert {"unknown algorithm": "--algorithms", "missing suite": "no such suite folder",
            "no manifest": "no benchmark.json"}[case] in lines[0]
    assert captured.out == "" and not (tmp_path / "out").exists()


def test_the_named_suites_and_their_overrides():
    from echelon.benchmark.run import SUITES, BenchmarkSettings

    quick = BenchmarkSettings.of_suite("quick")
    assert (quick.algorithms, quick.seeds, quick.preset, quick.epochs) == (("iql", "bc"), 5,
                                                                            "quick", 5)
    full = BenchmarkSettings.of_suite("full", seeds=2, epochs=None)
    assert full.algorithms == ("iql", "bc", "td3bc", "cql") and full.seeds == 2
    assert full.epochs is None and full.preset == "default" and set(SUITES) == {"quick", "full"}
    with pytest.raises(ValueError, match="suite must be one of"):
        BenchmarkSettings.of_suite("huge")

