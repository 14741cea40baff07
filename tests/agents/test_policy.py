"""A trained agent as a policy: it acts only in the chain it was trained on, never ordering NaN."""

from __future__ import annotations

import re
import types

import numpy as np
import pytest
import torch

from echelon.agents import AgentPolicy, CheckpointError
from echelon.sim.config import ChainConfig
from echelon.sim.demand import Poisson


def test_a_good_checkpoint_loads(checkpoint, chain):
    policy = AgentPolicy(checkpoint, chain)
    obs = np.zeros((2, chain.observation_size))
    orders = policy.act(obs, types.SimpleNamespace(period=np.zeros(2, dtype=int)))
    assert orders.shape == (2, 3) and np.all(np.isfinite(orders))


def test_an_agent_is_refused_on_another_chain(checkpoint, chain):
    with pytest.raises(CheckpointError, match=re.escape(
            f"{checkpoint}: trained on a different chain (observation size 9 and 3 stages there, "
            "33 and 3 here): periods 10 when trained, 30 here; initial_inventory [40.0, 60.0, "
            "80.0] when trained, [100.0, 100.0, 200.0] here; lead_time [1, 2, 2] when trained, "
            "[3, 5, 10] here")):
        AgentPolicy(checkpoint, ChainConfig())  # OR-Gym's chain: lead times (3, 5, 10)
    # Chains of the same sizes are refused too: the agent was trained for other dynamics or costs.
    for other, differences in [
        (chain.replace(backlog=True), "backlog False when trained, True here"),
        (chain.replace(holding_cost=(0.2, 0.1, 0.05)),
         "holding_cost [0.15, 0.1, 0.05] when trained, [0.2, 0.1, 0.05] here"),
        (chain.replace(demand=Poisson(25.0)),
         "demand {'law': 'poisson', 'mu': 20.0} when trained, {'law': 'poisson', 'mu': 25.0} here"),
        (chain.replace(price=3.0, alpha=1.0),
         "price 2.0 when trained, 3.0 here; alpha 0.97 when trained, 1.0 here"),
    ]:
        with pytest.raises(CheckpointError, match=re.escape(
                f"{checkpoint}: trained on a different chain: {differences}")):
            AgentPolicy(checkpoint, other)
    # An equal chain, built anew, is accepted.
    assert AgentPolicy(checkpoint, ChainConfig.from_dict(chain.to_dict())).epoch == 2


def test_an_actor_whose_output_overflows_is_refused_when_it_acts(checkpoint, chain, tmp_path):
    # Finite weights can still overflow inside the network: 3e38 times the inputs is infinite in
    # float32, and the next layer's mixed signs turn inf - inf into NaN. No NaN order escapes.
    saved = torch.load(checkpoint, weights_only=True)  # a fresh copy: its tensors are its own
    saved["state"]["modules"]["actor"]["net.0.weight"].fill_(3e38)
    broken = tmp_path / "checkpoint.pt"
    torch.save(saved, broken)
    policy = AgentPolicy(broken, chain)
    obs = np.full((2, chain.observation_size), 50.0)
    with pytest.raises(CheckpointError, match=re.escape(
            f"{broken}: the actor's output is NaN for these observations (damaged weights?)")):
        policy.act(obs, types.SimpleNamespace(period=np.zeros(2, dtype=int)))


def test_an_agent_trained_with_data_scaling_acts_over_the_logged_range(dataset, chain, tmp_path):
    from echelon.agents import TrainConfig, algorithm_config, train
    from echelon.agents.checkpoint import load_checkpoint

    settings = TrainConfig(epochs=1, batch_size=64, device="cpu", action_scaling="data")
    assert "action_scaling" not in TrainConfig().to_dict()  # digests of earlier runs hold
    assert settings.to_dict()["action_scaling"] == "data"
    checkpoint = train(dataset, "bc", algorithm_config("bc", {"hidden": (16, 16)}), settings,
                       tmp_path).checkpoint
    saved = load_checkpoint(checkpoint)
    assert saved["train_config"]["action_scaling"] == "data"
    policy = AgentPolicy(checkpoint, chain)
    low, high = policy.preprocessing.action_range
    assert np.any(high != chain.capacity)  # the logged range, not the capacities
    obs = dataset.observations[:50]
    state = types.SimpleNamespace(period=dataset.periods[:50])
    scaled = policy.learner.act(torch.as_tensor(
        policy.preprocessing.observations(obs, state.period))).numpy().astype(np.float64)
    expected = np.clip(low + (scaled + 1.0) * 0.5 * (high - low), 0.0, chain.capacity)
    np.testing.assert_allclose(policy.act(obs, state), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="train.action_scaling must be bounds or data"):
        TrainConfig(action_scaling="minmax")
