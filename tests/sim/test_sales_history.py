"""The retail sales history: the core's log, its window, and the env's ``sales_history`` option."""

import gymnasium as gym
import numpy as np
import pytest

from echelon.sim import ChainConfig, core
from echelon.sim.env import InvManagementEnv


def _played(config, demand, orders):
    """Steps the core through every period; returns the states and each period's retail sales."""
    state, states, sales = core.reset(config, demand), [], []
    for period in range(config.periods):
        states.append(state)
        state, out = core.step(config, state, orders[period])
        sales.append(out.sales[:, 0].copy())
    states.append(state)
    return states, np.array(sales).T  # sales (N, T)


@pytest.mark.parametrize("backlog", [False, True])
def test_the_window_holds_the_last_periods_retail_sales(backlog):
    config = ChainConfig(periods=8, lead_time=(1, 1, 2), backlog=backlog)
    rng = np.random.default_rng(3)
    demand = rng.integers(0, 60, size=(5, config.periods)).astype(float)
    orders = rng.integers(0, 40, size=(config.periods, 5, config.stages)).astype(float)
    states, sales = _played(config, demand, orders)
    assert np.any(sales < demand)  # some periods sold out: sales are not the demand
    for n, state in enumerate(states):
        for depth in (1, 3, config.periods):
            window = core.sales_history(state, depth)
            want = np.zeros((5, depth))
            shown = sales[:, max(0, n - depth):n]
            want[:, depth - shown.shape[1]:] = shown
            np.testing.assert_array_equal(window, want, err_msg=f"period {n}, depth {depth}")


def test_a_copied_or_taken_state_keeps_its_own_log():
    config = ChainConfig(periods=4)
    demand = np.full((3, 4), 25.0)
    state, _ = core.step(config, core.reset(config, demand), np.full((3, 3), 10.0))
    branch = state.copy()
    core.step(config, branch, np.zeros((3, 3)))
    np.testing.assert_array_equal(state.take([1]).sales[:1], [[25.0]])
    assert core.sales_history(branch, 1).tolist() == [[25.0]] * 3


def test_the_env_appends_the_sales_before_the_time_feature():
    env = InvManagementEnv(periods=6, sales_history=2, time_feature=True)
    base = env.config.observation_size
    assert env.observation_space.shape == (base + 3,)
    obs, _ = env.reset(options={"demand": [30, 250, 5, 0, 12, 40]})
    assert obs[base:].tolist() == [0.0, 0.0, 0.0]
    seen = []
    for _ in range(6):
        obs, _, done, _, info = env.step(np.zeros(3))
        seen.append(info["sales"][0])
        assert obs[base:base + 2].tolist() == ([0.0] + seen)[-2:]
        assert obs[-1] == (info["period"] + 1) / 6
        assert env.observation_space.contains(obs)
    # the retailer's 100 units: 30 sold, then 70 of 250 (censored), then nothing left
    assert seen == [30.0, 70.0, 0.0, 0.0, 0.0, 0.0]
    assert done


def test_the_env_through_gymnasium_make():
    env = gym.make("echelon/InvManagement-v1", sales_history=3)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (env.unwrapped.config.observation_size + 3,)


@pytest.mark.parametrize("depth", [-1, 31, 2.5, True, "3"])
def test_a_bad_sales_history_is_refused_by_name(depth):
    with pytest.raises(ValueError, match=r"sales_history must be an integer in 0 \.\. 30"):
        InvManagementEnv(sales_history=depth)
