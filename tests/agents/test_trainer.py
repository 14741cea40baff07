"""The shared trainer: determinism, resume, refusals, metrics, the validation split, divergence."""

from __future__ import annotations

import csv
import dataclasses
import math
import re
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch

from echelon.agents import (
    ALGORITHMS,
    AgentPolicy,
    CheckpointError,
    TrainConfig,
    TrainingDiverged,
    algorithm_config,
    load_checkpoint,
    train,
)
from echelon.agents.common import Batch
from echelon.agents.trainer import split_episodes
from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import load, save
from echelon.policies.search import Family
from echelon.sim.config import ChainConfig
from echelon.sim.demand import Poisson
from echelon.sim.rollout import rollout

CHAIN = ChainConfig(periods=10, lead_time=(1, 2, 2), initial_inventory=(40.0, 60.0, 80.0))
TINY = {"hidden": (32, 32)}
QUICK = TrainConfig(epochs=2, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def dataset():
    """30 episodes of 10 periods: 27 train episodes (270 transitions), 3 held out."""
    behaviour = Behaviour("z", Family.BASE_STOCK, {"z": [60.0, 100.0, 140.0]})
    return collect(CHAIN, [behaviour], CollectConfig(episodes=30, noise_std=10.0),
                   np.random.SeedSequence(0))


def assert_identical(a, b, where: str = "checkpoint") -> None:
    """Nested dicts and lists of tensors and plain values are exactly equal."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def without_seconds(metrics: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in metrics]


def read_metrics(folder) -> list[dict[str, str]]:
    with open(folder / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# Determinism and the metrics file ----------------------------------------------------------------

@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_same_seed_gives_identical_weights_and_metrics(algorithm, dataset, tmp_path):
    config = algorithm_config(algorithm, TINY)
    first = train(dataset, algorithm, config, QUICK, tmp_path / "a")
    second = train(dataset, algorithm, config, QUICK, tmp_path / "b")
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert_identical(a["state"], b["state"])
    assert_identical(a["rng"], b["rng"])
    assert without_seconds(first.metrics) == without_seconds(second.metrics)
    other = train(dataset, algorithm, config, dataclasses.replace(QUICK, seed=1), tmp_path / "c")
    actor, other_actor = (load_checkpoint(tmp_path / name)["state"]["modules"]["actor"]
                          for name in ("a", "c"))
    assert not all(torch.equal(actor[key], other_actor[key]) for key in actor)
    assert without_seconds(other.metrics) != without_seconds(first.metrics)

    # metrics.csv: one row per epoch, a train_ and a val_ column for every loss the learner reports
    rows = read_metrics(tmp_path / "a")
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    g = torch.Generator().manual_seed(0)
    probe = Batch(torch.randn(4, 9, generator=g), torch.zeros(4, 3), torch.zeros(4, 1),
                  torch.randn(4, 9, generator=g), torch.zeros(4, 1))
    reported = set(AgentPolicy(tmp_path / "a").learner.losses(probe))
    assert set(rows[0]) == ({"epoch", "step", "seconds"} | {f"train_{k}" for k in reported}
                            | {f"val_{k}" for k in reported})
    for row, logged in zip(rows, first.metrics):
        assert {k: float(v) for k, v in row.items()} == pytest.approx(logged, rel=1e-12)
        assert all(math.isfinite(float(v)) for v in row.values())


def test_validation_holds_out_a_tenth_of_the_episodes(dataset, tmp_path):
    train_eps, val_eps = split_episodes(50, 0.1, seed=0)
    assert len(val_eps) == 5 and len(train_eps) == 45
    assert set(train_eps).isdisjoint(val_eps) and set(train_eps) | set(val_eps) == set(range(50))
    again, other = split_episodes(50, 0.1, seed=0), split_episodes(50, 0.1, seed=1)
    np.testing.assert_array_equal(again[1], val_eps)
    assert not np.array_equal(other[1], val_eps)
    assert split_episodes(1, 0.1, seed=0)[1].size == 0  # a single episode is never held out

    # The trainer normalises with the training episodes only.
    train(dataset, "bc", algorithm_config("bc", TINY), QUICK, tmp_path)
    held_in, held_out = split_episodes(dataset.episodes, 0.1, QUICK.seed)
    assert len(held_out) == 3
    rows = np.isin(dataset.episode_ids, held_in)
    saved = load_checkpoint(tmp_path)
    np.testing.assert_allclose(saved["preprocessing"]["obs_mean"],
                               dataset.observations[rows].mean(axis=0), rtol=1e-12)
    assert not np.allclose(saved["preprocessing"]["obs_mean"], dataset.observations.mean(axis=0))


# Resume ------------------------------------------------------------------------------------------

CHILD = """
import sys
from echelon.agents import TrainConfig, algorithm_config, train
from echelon.data.dataset import load
train(load(sys.argv[1]), "cql", algorithm_config("cql", {settings!r}),
      TrainConfig(epochs={epochs}, batch_size=32, device="cpu"), sys.argv[2])
"""


def test_a_killed_run_resumes_to_the_same_weights(dataset, tmp_path):
    epochs, kill_after = 50, 3
    path = save(dataset, tmp_path / "data.h5")
    data = load(path)
    config = algorithm_config("cql", TINY)
    settings = TrainConfig(epochs=epochs, batch_size=32, device="cpu")
    whole = train(data, "cql", config, settings, tmp_path / "whole")

    code = CHILD.format(settings=TINY, epochs=epochs)
    child = subprocess.Popen([sys.executable, "-c", code, str(path), str(tmp_path / "killed")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics, deadline = tmp_path / "killed" / "metrics.csv", time.monotonic() + 120
    try:
        while child.poll() is None and time.monotonic() < deadline:
            if metrics.exists() and len(metrics.read_text().splitlines()) - 1 >= kill_after:
                break
            time.sleep(0.002)
        assert child.poll() is None, f"the run ended before it was killed: {child.stderr.read()}"
    finally:
        child.kill()  # SIGKILL: no cleanup, as when a machine dies
        child.wait()
        child.stderr.close()
    interrupted = load_checkpoint(tmp_path / "killed")["epoch"]
    assert kill_after <= interrupted < epochs

    resumed = train(data, "cql", config, settings, tmp_path / "killed", resume=True)
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "killed")
    assert b["epoch"] == epochs
    assert_identical(a["state"], b["state"])
    assert_identical(a["rng"], b["rng"])
    assert without_seconds(resumed.metrics) == without_seconds(whole.metrics)
    assert len(read_metrics(tmp_path / "killed")) == epochs


def test_resume_refuses_another_run(dataset, tmp_path):
    config = algorithm_config("td3bc", TINY)
    train(dataset, "td3bc", config, QUICK, tmp_path)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(CheckpointError, match="exists; pass resume"):
        train(dataset, "td3bc", config, QUICK, tmp_path)
    cases = [
        ("train_config", dataset, "td3bc", config, dataclasses.replace(QUICK, batch_size=32)),
        ("train_config", dataset, "td3bc", config, dataclasses.replace(QUICK, reward_scale=0.5)),
        ("algo_config", dataset, "td3bc", algorithm_config("td3bc", {"hidden": (16,)}), QUICK),
        ("algorithm", dataset, "td3", config, QUICK),  # same config class, other algorithm
        ("dataset", dataclasses.replace(dataset, rewards=dataset.rewards + 1.0), "td3bc", config,
         QUICK),
    ]
    for what, data, algorithm, algo_config, settings in cases:
        with pytest.raises(CheckpointError, match=f"its {what} differs from this run's"):
            train(data, algorithm, algo_config, settings, tmp_path, resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    # the same run resumes (already complete: nothing to do)
    assert len(train(dataset, "td3bc", config, QUICK, tmp_path, resume=True).metrics) == 2


# Checkpoints that cannot be used -----------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bc")
    return train(dataset, "bc", algorithm_config("bc", TINY), QUICK, folder).checkpoint


def test_a_good_checkpoint_loads(checkpoint):
    policy = AgentPolicy(checkpoint, CHAIN)
    obs = np.zeros((2, CHAIN.observation_size))
    orders = policy.act(obs, types.SimpleNamespace(period=np.zeros(2, dtype=int)))
    assert orders.shape == (2, 3) and np.all(np.isfinite(orders))


def test_unusable_checkpoints_are_refused(checkpoint, tmp_path):
    saved = torch.load(checkpoint, weights_only=True)
    broken = tmp_path / "broken.pt"

    def refused(match: str) -> None:
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(broken)
        with pytest.raises(CheckpointError, match=match):
            AgentPolicy(broken, CHAIN)

    refused("no such checkpoint")
    broken.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    refused(r"not a readable checkpoint \(corrupt or truncated\?\)")
    broken.write_bytes(b"this is not a checkpoint")
    refused(r"not a readable checkpoint \(corrupt or truncated\?\)")
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, broken)  # someone else's torch file
    refused("not an echelon agent checkpoint")
    torch.save({**saved, "version": 99}, broken)
    refused("checkpoint version 99, this echelon reads 1")
    torch.save({**saved, "algorithm": "dqn"}, broken)
    refused("unknown algorithm 'dqn'")
    torch.save({k: v for k, v in saved.items() if k != "state"}, broken)
    refused(r"checkpoint lacks \['state'\]")
    torch.save({**saved, "state": {**saved["state"], "modules": {"actor": {}}}}, broken)
    with pytest.raises(CheckpointError, match="weights do not fit the network"):
        AgentPolicy(broken)


def test_an_agent_is_refused_on_another_chain(checkpoint):
    with pytest.raises(CheckpointError, match=re.escape(
            f"{checkpoint}: trained on a different chain (observation size 9 and 3 stages there, "
            "33 and 3 here): periods 10 when trained, 30 here; initial_inventory [40.0, 60.0, "
            "80.0] when trained, [100.0, 100.0, 200.0] here; lead_time [1, 2, 2] when trained, "
            "[3, 5, 10] here")):
        AgentPolicy(checkpoint, ChainConfig())  # OR-Gym's chain: lead times (3, 5, 10)
    # Chains of the same sizes are refused too: the agent was trained for other dynamics or costs.
    for other, differences in [
        (CHAIN.replace(backlog=True), "backlog False when trained, True here"),
        (CHAIN.replace(holding_cost=(0.2, 0.1, 0.05)),
         "holding_cost [0.15, 0.1, 0.05] when trained, [0.2, 0.1, 0.05] here"),
        (CHAIN.replace(demand=Poisson(25.0)),
         "demand {'law': 'poisson', 'mu': 20.0} when trained, {'law': 'poisson', 'mu': 25.0} here"),
        (CHAIN.replace(price=3.0, alpha=1.0),
         "price 2.0 when trained, 3.0 here; alpha 0.97 when trained, 1.0 here"),
    ]:
        with pytest.raises(CheckpointError, match=re.escape(
                f"{checkpoint}: trained on a different chain: {differences}")):
            AgentPolicy(checkpoint, other)
    # An equal chain, built anew, is accepted.
    assert AgentPolicy(checkpoint, ChainConfig.from_dict(CHAIN.to_dict())).epoch == 2


def _tensors(state: dict) -> dict:
    """A copy of a learner's state with every tensor cloned, to damage one of them."""
    if isinstance(state, torch.Tensor):
        return state.clone()
    if isinstance(state, dict):
        return {k: _tensors(v) for k, v in state.items()}
    return state


def _actor_weight(saved: dict) -> torch.Tensor:
    return saved["state"]["modules"]["actor"]["net.0.weight"]


def _damaged(saved: dict, edit) -> dict:
    damaged = {**saved, "state": _tensors(saved["state"]),
               "preprocessing": dict(saved["preprocessing"]),
               "algo_config": dict(saved["algo_config"]),
               "train_config": dict(saved["train_config"])}
    edit(damaged)
    return damaged


def _nan_weight(saved: dict) -> None:
    _actor_weight(saved)[0, 0] = math.nan


def _infinite_weight(saved: dict) -> None:
    _actor_weight(saved)[1, 2] = -math.inf


DAMAGED_CHECKPOINTS = [
    # (what, edit of the saved dict, message after "<path>: ")
    ("preprocessing key", lambda c: c["preprocessing"].pop("obs_std"),
     "preprocessing lacks ['obs_std']"),
    ("preprocessing type", lambda c: c.update(preprocessing=[1, 2]),
     "preprocessing must be a dict, got list"),
    ("preprocessing length", lambda c: c["preprocessing"].update(obs_mean=[0.0] * 8,
                                                                  obs_std=[1.0] * 8),
     "preprocessing.obs_mean length is 8, not 9 (obs_dim)"),
    ("action bounds length", lambda c: c["preprocessing"].update(action_low=[0.0, 0.0],
                                                                 action_high=[1.0, 1.0]),
     "preprocessing.action_low length is 2, not 3 (action_dim)"),
    ("preprocessing NaN", lambda c: c["preprocessing"].update(
        obs_mean=[math.nan] + c["preprocessing"]["obs_mean"][1:]),
     "preprocessing.obs_mean must be a non-empty list of finite numbers"),
    ("preprocessing inf", lambda c: c["preprocessing"].update(action_high=[math.inf] * 3),
     "preprocessing.action_high must be a non-empty list of finite numbers"),
    ("preprocessing strings", lambda c: c["preprocessing"].update(obs_std=["1"] * 9),
     "preprocessing.obs_std must be a non-empty list of finite numbers"),
    ("zero std", lambda c: c["preprocessing"].update(obs_std=[0.0] * 9),
     "preprocessing.obs_std must be > 0, one entry per obs_mean entry"),
    ("empty action range", lambda c: c["preprocessing"].update(action_high=[0.0] * 3),
     "preprocessing.action_high must exceed action_low, stage by stage"),
    ("other action bounds", lambda c: c["preprocessing"].update(action_high=[100.0, 90.0, 300.0]),
     "preprocessing.action_high is [100.0, 90.0, 300.0], not [100.0, 90.0, 80.0] (the chain's "
     "capacities)"),
    ("negative lowest order", lambda c: c["preprocessing"].update(action_low=[-1.0, 0.0, 0.0]),
     "preprocessing.action_low is [-1.0, 0.0, 0.0], not [0.0, 0.0, 0.0] (the env's lowest "
     "orders)"),
    ("time feature of another run", lambda c: c["train_config"].update(time_feature=True),
     "preprocessing.time_feature is False, train_config.time_feature is True"),
    ("time feature", lambda c: c["preprocessing"].update(time_feature="no"),
     "preprocessing.time_feature must be true or false, got 'no'"),
    ("periods", lambda c: c["preprocessing"].update(periods=12),
     "preprocessing.periods is 12, not 10 (the chain's periods)"),
    ("NaN weight", _nan_weight, "state/modules/actor/net.0.weight holds NaN or infinite values"),
    ("infinite weight", _infinite_weight,
     "state/modules/actor/net.0.weight holds NaN or infinite values"),
    ("state type", lambda c: c.update(state=[1, 2]), "state must be a dict of weights, got list"),
    ("algo_config key", lambda c: c["algo_config"].update(depth=3),
     "algo_config has unknown settings ['depth']"),
    ("algo_config hidden type", lambda c: c["algo_config"].update(hidden="big"),
     "algo_config.hidden must be a list of integers, got 'big'"),
    ("algo_config rate type", lambda c: c["algo_config"].update(learning_rate="fast"),
     "algo_config.learning_rate must be a number, got 'fast'"),
    ("algo_config range", lambda c: c["algo_config"].update(learning_rate=-1.0),
     "bad algo_config: bc.learning_rate must be > 0, got -1.0"),
    ("algo_config type", lambda c: c.update(algo_config=[("hidden", [32])]),
     "algo_config must be a dict of settings, got list"),
    ("hidden size", lambda c: c["algo_config"].update(hidden=[0]),
     "algo_config.hidden must hold layer sizes >= 1, got [0]"),
    ("huge hidden size", lambda c: c["algo_config"].update(hidden=[2**40, 2**40]),
     "algo_config.hidden [1099511627776, 1099511627776] needs an actor of"),
    ("train_config", lambda c: c["train_config"].update(epochs="ten"),
     "train_config.epochs must be an integer, got 'ten'"),
    ("train_config key", lambda c: c["train_config"].update(optimizer="sgd"),
     "train_config has unknown settings ['optimizer']"),
    ("obs_dim zero", lambda c: c.update(obs_dim=0), "obs_dim must be an integer >= 1, got 0"),
    ("obs_dim float", lambda c: c.update(obs_dim=9.0), "obs_dim must be an integer >= 1, got 9.0"),
    ("obs_dim bool", lambda c: c.update(obs_dim=True), "obs_dim must be an integer >= 1, got True"),
    ("obs_dim other", lambda c: c.update(obs_dim=10),
     "obs_dim is 10, not 9 (the chain's observation size)"),
    ("action_dim negative", lambda c: c.update(action_dim=-3),
     "action_dim must be an integer >= 1, got -3"),
    ("action_dim other", lambda c: c.update(action_dim=2),
     "action_dim is 2, not 3 (the chain's number of stages)"),
    ("epoch", lambda c: c.update(epoch="2"), "epoch must be an integer >= 1, got '2'"),
    ("total_steps", lambda c: c.update(total_steps=None),
     "total_steps must be an integer >= 1, got None"),
    ("chain type", lambda c: c.update(chain=[10, 3]), "chain must be a dict, got list"),
    ("chain value", lambda c: c.update(chain={**c["chain"], "periods": 0}),
     "bad chain: periods must be an integer >= 1, got 0"),
    ("chain key", lambda c: c.update(chain={**c["chain"], "colour": "red"}),
     "bad chain: unknown chain parameter 'colour'"),
    ("chain value type", lambda c: c.update(chain={**c["chain"], "lead_time": {"a": 1}}),
     "bad chain: lead_time must be a sequence of numbers"),
    ("format tensor", lambda c: c.update(format=torch.zeros(3)), "not an echelon agent checkpoint"),
    ("version tensor", lambda c: c.update(version=torch.ones(2)), "checkpoint version tensor("),
    ("version bool", lambda c: c.update(version=True), "checkpoint version True, this echelon"),
    ("algorithm tensor", lambda c: c.update(algorithm=torch.ones(2)), "unknown algorithm tensor("),
]


@pytest.mark.parametrize(("what", "edit", "message"), DAMAGED_CHECKPOINTS,
                         ids=[case[0] for case in DAMAGED_CHECKPOINTS])
def test_a_damaged_checkpoint_is_refused_with_the_reason(checkpoint, tmp_path, what, edit, message):
    saved = torch.load(checkpoint, weights_only=True)
    broken = tmp_path / "checkpoint.pt"
    torch.save(_damaged(saved, edit), broken)
    for load in (load_checkpoint, AgentPolicy):
        with pytest.raises(CheckpointError, match=re.escape(f"{broken}: {message}")):
            load(broken)


def test_an_empty_file_or_dict_is_refused(tmp_path):
    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes(b"")
    for load in (load_checkpoint, AgentPolicy):
        with pytest.raises(CheckpointError, match=re.escape(
                f"{broken}: not a readable checkpoint (corrupt or truncated?)")):
            load(broken)
    torch.save({}, broken)
    for load in (load_checkpoint, AgentPolicy):
        with pytest.raises(CheckpointError, match=re.escape(
                f"{broken}: not an echelon agent checkpoint")):
            load(tmp_path)  # the folder holding it


def test_a_pickle_that_is_not_plain_data_is_refused(tmp_path):
    # weights_only=True: loading must not run code, so an arbitrary object is refused.
    broken = tmp_path / "checkpoint.pt"
    torch.save({"format": "echelon-agent", "payload": types.SimpleNamespace(x=1)}, broken)
    with pytest.raises(CheckpointError, match="not a readable checkpoint.*Weights only load failed"):
        load_checkpoint(broken)


def test_an_actor_whose_output_overflows_is_refused_when_it_acts(checkpoint, tmp_path):
    # Finite weights can still overflow inside the network: 3e38 times the inputs is infinite in
    # float32, and the next layer's mixed signs turn inf - inf into NaN. No NaN order escapes.
    saved = torch.load(checkpoint, weights_only=True)

    def overflow(damaged: dict) -> None:
        _actor_weight(damaged).fill_(3e38)

    broken = tmp_path / "checkpoint.pt"
    torch.save(_damaged(saved, overflow), broken)
    policy = AgentPolicy(broken, CHAIN)
    obs = np.full((2, CHAIN.observation_size), 50.0)
    with pytest.raises(CheckpointError, match=re.escape(
            f"{broken}: the actor's output is NaN for these observations (damaged weights?)")):
        policy.act(obs, types.SimpleNamespace(period=np.zeros(2, dtype=int)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_refused_device_leaves_no_output_folder(dataset, tmp_path):
    out = tmp_path / "agents" / "bc-s0"
    with pytest.raises(ValueError, match="device 'cuda' was asked for, but torch sees no CUDA"):
        train(dataset, "bc", algorithm_config("bc", TINY), dataclasses.replace(QUICK, device="cuda"),
              out)
    assert not (tmp_path / "agents").exists()


def test_other_refused_arguments_leave_no_output_folder(dataset, tmp_path):
    out = tmp_path / "agents" / "bc-s0"
    with pytest.raises(ValueError, match="algo_config must be a BCConfig for bc, got IQLConfig"):
        train(dataset, "bc", algorithm_config("iql", TINY), QUICK, out)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        train(dataset, "dqn", algorithm_config("bc", TINY), QUICK, out)
    with pytest.raises(ValueError, match="config must be a TrainConfig, got dict"):
        train(dataset, "bc", algorithm_config("bc", TINY), {"epochs": 1}, out)
    assert not (tmp_path / "agents").exists()


# Divergence --------------------------------------------------------------------------------------

def test_infinite_rewards_stop_training_before_any_checkpoint(dataset, tmp_path):
    # 1e6 is a reward within the dataset's range, but scaled by 1e33 it is infinite in float32.
    data = dataclasses.replace(dataset, rewards=np.full(len(dataset), 1e6))
    settings = dataclasses.replace(QUICK, reward_scale=1e33)
    with pytest.raises(TrainingDiverged, match="critic_loss became inf at epoch 1, step 1; "
                                               "no checkpoint was written"):
        train(data, "td3bc", algorithm_config("td3bc", TINY), settings, tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "metrics.csv").exists()


def test_divergence_keeps_the_last_good_checkpoint(dataset, tmp_path):
    # Two transitions get reward R with R^2 < float32's max < 2 R^2: a minibatch holding one of
    # them has a large but finite squared TD error, one holding both overflows. With two
    # minibatches per epoch, whether they first meet in epoch 1 or later depends on the seed's
    # shuffles; we go through seeds until both cases have happened (each seed has about even odds).
    # A dataset's rewards are bounded (reward_limit), so R comes from the reward scale: the rewards
    # are divided by it, and the two set to R / scale.
    big, scale = 1.5e19, 1e13
    assert big**2 < float(np.finfo(np.float32).max) < 2 * big**2
    outcomes: dict[str, tuple] = {}
    for seed in range(20):
        held_in, _ = split_episodes(dataset.episodes, 0.1, seed)
        rewards = dataset.rewards / scale
        rewards[[held_in[0] * CHAIN.periods, held_in[1] * CHAIN.periods + 5]] = big / scale
        data = dataclasses.replace(dataset, rewards=rewards)
        folder = tmp_path / f"seed{seed}"
        # 270 training transitions in minibatches of 135: two steps per epoch
        settings = TrainConfig(epochs=6, batch_size=135, seed=seed, device="cpu",
                               reward_scale=scale)
        try:
            train(data, "iql", algorithm_config("iql", {"hidden": (8,)}), settings, folder)
        except TrainingDiverged as error:
            epoch = int(str(error).split(" at epoch ")[1].split(",")[0])
            outcomes.setdefault("first" if epoch == 1 else "later", (epoch, str(error), folder))
        if len(outcomes) == 2:
            break
    assert set(outcomes) == {"first", "later"}, outcomes

    _, message, folder = outcomes["first"]
    assert re.match(r"iql: critic_loss became inf at epoch 1, step [12]; no checkpoint was written",
                    message)
    assert not (folder / "checkpoint.pt").exists()

    epoch, message, folder = outcomes["later"]
    kept_in = folder / "checkpoint.pt"
    assert f"the last good checkpoint (epoch {epoch - 1}) is kept in {kept_in}" in message
    assert "Lower the learning rate or scale the rewards" in message
    kept = load_checkpoint(folder)
    assert kept["epoch"] == epoch - 1 and len(read_metrics(folder)) == epoch - 1
    assert all(math.isfinite(v) for row in kept["metrics"] for v in row.values())
    weights = [t for module in kept["state"]["modules"].values() for t in module.values()]
    assert all(torch.isfinite(t).all() for t in weights)
    policy = AgentPolicy(folder, CHAIN)
    orders = policy.act(dataset.observations[:5], types.SimpleNamespace(period=dataset.periods[:5]))
    assert np.all(np.isfinite(orders))


def test_a_step_that_breaks_the_weights_is_caught_before_its_checkpoint(dataset, tmp_path):
    # Adam's first step moves every weight by the learning rate: at 1e10 the critics' outputs
    # overflow after it, although the step's own loss (computed before it) was finite. That epoch
    # must not be checkpointed as good.
    config = algorithm_config("td3bc", {"hidden": (8,), "learning_rate": 1e10})
    settings = TrainConfig(epochs=3, batch_size=1000, device="cpu")  # one step per epoch
    with pytest.raises(TrainingDiverged,
                       match=r"became (inf|nan) after epoch 1; no checkpoint was written"):
        train(dataset, "td3bc", config, settings, tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_bfloat16_autocast_trains_and_keeps_float32_weights(tmp_path):
    data = _bf16_dataset()
    algo = algorithm_config("iql", {"hidden": [32, 32]})
    result = train(data, "iql", algo, TrainConfig(epochs=2, batch_size=64, precision="bfloat16"),
                   tmp_path / "bf16")
    saved = load_checkpoint(result.checkpoint)
    weights = saved["state"]["modules"]["critic"]
    assert all(t.dtype == torch.float32 for t in weights.values())
    assert all(math.isfinite(v) for row in result.metrics for k, v in row.items())
    # The policy acts in float32 from those weights.
    policy = AgentPolicy(result.checkpoint)
    config = data.chain
    profit = rollout(config, policy, np.full((2, config.periods), 20.0)).profit
    assert np.all(np.isfinite(profit))


def test_precision_must_be_known():
    with pytest.raises(ValueError, match="train.precision"):
        TrainConfig(precision="float16")


def _bf16_dataset():
    behaviour = Behaviour("bs", Family.BASE_STOCK, {"z": [80.0, 180.0, 40.0]})
    return collect(ChainConfig(), [behaviour], CollectConfig(episodes=10), np.random.SeedSequence(5))
