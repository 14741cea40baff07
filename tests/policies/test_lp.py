"""The perfect-information LP bound and the shrinking-horizon LP policy, on the real core."""

import copy

import numpy as np
import pytest

from echelon._limits import SizeLimitError
from echelon.policies.base import Policy
from echelon.policies.base_stock import EchelonBaseStock, RequestMode
from echelon.policies.chain_lp import ScenarioLP, _PlanningLP, lp_bytes
from echelon.policies.lp import perfect_information_bound, perfect_information_plan, plan_bytes
from echelon.policies.receding import ShrinkingHorizonLP
from echelon.policies.replay import PlanReplay
from echelon.sim import core
from echelon.sim.core import scheduled_arrivals
from echelon.sim.config import ChainConfig
from echelon.sim.demand import Poisson
from echelon.sim.rollout import rollout

# Slack for HiGHS's tolerances on profits of a few hundred.
_TOL = 1e-6


def _one_stage(**changes) -> ChainConfig:
    """One stage below the supplier: p = 2, r = [1, 0.5], k = [0.25, 0.1], h = 0.2, alpha = 0.5."""
    base = dict(
        periods=3, initial_inventory=(2.0,), price=2.0, replenishment_cost=(1.0, 0.5),
        unfulfilled_penalty=(0.25, 0.1), holding_cost=(0.2,), capacity=(4.0,), lead_time=(1,),
        alpha=0.5,
    )
    return ChainConfig(**{**base, **changes})


# Non-default chains: five stages with zero lead times at the retailer and in the middle, and two
# stages with a zero upstream lead time, both with other prices and costs.
_FIVE_STAGES = ChainConfig(
    periods=20, initial_inventory=(30.0, 20.0, 40.0, 0.0, 60.0), price=3.0,
    replenishment_cost=(2.0, 1.5, 1.2, 1.0, 0.8, 0.5), unfulfilled_penalty=(0.3, 0.1, 0.1, 0.05, 0.05, 0.02),
    holding_cost=(0.2, 0.15, 0.1, 0.05, 0.02), capacity=(25.0, 30.0, 20.0, 35.0, 30.0),
    lead_time=(0, 2, 0, 3, 1), demand=Poisson(12.0), alpha=0.95,
)
_TWO_STAGES_BACKLOG = ChainConfig(
    periods=15, initial_inventory=(10.0, 50.0), price=2.5, replenishment_cost=(1.0, 0.6, 0.4),
    unfulfilled_penalty=(0.5, 0.2, 0.1), holding_cost=(0.1, 0.05), capacity=(30.0, 25.0),
    lead_time=(2, 0), backlog=True, demand=Poisson(15.0), alpha=0.99,
)
CHAINS = {
    "default-v1": ChainConfig(),
    "default-v0": ChainConfig(backlog=True),
    "five-stages": _FIVE_STAGES,
    "two-stages-v0": _TWO_STAGES_BACKLOG,
}


def _paths(config: ChainConfig, count: int, seed: int) -> np.ndarray:
    return config.demand.sample(np.random.default_rng(seed), count, config.periods)


# Hand-worked instances -----------------------------------------------------------------------------


def test_one_stage_lost_sales_holding_does_not_pay():
    # S = 1, L = [1], c = 4, I0 = 2, demand [3, 1, 5], v1. Profit of period n (telescoped):
    # alpha^n (p s_n - r_1 x_n - k_0 (D_n - s_n) - h I_n). A unit shipped in n arrives in n+1.
    # n=0: sell the 2 on hand, lose 1. A unit shipped now and sold in n=1 is worth
    #   -0.5 + 0.5 * (2 + 0.25) = 0.625 > 0, but demand in n=1 is 1; one held to n=2 is worth
    #   -0.5 - 0.5 * 0.2 + 0.25 * 2.25 = -0.0375 < 0. So x_0 = 1.
    # A unit shipped in n=1 and sold in n=2 is worth 0.5 * (-0.5) + 0.25 * 2.25 = 0.3125 > 0, so
    #   x_1 = c = 4 and one of the 5 demanded in n=2 is lost; x_2 arrives too late: 0.
    # n=0: 2*2 - 0.5*1 - 0.25*1 = 3.25
    # n=1: sell 1, nothing left: 2*1 - 0.5*4 = 0                   -> * 0.5  = 0
    # n=2: sell 4, lose 1: 2*4 - 0.25*1 = 7.75                      -> * 0.25 = 1.9375
    # Total 5.1875 (holding one unit from x_0 = 2 instead gives 5.15).
    config = _one_stage()
    demand = np.array([[3.0, 1.0, 5.0]])
    plan = perfect_information_plan(config, demand)
    assert plan.profit[0] == pytest.approx(5.1875, abs=1e-6)
    assert plan.orders[0, :, 0].tolist() == [1.0, 4.0, 0.0]
    assert plan.retail_sales[0].tolist() == [2.0, 1.0, 4.0]
    profit = rollout(config, PlanReplay(plan.orders), demand).profit[0]
    assert profit == pytest.approx(5.1875, abs=1e-9)


