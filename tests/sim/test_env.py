"""The Gymnasium envs ``echelon/InvManagement-v1`` and ``-v0`` over the core."""

import fractions
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import echelon
from echelon._limits import SizeLimitError
from echelon.sim import ChainConfig

IDS = ["echelon/InvManagement-v1", "echelon/InvManagement-v0"]
# check_env's advice about the action box and the unbounded observation box is not an error.
_ADVICE = (".*symmetric and normalized space", ".*maximum value is infinity")


def _rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
    return np.array(observations), np.array(rewards)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("time_feature", [False, True])
def test_check_env_passes(env_id, time_feature):
    env = gym.make(env_id, time_feature=time_feature).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for message in _ADVICE:
            warnings.filterwarnings("ignore", message=message)
        check_env(env, skip_render_check=True)


def test_registered_versions_differ_only_in_backlog():
    v1 = gym.make(IDS[0]).unwrapped
    v0 = gym.make(IDS[1]).unwrapped
    assert isinstance(v1, echelon.InvManagementEnv)
    assert v1.config == ChainConfig()
    assert v0.config == ChainConfig(backlog=True)
    assert v1.observation_space.shape == (33,)
    assert v1.action_space.shape == (3,)
    assert v1.action_space.high.tolist() == [100.0, 90.0, 80.0]


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_rollout_different_seed_different(env_id):
    env = gym.make(env_id).unwrapped
    actions = np.random.default_rng(0).uniform(0, 100, size=(30, 3))
    obs_a, rewards_a = _rollout(env, 7, actions)
    obs_b, rewards_b = _rollout(env, 7, actions)
    obs_c, rewards_c = _rollout(env, 8, actions)
    assert np.array_equal(obs_a, obs_b) and np.array_equal(rewards_a, rewards_b)
    assert not np.array_equal(rewards_a, rewards_c)
    # A second env with the same seed agrees with the first.
    obs_d, rewards_d = _rollout(gym.make(env_id).unwrapped, 7, actions)
    assert np.array_equal(obs_a, obs_d) and np.array_equal(rewards_a, rewards_d)


def test_reset_demand_option_replays_the_path():
    env = gym.make(IDS[0], periods=6, L=[1, 2, 3]).unwrapped
    path = [3.0, 0.0, 41.0, 7.0, 19.0, 2.0]
    for seed in (0, 1):
        _, info = env.reset(seed=seed, options={"demand": path})
        assert info["demand_path"].tolist() == path and info["period"] == 0
        seen = [env.step(np.array([10.0, 10.0, 10.0]))[4]["demand"] for _ in path]
        assert seen == path


def test_reset_rejects_bad_demand_options():
    env = gym.make(IDS[0]).unwrapped
    with pytest.raises(ValueError, match=r"demand must be shaped \(N, 30\)"):
        env.reset(options={"demand": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"options\['demand'\] must be one path"):
        env.reset(options={"demand": np.zeros((2, 30))})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"horizon": 3})


@pytest.mark.parametrize("env_id", IDS)
def test_terminates_exactly_at_the_last_period_and_never_truncates(env_id):
    env = gym.make(env_id, periods=5, L=[1, 1, 1]).unwrapped
    env.reset(seed=3)
    flags = [env.step(np.array([20.0, 20.0, 20.0]))[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(True, False)]
    with pytest.raises(ValueError, match="episodes are over"):
        env.step(np.zeros(3))


def test_step_before_reset_raises():
    env = echelon.InvManagementEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3))


