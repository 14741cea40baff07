"""The core's public API: order validation, episode end, stale states, branching, observation,
echelon inventory position and ``take``."""

import math

import numpy as np
import pytest

from echelon.sim import ChainConfig, core

# Default chain (L = [3, 5, 10]): nothing ordered in periods 0 and 1 arrives before period 3.
_DEMAND = [30.0, 20.0] + [10.0] * 28
_FIRST_ORDERS = [[40.0, 30.0, 20.0], [0.0, 0.0, 0.0]]


def _advance(config, state, orders):
    outs = []
    for order in orders:
        orders = np.asarray(order, dtype=float).reshape(state.episodes, -1)
        state, out = core.step(config, state, orders)
        outs.append(out)
    return state, outs


@pytest.mark.parametrize(
    ("orders", "match"),
    [
        (np.zeros((1, 3)), r"orders must be shaped \(N, S\) = \(2, 3\)"),
        (np.zeros((2, 4)), r"orders must be shaped \(N, S\) = \(2, 3\)"),
        (np.zeros(3), r"orders must be shaped \(N, S\) = \(2, 3\)"),
        (np.zeros((2, 3, 1)), r"orders must be shaped \(N, S\) = \(2, 3\)"),
        (np.array([[1.0, math.nan, 0.0], [0.0, 0.0, 0.0]]), "orders must be finite.*NaN"),
        (np.array([[1.0, 0.0, 0.0], [0.0, math.inf, 0.0]]), "orders must be finite.*infinity"),
        (np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -math.inf]]), "orders must be finite.*infinity"),
    ],
)
def test_bad_orders_raise_and_leave_the_state_usable(orders, match):
    config = ChainConfig()
    state = core.reset(config, np.zeros((2, config.periods)))
    with pytest.raises(ValueError, match=match):
        core.step(config, state, orders)
    next_state, out = core.step(config, state, np.ones((2, 3)))
    assert next_state.period == 1 and out.requests.tolist() == [[1.0, 1.0, 1.0]] * 2


@pytest.mark.parametrize(
    "orders",
    [np.ones((2, 3), dtype=bool), np.ones((2, 3), dtype=complex), np.full((2, 3), "1"),
     np.ones((2, 3), dtype=object), [[True, False, True], [True, True, True]]],
    ids=["bool", "complex", "str", "object", "bool-list"],
)
def test_orders_that_are_not_real_numbers_raise(orders):
    config = ChainConfig()
    state = core.reset(config, np.zeros((2, config.periods)))
    with pytest.raises(ValueError, match=r"orders must be real numbers \(int or float\), got an "
                                         r"array of dtype"):
        core.step(config, state, orders)


def test_integer_and_float32_orders_are_real_numbers():
    config = ChainConfig()
    kinds = (np.full((2, 3), 7.0), np.full((2, 3), 7), np.full((2, 3), 7.5, np.float32))
    outs = [core.step(config, core.reset(config, np.zeros((2, config.periods))), orders)[1]
            for orders in kinds]
    assert all(out.requests.tolist() == [[7.0] * 3] * 2 for out in outs)


def test_requests_are_capped_at_max_request_and_exact_below_it():
    config = ChainConfig()
    big = core.MAX_REQUEST
    orders = np.array([[big - 1.0, big, np.nextafter(big, np.inf)],
                       [1e300, np.finfo(float).max, 123.9]])
    _, out = core.step(config, core.reset(config, np.zeros((2, config.periods))), orders)
    assert big == 2.0**53
    assert out.requests.tolist() == [[big - 1.0, big, big], [big, big, 123.0]]
    # The default chain ships 100, 90 and 80 in period 0; the rest of each request is unfilled.
    assert out.unfulfilled[0, 1:].tolist() == [big - 101.0, big - 90.0, big - 80.0]
    assert np.all(np.isfinite(out.reward)) and np.all(np.isfinite(out.stage_profit))
    assert orders[1, 1] == np.finfo(float).max  # the caller's orders are left as they were


def test_one_episode_needs_a_row_of_orders():
    config = ChainConfig()
    state = core.reset(config, np.zeros(config.periods))
    assert state.episodes == 1
    with pytest.raises(ValueError, match=r"\(N, S\) = \(1, 3\)"):
        core.step(config, state, np.zeros(3))


