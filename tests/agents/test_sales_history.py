"""Agents that read the retail sales history: what they train on is what they see when they act."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echelon.agents import TrainConfig, algorithm_config, train
from echelon.agents.policy import AgentPolicy
from echelon.agents.preprocessing import Preprocessing, TransitionTensors
from echelon.policies.replay import PlanReplay
from echelon.sim import core

DEPTH = 3


def _logged_orders(dataset):
    """(E, T, S) the logged orders of each episode, and (E, T) its demand."""
    shape = (dataset.episodes, dataset.chain.periods)
    return (dataset.actions.reshape(*shape, dataset.chain.stages),
            dataset.log["demand"].reshape(shape))


def test_the_datasets_window_is_the_cores(dataset):
    """Replaying the logged orders on the logged demand in the core shows, period by period, the
    windows the dataset gives for its observations and next observations."""
    orders, demand = _logged_orders(dataset)
    before, after = dataset.sales_history(DEPTH)
    rows = lambda n: np.flatnonzero(dataset.periods == n)  # noqa: E731 (episode order)
    chain, policy = dataset.chain, PlanReplay(orders)
    state = core.reset(chain, demand)
    for n in range(chain.periods):
        np.testing.assert_array_equal(before[rows(n)], core.sales_history(state, DEPTH))
        state, _ = core.step(chain, state, policy.act(None, state))
        np.testing.assert_array_equal(after[rows(n)], core.sales_history(state, DEPTH))
    np.testing.assert_array_equal(before[:, -1][dataset.periods > 0],
                                  dataset.log["sales"][:, 0][np.roll(dataset.periods > 0, -1)])


@pytest.fixture(scope="module")
def sales_agent(dataset, tmp_path_factory):
    settings = TrainConfig(epochs=1, batch_size=64, device="cpu", sales_history=DEPTH,
                           validation_fraction=0.0)
    return train(dataset, "bc", algorithm_config("bc", {"hidden": (16,)}), settings,
                 tmp_path_factory.mktemp("bc-sales")).checkpoint


def test_an_agent_acts_on_what_it_was_trained_on(dataset, sales_agent):
    agent = AgentPolicy(sales_agent, dataset.chain)
    prep = agent.preprocessing
    assert prep.sales_history == DEPTH
    assert len(prep.obs_mean) == dataset.chain.observation_size + DEPTH
    rows = np.arange(len(dataset))
    tensors = TransitionTensors(dataset, rows, prep, 1.0, torch.device("cpu"))
    orders, demand = _logged_orders(dataset)
    state = core.reset(dataset.chain, demand)
    for n in range(dataset.chain.periods):
        acted = agent.act(core.observation(dataset.chain, state), state)
        with torch.no_grad():
            trained = agent.learner.act(tensors.observations[dataset.periods == n]).numpy()
        np.testing.assert_allclose(acted, prep.unscale_actions(trained), rtol=0, atol=1e-9)
        state, _ = core.step(dataset.chain, state, orders[:, n])


def test_a_preprocessing_written_before_the_option_reads_as_none(dataset, sales_agent):
    saved = AgentPolicy(sales_agent).preprocessing.to_dict()
    assert saved["sales_history"] == DEPTH
    older = {k: v for k, v in saved.items() if k != "sales_history"}
    older["obs_mean"] = older["obs_mean"][:-DEPTH]
    older["obs_std"] = older["obs_std"][:-DEPTH]
    assert Preprocessing.from_dict(older).sales_history == 0
    with pytest.raises(ValueError, match=r"preprocessing.sales_history must be an integer in 0 \.\. 10"):
        Preprocessing.from_dict({**saved, "sales_history": 11})


def test_a_window_longer_than_the_horizon_is_refused(dataset, tmp_path):
    settings = TrainConfig(epochs=1, device="cpu", sales_history=11)
    with pytest.raises(ValueError, match="train.sales_history must be at most the chain's 10"):
        train(dataset, "bc", algorithm_config("bc", {"hidden": (8,)}), settings, tmp_path)
    with pytest.raises(ValueError, match="train.sales_history must be an integer >= 0"):
        TrainConfig(sales_history=-1)


def test_settings_without_the_option_keep_their_old_form():
    """Checkpoints and finished stages written before the option compare equal to new ones."""
    assert "sales_history" not in TrainConfig().to_dict()
    assert TrainConfig(sales_history=2).to_dict()["sales_history"] == 2
