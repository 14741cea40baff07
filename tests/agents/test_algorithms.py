"""Every algorithm through the same paces (d3rlpy's shared tester); what BC and IQL must learn."""

from __future__ import annotations

import dataclasses
import io
import types

import numpy as np
import pytest
import torch

from echelon.agents import ALGORITHMS, AgentPolicy, TrainConfig, algorithm_config, train
from echelon.agents.common import Batch
from echelon.agents.cql import CQL, CQLConfig
from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.policies.search import Family
from echelon.sim.config import ChainConfig
from echelon.sim.rollout import rollout

# Short lead times keep the observation small (9 entries) and the episodes short (10 periods).
CHAIN = ChainConfig(periods=10, lead_time=(1, 2, 2), initial_inventory=(40.0, 60.0, 80.0))
CAPACITY = np.asarray(CHAIN.capacity)
TINY = {"hidden": (32, 32)}
MAIN_LOSS = {"iql": "critic_loss", "bc": "actor_loss", "td3bc": "critic_loss", "td3": "critic_loss",
             "cql": "critic_loss"}
FAST = {"iql": {"learning_rate": 1e-3}, "bc": {"learning_rate": 1e-3},
        "td3bc": {"learning_rate": 1e-3}, "td3": {"learning_rate": 1e-3},
        "cql": {"critic_learning_rate": 3e-3}}


def base_stock(name: str, levels: list[float]) -> Behaviour:
    return Behaviour(name, Family.BASE_STOCK, {"z": levels})


@pytest.fixture(scope="module")
def dataset():
    return collect(CHAIN, [base_stock("z", [60.0, 100.0, 140.0])],
                   CollectConfig(episodes=30, noise_std=10.0), np.random.SeedSequence(0))


def random_batch(size: int = 64, obs_dim: int = 9, action_dim: int = 3) -> Batch:
    g = torch.Generator().manual_seed(7)
    return Batch(torch.randn(size, obs_dim, generator=g),
                 torch.rand(size, action_dim, generator=g) * 2 - 1,
                 torch.randn(size, 1, generator=g), torch.randn(size, obs_dim, generator=g),
                 (torch.rand(size, 1, generator=g) < 0.1).float())


def test_every_algorithm_is_registered():
    assert set(ALGORITHMS) == set(MAIN_LOSS) == {"iql", "bc", "td3bc", "td3", "cql"}


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_fit_act_save_and_load(algorithm, dataset, tmp_path):
    config = algorithm_config(algorithm, TINY)
    result = train(dataset, algorithm, config, TrainConfig(epochs=2, batch_size=64, device="cpu"),
                   tmp_path / "run")
    assert result.checkpoint == tmp_path / "run" / "checkpoint.pt" and result.checkpoint.is_file()
    assert [row["epoch"] for row in result.metrics] == [1, 2]
    assert all(np.isfinite(v) for row in result.metrics for v in row.values())

    paths = CHAIN.demand.sample(np.random.default_rng(5), 8, CHAIN.periods)
    policy = AgentPolicy(tmp_path / "run", CHAIN)
    assert policy.algorithm == algorithm and policy.epoch == 2
    played = rollout(CHAIN, policy, paths, record=True)
    orders = played.trajectory["action"]
    assert orders.shape == (8, CHAIN.periods, CHAIN.stages)
    assert np.all(orders >= 0) and np.all(orders <= CAPACITY)
    assert np.all(np.isfinite(played.profit))

    again = rollout(CHAIN, AgentPolicy(result.checkpoint), paths, record=True)  # a fresh load
    np.testing.assert_array_equal(again.trajectory["action"], orders)
    np.testing.assert_array_equal(again.profit, played.profit)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_state_dict_round_trip_restores_weights_and_optimisers(algorithm):
    spec, config, batch = ALGORITHMS[algorithm], algorithm_config(algorithm, TINY), random_batch()
    original = spec.learner(9, 3, config, 100, torch.Generator().manual_seed(0), "cpu")
    for _ in range(3):
        original.update(batch)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    copy = spec.learner(9, 3, config, 100, torch.Generator().manual_seed(1), "cpu")
    copy.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(copy.act(batch.observations), original.act(batch.observations),
                               rtol=0, atol=0)
    # The next step is the same too: Adam's moments, schedules and step counters came along.
    state = torch.Generator().manual_seed(3).get_state()
    for learner in (original, copy):
        getattr(learner, "generator", torch.Generator()).set_state(state)
    assert copy.update(batch) == original.update(batch)
    torch.testing.assert_close(copy.act(batch.observations), original.act(batch.observations),
                               rtol=0, atol=0)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_updates_on_a_fixed_batch_lower_the_main_loss(algorithm):
    config = algorithm_config(algorithm, {**TINY, **FAST[algorithm]})
    generator = torch.Generator().manual_seed(0)
    learner = ALGORITHMS[algorithm].learner(9, 3, config, 200, generator, "cpu")
    batch, name = random_batch(), MAIN_LOSS[algorithm]
    before = learner.losses(batch)
    first = learner.update(batch)
    assert first[name] == pytest.approx(before[name], rel=1e-5)  # losses() is update()'s loss
    for _ in range(200):
        learner.update(batch)
    after = learner.losses(batch)
    assert all(np.isfinite(v) for v in after.values())
    assert after[name] < 0.8 * before[name], (before, after)


