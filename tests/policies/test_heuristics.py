"""Local base-stock, time-aware base-stock and (s, S) on hand-worked states."""

import numpy as np
import pytest

from echelon.policies.base_stock import (
    EchelonBaseStock,
    LocalBaseStock,
    ReorderPointOrderUpTo,
    RequestMode,
    TimeAwareBaseStock,
)
from echelon.sim import ChainConfig, core

# Default chain (L = [3, 5, 10], capacities [100, 90, 80], on hand [100, 100, 200]).
_DEMAND = np.array([[30.0, 20.0] + [10.0] * 28])


def _state_after_two_periods(config):
    """Period 2 of the default chain after orders [100, 0, 0] then [0, 50, 0], demand 30 and 20.

    n=0: the distributor ships all its 100 to the retailer (arrives at n=3); the retailer sells 30.
    n=1: the manufacturer ships 50 to the distributor (arrives at n=6); the retailer sells 20.
    On hand [50, 0, 150], in transit [100, 50, 0], no backlog.
    """
    state = core.reset(config, _DEMAND)
    state, _ = core.step(config, state, np.array([[100.0, 0.0, 0.0]]))
    state, _ = core.step(config, state, np.array([[0.0, 50.0, 0.0]]))
    return state


def _state_with_customer_backlog():
    """Period 1 of the default chain in v0 after no orders and a demand of 130 at n=0.

    The retailer sells its 100 and owes 30 to customers; no request is owed upstream.
    On hand [0, 100, 200], nothing in transit, backlog [30, 0, 0, 0].
    """
    config = ChainConfig(backlog=True)
    state = core.reset(config, np.array([[130.0] + [10.0] * 29]))
    state, _ = core.step(config, state, np.zeros((1, 3)))
    return config, state


# Local (installation) base-stock -----------------------------------------------------------------


def test_local_and_echelon_positions_differ_on_the_same_state():
    config = ChainConfig()
    state = _state_after_two_periods(config)
    assert state.on_hand.tolist() == [[50.0, 0.0, 150.0]]
    assert state.pipeline.tolist() == [[100.0, 50.0, 0.0]]
    levels = [160.0, 120.0, 230.0]
    # Installation positions on hand + in transit: 50 + 100 = 150, 0 + 50 = 50, 150 + 0 = 150.
    # Shortfalls 160 - 150 = 10, 120 - 50 = 70, 230 - 150 = 80.
    local_raw = LocalBaseStock(config, levels, RequestMode.RAW).act(None, state)
    assert local_raw.tolist() == [[10.0, 70.0, 80.0]]
    # Clip: the distributor holds 0, so the retailer gets 0; 70 <= min(90, 150); 80 <= 80.
    local_clip = LocalBaseStock(config, levels, RequestMode.CLIP).act(None, state)
    assert local_clip.tolist() == [[0.0, 70.0, 80.0]]
    # Echelon positions 150, 200, 350: shortfalls 10, -80, -120, so only the retailer orders.
    echelon_raw = EchelonBaseStock(config, levels, RequestMode.RAW).act(None, state)
    assert echelon_raw.tolist() == [[10.0, 0.0, 0.0]]
    echelon_clip = EchelonBaseStock(config, levels, RequestMode.CLIP).act(None, state)
    assert echelon_clip.tolist() == [[0.0, 0.0, 0.0]]


def test_local_position_subtracts_the_stage_own_backlog_in_v0():
    config, state = _state_with_customer_backlog()
    assert state.on_hand.tolist() == [[0.0, 100.0, 200.0]]
    assert state.backlog.tolist() == [[30.0, 0.0, 0.0, 0.0]]
    levels = [60.0, 150.0, 300.0]
    # Installation positions: 0 - 30 = -30 (the retailer owes customers), 100, 200.
    # Shortfalls 60 + 30 = 90, 150 - 100 = 50, 300 - 200 = 100.
    raw = LocalBaseStock(config, levels, RequestMode.RAW).act(None, state)
    assert raw.tolist() == [[90.0, 50.0, 100.0]]
    # Clip: 90 <= min(100, 100 held by the distributor); 50 <= min(90, 200); 100 -> capacity 80.
    clip = LocalBaseStock(config, levels, RequestMode.CLIP).act(None, state)
    assert clip.tolist() == [[90.0, 50.0, 80.0]]
    # Echelon positions: cumsum [0, 100, 300] - 30 = [-30, 70, 270]: shortfalls 90, 80, 30.
    assert core.echelon_inventory_position(config, state).tolist() == [[-30.0, 70.0, 270.0]]
    echelon = EchelonBaseStock(config, levels, RequestMode.RAW).act(None, state)
    assert echelon.tolist() == [[90.0, 80.0, 30.0]]


