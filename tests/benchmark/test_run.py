"""Algorithms on a benchmark suite: every dataset x algorithm x seed trained and scored, the
model-based planners beside them, scores as a direct evaluation gives them, aggregates with their
intervals, reference rows, reruns that reuse the agents and plans, and the command's refusals."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

from echelon.agents import AgentPolicy
from echelon.benchmark import SCENARIOS, build_suite
from echelon.benchmark.datasets import EXPERT_SEARCH
from echelon.benchmark.planners import FIT_SETTINGS, PLANNERS, plan_digest
from echelon.benchmark.run import (
    AGGREGATES,
    PROFILE_FIGURE,
    REFERENCE_KIND,
    REPORT,
    RESULTS,
    _data_digest,
    score_matrix,
)
from echelon.cli import main
from echelon.data import load
from echelon.data.collect import Behaviour
from echelon.evaluation.stats import interquartile_mean, optimality_gap
from echelon.models.planning import policy_from_spec
from echelon.policies.lp import perfect_information_plan
from echelon.run import resolve
from echelon.run.folder import digest
from echelon.sim import run_streams
from echelon.sim.rollout import rollout

ALGORITHMS, SEEDS = ("bc", "iql"), (0, 1)
PLANNER = PLANNERS["time-aware"].label


def _run(argv: list[str]) -> dict:
    """``echelon benchmark run ... --json``: its exit status must be 0; returns its JSON."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*argv, "--json"]) == 0
    return json.loads(printed.getvalue())


def _argv(suite, out, *extra: str) -> list[str]:
    return ["benchmark", "run", str(suite), "--algorithms", ",".join(ALGORITHMS), "--seeds",
            str(len(SEEDS)), "--epochs", "1", "--preset", "quick", "--executor", "local",
            "--planners", "time-aware", "--plan-episodes", "5", "--out", str(out), *extra]


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
    expected = set(itertools.product(ids, ALGORITHMS, SEEDS)) | {(i, PLANNER, 0) for i in ids}
    assert {(s["dataset"], s["algorithm"], s["seed"]) for s in results["scores"]} == expected
    assert len(results["scores"]) == len(expected)
    assert results["methods"] == [*ALGORITHMS, PLANNER]
    assert json.loads((out / RESULTS).read_text()) == results
    for score in results["scores"]:
        if score["algorithm"] == PLANNER:
            assert score["plan"] == f"plans/{score['dataset'].split('/')[1][:-3]}/time-aware.json"
            assert "agent" not in score and score["fitted_law"] == "poisson"
            continue
        stem = next(e["file"] for e in manifest["datasets"] if e["id"] == score["dataset"])[:-3]
        assert score["agent"] == f"agents/{stem}/{score['algorithm']}-s{score['seed']}"
        assert (out / score["agent"] / "checkpoint.pt").is_file()
    report = (out / REPORT).read_text()
    assert all(name in report for name in ids) and "Probability of improvement" in report
    assert PLANNER in report and f"]({PROFILE_FIGURE})" in report
    assert (out / PROFILE_FIGURE).read_bytes().startswith(b"\x89PNG")


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

    # The plan: a time-aware base-stock planned in the Poisson model fitted to the logs.
    for row in results["scores"]:
        if row["algorithm"] != PLANNER:
            continue
        plan = json.loads((out / row["plan"]).read_text())
        assert plan["spec"]["family"] == "time-aware" and plan["fit"]["law"] == "poisson"
        profit = rollout(chain, policy_from_spec(plan["spec"], chain), paths).profit.mean()
        assert row["profit"] == pytest.approx(profit, rel=1e-12)
        assert row["score"]["bound"] == pytest.approx(100 * (profit - low) / (bound - low),
                                                      rel=1e-9)


