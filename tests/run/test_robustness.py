"""``echelon robustness``: every policy of a finished run in shifted worlds, and the report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from echelon import pipeline
from echelon.cli import main
from echelon.evaluation.evaluate import evaluate_policy
from echelon.evaluation.kinds import PolicyKind
from echelon.evaluation.robustness import SHIFTS, parse_shifts
from echelon.policies.families import HeuristicSpec
from echelon.run.robustness import robustness
from echelon.sim.demand import run_streams

TINY = [
    "collect.episodes=30", "train.epochs=1", "train.seeds=[0]", "train.sweep=[]",
    "evaluate.episodes=20", "evaluate.paper_episodes=10", "evaluate.tuning_episodes=10",
    "evaluate.bootstrap=200", "model.plan_episodes=10", "model.scenarios=2",
    'model.neural=["levels"]', "model.neural_reference=false", "model.neural_steps=3",
    "model.neural_batch=8", "model.misspecification=false", "decentralized.enabled=true",
    "decentralized.rewards=[\"team\"]", "train.algorithms=[\"bc\"]",
    'evaluate.baselines=["paper-best", "tuned", "time-aware", "slp", "oracle"]',
]


# Smaller still: regime-switching demand, one BC agent and two tuned baselines.
REGIMES = [
    'chain.demand={law = "regimes", rates = [10.0, 30.0], transition = [[0.9, 0.1], [0.1, 0.9]]}',
    "search.episodes=10", "collect.episodes=20", "train.epochs=1", "train.seeds=[0]",
    "train.sweep=[]", 'train.algorithms=["bc"]', "evaluate.episodes=10",
    "evaluate.paper_episodes=10", "evaluate.tuning_episodes=10", "evaluate.bootstrap=100",
    "model.enabled=false", "decentralized.enabled=false",
    'evaluate.baselines=["tuned", "time-aware"]',
]


@pytest.fixture(scope="module")
def finished_run(reproduce_quick):
    return reproduce_quick(TINY)


def test_every_policy_faces_each_world_as_it_was_made(finished_run):
    run, out, _, _ = finished_run
    data = robustness(run, out, ("lead-time+1", "demand-x1.25"), episodes=8,
                      log=lambda *a: None)
    evaluated = [p for p in json.loads((out / "eval.json").read_text())["policies"]
                 if p["kind"] != "bound"]
    assert [w["shift"] for w in data["worlds"]] == ["lead-time+1", "demand-x1.25"]
    longer = data["worlds"][0]
    assert longer["chain"]["lead_time"] == [4, 6, 11]
    names = [p["name"] for p in longer["policies"]]
    assert names == [p["name"] for p in evaluated] + ["re-tuned time-aware base-stock"]
    # Agents, decentralized agents, neural and LP planners all act there: nothing skipped.
    assert not [p for p in longer["policies"] if "skipped" in p]
    kinds = {p["kind"] for p in longer["policies"]}
    assert {"agent", "decentralized agent", "model-based", "baseline", "best expert"} <= kinds
    # A heuristic keeps its levels: the same profit as its spec evaluated in that world.
    tuned = next(p for p in evaluated if p["name"] == "tuned time-aware base-stock")
    world = SHIFTS["lead-time+1"].apply(run.chain)
    paths = world.demand.sample(np.random.default_rng(run_streams(run.seed).test), 8, 30)
    rest = {k: v for k, v in tuned["params"].items() if k not in ("family", "mode")}
    spec = HeuristicSpec(tuned["params"]["family"], tuned["params"]["mode"], rest)
    direct = evaluate_policy(world, "again", PolicyKind.BASELINE, spec.policy(world), paths)
    row = next(p for p in longer["policies"] if p["name"] == "tuned time-aware base-stock")
    assert row["mean"] == pytest.approx(float(direct.profit.mean()), rel=1e-12)
    assert 0.0 < row["share_of_bound"] < 1.0
    retuned = next(p for p in longer["policies"] if p["name"].startswith("re-tuned"))
    assert retuned["vs_retuned"]["mean_difference"] == 0.0


def test_the_command_writes_its_results_and_the_report_section(finished_run, tmp_path, capsys):
    _, out, _, _ = finished_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    assert main(["robustness", str(copy), "--shifts", "capacity-20%,seasonal",
                 "--episodes", "6"]) == 0
    printed = capsys.readouterr().out
    assert "in 2 shifted worlds, 6 paths each" in printed and "capacities -20%" in printed
    data = json.loads((copy / "robustness.json").read_text())
    assert [w["shift"] for w in data["worlds"]] == ["capacity-20%", "seasonal"]
    text = (copy / "report.md").read_text()
    assert "## 8. Robustness" in text and "| bc (mean of seeds) |" in text
    # Robustness comes before the configuration, which moves to 9; what each world changes.
    assert text.index("## 8. Robustness") < text.index("## 9. Exact configuration and seeds")
    assert "## 8. Exact configuration" not in text and "- **capacities -20%**: Every stage" in text
    assert (copy / "figures" / "robustness.png").read_bytes().startswith(b"\x89PNG")
    before = (copy / "robustness.json").read_bytes()
    # A finished result is not replaced without --overwrite; bad input is one line, exit 2.
    assert main(["robustness", str(copy), "--shifts", "seasonal", "--episodes", "6"]) == 2
    assert "robustness.json exists" in capsys.readouterr().err
    assert (copy / "robustness.json").read_bytes() == before
    assert main(["robustness", str(copy), "--shifts", "tsunami", "--overwrite"]) == 2
    assert "unknown shift 'tsunami'" in capsys.readouterr().err
    assert main(["robustness", str(tmp_path / "nowhere")]) == 2
    assert "no config.toml" in capsys.readouterr().err


def test_the_default_shifts_run_on_regime_switching_demand(reproduce_quick, tmp_path, capsys):
    run, out, _, _ = reproduce_quick(REGIMES)
    data = robustness(run, out, parse_shifts("default"), episodes=6, log=lambda *a: None)
    worlds = {w["shift"]: w for w in data["worlds"]}
    assert list(worlds) == list(SHIFTS)
    demand = {name: w["chain"]["demand"] for name, w in worlds.items()}
    # The regimes' rates are scaled; the stationary chain's one mean (20) goes to the other
    # laws and to the season's level.
    assert demand["demand-x0.75"] == {**demand["lead-time+1"], "rates": [7.5, 22.5]}
    assert demand["demand-x1.25"]["rates"] == [12.5, 37.5]
    assert demand["negative-binomial"]["law"] == "negative-binomial"
    assert demand["negative-binomial"]["mu"] == pytest.approx(20.0)
    assert demand["geometric"]["p"] == pytest.approx(0.05)
    assert demand["seasonal"]["law"] == "curve"
    assert demand["seasonal"]["level"] == pytest.approx(20.0)
    for world in worlds.values():
        assert world["description"] == SHIFTS[world["shift"]].description
        assert not [p for p in world["policies"] if "skipped" in p]
        assert all(0.0 < p["share_of_bound"] <= 1.0 + 1e-9 for p in world["policies"]
                   if p["kind"] != "agent")
    # Started in the low regime, its mean rises period by period: no law of one mean follows
    # it, and the command refuses in one line naming the shift and the law, before any work.
    started = tmp_path / "started-low"
    started.mkdir()
    shutil.copy(out / "eval.json", started / "eval.json")
    low_start = REGIMES[0].replace("]]}", "]], initial = [1.0, 0.0]}")
    config = pipeline.resolve(out / "config.toml", [low_start])
    (started / "config.toml").write_text(pipeline.to_toml(config.to_dict()))
    assert main(["robustness", str(started), "--shifts", "demand-x1.25,negative-binomial"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and not (started / "robustness.json").exists()
    assert "shift 'negative-binomial' does not apply to this chain's regimes demand" in error