def test_local_base_stock_ignores_backlog_in_v1():
    config = ChainConfig()  # lost sales: the unmet 30 of n=0 is gone, not owed
    state = core.reset(config, np.array([[130.0] + [10.0] * 29]))
    state, _ = core.step(config, state, np.zeros((1, 3)))
    # Positions [0, 100, 200]; shortfalls 60, 50, 100.
    raw = LocalBaseStock(config, [60.0, 150.0, 300.0], RequestMode.RAW).act(None, state)
    assert raw.tolist() == [[60.0, 50.0, 100.0]]


_ONE_STAGE = dict(periods=10, backlog=True, demand=[0.0] * 10, initial_inventory=[0],
                  replenishment_cost=[1.0, 0.5], unfulfilled_penalty=[0.1, 0.05],
                  holding_cost=[0.1], capacity=[10], lead_time=[1])


def test_local_base_stock_on_one_stage_is_echelon_base_stock_in_v0():
    """With one stage, installation and echelon position are the same thing.

    Regression: in v0 the core re-requests every unfilled request in the next period, so units
    a stage is still owed by its supplier are on order and count in its position
    (+ backlog[i+1]). Without them a RAW local policy orders backlogged units a second time:
    here (capacity 10, z = 30, no demand) the retailer would end with 60 units, not 30.
    """
    config = ChainConfig(**_ONE_STAGE)
    local = LocalBaseStock(config, [30.0], RequestMode.RAW)
    echelon = EchelonBaseStock(config, [30.0], RequestMode.RAW)
    state = core.reset(config, np.zeros((1, 10)))
    while not state.done:
        orders = local.act(None, state)
        assert orders.tolist() == echelon.act(None, state).tolist(), state.period
        state, _ = core.step(config, state, orders)
    assert state.on_hand.tolist() == [[30.0]]


