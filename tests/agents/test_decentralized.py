"""Trained decentralized agents: per-stage checkpoints, their manifest, loading, acting, the CLI."""

import json
import shutil

import numpy as np
import pytest

from echelon.agents import AgentPolicy, CheckpointError, TrainConfig, algorithm_config, train
from echelon.agents.decentralized import (
    MANIFEST_NAME,
    load_agent,
    load_decentralized,
    read_manifest,
    write_manifest,
)
from echelon.cli import main
from echelon.data.stage_split import load_stage_split, save_stage_split, split_stages
from echelon.policies.decentralized import DecentralizedPolicy
from echelon.run.saved import saved_agent
from echelon.sim import ChainConfig, core
from echelon.sim.rollout import rollout
from echelon.sim.stage_view import local_observation, stage_chain

NAMES = ["retailer", "distributor", "manufacturer"]


@pytest.fixture(scope="module")
def split(dataset, tmp_path_factory):
    """The conftest's dataset split per stage (local reward), as ``echelon dataset split-stages``
    writes it."""
    folder = tmp_path_factory.mktemp("split")
    save_stage_split(split_stages(dataset, "local"), folder)
    return folder


@pytest.fixture(scope="module")
def trained(split, tmp_path_factory):
    """A BC agent per stage (two hidden layers of 32, 2 epochs) and their manifest."""
    stages = load_stage_split(split)
    folder = tmp_path_factory.mktemp("agents")
    settings = TrainConfig(epochs=2, batch_size=64, device="cpu")
    checkpoints = [train(data, "bc", algorithm_config("bc", {"hidden": (32, 32)}), settings,
                         folder / name).checkpoint
                   for data, name in zip(stages.datasets(), stages.names, strict=True)]
    write_manifest(folder, stages.chain, "bc", stages.reward, checkpoints)
    return folder


def _edited(trained, tmp_path, edit):
    """A copy of the agents' folder whose manifest ``edit`` (a function of the dict) changed."""
    folder = tmp_path / "edited"
    shutil.copytree(trained, folder)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    edit(manifest)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    return folder


def test_the_manifest_holds_the_chain_and_relative_checkpoints(trained, chain):
    manifest = json.loads((trained / MANIFEST_NAME).read_text())
    assert manifest == {
        "format": "echelon-decentralized", "version": 1, "chain": chain.to_dict(),
        "algorithm": "bc", "reward": "local",
        "stages": [{"stage": i, "agent": name, "checkpoint": f"{name}/checkpoint.pt"}
                   for i, name in enumerate(NAMES)],
    }
    read = read_manifest(trained)
    assert read.chain == chain and read.names == tuple(NAMES) and read.folder == trained
    assert read.checkpoints == tuple(trained / name / "checkpoint.pt" for name in NAMES)
    assert read_manifest(trained / MANIFEST_NAME) == read
    # Relative paths: the folder can move.
    moved = trained.parent / "moved"
    shutil.copytree(trained, moved)
    assert read_manifest(moved).checkpoints[0] == moved / "retailer" / "checkpoint.pt"


def test_each_stage_acts_on_its_local_observation_alone(trained, chain):
    policy = load_decentralized(trained, chain)
    assert isinstance(policy, DecentralizedPolicy) and policy.names == tuple(NAMES)
    assert policy.reads_observation is False and policy.histories == chain.lead_time
    paths = chain.demand.sample(np.random.default_rng(0), 6, chain.periods)
    state = core.reset(chain, paths)
    for orders in ([30.0, 50.0, 70.0], [10.0, 0.0, 90.0]):
        state, _ = core.step(chain, state, np.tile(orders, (6, 1)))
    joint = policy.act(None, state)
    assert joint.shape == (6, 3)
    for i, name in enumerate(NAMES):
        alone = AgentPolicy(trained / name, stage_chain(chain, i))
        expected = alone.act(local_observation(chain, state, i), state)[:, 0]
        assert np.array_equal(joint[:, i], expected)
    # What the other stages hold is not the retailer's to see.
    other = state.copy()
    other.on_hand[:, 1:] += 50.0
    assert np.array_equal(policy.act(None, other)[:, 0], joint[:, 0])
    assert not np.array_equal(policy.act(None, other)[:, 1], joint[:, 1])
    result = rollout(chain, policy, paths)
    assert np.all(np.isfinite(result.profit))