def test_reset_rejects_demand_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"demand must be shaped \(N, 30\)"):
        core.reset(ChainConfig(), np.zeros((2, 29)))
    with pytest.raises(ValueError, match="demand must be finite and >= 0"):
        core.reset(ChainConfig(periods=2, lead_time=[1, 1, 1]), [[1.0, -1.0]])


def test_stepping_past_the_last_period_raises():
    config = ChainConfig(periods=2, lead_time=[1, 1, 1])
    state = core.reset(config, np.array([[5.0, 5.0]]))
    assert not state.done
    state, _ = _advance(config, state, [[0, 0, 0], [0, 0, 0]])
    assert state.done and state.period == 2
    with pytest.raises(ValueError, match="the episodes are over: all 2 periods were played"):
        core.step(config, state, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="episodes are over"):
        core.step(config, state.copy(), np.zeros((1, 3)))


def test_stepping_a_state_twice_raises():
    config = ChainConfig()
    state = core.reset(config, np.array([_DEMAND]))
    core.step(config, state, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="already stepped; use state.copy()"):
        core.step(config, state, np.zeros((1, 3)))


def test_copy_branches_give_the_futures_of_fresh_runs():
    config = ChainConfig(backlog=True)
    demand = np.array([_DEMAND])
    branch_a = [[10.0, 0.0, 0.0], [100.0, 100.0, 100.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]]
    branch_b = [[0.0, 95.0, 0.0], [0.0, 0.0, 0.0], [30.0, 30.0, 30.0], [0.0, 0.0, 0.0]]

    state, _ = _advance(config, core.reset(config, demand), _FIRST_ORDERS)
    fork = state.copy()
    assert fork.period == state.period == 2
    end_a, outs_a = _advance(config, state, branch_a)
    end_b, outs_b = _advance(config, fork, branch_b)
    with pytest.raises(ValueError, match="already stepped"):
        core.step(config, state, np.zeros((1, 3)))

    for branch, outs, end in ((branch_a, outs_a, end_a), (branch_b, outs_b, end_b)):
        fresh_end, fresh = _advance(config, core.reset(config, demand), _FIRST_ORDERS + branch)
        for got, want in zip(outs, fresh[2:]):
            assert got.reward.tolist() == want.reward.tolist()
            assert got.on_hand.tolist() == want.on_hand.tolist()
            assert got.shipped.tolist() == want.shipped.tolist()
            assert got.backlog.tolist() == want.backlog.tolist()
        assert core.observation(config, end).tolist() == \
            core.observation(config, fresh_end).tolist()
    # The branches really differ: at the fork, branch A's retailer ordered and B's did not.
    assert outs_a[0].requests.tolist() == [[10.0, 0.0, 0.0]]
    assert outs_b[0].requests.tolist() == [[0.0, 95.0, 0.0]]
    assert outs_a[0].shipped.tolist() != outs_b[0].shipped.tolist()


def test_a_copy_taken_before_stepping_is_unaffected_by_the_original():
    config = ChainConfig()
    state = core.reset(config, np.array([_DEMAND]))
    fork = state.copy()
    before = core.observation(config, fork).copy()
    _advance(config, state, _FIRST_ORDERS)
    assert fork.period == 0 and fork.on_hand.tolist() == [[100.0, 100.0, 200.0]]
    assert np.array_equal(core.observation(config, fork), before)
    _, outs = _advance(config, fork, _FIRST_ORDERS)
    assert outs[-1].on_hand.tolist() == [[50.0, 60.0, 170.0]]


def test_observation_zero_pads_the_request_history_on_the_left():
    config = ChainConfig()  # S = 3, max(L) = 10: 33 entries
    state = core.reset(config, np.array([_DEMAND]))
    obs = core.observation(config, state)
    assert obs.shape == (1, 33)
    assert obs[0].tolist() == [100.0, 100.0, 200.0] + [0.0] * 30

    state, _ = _advance(config, state, [[5.7, -2.0, 3.0], [1.0, 2.0, 80.2]])
    obs = core.observation(config, state)[0]
    # On hand: retailer 100 - 30 - 20 = 50 (nothing arrives before period 3); the distributor
    # shipped 5 then 1: 94; the manufacturer shipped 0 then 2: 198.
    assert obs[:3].tolist() == [50.0, 94.0, 198.0]
    assert obs[3:27].tolist() == [0.0] * 24
    assert obs[27:30].tolist() == [5.0, 0.0, 3.0]  # period 0, truncated
    assert obs[30:33].tolist() == [1.0, 2.0, 80.0]  # period 1, the most recent last


