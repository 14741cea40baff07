"""Batched rollouts: equal to stepping the core by hand, recorded trajectories, service level."""

import numpy as np
import pytest

from echelon._limits import SizeLimitError
from echelon.policies import EchelonBaseStock, RequestMode
from echelon.sim import ChainConfig, Poisson, core
from echelon.sim.rollout import _blocks, rollout, rollout_blocks, rollout_bytes, rollout_in_blocks


class _OrderUpToFromObservation:
    """Orders each stage up to 60 units on hand, read from OR-Gym's observation."""

    reads_observation = True

    def __init__(self, stages):
        self.stages = stages

    def act(self, obs, state):
        assert obs is not None and obs.shape[0] == state.episodes
        return np.maximum(60.0 - obs[:, : self.stages], 0.0)


def _demand(config, episodes, seed):
    return config.demand.sample(np.random.default_rng(seed), episodes, config.periods)


def _manual(config, policy, demand):
    """The loop a user would write over the core, accumulating in the same order."""
    state = core.reset(config, demand)
    profit = np.zeros(len(demand))
    undiscounted = np.zeros(len(demand))
    sales = np.zeros(len(demand))
    on_hand = np.zeros((len(demand), config.stages))
    while not state.done:
        obs = core.observation(config, state) if policy.reads_observation else None
        state, out = core.step(config, state, policy.act(obs, state))
        profit += out.reward
        undiscounted += out.stage_profit.sum(axis=1)
        sales += out.sales[:, 0]
        on_hand += out.on_hand
    return profit, undiscounted, sales, on_hand / config.periods


@pytest.mark.parametrize("backlog", [False, True])
@pytest.mark.parametrize("mode", list(RequestMode))
def test_base_stock_rollout_equals_stepping_the_core(backlog, mode):
    config = ChainConfig(backlog=backlog)
    demand = _demand(config, 16, seed=11)
    policy = EchelonBaseStock(config, [80.0, 180.0, 40.0], mode)
    result = rollout(config, policy, demand)
    profit, undiscounted, sales, mean_on_hand = _manual(config, policy, demand)
    assert np.array_equal(result.profit, profit)
    assert np.array_equal(result.undiscounted_profit, undiscounted)
    assert np.array_equal(result.retail_sales, sales)
    assert np.array_equal(result.mean_on_hand, mean_on_hand)
    assert np.array_equal(result.demand, demand.sum(axis=1))
    assert result.trajectory is None


def test_observation_policy_rollout_equals_stepping_the_core():
    config = ChainConfig(periods=12)
    demand = _demand(config, 5, seed=2)
    policy = _OrderUpToFromObservation(config.stages)
    result = rollout(config, policy, demand)
    profit, *_ = _manual(config, policy, demand)
    assert np.array_equal(result.profit, profit)


def test_episodes_are_independent_of_their_batch():
    config = ChainConfig()
    demand = _demand(config, 6, seed=4)
    policy = EchelonBaseStock(config, [70.0, 160.0, 300.0], RequestMode.RAW)
    batch = rollout(config, policy, demand)
    alone = np.concatenate([rollout(config, policy, demand[i: i + 1]).profit for i in range(6)])
    assert np.array_equal(batch.profit, alone)


