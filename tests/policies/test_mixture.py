"""A mixture of behaviour policies: each episode is played by its own component, exactly."""

import numpy as np
import pytest

from echelon.policies import (
    EchelonBaseStock,
    LocalBaseStock,
    Mixture,
    ReorderPointOrderUpTo,
    RequestMode,
    TimeAwareBaseStock,
)
from echelon.sim import ChainConfig, core
from echelon.sim.rollout import rollout


class _OrderUpToFromObservation:
    """Orders each stage up to 60 units on hand, read from OR-Gym's observation."""

    reads_observation = True

    def __init__(self, stages):
        self.stages = stages

    def act(self, obs, state):
        assert obs is not None and obs.shape[0] == state.episodes
        return np.maximum(60.0 - obs[:, : self.stages], 0.0)


def components(config):
    return [
        EchelonBaseStock(config, [80.0, 180.0, 40.0], RequestMode.RAW),
        EchelonBaseStock(config, [60.5, 150.0, 260.0], RequestMode.CLIP),
        LocalBaseStock(config, [70.0, 90.0, 150.0], RequestMode.RAW),
        ReorderPointOrderUpTo(config, [50.0, 120.0, 200.0], [90.0, 190.0, 300.0]),
        TimeAwareBaseStock(config, [80.0, 180.0, 300.0], [25, 20, 10], RequestMode.RAW),
        _OrderUpToFromObservation(config.stages),
    ]


@pytest.mark.parametrize("backlog", [False, True], ids=["v1", "v0"])
def test_each_episode_is_played_by_its_own_component(backlog):
    config = ChainConfig(backlog=backlog)
    policies = components(config)
    episodes = 60
    demand = config.demand.sample(np.random.default_rng(3), episodes, config.periods)
    assignment = np.random.default_rng(4).integers(0, len(policies), size=episodes)
    assert set(assignment) == set(range(len(policies)))
    mixed = rollout(config, Mixture(policies, assignment), demand, record=True)
    for k, policy in enumerate(policies):
        mine = assignment == k
        alone = rollout(config, policy, demand[mine], record=True)
        assert np.array_equal(mixed.profit[mine], alone.profit), k
        for name, array in alone.trajectory.items():
            assert np.array_equal(mixed.trajectory[name][mine], array), (k, name)
    # The components really differ: no two give the same profit on the same paths.
    profits = [rollout(config, p, demand).profit for p in policies]
    assert len({p.tobytes() for p in profits}) == len(policies)


def test_a_single_component_mixture_is_that_policy():
    config = ChainConfig()
    policy = EchelonBaseStock(config, [80.0, 180.0, 40.0], RequestMode.RAW)
    demand = config.demand.sample(np.random.default_rng(1), 5, config.periods)
    mixed = rollout(config, Mixture([policy], np.zeros(5, dtype=int)), demand, record=True)
    alone = rollout(config, policy, demand, record=True)
    assert np.array_equal(mixed.trajectory["action"], alone.trajectory["action"])
    assert np.array_equal(mixed.profit, alone.profit)


def test_orders_are_float64_rows_of_the_batch():
    config = ChainConfig()
    # At period 0 (on hand 100, 100, 200; echelon positions 100, 200, 400) these levels ask
    # for 50, 100, 100 and 0, 0, 100.
    policies = [EchelonBaseStock(config, [150.0, 300.0, 500.0], RequestMode.RAW),
                EchelonBaseStock(config, [90.0, 200.0, 500.0], RequestMode.RAW)]
    state = core.reset(config, np.full((3, config.periods), 20.0))
    orders = Mixture(policies, [1, 0, 1]).act(None, state)
    assert orders.dtype == np.float64 and orders.shape == (3, 3)
    np.testing.assert_array_equal(orders, [[0.0, 0.0, 100.0], [50.0, 100.0, 100.0],
                                           [0.0, 0.0, 100.0]])


def test_reads_observation_is_true_when_any_component_reads_it():
    config = ChainConfig()
    heuristic, reader = components(config)[0], _OrderUpToFromObservation(3)
    assert Mixture([heuristic, heuristic], [0, 1]).reads_observation is False
    assert Mixture([heuristic, reader], [0, 0]).reads_observation is True
    assert Mixture([reader], [0]).reads_observation is True


@pytest.mark.parametrize(
    ("assignment", "message"),
    [([0, 2], r"assignment must lie in \[0, 1\]"),
     ([-1, 0], r"assignment must lie in \[0, 1\]"),
     ([[0, 1]], r"assignment must be shaped \(N,\), got \(1, 2\)"),
     (0, r"assignment must be shaped \(N,\), got \(\)")],
)
def test_assignment_is_validated(assignment, message):
    policies = components(ChainConfig())[:2]
    with pytest.raises(ValueError, match=message):
        Mixture(policies, assignment)


def test_a_mixture_needs_a_policy():
    with pytest.raises(ValueError, match="a mixture needs at least one policy"):
        Mixture([], [0])


def test_the_assignment_must_cover_the_batch():
    config = ChainConfig()
    mixture = Mixture(components(config)[:2], [0, 1, 1])
    state = core.reset(config, np.full((4, config.periods), 20.0))
    with pytest.raises(ValueError, match="assignment covers 3 episodes, the batch has 4"):
        mixture.act(None, state)
