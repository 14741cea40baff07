"""The benchmark's datasets: graded behaviour, deterministic builds, ids, constants, the command."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from echelon import pipeline
from echelon.benchmark import QUALITIES, build_dataset, build_suite, dataset_id, normalised_score
from echelon.benchmark.datasets import EXPERT_SEARCH
from echelon.cli import main
from echelon.data import load
from echelon.data.dataset import concatenate
from echelon.policies.lp import perfect_information_plan
from echelon.policies.random_orders import UniformOrders
from echelon.run.stages import collect_stage, search_stage
from echelon.sim import ChainConfig, core

SMALL = {"overrides": ["search.episodes=10"],
         "expert_search": dataclasses.replace(EXPERT_SEARCH, episodes=10)}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    manifest = build_suite(out, scenarios=["v1"], episodes=12, test_episodes=8, **SMALL)
    return out, manifest


def test_random_orders_are_whole_units_within_capacity():
    chain = ChainConfig(capacity=(10.0, 5.5, 3.0))
    state = core.reset(chain, np.zeros((2000, chain.periods)))
    orders = UniformOrders(chain, np.random.default_rng(0)).act(None, state)
    assert orders.shape == (2000, 3) and np.all(orders == np.floor(orders))
    assert orders.min(axis=0).tolist() == [0, 0, 0] and orders.max(axis=0).tolist() == [10, 5, 3]
    np.testing.assert_allclose(orders.mean(axis=0), [5.0, 2.5, 1.5], rtol=0.08)


def test_the_paper_quality_of_v1_is_the_quick_runs_dataset():
    built = build_dataset("v1", "paper", 40, overrides=["search.episodes=10"])
    run = pipeline.resolve("quick", ["search.episodes=10", "collect.episodes=40"])
    expected = collect_stage(run, search_stage(run))
    np.testing.assert_array_equal(built.data.actions, expected.actions)
    np.testing.assert_array_equal(built.data.rewards, expected.rewards)
    assert built.id == dataset_id("v1", "paper") == "echelon/v1-paper-v0"
    assert built.data.source["benchmark"]["id"] == built.id


def test_the_suite_grades_its_behaviour(suite):
    out, manifest = suite
    rows = {row["quality"]: row for row in manifest["datasets"]}
    assert list(rows) == list(QUALITIES)
    assert all((out / row["file"]).is_file() and row["episodes"] == 12 for row in rows.values())
    mean = {quality: row["mean_return"] for quality, row in rows.items()}
    assert mean["random"] < mean["paper"] < mean["expert"]
    assert mean["noisy-expert"] < mean["expert"]
    assert list(rows["random"]["behaviours"]) == ["random"]
    assert all(name.startswith("expert-time-aware-") for name in rows["expert"]["behaviours"])
    # mixed: an even mix of the three kinds, each episode labelled with its behaviour
    mixed = load(out / "v1-mixed.h5")
    names = np.array([spec["name"] for spec in mixed.behaviour_policies])
    kinds = [name.split("-")[0] for name in names[mixed.episode_behaviour()]]
    assert {kind: kinds.count(kind) for kind in set(kinds)} == {"random": 4, "paper": 4,
                                                                "expert": 4}
    noisy = load(out / "v1-noisy-expert.h5")
    assert noisy.behaviour_policies[0]["noise_std"] == 10.0
    assert noisy.source["benchmark"]["quality"] == "noisy-expert"


def test_a_rebuild_is_identical(suite, tmp_path):
    out, manifest = suite
    again = build_suite(tmp_path, scenarios=["v1"], qualities=["mixed", "random"], episodes=12,
                        test_episodes=8, **SMALL)
    for quality in ("mixed", "random"):
        first, second = load(out / f"v1-{quality}.h5"), load(tmp_path / f"v1-{quality}.h5")
        np.testing.assert_array_equal(first.observations, second.observations)
        np.testing.assert_array_equal(first.actions, second.actions)
    assert again["scenarios"] == manifest["scenarios"]


def test_the_constants_and_the_score(suite):
    _, manifest = suite
    constants = manifest["scenarios"]["v1"]
    run = pipeline.resolve("quick")
    from echelon.sim.demand import run_streams

    paths = run.chain.demand.sample(np.random.default_rng(run_streams(run.seed).test), 8,
                                    run.chain.periods)
    assert constants["J_bound"] == pytest.approx(perfect_information_plan(run.chain, paths)
                                                 .profit.mean())
    assert constants["J_random"] < constants["J_heuristic"] < constants["J_bound"]
    assert normalised_score(constants["J_random"], constants) == 0.0
    assert normalised_score(constants["J_bound"], constants) == pytest.approx(100.0)
    assert normalised_score(constants["J_heuristic"], constants,
                            against="J_heuristic") == pytest.approx(100.0)


def test_concatenate_renumbers_episodes_and_behaviours(suite):
    out, _ = suite
    random, paper = load(out / "v1-random.h5"), load(out / "v1-paper.h5")
    both = concatenate([random, paper], source={"kind": "test"})
    assert both.episodes == 24 and len(both.behaviour_policies) == 1 + len(paper.behaviour_policies)
    np.testing.assert_array_equal(both.episode_behaviour()[12:], paper.episode_behaviour() + 1)
    np.testing.assert_array_equal(both.actions[len(random):], paper.actions)
    with pytest.raises(ValueError, match="one chain"):
        concatenate([random, dataclasses.replace(paper, chain=paper.chain.replace(periods=30,
                                                 price=3.0))], source={})


def test_the_command_builds_refuses_and_exports(tmp_path, capsys, monkeypatch):
    import echelon.benchmark.datasets as datasets

    monkeypatch.setattr(datasets, "EXPERT_SEARCH", SMALL["expert_search"])
    out = tmp_path / "suite"
    argv = ["benchmark", "build", "--out", str(out), "--scenarios", "v1", "--qualities",
            "random,paper", "--episodes", "3", "--test-episodes", "4", "--json"]
    assert main(argv) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in manifest["datasets"]] == ["echelon/v1-random-v0",
                                                           "echelon/v1-paper-v0"]
    assert main(argv) == 2
    assert "already holds a result" in capsys.readouterr().err
    for bad, message in ((["--scenarios", "v9"], "--scenarios must list distinct names"),
                         (["--qualities", "random,random"], "--qualities must list distinct"),
                         (["--qualities", "mixed", "--episodes", "2"], "--episodes must be >= 3")):
        assert main([*argv[:2], "--out", str(tmp_path / "other"), *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "other").exists()
    minari = tmp_path / "minari"
    assert main(["dataset", "export-minari", str(out / "v1-random.h5"), "--data-path",
                 str(minari), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "echelon/v1-random-v0"
