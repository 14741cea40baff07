"""The PettingZoo parallel env ``echelon.marl``: one agent per stage over the core."""

import fractions
import importlib
import math
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test
from pettingzoo.utils.conversions import parallel_to_aec

import echelon
from echelon import marl
from echelon.sim import ChainConfig
from echelon.sim.marl import PETTINGZOO_MISSING
from echelon.sim.stage_view import observation_columns

# A two-stage chain with lead times 0 and 1 over three periods, small enough to work by hand.
# alpha = 1/2 keeps the discounted numbers exact in binary.
TINY = ChainConfig(
    periods=3, initial_inventory=(5.0, 4.0), price=2.0, replenishment_cost=(1.0, 0.5, 0.25),
    unfulfilled_penalty=(0.5, 0.25, 0.125), holding_cost=(0.25, 0.125), capacity=(10.0, 8.0),
    lead_time=(0, 1), alpha=0.5,
)
TINY_DEMAND = [6.0, 2.0, 9.0]
TINY_ORDERS = [(3.0, 6.0), (7.0, 2.0), (0.0, 0.0)]
_UNKNOWN_OPTIONS = "ignoring unknown reset options"
# PettingZoo's advice about names, unbounded boxes and per-stage observation sizes, not errors:
# the stages' histories differ by design (H = L_i) and stock has no upper bound.
_ADVICE = (".*named in the format", ".*maximum observation space value is infinity",
           ".*different observation space sizes", "Observations are different shapes")


def _two_stage(**kwargs):
    return marl.parallel_env(TINY.replace(periods=12, lead_time=(1, 3)), **kwargs)


def _rollout(env, seed, actions, options=None):
    obs, _ = env.reset(seed=seed, options=options)
    observations, rewards = [obs], []
    for row in actions:
        obs, reward, *_ = env.step(dict(zip(env.agents, row)))
        observations.append(obs)
        rewards.append(reward)
    return observations, rewards


def test_api_test_passes_for_the_default_chain():
    env = marl.parallel_env()
    with pytest.warns(UserWarning, match=_UNKNOWN_OPTIONS):  # the test's options={"options": 1}
        parallel_api_test(env, num_cycles=40)
    assert env.agents == []


@pytest.mark.parametrize("reward", ["local", "profit", "team"])
def test_api_test_passes_for_two_stages_longest_history_and_time_feature(reward):
    env = _two_stage(reward=reward, history="longest", time_feature=True)
    assert env.observation_space("stage_0").shape == (1 + 3 + 1,)
    with pytest.warns(UserWarning, match=_UNKNOWN_OPTIONS):
        parallel_api_test(env, num_cycles=20)
    parallel_seed_test(lambda: _two_stage(reward=reward), num_cycles=20)