def test_recorded_trajectory_shapes_and_totals():
    config = ChainConfig(backlog=True)
    episodes, periods, stages = 7, config.periods, config.stages
    demand = _demand(config, episodes, seed=5)
    policy = EchelonBaseStock(config, [80.0, 180.0, 40.0])
    result = rollout(config, policy, demand, record=True)
    shapes = {
        "demand": (episodes, periods),
        "reward": (episodes, periods),
        "requests": (episodes, periods, stages),
        "shipped": (episodes, periods, stages),
        "arrivals": (episodes, periods, stages),
        "on_hand": (episodes, periods, stages),
        "pipeline": (episodes, periods, stages),
        "sales": (episodes, periods, stages + 1),
        "unfulfilled": (episodes, periods, stages + 1),
        "stage_profit": (episodes, periods, stages + 1),
        "action": (episodes, periods, stages),
        "observation": (episodes, periods + 1, config.observation_size),
    }
    assert {name: array.shape for name, array in result.trajectory.items()} == shapes
    trajectory = result.trajectory
    assert np.array_equal(trajectory["demand"], demand)
    assert np.allclose(trajectory["reward"].sum(axis=1), result.profit, rtol=1e-12)
    assert np.allclose(trajectory["stage_profit"].sum(axis=(1, 2)), result.undiscounted_profit,
                       rtol=1e-12)
    assert np.array_equal(trajectory["sales"][:, :, 0].sum(axis=1), result.retail_sales)
    assert np.allclose(trajectory["on_hand"].mean(axis=1), result.mean_on_hand, rtol=1e-12)
    # The policy's actions and the observations are those of a by-hand loop over the core.
    state = core.reset(config, demand)
    for n in range(periods):
        assert np.array_equal(trajectory["observation"][:, n], core.observation(config, state))
        action = policy.act(None, state)
        assert np.array_equal(trajectory["action"][:, n], action)
        state, _ = core.step(config, state, action)
    assert np.array_equal(trajectory["observation"][:, periods], core.observation(config, state))
    # Recording does not change the results.
    plain = rollout(config, policy, demand)
    assert np.array_equal(plain.profit, result.profit)


@pytest.mark.parametrize("backlog", [False, True])
def test_service_level_is_a_fill_rate_in_unit_interval(backlog):
    config = ChainConfig(backlog=backlog, demand=Poisson(60.0))
    demand = _demand(config, 20, seed=8)
    result = rollout(config, EchelonBaseStock(config, [60.0, 100.0, 150.0]), demand)
    level = result.service_level
    assert level.shape == (20,)
    assert np.all((level >= 0.0) & (level <= 1.0))
    assert np.array_equal(level, result.retail_sales / result.demand)
    assert level.min() < 1.0  # demand of 60 a period outruns these low levels


def test_service_level_is_one_without_demand_and_zero_without_stock():
    config = ChainConfig(periods=3, initial_inventory=[0, 0, 0], lead_time=[1, 1, 1])
    demand = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    policy = EchelonBaseStock(config, [0.0, 0.0, 0.0])
    result = rollout(config, policy, demand)
    assert result.service_level.tolist() == [1.0, 0.0]
    assert result.retail_sales.tolist() == [0.0, 0.0]


@pytest.mark.parametrize(("block_size", "workers"), [(1, 1), (7, 2), (64, 2), (1000, 1)])
def test_blocked_rollout_equals_one_batch(block_size, workers):
    config = ChainConfig()
    demand = _demand(config, 150, seed=11)
    levels = np.random.default_rng(12).integers(20, 300, size=(150, 3)).astype(float)
    whole = rollout(config, EchelonBaseStock(config, levels, RequestMode.RAW), demand).profit
    blocked = rollout_blocks(
        config,
        lambda block: EchelonBaseStock(config, levels[block], RequestMode.RAW),
        demand,
        block_size=block_size,
        workers=workers,
    )
    assert np.array_equal(blocked, whole)


def test_blocked_rollout_rejects_bad_sizes():
    config = ChainConfig()
    with pytest.raises(ValueError, match="block_size and workers"):
        rollout_blocks(config, lambda b: None, _demand(config, 3, 0), block_size=0)


def test_reset_copies_the_callers_demand():
    config = ChainConfig(periods=3)
    demand = np.array([5.0, 5.0, 5.0])
    state = core.reset(config, demand)
    demand[:] = 99.0
    assert state.demand.tolist() == [[5.0, 5.0, 5.0]]


class _Fixed:
    """The same orders in every period for every episode (a batch-independent policy)."""

    reads_observation = False

    def __init__(self, orders):
        self.orders = np.asarray(orders, dtype=float)

    def act(self, obs, state):
        return np.broadcast_to(self.orders, (state.episodes, len(self.orders)))