def test_one_stage_backlog_zero_lead_time_sells_on_arrival():
    # S = 1, L = [0], c = 3, I0 = 0, demand [5, 0], v0. A shipment arrives in its own period.
    # n=0: ship 3, sell 3, 2 carried as backlog: 2*3 - 0.5*3 - 0.25*2 = 4.
    # n=1: demand 0 + backlog 2; a unit is worth 0.5 * (2 + 0.25 - 0.5) > 0: ship 2, sell 2:
    #   2*2 - 0.5*2 = 3 -> * 0.5 = 1.5. Total 5.5.
    config = _one_stage(periods=2, initial_inventory=(0.0,), capacity=(3.0,), lead_time=(0,),
                        backlog=True)
    demand = np.array([5.0, 0.0])
    plan = perfect_information_plan(config, demand)
    assert plan.profit[0] == pytest.approx(5.5, abs=1e-6)
    assert plan.orders[0, :, 0].tolist() == [3.0, 2.0]
    assert rollout(config, PlanReplay(plan.orders), demand[None]).profit[0] == pytest.approx(5.5)


def test_two_stages_zero_lead_times_ship_only_start_of_period_stock():
    # S = 2, L = [0, 0], I0 = [0, 0], demand [4, 4], p = 2, r = [1, 0.8, 0.5], k = [0.25, 0.1, 0.05],
    # h = [0.2, 0.1], alpha = 0.5. What the supplier ships to stage 1 in n=0 arrives at once but
    # cannot go on to the retailer before n=1 (shipments use start-of-period stock).
    # n=0: lose the 4 demanded; the supplier ships 4 (a unit is worth -0.5 - 0.1 + 0.5 * 2.25 > 0),
    #   held by stage 1: -0.25*4 - 0.5*4 - 0.1*4 = -3.4.
    # n=1: stage 1 ships its 4 to the retailer, who sells them: 2*4 = 8 -> * 0.5 = 4. Total 0.6.
    config = ChainConfig(
        periods=2, initial_inventory=(0.0, 0.0), price=2.0, replenishment_cost=(1.0, 0.8, 0.5),
        unfulfilled_penalty=(0.25, 0.1, 0.05), holding_cost=(0.2, 0.1), capacity=(10.0, 10.0),
        lead_time=(0, 0), alpha=0.5,
    )
    demand = np.array([[4.0, 4.0]])
    plan = perfect_information_plan(config, demand)
    assert plan.profit[0] == pytest.approx(0.6, abs=1e-6)
    assert plan.orders[0].tolist() == [[0.0, 4.0], [4.0, 0.0]]
    assert plan.on_hand[0].tolist() == [[0.0, 4.0], [0.0, 0.0]]
    assert rollout(config, PlanReplay(plan.orders), demand).profit[0] == pytest.approx(0.6)


# The bound against heuristics ----------------------------------------------------------------------


def _heuristics(config: ChainConfig, episodes: int, rng: np.random.Generator):
    stages, periods = config.stages, config.periods
    if config.stages == 3:
        levels = [[80, 180, 40], [100, 220, 40], [60, 120, 200]]
    else:
        levels = [np.cumsum(rng.uniform(10, 60, stages)) for _ in range(3)]
    policies = [EchelonBaseStock(config, z, mode) for z in levels for mode in RequestMode]
    policies.append(PlanReplay(np.zeros((episodes, periods, stages))))
    capacity = np.asarray(config.capacity)
    for _ in range(3):  # random orders, some above capacity and some negative
        policies.append(PlanReplay(rng.uniform(-0.2, 1.5, (episodes, periods, stages)) * capacity))
    return policies