def test_aec_conversion_passes_the_aec_api_test():
    env = parallel_to_aec(marl.parallel_env(periods=8, L=[1, 2, 3]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for message in (*_ADVICE, _UNKNOWN_OPTIONS):
            warnings.filterwarnings("ignore", message=message)
        api_test(env, num_cycles=20)


def test_agent_names_and_spaces():
    env = marl.parallel_env()
    assert env.possible_agents == ["retailer", "distributor", "manufacturer"]
    assert env.agents == []  # no episode before reset
    assert [env.observation_space(a).shape for a in env.possible_agents] == [(4,), (6,), (11,)]
    assert [env.action_space(a).high.tolist() for a in env.possible_agents] == [[100.0], [90.0],
                                                                                [80.0]]
    assert all(env.action_space(a).low.tolist() == [0.0] and env.action_space(a).shape == (1,)
               for a in env.possible_agents)
    assert env.observation_space("retailer") is env.observation_space("retailer")
    assert env.action_space("distributor") is env.action_space("distributor")
    assert env.state_space.shape == (33,)
    two = _two_stage()
    assert two.possible_agents == ["stage_0", "stage_1"]
    assert [two.observation_space(a).shape for a in two.possible_agents] == [(2,), (4,)]
    assert [two.action_space(a).high.tolist() for a in two.possible_agents] == [[10.0], [8.0]]
    longest = _two_stage(history="longest", time_feature=True)
    assert [longest.observation_space(a).shape for a in longest.possible_agents] == [(5,), (5,)]
    assert longest.state_space.shape == (2 * 4 + 1,)
    assert marl.parallel_env(L=[2, 4, 6]).config.lead_time == (2, 4, 6)


def test_same_seed_same_episode_different_seed_different():
    actions = np.random.default_rng(0).uniform(0, 100, size=(30, 3))
    obs_a, rewards_a = _rollout(marl.parallel_env(), 7, actions)
    obs_b, rewards_b = _rollout(marl.parallel_env(), 7, actions)
    obs_c, rewards_c = _rollout(marl.parallel_env(), 8, actions)
    assert len(rewards_a) == 30
    for a, b in zip(obs_a, obs_b):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert rewards_a == rewards_b
    assert rewards_a != rewards_c
    # Without a seed, a second reset continues the generator: a new demand path.
    env = marl.parallel_env()
    _rollout(env, 7, actions)
    assert _rollout(env, None, actions)[1] != rewards_a


@pytest.mark.parametrize("backlog", [False, True], ids=["v1", "v0"])
@pytest.mark.parametrize("history", ["own", "longest"])
def test_team_reward_and_observations_equal_the_gymnasium_env(backlog, history):
    env_id = "echelon/InvManagement-v0" if backlog else "echelon/InvManagement-v1"
    single = gym.make(env_id, time_feature=True).unwrapped
    multi = marl.parallel_env(single.config, reward="team", history=history, time_feature=True)
    rng = np.random.default_rng(5)
    path = rng.poisson(20.0, size=30).astype(float)
    orders = rng.uniform(-10, 120, size=(30, 3))
    agents = multi.possible_agents
    columns = [observation_columns(multi.config, i, multi.history_length[i])
               for i in range(3)]

    def check_observations(obs, central):
        assert np.array_equal(multi.state(), central)
        for i, agent in enumerate(agents):
            assert np.array_equal(obs[agent][:-1], central[columns[i]])
            assert obs[agent][-1] == central[-1]  # the time feature
            assert multi.observation_space(agent).contains(obs[agent])

    central, _ = single.reset(options={"demand": path})
    obs, infos = multi.reset(options={"demand": path})
    assert infos == {agent: {"period": 0} for agent in agents}
    check_observations(obs, central)
    for n, row in enumerate(orders):
        central, reward, terminated, truncated, info = single.step(row)
        obs, rewards, terminations, truncations, infos = multi.step(dict(zip(agents, row)))
        assert all(rewards[agent] == reward for agent in agents)  # bit for bit
        assert all(infos[agent]["team_reward"] == reward for agent in agents)
        assert terminations == dict.fromkeys(agents, terminated)
        assert truncations == dict.fromkeys(agents, truncated)
        check_observations(obs, central)
        assert [infos[a]["request"] for a in agents] == info["requests"].tolist()
        assert [infos[a]["sales"] for a in agents] == info["sales"][:-1].tolist()
        assert [infos[a]["on_hand"] for a in agents] == info["on_hand"].tolist()
        assert [infos[a]["demand"] for a in agents] == [info["demand"],
                                                        *info["requests"][:-1].tolist()]
        assert all(infos[a]["period"] == n for a in agents)
    assert terminated and multi.agents == []


def test_profit_shares_sum_to_the_gymnasium_reward():
    single = gym.make("echelon/InvManagement-v1").unwrapped
    multi = marl.parallel_env(reward="profit")
    path = np.random.default_rng(2).poisson(20.0, size=30).astype(float)
    orders = np.random.default_rng(3).uniform(0, 100, size=(30, 3))
    single.reset(options={"demand": path})
    multi.reset(options={"demand": path})
    for n, row in enumerate(orders):
        _, reward, *_ = single.step(row)
        _, rewards, _, _, infos = multi.step(dict(zip(multi.agents, row)))
        assert np.isclose(sum(rewards.values()), reward, rtol=1e-12, atol=0)
        undiscounted = sum(info["profit"] for info in infos.values())
        assert np.isclose(undiscounted * 0.97**n, reward, rtol=1e-12, atol=0)


def test_local_reward_worked_by_hand():
    env = marl.parallel_env(TINY)  # reward="local", history="own" (H = 0 and 1)
    obs, _ = env.reset(options={"demand": TINY_DEMAND})
    assert {a: o.tolist() for a, o in obs.items()} == {"stage_0": [5.0], "stage_1": [4.0, 0.0]}
    steps = [env.step({"stage_0": low, "stage_1": np.array([high])})
             for low, high in TINY_ORDERS]
    # Period 0: stage 1 ships 3 of its 4 to stage 0, which receives them at once (L_0 = 0) and
    # sells 6 of its 8; the supplier ships 6 to stage 1, arriving next period (L_1 = 1).
    # On hand 2 and 1, nothing unfilled: -(0.25 * 2) and -(0.125 * 1), discount 1.
    # Period 1: stage 0 asks 7, stage 1 holds 1 and ships 1; stage 1 receives 6 and asks 2.
    # Stage 0: 2 + 1 - 2 sold = 1 on hand; stage 1: 1 + 6 - 1 = 6 on hand, 6 of stage 0's 7
    # unfilled: -(0.25 * 1) / 2 and -(0.125 * 6 + 0.25 * 6) / 2.
    # Period 2: stage 1 receives the 2; stage 0 sells its 1 of 9 (8 lost): -(0.5 * 8) / 4,
    # stage 1 holds 8: -(0.125 * 8) / 4.
    assert [s[1] for s in steps] == [{"stage_0": -0.5, "stage_1": -0.125},
                                     {"stage_0": -0.125, "stage_1": -1.125},
                                     {"stage_0": -1.0, "stage_1": -0.25}]
    assert [{a: o.tolist() for a, o in s[0].items()} for s in steps] == [
        {"stage_0": [2.0], "stage_1": [1.0, 6.0]},
        {"stage_0": [1.0], "stage_1": [6.0, 2.0]},
        {"stage_0": [0.0], "stage_1": [8.0, 0.0]},
    ]
    infos = [s[4] for s in steps]
    assert [i["stage_0"]["demand"] for i in infos] == TINY_DEMAND
    assert [i["stage_1"]["demand"] for i in infos] == [3.0, 7.0, 0.0]  # stage 0's requests
    assert [i["stage_0"]["shipped"] for i in infos] == [3.0, 1.0, 0.0]
    assert [i["stage_1"]["arrivals"] for i in infos] == [0.0, 6.0, 2.0]
    assert [i["stage_1"]["unfulfilled"] for i in infos] == [0.0, 6.0, 0.0]
    assert [i["stage_0"]["unfulfilled"] for i in infos] == [0.0, 0.0, 8.0]
    assert [i["stage_1"]["pipeline"] for i in infos] == [6.0, 2.0, 0.0]
    # Period 0's profit: stage 0 2*6 - 1*3 - 0.25*2 = 8.5; stage 1 1*3 - 0.5*6 - 0.125*1 =
    # -0.125 plus the supplier's 0.5*6 - 0.25*6 = 1.5; the team 9.875.
    assert infos[0]["stage_0"]["profit"] == 8.5 and infos[0]["stage_1"]["profit"] == 1.375
    assert infos[0]["stage_0"]["team_reward"] == 9.875
    assert [s[2] for s in steps] == [dict.fromkeys(["stage_0", "stage_1"], done)
                                     for done in (False, False, True)]
    assert all(s[3] == {"stage_0": False, "stage_1": False} for s in steps)


def test_agents_empty_after_termination_and_no_step_after():
    env = marl.parallel_env(TINY)
    env.reset(options={"demand": TINY_DEMAND})
    for _ in range(3):
        assert env.agents == ["stage_0", "stage_1"]
        env.step({"stage_0": 1.0, "stage_1": 1.0})
    assert env.agents == [] and env.num_agents == 0 and env.max_num_agents == 2
    with pytest.raises(ValueError, match="episode is over"):
        env.step({})
    env.reset(seed=0)
    assert env.agents == ["stage_0", "stage_1"]


def test_step_and_state_before_reset_raise():
    env = marl.parallel_env()
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"retailer": 1.0, "distributor": 1.0, "manufacturer": 1.0})
    with pytest.raises(RuntimeError, match="reset"):
        env.state()