def test_observation_keeps_only_the_last_max_lead_time_periods():
    config = ChainConfig(periods=5, lead_time=[1, 2, 1])  # depth 2: length 3 * 3 = 9
    assert config.observation_size == 9
    state = core.reset(config, np.zeros((1, 5)))
    state, _ = _advance(config, state, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    obs = core.observation(config, state)[0]
    assert obs.shape == (9,)
    assert obs[3:].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]


@pytest.mark.parametrize(("lead_time", "size"), [([0, 0], 2), ([1, 4], 10), ([6, 0], 14)])
def test_observation_length_is_stages_times_max_lead_time_plus_one(lead_time, size):
    config = ChainConfig(periods=3, initial_inventory=[1, 2], replenishment_cost=[1, 1, 1],
                         unfulfilled_penalty=[0, 0, 0], holding_cost=[0, 0], capacity=[5, 5],
                         lead_time=lead_time)
    state = core.reset(config, np.zeros((4, 3)))
    assert core.observation(config, state).shape == (4, size)
    state, _ = _advance(config, state, [np.ones((4, 2)), np.ones((4, 2))])
    assert core.observation(config, state).shape == (4, size)


def test_echelon_inventory_position_by_hand_lost_sales():
    config = ChainConfig()
    state, _ = _advance(config, core.reset(config, np.array([_DEMAND])), _FIRST_ORDERS)
    # n=0: requests [40, 30, 20] all ship (ample stock and capacity), none arrive before n=3.
    #      On hand [100 - 30, 100 - 40, 200 - 30] = [70, 60, 170]. n=1: sell 20 -> [50, 60, 170].
    assert state.on_hand.tolist() == [[50.0, 60.0, 170.0]]
    assert state.pipeline.tolist() == [[40.0, 30.0, 20.0]]
    # Echelon positions: 50 + 40 = 90; 90 + 60 + 30 = 180; 180 + 170 + 20 = 370.
    assert core.echelon_inventory_position(config, state).tolist() == [[90.0, 180.0, 370.0]]


@pytest.mark.parametrize(("backlog", "want"), [(False, [40.0, 130.0, 320.0]),
                                               (True, [-10.0, 80.0, 270.0])])
def test_echelon_inventory_position_by_hand_with_customer_backlog(backlog, want):
    config = ChainConfig(backlog=backlog)
    demand = np.array([[130.0, 20.0] + [0.0] * 28])
    state, _ = _advance(config, core.reset(config, demand), _FIRST_ORDERS)
    # n=0: sell all 100, 30 customers unmet; n=1: nothing on hand, 20 (+30 carried in v0) unmet.
    assert state.on_hand.tolist() == [[0.0, 60.0, 170.0]]
    assert state.backlog.tolist() == [[50.0 if backlog else 0.0, 0.0, 0.0, 0.0]]
    # Lost sales: 0 + 40 = 40; 40 + 60 + 30 = 130; 130 + 170 + 20 = 320.
    # Backlog: the 50 owed to customers lowers every echelon's position by 50.
    assert core.echelon_inventory_position(config, state).tolist() == [want]


def test_take_gives_the_same_future_as_the_batch_row():
    config = ChainConfig(backlog=True, periods=8, lead_time=[1, 2, 3])
    rng = np.random.default_rng(5)
    demand = rng.poisson(40.0, size=(4, 8)).astype(float)
    orders = rng.uniform(-10.0, 120.0, size=(8, 4, 3))
    state = core.reset(config, demand)
    state, _ = _advance(config, state, orders[:3])
    for index in ([2], slice(1, 3)):
        part = state.take(index)
        rows = np.arange(4)[index]
        assert part.episodes == len(rows) and part.period == 3
        assert np.array_equal(part.demand, demand[rows])
        assert np.array_equal(core.observation(config, part),
                              core.observation(config, state)[rows])
        branch = state.copy()
        for n in range(3, 8):
            part, out_part = core.step(config, part, orders[n][rows])
            branch, out_all = core.step(config, branch, orders[n])
            for name in ("reward", "on_hand", "pipeline", "shipped", "sales", "backlog"):
                assert np.array_equal(getattr(out_part, name), getattr(out_all, name)[rows]), name
        assert part.done and branch.done
    assert state.period == 3  # take and copy left the original untouched
    core.step(config, state, orders[3])
