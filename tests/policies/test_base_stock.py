"""Echelon base-stock policies on hand-worked states."""

import math

import numpy as np
import pytest

from echelon.policies import EchelonBaseStock, Policy, RequestMode
from echelon.sim import ChainConfig, core

# Default chain (L = [3, 5, 10], capacities [100, 90, 80]).
_DEMAND = np.array([[30.0, 20.0] + [10.0] * 28])


def _state_after_two_periods(config):
    """Period 2 of the default chain after orders [100, 0, 0] then [0, 50, 0], demand 30 and 20.

    n=0: the distributor ships all its 100 to the retailer (arrives at n=3); the retailer sells 30.
    n=1: the manufacturer ships 50 to the distributor (arrives at n=6); the retailer sells 20.
    """
    state = core.reset(config, _DEMAND)
    state, _ = core.step(config, state, np.array([[100.0, 0.0, 0.0]]))
    state, _ = core.step(config, state, np.array([[0.0, 50.0, 0.0]]))
    return state


def test_meets_the_policy_protocol():
    policy = EchelonBaseStock(ChainConfig(), [80.0, 180.0, 40.0])
    assert isinstance(policy, Policy) and policy.reads_observation is False
    assert policy.mode is RequestMode.CLIP
    assert EchelonBaseStock(ChainConfig(), [1, 2, 3], "raw").mode is RequestMode.RAW


@pytest.mark.parametrize("mode", list(RequestMode))
def test_default_chain_at_period_zero_orders_nothing(mode):
    config = ChainConfig()
    state = core.reset(config, _DEMAND)
    # On hand [100, 100, 200], nothing in transit: echelon positions 100, 200, 400, all above
    # z = [80, 180, 40], so every shortfall is negative and nothing is requested.
    assert core.echelon_inventory_position(config, state).tolist() == [[100.0, 200.0, 400.0]]
    policy = EchelonBaseStock(config, [80.0, 180.0, 40.0], mode)
    assert policy.act(None, state).tolist() == [[0.0, 0.0, 0.0]]


def test_period_zero_high_levels_clip_at_capacity():
    config = ChainConfig()
    state = core.reset(config, _DEMAND)
    levels = [250.0, 400.0, 700.0]
    # Shortfalls 250 - 100, 400 - 200, 700 - 400.
    raw = EchelonBaseStock(config, levels, RequestMode.RAW).act(None, state)
    assert raw.tolist() == [[150.0, 200.0, 300.0]]
    # Capacities [100, 90, 80] bind; upstream stock (100, 200) does not bind below them.
    clip = EchelonBaseStock(config, levels, RequestMode.CLIP).act(None, state)
    assert clip.tolist() == [[100.0, 90.0, 80.0]]


def test_raw_and_clip_differ_after_a_few_periods_by_hand():
    config = ChainConfig()
    state = _state_after_two_periods(config)
    assert state.on_hand.tolist() == [[50.0, 0.0, 150.0]]
    assert state.pipeline.tolist() == [[100.0, 50.0, 0.0]]
    # Echelon positions: 50 + 100 = 150; 150 + 0 + 50 = 200; 200 + 150 + 0 = 350.
    assert core.echelon_inventory_position(config, state).tolist() == [[150.0, 200.0, 350.0]]
    levels = [200.0, 330.0, 460.0]
    raw = EchelonBaseStock(config, levels, RequestMode.RAW).act(None, state)
    # Shortfalls 200 - 150 = 50, 330 - 200 = 130, 460 - 350 = 110.
    assert raw.tolist() == [[50.0, 130.0, 110.0]]
    clip = EchelonBaseStock(config, levels, RequestMode.CLIP).act(None, state)
    # Retailer: the distributor holds 0, so 0. Distributor: capacity 90 (< 150 held upstream).
    # Manufacturer: the supplier's capacity 80.
    assert clip.tolist() == [[0.0, 90.0, 80.0]]

    _, out_raw = core.step(config, state.copy(), raw)
    _, out_clip = core.step(config, state.copy(), clip)
    # The simulator ships the same either way; RAW pays for the unfillable units
    # 50, 40, 30 at k = 0.075, 0.05, 0.025: 3.75 + 2 + 0.75 = 6.5 less profit.
    assert out_raw.shipped.tolist() == out_clip.shipped.tolist() == [[0.0, 90.0, 80.0]]
    assert out_raw.unfulfilled[0, 1:].tolist() == [50.0, 40.0, 30.0]
    assert out_clip.unfulfilled[0, 1:].tolist() == [0.0, 0.0, 0.0]
    difference = out_clip.stage_profit[0] - out_raw.stage_profit[0]
    assert difference.tolist() == pytest.approx([0.0, 3.75, 2.0, 0.75], abs=1e-12)
    assert out_clip.reward[0] - out_raw.reward[0] == pytest.approx(0.97**2 * 6.5, abs=1e-12)


def test_levels_per_episode():
    config = ChainConfig()
    state = core.reset(config, np.repeat(_DEMAND, 3, axis=0))
    levels = np.array([[80.0, 180.0, 40.0], [250.0, 400.0, 700.0], [150.0, 260.0, 410.0]])
    for mode, want in ((RequestMode.RAW, [[0, 0, 0], [150, 200, 300], [50, 60, 10]]),
                       (RequestMode.CLIP, [[0, 0, 0], [100, 90, 80], [50, 60, 10]])):
        policy = EchelonBaseStock(config, levels, mode)
        assert policy.act(None, state).tolist() == want
        for i in range(3):
            alone = EchelonBaseStock(config, levels[i], mode).act(None, state.take([i]))
            assert alone.tolist() == [want[i]]


