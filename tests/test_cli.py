"""A tiny end-to-end run of the ``echelon`` command."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from echelon import cli

SIMULATE = ["simulate", "--z", "80", "180", "40", "--episodes", "50", "--seed", "0"]


def _simulate_json(capsys, *extra):
    assert cli.main([*SIMULATE, "--json", *extra]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    report.pop("seconds")  # wall-clock time, the only field allowed to vary
    return report


def test_simulate_prints_a_json_summary(capsys):
    report = _simulate_json(capsys)
    assert report["n"] == 50
    assert report["z"] == [80.0, 180.0, 40.0]
    assert report["mode"] == "clip" and report["env"] == "InvManagement-v1" and report["seed"] == 0
    assert report["ci_low"] < report["mean"] < report["ci_high"]
    assert report["std"] > 0
    assert report["confidence"] == 0.95
    assert 0.0 <= report["service_level"] <= 1.0
    assert report["undiscounted_mean"] > report["mean"] > 0  # alpha < 1 and profits positive


def test_simulate_is_deterministic(capsys):
    assert _simulate_json(capsys) == _simulate_json(capsys)


def test_raw_mode_differs_from_clip_mode(capsys):
    clip = _simulate_json(capsys)
    raw = _simulate_json(capsys, "--mode", "raw")
    assert raw["mode"] == "raw"
    assert raw["mean"] != clip["mean"]


def test_seed_and_env_change_the_result(capsys):
    base = _simulate_json(capsys)
    assert _simulate_json(capsys, "--seed", "1")["mean"] != base["mean"]
    backlog = _simulate_json(capsys, "--env", "v0")
    assert backlog["env"] == "InvManagement-v0" and backlog["mean"] != base["mean"]


def test_wrong_number_of_levels_is_an_error_naming_z(capsys):
    assert cli.main(["simulate", "--z", "80", "180", "--episodes", "5", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--z needs 3 levels" in captured.err and "got 2" in captured.err


@pytest.mark.parametrize("argv", [["simulate", "--episodes", "0"], ["simulate", "--seed", "-1"],
                                  ["simulate", "--mode", "greedy"], []])
def test_bad_arguments_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("echelon: error: ") and "--help'" in err and err.count("\n") == 1


def test_installed_console_script_prints_a_human_summary():
    script = Path(sys.executable).parent / "echelon"
    if not script.exists():
        script = Path(shutil.which("echelon"))
    result = subprocess.run(
        [str(script), *SIMULATE[:-4], "--episodes", "20", "--seed", "3"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "95% CI [" in result.stdout
    assert "20 episodes, seed 3" in result.stdout
    assert "InvManagement-v1" in result.stdout


def _search_json(capsys, *argv):
    assert cli.main(["search", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_search_paper_grid_prints_the_top_five_as_json(capsys):
    ranked = _search_json(capsys, "--space", "paper", "--mode", "raw", "--episodes", "20",
                          "--seed", "0")
    assert isinstance(ranked, list) and len(ranked) == 5
    for entry in ranked:
        assert set(entry) == {"params", "mean", "std", "se"}  # no ranking paths on the grid
        z = entry["params"]["z"]
        assert len(z) == 3 and all(v in range(40, 301, 20) for v in z)
        assert entry["std"] > 0
        assert entry["se"] == pytest.approx(entry["std"] / 20**0.5, rel=1e-12)
    means = [entry["mean"] for entry in ranked]
    assert means == sorted(means, reverse=True)
    # The same seed gives the same ranking.
    assert _search_json(capsys, "--space", "paper", "--mode", "raw", "--episodes", "20",
                        "--seed", "0") == ranked


def test_search_time_aware_lists_last_order_periods(capsys):
    ranked = _search_json(capsys, "--family", "time-aware", "--episodes", "10")
    assert len(ranked) == 5
    for entry in ranked:
        last = entry["params"]["last_order_period"]
        assert len(last) == 3 and all(isinstance(v, int) and -1 <= v <= 29 for v in last)
        assert len(entry["params"]["z"]) == 3
        assert "search_mean" in entry
    means = [entry["mean"] for entry in ranked]
    assert means == sorted(means, reverse=True)


def test_search_paper_space_with_another_family_is_an_error(capsys):
    assert cli.main(["search", "--space", "paper", "--family", "ss", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "echelon: error:" in captured.err and "--space paper" in captured.err