def test_time_feature_appends_period_over_horizon():
    env = marl.parallel_env(TINY, time_feature=True)
    obs, _ = env.reset(seed=0)
    features = [obs["stage_1"][-1]]
    for _ in range(3):
        obs, *_ = env.step({"stage_0": 2, "stage_1": 2})
        assert obs["stage_0"][-1] == obs["stage_1"][-1] == env.state()[-1]
        features.append(obs["stage_1"][-1])
    assert features == [0.0, 1 / 3, 2 / 3, 1.0]


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (math.nan, "'stage_1' must be a finite number"),
        (np.array([math.inf]), "'stage_1' must be a finite number"),
        (10**400, "'stage_1' must be a finite number"),
        (np.array([1.0, 2.0]), r"'stage_1' must be a scalar or shaped \(1,\).*got shape \(2,\)"),
        ([[1.0]], r"'stage_1' must be a scalar or shaped \(1,\).*got shape \(1, 1\)"),
        ("3", "'stage_1' must be one real number"),
        (True, "'stage_1' must be one real number"),
        (np.array([True]), "'stage_1' must be one real number"),
        (1 + 2j, "'stage_1' must be one real number"),
        (None, "'stage_1' must be one real number"),
        ({"a": 1}, "'stage_1' must be one real number"),
    ],
    ids=["nan", "inf", "huge-int", "two", "nested", "str", "bool", "bool-array", "complex", "none",
         "dict"],
)
def test_bad_actions_raise_naming_the_agent(action, match):
    env = marl.parallel_env(TINY)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step({"stage_0": 1.0, "stage_1": action})
    env.step({"stage_0": 1.0, "stage_1": 1.0})  # the episode goes on