def test_time_feature_appends_period_over_horizon():
    env = gym.make(IDS[0], periods=4, L=[1, 1, 1], time_feature=True).unwrapped
    assert env.observation_space.shape == (3 * 2 + 1,)
    obs, _ = env.reset(seed=0)
    features = [obs[-1]]
    plain = gym.make(IDS[0], periods=4, L=[1, 1, 1]).unwrapped
    plain_obs, _ = plain.reset(seed=0)
    assert np.array_equal(obs[:-1], plain_obs)
    for _ in range(4):
        obs, *_ = env.step(np.array([5.0, 5.0, 5.0]))
        plain_obs, *_ = plain.step(np.array([5.0, 5.0, 5.0]))
        assert np.array_equal(obs[:-1], plain_obs)
        features.append(obs[-1])
    assert features == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_make_with_orgym_and_field_names():
    env = gym.make(IDS[0], L=[2, 2, 2], periods=10).unwrapped
    assert env.config.lead_time == (2, 2, 2) and env.config.periods == 10
    assert env.observation_space.shape == (9,)
    _, rewards = _rollout(env, 0, np.full((10, 3), 10.0))
    assert rewards.shape == (10,)


@pytest.mark.parametrize("env_id", IDS)
def test_two_stage_chain(env_id):
    env = gym.make(
        env_id, lead_time=(1, 2), initial_inventory=(5, 5), replenishment_cost=(1.0, 0.5, 0.25),
        unfulfilled_penalty=(0.5, 0.25, 0.125), holding_cost=(0.25, 0.125), capacity=(10, 8),
        periods=4, demand=[6.0, 2.0, 9.0, 4.0],
    ).unwrapped
    assert env.config.stages == 2 and env.config.backlog == env_id.endswith("v0")
    assert env.action_space.shape == (2,)
    assert env.observation_space.shape == (2 * 3,)
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [5.0, 5.0, 0.0, 0.0, 0.0, 0.0]
    obs, reward, terminated, truncated, info = env.step(np.array([4.0, 3.0]))
    # The retailer gets 4 (arriving at period 1) from the distributor's 5; it sells 5 of 6.
    assert info["shipped"].tolist() == [4.0, 3.0]
    assert info["sales"].tolist() == [5.0, 4.0, 3.0]
    assert obs.tolist() == [0.0, 1.0, 0.0, 0.0, 4.0, 3.0]
    # Retailer 2*5 - 1*4 - 0.5*1 = 5.5; distributor 1*4 - 0.5*3 - 0.125 = 2.375;
    # supplier 0.5*3 - 0.25*3 = 0.75.
    assert reward == 5.5 + 2.375 + 0.75
    assert (terminated, truncated) == (False, False)


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (np.array([1.0, math.nan, 1.0]), "NaN"),
        (np.array([1.0, 1.0, math.inf]), "infinity"),
        (np.array([1.0, 1.0]), r"action must be shaped \(3,\)"),
        (np.ones((1, 3)), r"action must be shaped \(3,\)"),
        (np.float64(3.0), r"action must be shaped \(3,\)"),
    ],
)
def test_bad_actions_raise(action, match):
    env = gym.make(IDS[0]).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_out_of_box_actions_are_truncated_and_clipped_like_orgym():
    env = gym.make(IDS[0]).unwrapped
    env.reset(seed=0)
    *_, info = env.step(np.array([-4.0, 150.9, 7.99]))
    assert info["requests"].tolist() == [0.0, 150.0, 7.0]
    assert info["shipped"].tolist() == [0.0, 90.0, 7.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lead_times": [1, 1, 1]}, "unknown chain parameter 'lead_times'"),
        ({"L": [1, 1]}, "lead_time must have length 3"),
        ({"periods": 0}, "periods must be an integer >= 1"),
        ({"c": [0, 90, 80]}, r"capacity\[0\]"),
        ({"alpha": 2.0}, "alpha"),
    ],
)
def test_bad_kwargs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make(IDS[0], **kwargs)


