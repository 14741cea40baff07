"""The stage commands end to end: oracle, train, fit-demand, plan, evaluate and reproduce."""

import json

import pytest

from echelon.cli import main


@pytest.fixture
def dataset(small_logs):
    return small_logs


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_oracle_bounds_the_shrinking_horizon_policy(capsys):
    report = _json(capsys, ["oracle", "--episodes", "8", "--seed", "1", "--slp", "--json"])
    assert report["n"] == 8
    slp = report["shrinking_horizon"]
    assert slp["mean"] <= report["mean"] and 0.5 < slp["share_of_bound"] <= 1.0


def test_train_then_evaluate_an_agent_and_a_planned_policy(capsys, dataset, tmp_path):
    trained = _json(capsys, ["train", "bc", "--dataset", str(dataset), "--preset", "quick",
                             "--epochs", "1", "--out", str(tmp_path / "bc"), "--device", "cpu",
                             "--json"])
    assert trained["last_epoch"]["epoch"] == 1 and (tmp_path / "bc" / "metrics.csv").is_file()
    planned = _json(capsys, ["plan", str(dataset), "--family", "time-aware", "--episodes", "5",
                             "--out", str(tmp_path / "plan"), "--json"])
    assert planned["spec"]["family"] == "time-aware"
    report = _json(capsys, ["evaluate", "--agent", str(tmp_path / "bc"), "--policy",
                            str(tmp_path / "plan"), "--baselines", "oracle", "--episodes", "10",
                            "--json"])
    kinds = {row["name"]: row["kind"] for row in report["policies"]}
    assert kinds["bc seed 0"] == "agent" and kinds["planned plan"] == "model-based"
    assert "perfect-information bound" in kinds
    bound = next(r for r in report["policies"] if r["kind"] == "bound")["mean"]
    assert all(row["mean"] <= bound + 1e-9 for row in report["policies"])
    agent = next(r for r in report["policies"] if r["kind"] == "agent")
    assert {"mean_difference", "ci_low", "ci_high", "t_p_value"} <= set(agent["vs_best_expert"])


def test_a_second_train_into_the_same_folder_needs_resume(capsys, dataset, tmp_path):
    argv = ["train", "bc", "--dataset", str(dataset), "--preset", "quick", "--epochs", "1",
            "--out", str(tmp_path / "bc"), "--device", "cpu", "--json"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    assert "pass resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0  # already finished: nothing left to train


def test_fit_demand_ranks_the_laws(capsys, dataset):
    fits = _json(capsys, ["fit-demand", str(dataset), "--json"])
    aics = [fit["aic"] for fit in fits]
    assert aics == sorted(aics) and len(fits) >= 2
    poisson = next(fit for fit in fits if fit["law"]["law"] == "poisson")
    assert abs(poisson["params"]["mean"] - 20.0) < 2.0
    assert main(["fit-demand", str(dataset)]) == 0
    assert "censored" in capsys.readouterr().out


def test_reproduce_on_a_tiny_preset_prints_the_report_path(capsys, tmp_path):
    argv = ["reproduce", "--preset", "quick", "--out", str(tmp_path / "run"), "--quiet",
            "--set", "collect.episodes=20", "--set", "train.epochs=1", "--set", "train.seeds=[0]",
            "--set", "train.algorithms=[\"bc\"]", "--set", "train.sweep=[]",
            "--set", "evaluate.episodes=10", "--set", "evaluate.paper_episodes=5",
            "--set", "evaluate.tuning_episodes=5", "--set", "evaluate.bootstrap=100",
            "--set", "evaluate.baselines=[\"oracle\"]", "--set", "model.enabled=false"]
    assert main(argv) == 0
    report = capsys.readouterr().out.strip()
    assert report.endswith("report.md")
    text = (tmp_path / "run" / "report.md").read_text()
    assert "## 7. The paper's claims" in text and "No IQL agent was trained" in text


def test_a_bad_override_is_an_error_naming_the_key(capsys, tmp_path):
    assert main(["reproduce", "--out", str(tmp_path / "r"), "--set", "evaluate.episodes=1"]) == 2
    assert "evaluate.episodes" in capsys.readouterr().err