def test_bc_recovers_a_linear_behaviour_policy(tmp_path):
    # Valid episodes from a noisy base-stock policy, whose actions are then replaced by a fixed
    # linear function of the normalised observation (clipped inside the action box).
    behaviour = [base_stock("z", [60.0, 100.0, 140.0])]
    data = collect(CHAIN, behaviour, CollectConfig(episodes=150, noise_std=15.0),
                   np.random.SeedSequence(3))
    held_out = collect(CHAIN, behaviour, CollectConfig(episodes=20, noise_std=15.0),
                       np.random.SeedSequence(4))
    mean, std = data.observations.mean(axis=0), np.maximum(data.observations.std(axis=0), 1e-3)
    weights = np.random.default_rng(0).normal(0.0, 0.5 / np.sqrt(CHAIN.observation_size),
                                              (CHAIN.stages, CHAIN.observation_size))

    def rule(observations: np.ndarray) -> np.ndarray:
        scaled = np.clip(((observations - mean) / std) @ weights.T, -0.9, 0.9)
        return (scaled + 1.0) / 2.0 * CAPACITY

    data = dataclasses.replace(data, actions=rule(data.observations))
    config = algorithm_config("bc", {"hidden": (64, 64), "learning_rate": 1e-3})
    train(data, "bc", config, TrainConfig(epochs=20, batch_size=64, device="cpu"), tmp_path)
    policy = AgentPolicy(tmp_path, CHAIN)
    predicted = policy.act(held_out.observations, types.SimpleNamespace(period=held_out.periods))
    error = np.abs(predicted - rule(held_out.observations)) / CAPACITY
    spread = np.abs(rule(held_out.observations) / CAPACITY - 0.5)  # error of a constant guess
    assert spread.mean() > 0.1
    assert error.mean() < 0.03, error.mean()


def test_iql_prefers_the_good_behaviour_of_a_mixture(tmp_path):
    # Half the episodes follow a tuned base-stock policy (about 273 profit on this chain), half
    # one that orders all it can every period (about -166). Every episode starts in the same
    # state, where the data holds both behaviours' orders equally: cloning would average them
    # (BC orders about 40 at every stage there); IQL's advantage weights must pick the good one.
    good = base_stock("good", [60.0, 100.0, 20.0])  # orders (20, 0, 0) in the first period
    bad = base_stock("bad", [1000.0, 2000.0, 3000.0])  # orders (60, 80, 80)
    data = collect(CHAIN, [good, bad], CollectConfig(episodes=200, noise_std=5.0),
                   np.random.SeedSequence(0))
    config = algorithm_config("iql", {"hidden": (64, 64)})
    settings = TrainConfig(epochs=40, batch_size=100, reward_scale=0.1, device="cpu")
    train(data, "iql", config, settings, tmp_path)

    paths = CHAIN.demand.sample(np.random.default_rng(99), 100, CHAIN.periods)
    profit = {name: rollout(CHAIN, b.policy(CHAIN), paths, record=True) for name, b in
              (("good", good), ("bad", bad))}
    learned = rollout(CHAIN, AgentPolicy(tmp_path, CHAIN), paths, record=True)
    first = {name: r.trajectory["action"][0, 0] for name, r in profit.items()}
    np.testing.assert_array_equal(first["good"], [20.0, 0.0, 0.0])
    np.testing.assert_array_equal(first["bad"], [60.0, 80.0, 80.0])
    mine = learned.trajectory["action"][0, 0]
    assert np.linalg.norm(mine - first["good"]) < 0.25 * np.linalg.norm(mine - first["bad"]), mine
    good_profit, bad_profit = profit["good"].profit.mean(), profit["bad"].profit.mean()
    assert good_profit - bad_profit > 400
    # closer to the good policy's profit than to the bad one's, by a wide margin
    assert learned.profit.mean() > bad_profit + 0.6 * (good_profit - bad_profit), learned.profit


@pytest.mark.parametrize("threshold, grows", [(0.0, True), (1e3, False)])
def test_cql_lagrange_multiplier_follows_the_penalty(threshold, grows):
    # alpha_c * penalty is about 5 * 5.5 here: above a threshold of 0, far below 1000.
    config = CQLConfig(hidden=(32, 32), lagrange_threshold=threshold, lagrange_learning_rate=1e-2)
    learner = CQL(9, 3, config, 10, torch.Generator().manual_seed(0))
    for _ in range(10):
        losses = learner.update(random_batch())
    assert {"lagrange_loss", "lagrange_multiplier"} <= set(losses)
    assert (losses["lagrange_multiplier"] > 1.0) is grows
    assert set(learner.state_dict()["modules"]) == {"actor", "critic", "target", "entropy_alpha",
                                                    "lagrange"}


def test_cql_fixed_entropy_weight_stays_fixed():
    learner = CQL(9, 3, CQLConfig(hidden=(32, 32), entropy_alpha=0.2, auto_entropy=False), 10,
                  torch.Generator().manual_seed(0))
    for _ in range(5):
        losses = learner.update(random_batch())
    assert "entropy_loss" not in losses
    assert losses["entropy_alpha"] == pytest.approx(0.2)


@pytest.mark.parametrize("change", [{"action_samples": 0}, {"action_samples": 2.5},
                                    {"conservative_weight": -1.0}, {"logsumexp_temperature": 0.0},
                                    {"entropy_alpha": 0.0}, {"critic_learning_rate": 0.0},
                                    {"gamma": 1.5}, {"polyak": 0.0},
                                    {"lagrange_threshold": float("nan")}, {"auto_entropy": 1}])
def test_cql_config_rejects_out_of_range_values(change):
    with pytest.raises(ValueError, match="cql."):
        CQLConfig(**change)