@pytest.mark.parametrize(("episodes", "block_size"), [(150, 7), (15, 7), (8, 7), (9, 2), (1, 1)])
@pytest.mark.parametrize("backlog", [False, True])
def test_rollout_in_blocks_equals_one_rollout_in_every_field(episodes, block_size, backlog):
    # Fractional demand: a sum over periods is the same bits only if added in the same order,
    # which a lone one-episode block would not do (15 = 7 + 7 + 1 and 8 = 7 + 1 merge it).
    config = ChainConfig(backlog=backlog)
    demand = np.random.default_rng(3).uniform(0.0, 40.0, size=(episodes, config.periods))
    policy = EchelonBaseStock(config, [80.0, 180.0, 40.0], RequestMode.RAW)
    whole = rollout(config, policy, demand)
    blocked = rollout_in_blocks(config, lambda block: policy, demand, block_size=block_size)
    for name in ("profit", "undiscounted_profit", "demand", "retail_sales", "mean_on_hand"):
        assert np.array_equal(getattr(blocked, name), getattr(whole, name)), name
    assert blocked.trajectory is None


def test_blocks_never_hold_one_episode_and_shrink_for_long_horizons(monkeypatch):
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", "4")
    config = ChainConfig()
    sizes = [b.stop - b.start for b in _blocks(config, 15, 7)]
    assert sizes == [7, 8]
    assert [b.stop - b.start for b in _blocks(config, 0, 7)] == [0]
    long = ChainConfig(periods=20_000)  # 3.4 MB of state an episode
    per_block = {b.stop - b.start for b in _blocks(long, 1000, 8192)[:-1]}
    assert per_block == {256 * 2**20 // rollout_bytes(long, 1)}
    assert max(per_block) * rollout_bytes(long, 1) <= 256 * 2**20


def test_reset_bytes_is_the_state_it_allocates():
    config = ChainConfig(backlog=True)
    state = core.reset(config, np.zeros((13, config.periods)))
    arrays = (state.on_hand, state.pipeline, state.backlog, state.demand, state.requests,
              state.shipped, state.sales)
    assert core.reset_bytes(config, 13) == sum(a.nbytes for a in arrays)


def test_rollout_bytes_covers_the_trajectory():
    config = ChainConfig()
    demand = _demand(config, 9, seed=1)
    trajectory = rollout(config, EchelonBaseStock(config, [80.0, 180.0, 40.0]), demand,
                         record=True).trajectory
    recorded = sum(array.nbytes for array in trajectory.values())
    plain = rollout_bytes(config, 9)
    assert rollout_bytes(config, 9, record=True) == plain + recorded


def test_rollout_and_reset_refuse_over_the_memory_limit(monkeypatch):
    config = ChainConfig()
    demand = _demand(config, 100, seed=0)
    policy = EchelonBaseStock(config, [80.0, 180.0, 40.0])
    limit = rollout_bytes(config, 100)  # enough without the trajectory, not with it
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", str(limit / 2**30))
    assert rollout(config, policy, demand).profit.shape == (100,)
    with pytest.raises(SizeLimitError, match=r"a rollout of 100 episodes of 30 periods with its "
                                             r"trajectory would need .*reduce episodes or periods"):
        rollout(config, policy, demand, record=True)
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", str(core.reset_bytes(config, 99) / 2**30))
    with pytest.raises(SizeLimitError, match=r"the state of 100 episodes of 30 periods"):
        core.reset(config, demand)
    # Blocks stream what one batch cannot hold, with the same profits.
    blocked = rollout_blocks(config, lambda block: policy, demand, workers=1)
    monkeypatch.delenv("ECHELON_MEMORY_LIMIT_GIB")
    assert np.array_equal(blocked, rollout(config, policy, demand).profit)


def test_a_horizon_of_a_billion_periods_is_refused_not_attempted(monkeypatch):
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", "4")
    config = ChainConfig(periods=10**9)
    with pytest.raises(SizeLimitError, match=r"1,000,000,000 periods"):
        config.demand.sample(np.random.default_rng(0), 1, config.periods)
    with pytest.raises(SizeLimitError, match=r"a rollout of 1 episode of 1,000,000,000 periods"):
        rollout(config, _Fixed([1.0, 1.0, 1.0]), np.zeros((1, 10)))  # sized before it is read
