"""Each stage's view of the chain: its one-stage chain, local observation and rewards."""

import numpy as np
import pytest

from echelon.sim import ChainConfig, core
from echelon.sim.stage_view import (
    StageReward,
    agent_names,
    local_observation,
    observation_columns,
    stage_chain,
    stage_rewards,
)


def test_a_stage_s_own_chain():
    distributor = stage_chain(ChainConfig(), 1)
    # OR-Gym's defaults: the distributor sells at r_0 = 1.5, buys at r_1 = 1.0 from the
    # manufacturer (capacity 90, 5 periods away), which pays r_2 = 0.75.
    assert distributor.stages == 1 and distributor.price == 1.5
    assert distributor.replenishment_cost == (1.0, 0.75)
    assert distributor.unfulfilled_penalty == (0.075, 0.05)
    assert distributor.holding_cost == (0.10,) and distributor.capacity == (90.0,)
    assert distributor.lead_time == (5,) and distributor.initial_inventory == (100.0,)
    assert distributor.observation_size == 6 and distributor.demand == ChainConfig().demand
    assert stage_chain(ChainConfig(backlog=True), 2).backlog
    with pytest.raises(ValueError, match=r"stage must be an integer in \[0, 2\], got 3"):
        stage_chain(ChainConfig(), 3)


def test_agent_names():
    assert agent_names(3) == ("retailer", "distributor", "manufacturer")
    assert agent_names(2) == ("stage_0", "stage_1")


@pytest.mark.parametrize("history", [None, 0, 10])
def test_the_local_observation_is_a_slice_of_or_gym_s(history):
    config = ChainConfig()
    rng = np.random.default_rng(0)
    state = core.reset(config, config.demand.sample(rng, 5, config.periods))
    for _ in range(config.periods):
        central = core.observation(config, state)
        for stage in range(config.stages):
            local = local_observation(config, state, stage, history)
            depth = config.lead_time[stage] if history is None else history
            assert local.shape == (5, 1 + depth)
            np.testing.assert_array_equal(local, central[:, observation_columns(config, stage, history)])
            np.testing.assert_array_equal(local[:, 0], state.on_hand[:, stage])
        state, _ = core.step(config, state, rng.integers(0, 60, (5, 3)))
    with pytest.raises(ValueError, match=r"history must be an integer in \[0, 10\]"):
        local_observation(config, state, 0, 11)


def test_rewards_by_hand():
    config = ChainConfig()
    stage_profit = np.array([[10.0, 4.0, 2.0, 1.0]])
    unfulfilled = np.array([[3.0, 2.0, 1.0, 5.0]])
    on_hand = np.array([[20.0, 10.0, 4.0]])
    args = dict(stage_profit=stage_profit, unfulfilled=unfulfilled, on_hand=on_hand,
                team=np.array([7.0]))
    # -(h I + k LS) alpha^n at n = 2: retailer -(0.15 * 20 + 0.1 * 3), distributor
    # -(0.1 * 10 + 0.075 * 2), manufacturer -(0.05 * 4 + 0.05 * 1).
    np.testing.assert_allclose(stage_rewards(config, "local", 2, **args),
                               [[-3.3 * 0.97**2, -1.15 * 0.97**2, -0.25 * 0.97**2]])
    # The supplier's 1.0 goes to the manufacturer.
    np.testing.assert_allclose(stage_rewards(config, StageReward.PROFIT, np.array([1]), **args),
                               [[10.0 * 0.97, 4.0 * 0.97, 3.0 * 0.97]])
    np.testing.assert_array_equal(stage_rewards(config, "team", 2, **args), [[7.0, 7.0, 7.0]])
    with pytest.raises(ValueError, match=r"reward must be one of \['local', 'profit', 'team'\]"):
        stage_rewards(config, "shared", 2, **args)
