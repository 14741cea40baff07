"""The vector env over the batched core against single envs in Gymnasium's ``SyncVectorEnv``."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space

import echelon
from echelon.sim import Binomial, core
from echelon.sim.env import InvManagementEnv
from echelon.sim.vector import InvManagementVectorEnv, make_vector_env

N = 4
# Short episodes, so that a few dozen steps cover several autoresets.
SHORT = {"periods": 5}


def _pair(autoreset_mode=AutoresetMode.NEXT_STEP, **kwargs):
    """Our vector env and N single envs in a SyncVectorEnv, built from the same arguments."""
    ours = InvManagementVectorEnv(N, autoreset_mode=autoreset_mode, **kwargs)
    sync = SyncVectorEnv([lambda: InvManagementEnv(**kwargs) for _ in range(N)],
                         autoreset_mode=autoreset_mode)
    return ours, sync


def _assert_same(ours, theirs):
    """Exact equality of step or reset results, infos (nested dicts, object arrays) included."""
    if isinstance(ours, dict):
        assert set(ours) == set(theirs)
        for key in ours:
            _assert_same(ours[key], theirs[key])
    elif isinstance(ours, (tuple, list)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _assert_same(a, b)
    elif isinstance(ours, np.ndarray) and ours.dtype == object:
        assert theirs.dtype == object and ours.shape == theirs.shape
        for a, b in zip(ours, theirs):
            assert (a is None and b is None) or np.array_equal(a, b)
    else:
        assert np.shape(ours) == np.shape(theirs)
        assert np.asarray(ours).dtype == np.asarray(theirs).dtype
        assert np.all(ours == theirs)


def _actions(rng, config):
    """Random actions (N, S), a third of them outside the box (negative, fractional, too big)."""
    high = np.asarray(config.capacity)
    return rng.uniform(-0.5 * high, 1.5 * high, size=(N, config.stages))


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("kwargs", [
    {},
    {"backlog": True},
    {"time_feature": True, "sales_history": 3},
    {"L": [0, 1, 4], "demand": Binomial(), "time_feature": True},
])
def test_equals_sync_vector_env_of_single_envs(mode, kwargs):
    ours, sync = _pair(mode, **SHORT, **kwargs)
    rng = np.random.default_rng(1)
    _assert_same(ours.reset(seed=11), sync.reset(seed=11))
    ended = 0
    for _ in range(3 * (SHORT["periods"] + 1) + 2):  # 20 steps: 3 or 4 episodes end
        actions = _actions(rng, ours.config)
        result = ours.step(actions)
        _assert_same(result, sync.step(actions))
        assert ours.observation_space.contains(result[0])
        ended += int(result[2].all())
    assert ended == (3 if mode is AutoresetMode.NEXT_STEP else 4)
    # A new seed restarts both in the same way.
    _assert_same(ours.reset(seed=3), sync.reset(seed=3))
    actions = _actions(rng, ours.config)
    _assert_same(ours.step(actions), sync.step(actions))


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_partial_resets_equal_sync_vector_env_and_groups_merge(mode):
    ours, sync = _pair(mode, **SHORT, sales_history=2)
    rng = np.random.default_rng(2)
    _assert_same(ours.reset(seed=0), sync.reset(seed=0))
    # Sub-envs reset at different times end up at different periods; seeds given per sub-env.
    schedule = {1: ([0], None), 3: ([1, 2], [None, 40, 41, None]), 4: ([0, 3], 7), 9: ([2], None)}
    for t in range(25):
        if t in schedule:
            envs, seed = schedule[t]
            mask = np.isin(np.arange(N), envs)
            _assert_same(ours.reset(seed=seed, options={"reset_mask": mask}),
                         sync.reset(seed=seed, options={"reset_mask": mask.copy()}))
        actions = _actions(rng, ours.config)
        _assert_same(ours.step(actions), sync.step(actions))
    assert len(ours._groups) > 1
    # Two masked resets in a row put their sub-envs at period 0 together: one group again.
    ours.reset(options={"reset_mask": np.array([True, True, False, False])})
    ours.reset(options={"reset_mask": np.array([False, False, True, True])})
    assert len(ours._groups) == 1 and ours._groups[0].index.tolist() == [0, 1, 2, 3]


def test_disabled_autoreset_needs_masked_resets():
    ours, sync = _pair(AutoresetMode.DISABLED, **SHORT)
    rng = np.random.default_rng(3)
    _assert_same(ours.reset(seed=5), sync.reset(seed=5))
    for _ in range(2):
        for _ in range(SHORT["periods"]):
            actions = _actions(rng, ours.config)
            _assert_same(ours.step(actions), sync.step(actions))
        with pytest.raises(ValueError, match="ended their episode.*reset_mask"):
            ours.step(_actions(rng, ours.config))
        mask = np.ones(N, dtype=bool)
        _assert_same(ours.reset(options={"reset_mask": mask}),
                     sync.reset(options={"reset_mask": mask.copy()}))


def test_one_core_call_per_step(monkeypatch):
    calls = []
    step = core.step
    monkeypatch.setattr(core, "step", lambda *args: calls.append(1) or step(*args))
    env = InvManagementVectorEnv(256, **SHORT)
    env.reset(seed=0)
    for _ in range(3 * (SHORT["periods"] + 1)):
        env.step(np.full((256, 3), 20.0))
    # Each episode's T steps are one core call each; the autoreset steps make none.
    assert len(calls) == 3 * SHORT["periods"]


def test_spaces_are_the_single_envs_batched():
    env = InvManagementVectorEnv(N, time_feature=True, sales_history=2)
    single = InvManagementEnv(time_feature=True, sales_history=2)
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    assert env.observation_space == batch_space(single.observation_space, N)
    assert env.action_space == batch_space(single.action_space, N)
    assert env.observation_space.shape == (N, 36) and env.action_space.shape == (N, 3)
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP


@pytest.mark.parametrize(("batch", "single"), [
    (np.full((N, 3), np.nan), np.full(3, np.nan)),
    (np.full((N, 3), np.inf), np.full(3, -np.inf)),
    (np.full((N, 2), 1.0), np.full(2, 1.0)),
    (np.full(3, 1.0), np.full((1, 3), 1.0)),
    (np.full((N, 3), True), np.full(3, True)),
    (np.full((N, 3), 1 + 2j), np.full(3, 1 + 2j)),
    ([["a", "b", "c"]] * N, ["a", "b", "c"]),
    (None, None),
    ([[1.0, 2.0, 3.0]] * (N - 1) + [[1.0, 2.0]], [[1.0], [2.0, 3.0]]),
])
def test_bad_actions_raise_the_single_envs_value_error(batch, single):
    env, one = InvManagementVectorEnv(N), InvManagementEnv()
    env.reset(seed=0)
    one.reset(seed=0)
    with pytest.raises(ValueError, match="^actions must") as ours:
        env.step(batch)
    with pytest.raises(ValueError, match="^action must") as theirs:
        one.step(single)
    # The same message, batched: what is allowed (finite, shape or kinds), then what was given.
    assert ours.value.args[0].split()[2] == theirs.value.args[0].split()[2]
    # Nothing was stepped: the env goes on from period 0.
    assert env.step(np.full((N, 3), 20.0))[4]["period"].tolist() == [0] * N


def test_bad_arguments_and_options_are_refused():
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        InvManagementVectorEnv(2, autoreset_mode="EveryStep")
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
        InvManagementVectorEnv(0)
    with pytest.raises(ValueError, match="sales_history must be an integer"):
        InvManagementVectorEnv(2, sales_history=-1)
    env = InvManagementVectorEnv(2, **SHORT)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"demnd": [1.0] * 5})
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.zeros(2, dtype=bool)})
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": [True, False]})
    with pytest.raises(ValueError, match="seed must be"):
        env.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match=r"options\['demand'\]"):
        env.reset(options={"demand": np.zeros((3, 5))})


def test_demand_option_replays_given_paths():
    env = InvManagementVectorEnv(2, **SHORT)
    paths = np.array([[3.0, 0.0, 41.0, 7.0, 19.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    _, info = env.reset(options={"demand": paths})
    assert np.array_equal(info["demand_path"], paths)
    seen = [env.step(np.full((2, 3), 10.0))[4]["demand"] for _ in range(5)]
    assert np.array_equal(np.array(seen).T, paths)
    _, info = env.reset(options={"demand": paths[0]})
    assert np.array_equal(info["demand_path"], paths[[0, 0]])


def test_seed_makes_the_vector_reproducible():
    env = InvManagementVectorEnv(N, **SHORT)
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(0)
        obs, _ = env.reset(seed=9)
        rows = [obs] + [env.step(_actions(rng, env.config))[0] for _ in range(14)]
        runs.append(np.array(rows))
    assert np.array_equal(runs[0], runs[1])
    # Each sub-env has its own generator: sub-env i's is the one a single env seeded 9 + i has.
    single = InvManagementEnv(**SHORT)
    single.reset(seed=9 + 2)
    fresh = InvManagementVectorEnv(N, **SHORT)
    fresh.reset(seed=9)
    assert len(fresh.np_random) == N
    assert fresh.np_random[2].bit_generator.state == single.np_random.bit_generator.state


def test_make_vec_uses_the_vector_entry_point():
    env = gym.make_vec("echelon/InvManagement-v1", num_envs=3,
                       vectorization_mode="vector_entry_point", periods=7)
    assert isinstance(env.unwrapped, InvManagementVectorEnv)
    assert env.num_envs == 3 and env.config.periods == 7 and not env.config.backlog
    assert gym.make_vec("echelon/InvManagement-v0", num_envs=2).unwrapped.config.backlog
    assert isinstance(gym.make_vec("echelon/InvManagement-v1", num_envs=2,
                                   vectorization_mode="sync"), SyncVectorEnv)
    assert isinstance(make_vector_env(2, periods=7), InvManagementVectorEnv)
    assert echelon.InvManagementVectorEnv is InvManagementVectorEnv


def test_gymnasium_vector_wrappers_run_on_it():
    env = gym.wrappers.vector.RecordEpisodeStatistics(InvManagementVectorEnv(N, **SHORT))
    env.reset(seed=0)
    returns = []
    for _ in range(2 * (SHORT["periods"] + 1)):
        _, _, terminated, _, info = env.step(np.full((N, 3), 15.0))
        if "episode" in info:
            returns.append(info["episode"]["r"][info["_episode"]])
    assert len(returns) == 2 and all(len(r) == N for r in returns)