@pytest.mark.parametrize("name", list(CHAINS))
def test_bound_dominates_every_heuristic_on_every_path(name):
    config = CHAINS[name]
    demand = _paths(config, 50, seed=7)
    bound = perfect_information_bound(config, demand)
    assert bound.shape == (50,)
    for policy in _heuristics(config, 50, np.random.default_rng(11)):
        profit = rollout(config, policy, demand).profit
        assert np.all(profit <= bound + _TOL), (policy, np.max(profit - bound))


@pytest.mark.parametrize("name", list(CHAINS))
def test_the_simulator_replays_the_optimal_plan_at_the_lp_value(name):
    config = CHAINS[name]
    demand = _paths(config, 50, seed=3)
    plan = perfect_information_plan(config, demand)
    assert plan.orders.shape == (50, config.periods, config.stages)
    assert np.all(plan.orders >= 0) and np.all(plan.orders <= np.asarray(config.capacity))
    integral = plan.integral
    # HiGHS returns vertices; on these chains every one found so far is integral.
    assert integral.mean() >= 0.9
    replayed = rollout(config, PlanReplay(plan.orders), demand, record=True)
    np.testing.assert_allclose(replayed.profit[integral], plan.profit[integral], rtol=0, atol=_TOL)
    # An integral plan is shipped exactly as requested: the LP's dynamics are the core's.
    trajectory = replayed.trajectory
    shipped, requests = trajectory["shipped"][integral], trajectory["requests"][integral]
    np.testing.assert_array_equal(shipped, requests)
    np.testing.assert_array_equal(shipped, plan.orders[integral])
    # A fractional plan, rounded down by the simulator, cannot beat the bound.
    floored = rollout(config, PlanReplay(np.floor(plan.orders)), demand).profit
    assert np.all(floored <= plan.profit + _TOL)


def test_a_plan_does_not_depend_on_the_other_paths_solved():
    # Every solve starts from the same basis, so ties between optimal plans break the same way
    # whatever was solved before.
    config = CHAINS["five-stages"]
    demand = _paths(config, 12, seed=5)
    forward = perfect_information_plan(config, demand)
    backward = perfect_information_plan(config, demand[::-1])
    alone = perfect_information_plan(config, demand[7])
    np.testing.assert_array_equal(backward.orders[::-1], forward.orders)
    np.testing.assert_array_equal(alone.orders[0], forward.orders[7])
    np.testing.assert_allclose(backward.profit[::-1], forward.profit, rtol=0, atol=_TOL)


def test_bound_reports_progress_and_checks_the_demand_shape():
    config = ChainConfig(periods=5, lead_time=(1, 1, 1))
    seen = []
    bound = perfect_information_bound(config, _paths(config, 4, seed=0), progress=seen.append)
    assert seen == [1, 2, 3, 4] and bound.shape == (4,)
    with pytest.raises(ValueError, match="shaped"):
        perfect_information_bound(config, np.zeros((2, 6)))
    with pytest.raises(ValueError, match=">= 0"):
        perfect_information_bound(config, -np.ones((1, 5)))


# The shrinking-horizon policy ----------------------------------------------------------------------


def test_scheduled_arrivals_from_the_shipment_log_by_hand():
    config = ChainConfig()  # L = [3, 5, 10]
    demand = np.array([[30.0, 20.0] + [10.0] * 28])
    state = core.reset(config, demand)
    state, _ = core.step(config, state, np.array([[100.0, 0.0, 0.0]]))
    state, _ = core.step(config, state, np.array([[0.0, 50.0, 30.0]]))
    arrivals = scheduled_arrivals(config, state)
    # At period 2: the retailer's 100 (shipped at 0) arrive at 3; the distributor's 50 (shipped
    # at 1) at 6; the manufacturer's 30 (shipped at 1) at 11.
    assert arrivals.shape == (1, 28, 3)
    expected = np.zeros((28, 3))
    expected[3 - 2, 0], expected[6 - 2, 1], expected[11 - 2, 2] = 100.0, 50.0, 30.0
    np.testing.assert_array_equal(arrivals[0], expected)


def _check_feasible_requests(config: ChainConfig, result) -> None:
    trajectory = result.trajectory
    requests = trajectory["requests"]
    assert np.all(requests == np.floor(requests)) and np.all(requests >= 0)
    assert np.all(requests <= np.asarray(config.capacity))
    # Nothing is ever left unfilled upstream: every request was within capacity and the upstream
    # stage's start-of-period on-hand.
    np.testing.assert_array_equal(trajectory["shipped"], requests)
    np.testing.assert_array_equal(trajectory["unfulfilled"][..., 1:], 0.0)