def test_load_agent_tells_the_two_kinds_apart(trained, chain, checkpoint):
    assert isinstance(load_agent(trained, chain), DecentralizedPolicy)
    assert isinstance(load_agent(trained / MANIFEST_NAME), DecentralizedPolicy)
    assert isinstance(load_agent(checkpoint, chain), AgentPolicy)
    retailer = load_agent(trained / "retailer")
    assert isinstance(retailer, AgentPolicy) and retailer.chain == stage_chain(chain, 0)
    agent, agent_chain = saved_agent(trained)
    assert agent_chain == chain and agent.algorithm == "bc" and agent.seed == 0
    assert agent.checkpoint == trained.resolve() and agent.variant == trained.name


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.update(format="echelon-stage-split"), "not a manifest of decentralized agents"),
    (lambda m: m.update(version=2), "version must be 1, got 2"),
    (lambda m: m.pop("chain"), "chain is missing"),
    (lambda m: m["chain"].update(periods=-1), "chain: "),
    (lambda m: m.update(algorithm="ppo"), "algorithm: must be one of"),
    (lambda m: m.update(reward="greedy"), "reward: "),
    (lambda m: m["stages"].pop(), "stages must be a list of 3 entries"),
    (lambda m: m["stages"][1].update(stage=2), r"stages\[1\] must be"),
    (lambda m: m["stages"][1].update(checkpoint="/checkpoint.pt"), r"stages\[1\] must be"),
    (lambda m: m["stages"][2].update(checkpoint="nowhere/checkpoint.pt"),
     r"stages\[2\] \(manufacturer\): checkpoint .*nowhere.* no such file"),
    (lambda m: m.update(algorithm="iql"), r"stages\[0\] \(retailer\): .* is a bc agent, the "
     "manifest says iql"),
])
def test_a_wrong_manifest_is_refused_naming_the_file_and_field(trained, tmp_path, edit, message):
    folder = _edited(trained, tmp_path, edit)
    with pytest.raises(CheckpointError, match=message) as error:
        load_decentralized(folder)
    assert str(error.value).startswith(str(folder / MANIFEST_NAME))
    assert "\n" not in str(error.value)


def test_a_stage_given_another_stages_agent_is_refused(trained, tmp_path):
    def swap(manifest):
        first, second = manifest["stages"][0], manifest["stages"][1]
        first["checkpoint"], second["checkpoint"] = second["checkpoint"], first["checkpoint"]

    with pytest.raises(CheckpointError, match=r"stages\[0\] \(retailer\): .*trained on a "
                       r"different chain.*lead_time \[2\] when trained, \[1\] here"):
        load_decentralized(_edited(trained, tmp_path, swap))


def test_agents_of_another_chain_are_refused(trained):
    with pytest.raises(CheckpointError, match="the agents are of a different chain: periods 10 "
                       "there, 30 here"):
        load_decentralized(trained, ChainConfig())


def test_write_manifest_needs_one_checkpoint_per_stage(chain, tmp_path):
    with pytest.raises(ValueError, match="one checkpoint and one name per stage"):
        write_manifest(tmp_path, chain, "bc", "local", [tmp_path / "a.pt"])
    with pytest.raises(ValueError, match="algorithm must be one of"):
        write_manifest(tmp_path, chain, "ppo", "local", [tmp_path / "a.pt"] * 3)
    assert not (tmp_path / MANIFEST_NAME).exists()


# The CLI -----------------------------------------------------------------------------------------


def test_train_decentralized_then_evaluate(capsys, split, tmp_path):
    out = tmp_path / "bc-agents"
    assert main(["train", "bc", "--decentralized", str(split), "--preset", "quick", "--epochs",
                 "1", "--device", "cpu", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["manifest"] == str(out / MANIFEST_NAME) and report["seed"] == 0
    assert [stage["agent"] for stage in report["stages"]] == NAMES
    assert all(stage["last_epoch"]["epoch"] == 1 for stage in report["stages"])
    assert read_manifest(out).checkpoints == tuple(out / name / "checkpoint.pt" for name in NAMES)
    assert main(["evaluate", "--agent", str(out), "--baselines", "oracle", "--episodes", "10",
                 "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["policies"]}
    assert rows["bc-agents seed 0"]["kind"] == "agent"
    assert rows["bc-agents seed 0"]["mean"] <= rows["perfect-information bound"]["mean"]


def test_train_decentralized_prints_the_manifest(capsys, split, tmp_path):
    assert main(["train", "bc", "--decentralized", str(split), "--preset", "quick", "--epochs",
                 "1", "--device", "cpu", "--seeds", "3", "4", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for seed in (3, 4):
        assert f"manifest of the 3 agents: {tmp_path / f'bc-decentralized-s{seed}' / MANIFEST_NAME}" in text
        assert f"echelon evaluate --agent {tmp_path / f'bc-decentralized-s{seed}'}" in text
        for name in NAMES:
            assert (tmp_path / f"bc-decentralized-s{seed}" / name / "checkpoint.pt").is_file()
            assert f"seed {seed}) for the {name} on {split / f'{name}.h5'}" in text


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["stages"][1].update(checkpoint="nowhere/checkpoint.pt"), "no such file"),
    (lambda m: [m["stages"][0].update(checkpoint="distributor/checkpoint.pt"),
                m["stages"][1].update(checkpoint="retailer/checkpoint.pt")],
     "trained on a different chain"),
])
def test_evaluate_refuses_a_broken_manifest_in_one_line(capsys, trained, tmp_path, edit, message):
    folder = _edited(trained, tmp_path, edit)
    assert main(["evaluate", "--agent", str(folder), "--baselines", "oracle", "--episodes",
                 "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("echelon: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_train_takes_a_dataset_or_a_split_not_both(capsys, split, small_logs):
    for argv, message in (
        (["train", "bc", "--decentralized", str(split), "--dataset", str(small_logs)],
         "not allowed with argument"),
        (["train", "bc"], "one of the arguments --dataset --decentralized is required"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("echelon: error: ") and message in err and err.count("\n") == 1
