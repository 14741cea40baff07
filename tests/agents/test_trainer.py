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

    with pytest.raises(CheckpointError,
                       match="observation size 9 and 3 stages; this chain has 33 and 3"):
        AgentPolicy(checkpoint, ChainConfig())  # OR-Gym's chain: lead times (3, 5, 10)
    assert AgentPolicy(checkpoint, CHAIN.replace(backlog=True)).epoch == 2  # same sizes: accepted


# Divergence --------------------------------------------------------------------------------------

def test_infinite_rewards_stop_training_before_any_checkpoint(dataset, tmp_path):
    # 1e38 is a finite reward, but scaled by 1e10 it is infinite in float32.
    data = dataclasses.replace(dataset, rewards=np.full(len(dataset), 1e38))
    settings = dataclasses.replace(QUICK, reward_scale=1e10)
    with pytest.raises(TrainingDiverged, match="critic_loss became inf at epoch 1, step 1; "
                                               "no checkpoint was written"):
        train(data, "td3bc", algorithm_config("td3bc", TINY), settings, tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "metrics.csv").exists()


def test_divergence_keeps_the_last_good_checkpoint(dataset, tmp_path):
    # Two transitions get reward R with R^2 < float32's max < 2 R^2: a minibatch holding one of
    # them has a large but finite squared TD error, one holding both overflows. With two
    # minibatches per epoch, whether they first meet in epoch 1 or later depends on the seed's
    # shuffles; we go through seeds until both cases have happened (each seed has about even odds).
    big = 1.5e19
    assert big**2 < float(np.finfo(np.float32).max) < 2 * big**2
    outcomes: dict[str, tuple] = {}
    for seed in range(20):
        held_in, _ = split_episodes(dataset.episodes, 0.1, seed)
        rewards = dataset.rewards.copy()
        rewards[[held_in[0] * CHAIN.periods, held_in[1] * CHAIN.periods + 5]] = big
        data = dataclasses.replace(dataset, rewards=rewards)
        folder = tmp_path / f"seed{seed}"
        # 270 training transitions in minibatches of 135: two steps per epoch
        settings = TrainConfig(epochs=6, batch_size=135, seed=seed, device="cpu")
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