def test_aggregates_hold_their_points_in_their_intervals(ran):
    _, results = ran
    ids = [row["id"] for row in results["datasets"]]
    for against, table in results["aggregates"].items():
        for name in [*ALGORITHMS, PLANNER]:
            matrix = score_matrix(results["scores"], ids, name, against)
            assert matrix.shape == (1 if name == PLANNER else len(SEEDS), len(ids))
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
        methods = [*ALGORITHMS, PLANNER]
        assert set(pairs) == {(x, y) for x in methods for y in methods if x != y}
        assert all(p["ci_low"] <= p["point"] <= p["ci_high"] for p in pairs.values())
        for x, y in itertools.combinations(methods, 2):
            assert pairs[x, y]["point"] + pairs[y, x]["point"] == pytest.approx(1.0)


def test_a_rerun_reuses_the_agents(suite, ran):
    folder, _ = suite
    out, results = ran
    checkpoints = sorted(out.glob("agents/*/*/checkpoint.pt"))
    plans = sorted(out.glob("plans/*/*.json"))
    assert len(checkpoints) == sum("agent" in s for s in results["scores"])
    assert len(plans) == len(results["datasets"])
    before = [path.stat().st_mtime_ns for path in [*checkpoints, *plans]]
    assert _run(_argv(folder, out)) == results
    assert [path.stat().st_mtime_ns for path in [*checkpoints, *plans]] == before


def test_other_inputs_are_refused_then_set_aside(suite, ran, tmp_path, capsys):
    folder, _ = suite
    out = tmp_path / "run"
    shutil.copytree(ran[0], out)
    other = ["benchmark", "run", str(folder), "--algorithms", "bc", "--seeds", "1", "--epochs",
             "2", "--preset", "quick", "--planners", "none", "--out", str(out)]
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


@pytest.mark.parametrize("case", ["unknown algorithm", "unknown planner", "missing suite",
                                  "no manifest"])