@pytest.mark.parametrize(
    ("levels", "match"),
    [
        (np.array([80.0, 180.0]), r"levels must be shaped \(S,\) or \(N, S\) with S = 3"),
        (np.array([80.0, 180.0, 40.0, 10.0]), r"with S = 3, got \(4,\)"),
        (np.ones((2, 2)), r"with S = 3, got \(2, 2\)"),
        (np.ones((1, 2, 3)), r"with S = 3, got \(1, 2, 3\)"),
        (np.float64(80.0), r"with S = 3, got \(\)"),
        (np.array([80.0, math.nan, 40.0]), "levels must be finite"),
        (np.array([[80.0, 180.0, math.inf]]), "levels must be finite"),
    ],
)
def test_bad_levels_raise(levels, match):
    with pytest.raises(ValueError, match=match):
        EchelonBaseStock(ChainConfig(), levels)


@pytest.mark.parametrize(
    ("chain", "levels"),
    [
        (dict(initial_inventory=[0], replenishment_cost=[1.0, 0.5], unfulfilled_penalty=[0.1, 0.05],
              holding_cost=[0.1], capacity=[10], lead_time=[1]), [30.0]),
        (dict(initial_inventory=[0, 0], replenishment_cost=[1.0, 0.5, 0.25],
              unfulfilled_penalty=[0.1, 0.05, 0.025], holding_cost=[0.1, 0.05],
              capacity=[100, 100], lead_time=[1, 1]), [20.0, 30.0]),
    ],
    ids=["one-stage-capacity", "two-stage-upstream-stock"],
)
def test_raw_base_stock_with_backlog_fills_exactly_to_its_levels_without_demand(chain, levels):
    """With no demand, ordering up to z must bring each echelon's stock to z, never above.

    Known bug (fails today): in v0 the simulator re-requests every unfilled request in the next
    period, but ``echelon_inventory_position`` neither counts a stage's unfilled request as on
    order (+ backlog[i+1]) nor leaves the internal debts of stages 1..i out of echelon i
    (- backlog[1..i]). RAW requests therefore order the backlogged units a second time. In the
    one-stage case (capacity 10, z = 30) the retailer ends with 60 units.
    """
    config = ChainConfig(periods=10, backlog=True, demand=[0.0] * 10, **chain)
    policy = EchelonBaseStock(config, levels, RequestMode.RAW)
    state = core.reset(config, np.zeros((1, 10)))
    while not state.done:
        state, out = core.step(config, state, policy.act(None, state))
        echelon_stock = np.cumsum(out.on_hand + out.pipeline, axis=1)
        assert np.all(echelon_stock <= np.asarray(levels)), (out.period, echelon_stock)
    assert np.cumsum(state.on_hand, axis=1).tolist() == [levels]


def test_per_episode_levels_must_match_the_batch():
    config = ChainConfig()
    policy = EchelonBaseStock(config, np.full((4, 3), 50.0))
    state = core.reset(config, np.full((5, config.periods), 20.0))
    with pytest.raises(ValueError, match="levels has 4 rows"):
        policy.act(None, state)


# --- time-varying base-stock ---------------------------------------------------------------------


def test_time_varying_levels_switch_at_each_third_of_the_horizon():
    from echelon.policies.base_stock import TimeVaryingBaseStock

    config = ChainConfig()
    levels = np.array([300.0, 400.0, 500.0, 0.0, 0.0, 0.0, 10.0, 20.0, 30.0])
    policy = TimeVaryingBaseStock(config, levels, 3, RequestMode.RAW)
    assert [policy.block(n) for n in (0, 9, 10, 19, 20, 29)] == [0, 0, 1, 1, 2, 2]
    state = core.reset(config, _DEMAND)
    # Period 0: echelon positions 100, 200, 400 against levels 300, 400, 500.
    np.testing.assert_array_equal(policy.act(None, state), [[200.0, 200.0, 100.0]])
    for _ in range(10):
        state, _ = core.step(config, state, np.zeros((1, 3)))
    assert policy.act(None, state).tolist() == [[0.0, 0.0, 0.0]]  # block 2: levels 0
    # Equal blocks order as plain echelon base-stock.
    same = TimeVaryingBaseStock(config, np.tile([80.0, 180.0, 40.0], 3), 3)
    np.testing.assert_array_equal(same.act(None, state),
                                  EchelonBaseStock(config, [80.0, 180.0, 40.0]).act(None, state))
    with pytest.raises(ValueError, match=r"levels must be shaped \(S,\) or \(N, S\) with S = 9"):
        TimeVaryingBaseStock(config, [80.0, 180.0, 40.0], 3)
    with pytest.raises(ValueError, match="blocks must be an integer >= 1"):
        TimeVaryingBaseStock(config, levels, 0)


def test_tuned_time_varying_levels_follow_a_trend():
    from echelon.policies.search import Family, SearchConfig, Space, run_search
    from echelon.sim.demand import MeanCurve

    # Demand triples over the horizon: the last third wants higher retail levels than the first.
    config = ChainConfig(demand=MeanCurve(level=10.0, trend=0.07))
    settings = SearchConfig(space=Space.WIDE, family=Family.TIME_VARYING, mode=RequestMode.CLIP,
                            episodes=60, top_k=1)
    best = run_search(config, settings, np.random.SeedSequence(4)).best
    assert set(best.params) == {"z1", "z2", "z3"}
    assert best.params["z3"][0] > best.params["z1"][0]
    plain = run_search(config, SearchConfig(space=Space.WIDE, family=Family.BASE_STOCK,
                                            mode=RequestMode.CLIP, episodes=60, top_k=1),
                       np.random.SeedSequence(4)).best
    assert best.mean > plain.mean  # on the same ranking paths
