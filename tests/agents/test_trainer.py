"""The shared trainer: determinism, resume, refusals, metrics, the validation split, divergence,
progress."""

from __future__ import annotations

import csv
import dataclasses
import math
import re
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
from echelon.agents.preprocessing import split_episodes
from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset_file import load, save
from echelon.policies.search import Family
from echelon.sim.config import ChainConfig
from echelon.sim.rollout import rollout

TINY = {"hidden": (32, 32)}
QUICK = TrainConfig(epochs=2, batch_size=64, device="cpu")
# The chain, the dataset (30 episodes of 10 periods, 3 held out) and a BC checkpoint are fixtures
# of conftest.py.


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


def test_the_trainer_normalises_with_the_training_episodes_only(dataset, tmp_path):
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
from echelon.data.dataset_file import load
train(load(sys.argv[1]), "cql", algorithm_config("cql", {settings!r}),
      TrainConfig(epochs={epochs}, batch_size=32, device="cpu"), sys.argv[2])
"""


def test_a_killed_run_resumes_to_the_same_weights(dataset, tmp_path, kill_after_epochs):
    epochs, kill_after = 50, 3
    path = save(dataset, tmp_path / "data.h5")
    data = load(path)
    config = algorithm_config("cql", TINY)
    settings = TrainConfig(epochs=epochs, batch_size=32, device="cpu")
    whole = train(data, "cql", config, settings, tmp_path / "whole")

    kill_after_epochs(CHILD.format(settings=TINY, epochs=epochs), [str(path), str(tmp_path / "killed")],
                      tmp_path / "killed" / "metrics.csv", kill_after)
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


# Refusals ----------------------------------------------------------------------------------------

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
    data_periods = dataset.chain.periods
    for seed in range(20):
        held_in, _ = split_episodes(dataset.episodes, 0.1, seed)
        rewards = dataset.rewards / scale
        rewards[[held_in[0] * data_periods, held_in[1] * data_periods + 5]] = big / scale
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
    policy = AgentPolicy(folder, dataset.chain)
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


# Progress ----------------------------------------------------------------------------------------

def test_progress_in_a_log_is_a_few_lines_with_the_losses(dataset, tmp_path, capsys, monkeypatch):
    # stderr is captured, not a terminal: plain lines instead of a bar's redraws. 270 training
    # transitions in batches of 64: 5 steps per epoch.
    config = algorithm_config("bc", TINY)
    train(dataset, "bc", config, QUICK, tmp_path / "quiet")
    assert capsys.readouterr().err == ""  # progress is off by default
    train(dataset, "bc", config, QUICK, tmp_path / "short", progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "bc: step 0/10"
    assert len(lines) == 2 and re.fullmatch(
        r"bc: step 10/10 \(100%\) \d\d:\d\d, done, train_actor_loss=\S+, val_actor_loss=\S+",
        lines[1])
    # Without the minute between lines (a long run), one line per tenth of the steps at most.
    monkeypatch.setattr("echelon._progress._LINE_SECONDS", 0.0)
    train(dataset, "bc", config, dataclasses.replace(QUICK, epochs=30), tmp_path / "long",
          progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "bc: step 0/150" and "done" in lines[-1] and len(lines) == 11
    assert all("train_actor_loss=" in line for line in lines[1:])