@pytest.mark.parametrize(
    ("actions", "match"),
    [
        ({"stage_0": 1.0}, r"missing \['stage_1'\], unknown \[\]"),
        ({"stage_0": 1.0, "stage_1": 1.0, "stage_2": 1.0}, r"missing \[\], unknown \['stage_2'\]"),
        ([1.0, 1.0], "actions must be a dict"),
        (np.array([1.0, 1.0]), "actions must be a dict"),
    ],
)
def test_missing_unknown_or_unkeyed_actions_raise(actions, match):
    env = marl.parallel_env(TINY)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(actions)


def test_real_numbers_of_any_type_are_actions():
    env = marl.parallel_env(TINY)
    want = _rollout(env, 0, [(7.0, 8.0)])[1]
    for low, high in [(7, 8), (np.int8(7), np.array([8])), (np.float32(7.5), [8]),
                      (fractions.Fraction(15, 2), np.array([8], dtype=object))]:
        assert _rollout(env, 0, [(low, high)])[1] == want


def test_out_of_box_actions_are_truncated_and_clipped_like_the_gymnasium_env():
    env = marl.parallel_env()
    env.reset(seed=0)
    *_, infos = env.step({"retailer": -4.0, "distributor": 150.9, "manufacturer": 7.99})
    assert [infos[a]["request"] for a in env.possible_agents] == [0.0, 150.0, 7.0]
    assert [infos[a]["shipped"] for a in env.possible_agents] == [0.0, 90.0, 7.0]


def test_demand_option_replays_the_path_and_bad_options_raise():
    env = marl.parallel_env(TINY)
    for seed in (0, 1):
        env.reset(seed=seed, options={"demand": TINY_DEMAND})
        seen = [env.step({"stage_0": 1, "stage_1": 1})[4]["stage_0"]["demand"] for _ in range(3)]
        assert seen == TINY_DEMAND
    with pytest.raises(ValueError, match=r"demand must be shaped \(N, 3\)"):
        env.reset(options={"demand": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"options\['demand'\] must be one path of 3 periods"):
        env.reset(options={"demand": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="options must be a dict"):
        env.reset(options=[("demand", TINY_DEMAND)])
    with pytest.warns(UserWarning, match=r"ignoring unknown reset options \['horizon'\]"):
        env.reset(seed=0, options={"horizon": 3})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reward": "global"},
         r"reward must be one of \['local', 'profit', 'team'\], got 'global'"),
        ({"history": "all"}, r"history must be one of \['own', 'longest'\], got 'all'"),
        ({"lead_times": [1, 1, 1]}, "unknown chain parameter 'lead_times'"),
        ({"L": [1, 1]}, "lead_time must have length 3"),
        ({"config": {"periods": 3}}, "config must be a ChainConfig"),
    ],
)
def test_bad_arguments_raise_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        marl.parallel_env(**kwargs)


def test_unknown_agent_space_raises():
    with pytest.raises(ValueError, match=r"unknown agent 'wholesaler'; agents: \['retailer'"):
        marl.parallel_env().action_space("wholesaler")


def test_enums_are_accepted_for_reward_and_history():
    env = marl.parallel_env(reward=marl.StageReward.TEAM, history=marl.ObservedHistory.LONGEST)
    assert env.reward is marl.StageReward.TEAM
    assert env.history_length == (10, 10, 10)


def test_public_module_reexports_the_stage_view():
    assert marl.agent_names(3) == ("retailer", "distributor", "manufacturer")
    assert marl.agent_names(2) == ("stage_0", "stage_1")
    assert marl.stage_chain(ChainConfig(), 1).lead_time == (5,)
    assert marl.InvManagementParallelEnv is type(marl.parallel_env())
    assert callable(marl.local_observation)
    assert echelon.marl is marl


def test_without_pettingzoo_the_import_error_names_the_extra(monkeypatch):
    assert PETTINGZOO_MISSING == "the multi-agent env needs PettingZoo: pip install 'echelon[marl]'"
    # None in sys.modules makes `import pettingzoo` fail as if it were not installed; monkeypatch
    # restores the real modules afterwards.
    monkeypatch.setitem(sys.modules, "pettingzoo", None)
    monkeypatch.delitem(sys.modules, "echelon.sim.marl")
    monkeypatch.delitem(sys.modules, "echelon.marl")
    with pytest.raises(ImportError, match=r"^the multi-agent env needs PettingZoo: pip install "
                                          r"'echelon\[marl\]'$"):
        importlib.import_module("echelon.marl")