# Time-aware base-stock ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "raw_want", "clip_want"),
    [
        # Period 2: stage 0 may still order (2 <= 2), stage 1 stopped after period 1, 2 never.
        ([2, 1, -1], [50.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ([1, 2, 29], [0.0, 130.0, 110.0], [0.0, 90.0, 80.0]),
        ([29, 29, 29], [50.0, 130.0, 110.0], [0.0, 90.0, 80.0]),
        ([-1, -1, -1], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
    ],
)
def test_time_aware_orders_like_echelon_until_its_last_period(last, raw_want, clip_want):
    config = ChainConfig()
    state = _state_after_two_periods(config)
    levels = [200.0, 330.0, 460.0]
    # Echelon positions 150, 200, 350: echelon base-stock asks 50, 130, 110 raw, and clipped
    # 0 (the distributor holds 0), 90 (capacity), 80 (the supplier's capacity).
    raw = TimeAwareBaseStock(config, levels, last, RequestMode.RAW).act(None, state)
    assert raw.tolist() == [raw_want]
    clip = TimeAwareBaseStock(config, levels, last, RequestMode.CLIP).act(None, state)
    assert clip.tolist() == [clip_want]


@pytest.mark.parametrize("mode", list(RequestMode))
def test_time_aware_matches_echelon_period_by_period(mode):
    config = ChainConfig()
    rng = np.random.default_rng(11)
    demand = config.demand.sample(rng, 4, config.periods)
    levels = np.array([[90.0, 200.0, 400.0], [120.0, 260.0, 500.0],
                       [60.0, 150.0, 300.0], [100.0, 220.0, 450.0]])
    last = np.array([[29, 29, 29], [-1, -1, -1], [0, 14, 29], [26, 21, 8]], dtype=np.float64)
    policy = TimeAwareBaseStock(config, levels, last, mode)
    echelon = EchelonBaseStock(config, levels, mode)
    state = core.reset(config, demand)
    while not state.done:
        orders = policy.act(None, state)
        allowed = state.period <= last
        assert np.array_equal(orders[allowed], echelon.act(None, state)[allowed])
        assert np.all(orders[~allowed] == 0.0)
        state, _ = core.step(config, state, orders)
    # Episode 1 never orders: nothing was ever requested.
    assert np.all(state.requests[:, 1] == 0.0)
    # Episode 0 (last period T-1) is plain echelon base-stock over the whole episode.
    assert np.any(state.requests[:, 0] > 0.0)


# (s, S) on echelon position ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reorder_point", "order_up_to", "raw_want", "clip_want"),
    [
        # Positions 150, 200, 350. Stage 0 sits exactly at s = 150: no order. Stage 1: 200 < 201,
        # up to 260 asks 60 (<= min(90, 150)). Stage 2: 350 < 400, up to 500 asks 150 -> 80.
        ([150.0, 201.0, 400.0], [210.0, 260.0, 500.0], [0.0, 60.0, 150.0], [0.0, 60.0, 80.0]),
        # Stage 0: 150 < 151, up to 170 asks 20, clipped to the distributor's 0. Stage 1 sits at s.
        ([151.0, 200.0, 400.0], [170.0, 260.0, 500.0], [20.0, 0.0, 150.0], [0.0, 0.0, 80.0]),
        # Every position above s: nothing, even though S is far above the position.
        ([100.0, 100.0, 100.0], [900.0, 900.0, 900.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
    ],
)
def test_reorder_point_orders_up_to_only_below_s(reorder_point, order_up_to, raw_want, clip_want):
    config = ChainConfig()
    state = _state_after_two_periods(config)
    raw = ReorderPointOrderUpTo(config, reorder_point, order_up_to, RequestMode.RAW)
    assert raw.act(None, state).tolist() == [raw_want]
    clip = ReorderPointOrderUpTo(config, reorder_point, order_up_to, RequestMode.CLIP)
    assert clip.act(None, state).tolist() == [clip_want]


def test_reorder_point_with_s_equal_to_big_s_below_position_is_echelon_base_stock():
    config = ChainConfig()
    state = _state_after_two_periods(config)
    # With s = S every stage below S orders up to S: echelon base-stock with z = S, except at
    # position == S (no order either way).
    levels = [200.0, 330.0, 460.0]
    for mode in RequestMode:
        ss = ReorderPointOrderUpTo(config, levels, levels, mode).act(None, state)
        assert ss.tolist() == EchelonBaseStock(config, levels, mode).act(None, state).tolist()


# Parameters per episode --------------------------------------------------------------------------


def _policies(config):
    """Each heuristic, given a row index (one setting) or a slice (one row per episode)."""
    levels = np.array([[160.0, 120.0, 230.0], [200.0, 330.0, 460.0], [250.0, 400.0, 700.0]])
    last = np.array([[2.0, 1.0, -1.0], [1.0, 2.0, 29.0], [29.0, 29.0, 29.0]])
    s = np.array([[150.0, 201.0, 400.0], [151.0, 200.0, 400.0], [100.0, 100.0, 100.0]])
    big_s = np.array([[210.0, 260.0, 500.0], [170.0, 260.0, 500.0], [900.0, 900.0, 900.0]])
    return {
        "local": lambda i, m: LocalBaseStock(config, levels[i], m),
        "time-aware": lambda i, m: TimeAwareBaseStock(config, levels[i], last[i], m),
        "ss": lambda i, m: ReorderPointOrderUpTo(config, s[i], big_s[i], m),
    }


@pytest.mark.parametrize("name", ["local", "time-aware", "ss"])
@pytest.mark.parametrize("mode", list(RequestMode))
def test_parameters_per_episode_act_as_one_policy_per_episode(name, mode):
    config = ChainConfig()
    one = _state_after_two_periods(config)
    state = one.take([0, 0, 0])
    batched = _policies(config)[name](slice(None), mode).act(None, state)
    assert batched.shape == (3, 3)
    for i in range(3):
        alone = _policies(config)[name](i, mode).act(None, one)
        assert batched[i].tolist() == alone[0].tolist()
    if mode is RequestMode.RAW:  # the three settings were chosen to differ (clipping merges some)
        assert len({tuple(row) for row in batched.tolist()}) == 3


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda c: LocalBaseStock(c, np.full((2, 3), 50.0)), "levels has 2 rows"),
        (lambda c: TimeAwareBaseStock(c, np.full((2, 3), 50.0), [29, 29, 29]), "levels has 2 rows"),
        (lambda c: TimeAwareBaseStock(c, [50.0] * 3, np.full((2, 3), 29.0)),
         "last_order_period has 2 rows"),
        (lambda c: ReorderPointOrderUpTo(c, np.full((2, 3), 10.0), [50.0] * 3),
         "reorder_point has 2 rows"),
        (lambda c: ReorderPointOrderUpTo(c, [10.0] * 3, np.full((2, 3), 50.0)),
         "order_up_to has 2 rows"),
    ],
    ids=["local", "time-aware-levels", "time-aware-last", "ss-s", "ss-S"],
)
def test_per_episode_rows_must_match_the_batch(make, match):
    config = ChainConfig()
    state = core.reset(config, np.full((5, config.periods), 20.0))
    with pytest.raises(ValueError, match=match):
        make(config).act(None, state)


# Validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda c: LocalBaseStock(c, [80.0, 180.0]), r"levels must be shaped \(S,\) or \(N, S\)"),
        (lambda c: LocalBaseStock(c, [80.0, np.nan, 40.0]), "levels must be finite"),
        (lambda c: TimeAwareBaseStock(c, [80.0, 180.0], [29, 29, 29]),
         r"levels must be shaped \(S,\)"),
        (lambda c: TimeAwareBaseStock(c, [80.0, 180.0, 40.0], [29, 29]),
         r"last_order_period must be shaped \(S,\) or \(N, S\) with S = 3, got \(2,\)"),
        (lambda c: TimeAwareBaseStock(c, [80.0, 180.0, 40.0], [29, -2, 29]),
         r"last_order_period must lie in \[-1, 29\]"),
        (lambda c: TimeAwareBaseStock(c, [80.0, 180.0, 40.0], [30, 29, 29]),
         r"last_order_period must lie in \[-1, 29\]"),
        (lambda c: TimeAwareBaseStock(c, [80.0, 180.0, 40.0], [[0, 0, 0], [0, 30, 0]]),
         r"last_order_period must lie in \[-1, 29\]"),
        (lambda c: ReorderPointOrderUpTo(c, [10.0, 20.0], [50.0, 60.0, 70.0]),
         r"reorder_point must be shaped \(S,\)"),
        (lambda c: ReorderPointOrderUpTo(c, [10.0, 20.0, 30.0], np.ones((1, 2, 3))),
         r"order_up_to must be shaped \(S,\) or \(N, S\) with S = 3, got \(1, 2, 3\)"),
        (lambda c: ReorderPointOrderUpTo(c, [10.0, 20.0, 30.0], [50.0, 19.0, 70.0]),
         r"order_up_to \(S\) must be >= reorder_point \(s\)"),
    ],
    ids=["local-shape", "local-nan", "time-aware-levels", "time-aware-last-shape",
         "time-aware-below-minus-one", "time-aware-at-T", "time-aware-per-episode-at-T",
         "ss-s-shape", "ss-S-shape", "ss-S-below-s"],
)
def test_bad_parameters_raise_naming_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make(ChainConfig())


def test_last_order_period_bounds_are_inclusive():
    config = ChainConfig(periods=5, demand=[20.0] * 5)
    # -1 (never) and T-1 = 4 (always) are both allowed.
    policy = TimeAwareBaseStock(config, [80.0, 180.0, 40.0], [-1, 4, 0])
    assert policy.last_order_period.tolist() == [-1.0, 4.0, 0.0]


def test_s_equal_to_big_s_is_allowed():
    policy = ReorderPointOrderUpTo(ChainConfig(), [10.0, 20.0, 30.0], [10.0, 20.0, 30.0])
    assert policy.order_up_to.tolist() == policy.reorder_point.tolist()