def test_shrinking_horizon_lp_beats_base_stock_and_stays_below_the_bound():
    config = ChainConfig()
    demand = _paths(config, 20, seed=1)
    policy = ShrinkingHorizonLP(config)
    assert isinstance(policy, Policy) and policy.reads_observation is False
    result = rollout(config, policy, demand, record=True)
    _check_feasible_requests(config, result)
    bound = perfect_information_bound(config, demand)
    assert np.all(result.profit <= bound + _TOL)
    levels = [[80, 180, 40], [100, 220, 40], [60, 120, 200], [120, 240, 60], [90, 200, 80]]
    best_base_stock = max(
        rollout(config, EchelonBaseStock(config, z, RequestMode.CLIP), demand).profit.mean()
        for z in levels
    )
    assert best_base_stock < result.profit.mean() < bound.mean()


@pytest.mark.parametrize("name", ["default-v0", "five-stages", "two-stages-v0"])
def test_shrinking_horizon_lp_on_other_chains(name):
    config = CHAINS[name]
    demand = _paths(config, 6, seed=2)
    result = rollout(config, ShrinkingHorizonLP(config), demand, record=True)
    _check_feasible_requests(config, result)
    assert np.all(result.profit <= perfect_information_bound(config, demand) + _TOL)


def test_shrinking_horizon_lp_is_deterministic_and_shares_solves():
    config = ChainConfig(periods=8)
    demand = _paths(config, 5, seed=4)
    first = rollout(config, ShrinkingHorizonLP(config), demand).profit
    again = rollout(config, ShrinkingHorizonLP(config), demand).profit
    np.testing.assert_array_equal(first, again)
    # Episodes with the same demand path are in the same state in every period and so get the
    # same orders as when run alone.
    doubled = rollout(config, ShrinkingHorizonLP(config), np.repeat(demand, 2, axis=0)).profit
    np.testing.assert_array_equal(doubled, np.repeat(first, 2))
    # Its HiGHS instances are rebuilt after a copy (they do not pickle).
    policy = ShrinkingHorizonLP(config)
    rollout(config, policy, demand)
    copied = rollout(config, copy.deepcopy(policy), demand).profit
    np.testing.assert_array_equal(copied, first)
    with pytest.raises(ValueError, match="forecast"):
        ShrinkingHorizonLP(config, forecast=-1.0)


def test_lp_bytes_counts_the_nonzeros_of_the_built_matrix():
    chains = (ChainConfig(), ChainConfig(backlog=True),
              ChainConfig(periods=12, lead_time=(0, 2, 0)))
    for config in chains:
        model = _PlanningLP(config, config.periods).highs.getLp()
        nonzeros = len(model.a_matrix_.value_)
        per_nonzero = lp_bytes(config, config.periods) / nonzeros
        assert 800 <= per_nonzero < 900  # the bound per period is nearly tight


def test_lps_too_large_for_memory_are_refused_before_they_are_built(monkeypatch):
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", "4")
    long = ChainConfig(periods=10**6)
    with pytest.raises(SizeLimitError,
                       match=r"a planning LP over 1,000,000 periods.*reduce periods"):
        _PlanningLP(long, long.periods)
    with pytest.raises(SizeLimitError, match=r"reduce periods"):
        ShrinkingHorizonLP(ChainConfig(periods=1000))  # 1,000 LPs of 1 .. 1,000 periods
    assert ShrinkingHorizonLP(ChainConfig(periods=200)).config.periods == 200
    with pytest.raises(SizeLimitError, match=r"a scenario LP of 100,000 scenarios over 30 "
                                             r"periods.*reduce scenarios or periods"):
        ScenarioLP(ChainConfig(), 30, 100_000)


def test_perfect_information_plans_are_refused_over_the_memory_limit(monkeypatch):
    config = ChainConfig()
    paths = config.demand.sample(np.random.default_rng(0), 3, config.periods)
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", str(plan_bytes(config, 2) / 2**30))
    assert perfect_information_plan(config, paths[:2]).profit.shape == (2,)
    with pytest.raises(SizeLimitError, match=r"perfect-information plans of 3 paths of 30 periods"):
        perfect_information_plan(config, paths)