def test_bad_input_is_one_line_and_exit_2(case, suite, tmp_path, capsys):
    folder = {"missing suite": tmp_path / "nowhere", "no manifest": tmp_path}.get(case, suite[0])
    algorithms = "iql,sac" if case == "unknown algorithm" else "iql"
    planners = "time-aware,oracle" if case == "unknown planner" else "none"
    assert main(["benchmark", "run", str(folder), "--algorithms", algorithms, "--seeds", "1",
                 "--planners", planners, "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("echelon: error: ")
    assert {"unknown algorithm": "--algorithms", "unknown planner": "--planners must list",
            "missing suite": "no such suite folder",
            "no manifest": "no benchmark.json"}[case] in lines[0]
    assert captured.out == "" and not (tmp_path / "out").exists()


def test_the_named_suites_and_their_overrides():
    from echelon.benchmark.run import SUITES, BenchmarkSettings

    quick = BenchmarkSettings.of_suite("quick")
    assert (quick.algorithms, quick.seeds, quick.preset, quick.epochs) == (("iql", "bc"), 5,
                                                                            "quick", 5)
    assert quick.planners == ("time-aware",) and quick.methods() == ["iql", "bc", PLANNER]
    # A run without planners keeps the digest it had before planners existed.
    bare = BenchmarkSettings.of_suite("quick", planners=())
    assert "planners" not in bare.to_dict() and "plan_episodes" not in bare.to_dict()
    assert quick.to_dict()["planners"] == ("time-aware",)
    with pytest.raises(ValueError, match="planners must list distinct names"):
        BenchmarkSettings(planners=("oracle",))
    full = BenchmarkSettings.of_suite("full", seeds=2, epochs=None)
    assert full.algorithms == ("iql", "bc", "td3bc", "cql") and full.seeds == 2
    assert full.epochs is None and full.preset == "default" and set(SUITES) == {"quick", "full"}
    with pytest.raises(ValueError, match="suite must be one of"):
        BenchmarkSettings.of_suite("huge")



def test_a_plan_of_other_inputs_is_refused_then_set_aside(suite, ran, tmp_path, capsys):
    folder, _ = suite
    out = tmp_path / "run"
    shutil.copytree(ran[0], out)
    argv = _argv(folder, out, "--plan-episodes", "6")  # the later option wins
    assert main(argv) == 2
    assert "results of other inputs" in capsys.readouterr().err
    (out / RESULTS).unlink()
    assert main(argv) == 2
    assert "a plan of other inputs" in capsys.readouterr().err
    old = (out / "plans" / "v1-paper" / "time-aware.json").read_bytes()
    _run([*argv, "--overwrite"])
    assert (out / "replaced" / "1" / "plans" / "v1-paper" / "time-aware.json").read_bytes() == old
    assert json.loads((out / "plans" / "v1-paper" / "time-aware.json").read_text())["digest"] \
        != json.loads(old)["digest"]


def test_settings_a_planner_does_not_read_leave_its_plan_valid(suite, ran, tmp_path):
    """``--plan-steps`` is read by the neural planners only: the time-aware plans stay."""
    folder, _ = suite
    out = tmp_path / "run"
    shutil.copytree(ran[0], out)
    plans = sorted(out.glob("plans/*/time-aware.json"))
    before = [path.read_bytes() for path in plans]
    _run([*_argv(folder, out, "--plan-steps", "3"), "--overwrite"])
    assert [path.read_bytes() for path in plans] == before
    assert not list(out.glob("replaced/*/plans"))  # only the results were set aside


def test_a_plan_made_before_the_per_planner_digest_is_reused(suite, ran, tmp_path):
    """Plans recorded a digest over every model setting before: those stay valid."""
    folder, manifest = suite
    out = tmp_path / "run"
    shutil.copytree(ran[0], out)
    settings = dataclasses.replace(resolve(SCENARIOS["v1"].preset).model, plan_episodes=5)
    written = {}
    for entry in manifest["datasets"]:
        path = out / "plans" / Path(entry["file"]).stem / "time-aware.json"
        plan = json.loads(path.read_text())
        data_digest = _data_digest(load(folder / entry["file"]))
        assert plan["digest"] == plan_digest(data_digest, "time-aware", settings)
        plan["digest"] = digest("plan", data_digest, "time-aware", settings)
        path.write_text(json.dumps(plan))
        written[path] = path.read_bytes()
    _run([*_argv(folder, out), "--overwrite"])
    assert {path: path.read_bytes() for path in written} == written

@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_a_plans_digest_covers_what_its_planner_reads(name):
    """Each model setting changes a plan's digest exactly when the fit or the planner reads it."""
    settings = resolve("quick").model
    fields = {field.name: getattr(settings, field.name)
              for field in dataclasses.fields(settings)}
    base = plan_digest("d", name, types.SimpleNamespace(**fields))
    assert base == plan_digest("d", name, settings)
    for field in fields:
        other = types.SimpleNamespace(**{**fields, field: "another value"})
        read = field in (*FIT_SETTINGS, *PLANNERS[name].reads)
        assert (plan_digest("d", name, other) != base) == read, field


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_a_planner_reads_only_the_settings_it_declares(name, suite, tmp_path):
    """A planner given only the fields it declares plans (reading another would raise)."""
    folder, manifest = suite
    chain = load(folder / manifest["datasets"][0]["file"]).chain
    small = {"plan_episodes": 5, "neural_steps": 2, "neural_batch": 8, "neural_sales_history": 0}
    settings = types.SimpleNamespace(**{f: small[f] for f in PLANNERS[name].reads})
    spec = PLANNERS[name].plan(chain, np.random.SeedSequence(0), settings, tmp_path / name)
    paths = chain.demand.sample(np.random.default_rng(0), 3, chain.periods)
    profit = rollout(chain, policy_from_spec(spec, chain, base=tmp_path / name), paths).profit
    assert profit.shape == (3,) and np.isfinite(profit).all()

def _reference(path, manifest, **changes):
    constants = manifest["scenarios"]["v1"]
    reference = {"kind": REFERENCE_KIND, "name": "online reference",
                 "description": "a stand-in of known profits", "scenario": "v1",
                 "run_seed": constants["run_seed"], "test_episodes": constants["test_episodes"],
                 "profits": [constants["J_bound"], constants["J_random"]], **changes}
    path.write_text(json.dumps(reference))
    return path


def test_a_reference_row_is_scored_on_the_suites_paths(suite, ran, tmp_path):
    folder, manifest = suite
    out = tmp_path / "run"
    shutil.copytree(ran[0], out)
    reference = _reference(tmp_path / "ref.json", manifest)
    results = _run([*_argv(folder, out, "--reference", str(reference)), "--overwrite"])
    row, = results["references"]
    assert row["score"]["bound"] == pytest.approx([100.0, 0.0])
    ids = [d["id"] for d in results["datasets"]]
    for name in results["methods"]:
        mean = score_matrix(results["scores"], ids, name, "bound").mean()
        assert row["scenario_means"][name]["bound"] == pytest.approx(mean, rel=1e-12)
    report = (out / REPORT).read_text()
    assert "## References" in report and "| online reference | v1 |" in report
    assert "a stand-in of known profits" in report


@pytest.mark.parametrize("change, message", [
    ({"run_seed": 99}, "run_seed 99 is not the suite's"),
    ({"scenario": "arctic"}, "scenario 'arctic' is not among"),
    ({"profits": []}, "profits must be a non-empty list"),
    ({"kind": "other"}, "not a benchmark reference"),
])
def test_a_bad_reference_is_one_line_and_exit_2(change, message, suite, tmp_path, capsys):
    folder, manifest = suite
    reference = _reference(tmp_path / "ref.json", manifest, **change)
    assert main(_argv(folder, tmp_path / "out", "--reference", str(reference))) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0] and "--reference" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_neural_planner_trains_in_the_fitted_model_and_acts_from_its_folder(suite, tmp_path):
    folder, manifest = suite
    out = tmp_path / "run"
    results = _run(["benchmark", "run", str(folder), "--algorithms", "bc", "--seeds", "1",
                    "--epochs", "1", "--preset", "quick", "--planners", "neural-levels",
                    "--plan-steps", "2", "--out", str(out)])
    label = PLANNERS["neural-levels"].label
    rows = [s for s in results["scores"] if s["algorithm"] == label]
    assert len(rows) == len(manifest["datasets"]) and results["methods"] == ["bc", label]
    chain = SCENARIOS["v1"].run().chain
    constants = manifest["scenarios"]["v1"]
    paths = chain.demand.sample(np.random.default_rng(run_streams(constants["run_seed"]).test),
                                constants["test_episodes"], chain.periods)
    for row in rows:
        plan = json.loads((out / row["plan"]).read_text())
        assert plan["spec"]["kind"] == "neural" and plan["spec"]["architecture"] == "levels"
        base = out / row["plan"][:-len(".json")]
        assert (base / plan["spec"]["weights"]).is_file()
        profit = rollout(chain, policy_from_spec(plan["spec"], chain, base=base), paths).profit
        assert row["profit"] == pytest.approx(profit.mean(), rel=1e-12)
    # A plan whose network was deleted is planned again, to the same weights, not scored blind.
    base = out / rows[0]["plan"][:-len(".json")]
    network = base / json.loads((out / rows[0]["plan"]).read_text())["spec"]["weights"]
    before = network.read_bytes()
    shutil.rmtree(base)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["benchmark", "run", str(folder), "--algorithms", "bc", "--seeds", "1",
                     "--epochs", "1", "--preset", "quick", "--planners", "neural-levels",
                     "--plan-steps", "2", "--out", str(out), "--overwrite"]) == 0
    assert "is missing; planning it again" in printed.getvalue()
    again = json.loads((out / RESULTS).read_text())
    assert network.read_bytes() == before
    assert [r["profit"] for r in again["scores"]] == [r["profit"] for r in results["scores"]]