@pytest.mark.parametrize("env_id", IDS)
def test_info_holds_the_period_internals(env_id):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0, options={"demand": [150.0] + [20.0] * 29})
    *_, info = env.step(np.array([120.0, 20.0, 10.0]))
    keys = {"demand", "sales", "shipped", "lost_sales", "backlog", "on_hand", "pipeline"}
    assert keys <= set(info)
    assert info["demand"] == 150.0
    assert info["shipped"].tolist() == [100.0, 20.0, 10.0]
    assert info["sales"].tolist() == [100.0, 100.0, 20.0, 10.0]
    assert info["on_hand"].tolist() == [0.0, 0.0, 180.0]  # nothing arrives before period 3
    assert info["pipeline"].tolist() == [100.0, 20.0, 10.0]
    unfilled = [50.0, 20.0, 0.0, 0.0]
    if env_id.endswith("v0"):
        assert info["backlog"].tolist() == unfilled and info["lost_sales"].tolist() == [0.0] * 4
    else:
        assert info["lost_sales"].tolist() == unfilled and info["backlog"].tolist() == [0.0] * 4


@pytest.mark.parametrize(
    "action",
    ["abc", ["1", "2", "3"], np.array(["1", "2", "3"]), [1 + 2j, 1, 1],
     np.array([1, 2, 3], complex), [True, 2, 3], [np.True_, 2, 3], np.array([True, False, True]),
     [None, 1, 2],
     np.array([1, "a", 3], dtype=object), [[1, 2], [3]], {"a": 1}],
    ids=["str", "str-list", "str-array", "complex-list", "complex-array", "bool-in-list",
         "numpy-bool-in-list", "bool-array", "none", "object-array", "ragged", "dict"],
)
def test_actions_that_are_not_real_numbers_raise(action):
    env = gym.make(IDS[0]).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be 3 real numbers \(int or float; not bool, "
                                         r"complex or str\), shaped \(3,\); got "):
        env.step(action)
    env.step(np.zeros(3))  # the episode goes on


@pytest.mark.parametrize(
    "action",
    [[7, 8, 9], (7, 8, 9), np.array([7, 8, 9], dtype=np.int8), np.array([7, 8, 9], dtype=object),
     [fractions.Fraction(15, 2), 8.0, 9], [np.float32(7.0), np.array(8), 9]],
    ids=["int-list", "tuple", "int8", "object-ints", "fraction", "numpy-scalars"],
)
def test_real_numbers_of_any_type_are_actions(action):
    env = gym.make(IDS[0]).unwrapped
    env.reset(seed=0)
    want = env.step(np.array([7.0, 8.0, 9.0]))
    env.reset(seed=0)
    got = env.step(action)
    assert np.array_equal(got[0], want[0]) and got[1] == want[1]


_LARGEST = float(np.finfo(np.float64).max)


@pytest.mark.parametrize("env_id", IDS)
@settings(max_examples=25, deadline=None)
@given(actions=hnp.arrays(np.float64, (60, 3), elements=st.one_of(
    st.just(_LARGEST), st.floats(1e15, _LARGEST),
    st.floats(-_LARGEST, _LARGEST, allow_nan=False, allow_infinity=False))))
def test_huge_finite_actions_give_finite_rewards_for_many_periods(env_id, actions):
    env = gym.make(env_id, periods=60).unwrapped
    env.reset(seed=1)
    for action in actions:
        obs, reward, terminated, _, info = env.step(action)
        assert math.isfinite(reward) and np.all(np.isfinite(obs))
        assert all(np.all(np.isfinite(value)) for value in info.values())
        assert info["requests"].max() <= 2.0**53
    assert terminated


@pytest.mark.parametrize("env_id", IDS)
def test_an_order_of_1e308_every_period_stays_finite(env_id):
    # OR-Gym 0.5.0's v0 returns a reward of -inf from the second period of such orders.
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    rewards = [env.step(np.full(3, 1.7e308))[1] for _ in range(30)]
    assert all(math.isfinite(r) for r in rewards)


def test_reset_refuses_a_horizon_too_long_for_memory(monkeypatch):
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", "4")
    env = gym.make(IDS[0], periods=10**9).unwrapped  # building the env allocates nothing
    with pytest.raises(SizeLimitError, match=r"1,000,000,000 periods.*reduce episodes or periods"):
        env.reset(seed=0)
