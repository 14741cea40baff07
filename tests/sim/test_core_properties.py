"""Properties of the batched core on random chains, demand and orders, and hand-worked cases.

The random chains go beyond OR-Gym's: 1 to 4 stages, and lead times that may all be zero.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import echelon
from echelon.sim import ChainConfig, core

SETTINGS = settings(max_examples=100, deadline=None)

_OUTPUT_FIELDS = ("demand", "requests", "shipped", "arrivals", "sales", "unfulfilled", "on_hand",
                  "pipeline", "stage_profit", "reward", "lost_sales", "backlog")


# Strategies ------------------------------------------------------------------------------------

_costs = st.floats(0.0, 5.0, allow_nan=False, allow_infinity=False)


@st.composite
def chains(draw):
    """Valid chains: 1-4 stages, lead times 0-6 (sometimes all 0), 1-12 periods, either version."""
    stages = draw(st.integers(1, 4))

    def per_stage(elements, extra=0):
        return draw(st.lists(elements, min_size=stages + extra, max_size=stages + extra))

    lead_time = draw(st.one_of(st.just([0] * stages), st.lists(
        st.integers(0, 6), min_size=stages, max_size=stages)))
    return ChainConfig(
        periods=draw(st.integers(1, 12)),
        initial_inventory=per_stage(st.integers(0, 150)),
        price=draw(_costs),
        replenishment_cost=per_stage(_costs, extra=1),
        unfulfilled_penalty=per_stage(_costs, extra=1),
        holding_cost=per_stage(_costs),
        capacity=per_stage(st.integers(1, 60)),
        lead_time=lead_time,
        backlog=draw(st.booleans()),
        alpha=draw(st.floats(0.05, 1.0)),
    )


_orders = st.one_of(st.integers(-30, 120).map(float), st.floats(-30.0, 120.0, allow_nan=False))


@st.composite
def scenarios(draw):
    """A chain, N demand paths (N, T) of whole units 0-80, and orders (T, N, S) in [-30, 120]."""
    config = draw(chains())
    episodes = draw(st.integers(1, 6))
    demand = draw(hnp.arrays(np.float64, (episodes, config.periods),
                             elements=st.integers(0, 80).map(float)))
    orders = draw(hnp.arrays(np.float64, (config.periods, episodes, config.stages),
                             elements=_orders))
    return config, demand, orders


# Helpers ---------------------------------------------------------------------------------------


def _play(config, demand, orders):
    """Runs the core and returns copies of every period's start state and outputs, (T, N, ...)."""
    state = core.reset(config, demand)
    trace = {name: [] for name in ("start_on_hand", "start_pipeline", "start_backlog", "obs",
                                   *_OUTPUT_FIELDS)}
    for n in range(config.periods):
        assert state.period == n and not state.done
        trace["start_on_hand"].append(state.on_hand.copy())
        trace["start_pipeline"].append(state.pipeline.copy())
        trace["start_backlog"].append(state.backlog.copy())
        trace["obs"].append(core.observation(config, state).copy())
        state, out = core.step(config, state, orders[n])
        assert out.period == n
        for name in _OUTPUT_FIELDS:
            trace[name].append(np.array(getattr(out, name), copy=True))
    assert state.done and state.period == config.periods
    trace["obs"].append(core.observation(config, state).copy())
    return {name: np.stack(values) for name, values in trace.items()}


def _previous_unfulfilled(trace):
    """(T, N, S+1) what was carried into each period: the unfilled units of the period before."""
    carried = np.zeros_like(trace["unfulfilled"])
    carried[1:] = trace["unfulfilled"][:-1]
    return carried


# Properties ------------------------------------------------------------------------------------


@SETTINGS
@given(scenarios())
def test_quantities_are_never_negative(scenario):
    trace = _play(*scenario)
    for name in ("on_hand", "pipeline", "shipped", "arrivals", "sales", "unfulfilled", "requests"):
        assert np.all(trace[name] >= 0), name


@SETTINGS
@given(scenarios())
def test_goods_are_conserved(scenario):
    config, demand, orders = scenario
    trace = _play(config, demand, orders)
    stages = config.stages
    bought_from_supplier = np.cumsum(trace["sales"][:, :, stages], axis=0)
    sold_to_customers = np.cumsum(trace["sales"][:, :, 0], axis=0)
    in_chain = trace["on_hand"].sum(axis=2) + trace["pipeline"].sum(axis=2)
    assert np.array_equal(sum(config.initial_inventory) + bought_from_supplier,
                          in_chain + sold_to_customers)
    # Stage by stage: stock at the end = stock at the start + arrivals - what left the stage.
    outflow = trace["sales"][:, :, :stages]
    assert np.array_equal(trace["on_hand"],
                          trace["start_on_hand"] + trace["arrivals"] - outflow)
    assert np.array_equal(trace["pipeline"],
                          trace["start_pipeline"] + trace["shipped"] - trace["arrivals"])
    assert np.array_equal(trace["start_on_hand"][1:], trace["on_hand"][:-1])


@SETTINGS
@given(scenarios())
def test_shipments_respect_capacity_and_upstream_stock(scenario):
    config, demand, orders = scenario
    trace = _play(config, demand, orders)
    shipped, capacity = trace["shipped"], np.asarray(config.capacity)
    assert np.all(shipped <= capacity)
    # Upstream stock at the START of the period, before its arrivals, limits what it ships.
    assert np.all(shipped[:, :, :-1] <= trace["start_on_hand"][:, :, 1:])
    requested = trace["requests"]
    if config.backlog:
        requested = requested + _previous_unfulfilled(trace)[:, :, 1:]
    assert np.all(shipped <= requested)
    upstream = np.concatenate(
        [trace["start_on_hand"][:, :, 1:], np.full(shipped.shape[:2] + (1,), np.inf)], axis=2)
    assert np.array_equal(shipped, np.minimum(np.minimum(requested, capacity), upstream))
    # Upstream stages sell exactly what they ship.
    assert np.array_equal(trace["sales"][:, :, 1:], shipped)


@SETTINGS
@given(scenarios())
def test_requests_are_truncated_non_negative_orders(scenario):
    config, demand, orders = scenario
    trace = _play(config, demand, orders)
    assert np.array_equal(trace["requests"], np.floor(np.maximum(orders, 0.0)))
    assert np.array_equal(trace["requests"], np.trunc(np.clip(orders, 0.0, None)))


@SETTINGS
@given(scenarios())
def test_reward_is_discounted_stage_profit_and_stage_profit_decomposes(scenario):
    config, demand, orders = scenario
    trace = _play(config, demand, orders)
    stages = config.stages
    for n in range(config.periods):
        assert np.array_equal(trace["reward"][n],
                              config.alpha**n * trace["stage_profit"][n].sum(axis=1))

    sales, shipped = trace["sales"], trace["shipped"]
    price = np.array([config.price, *config.replenishment_cost[:-1]])
    cost = np.asarray(config.replenishment_cost)
    penalty = np.asarray(config.unfulfilled_penalty)
    holding = np.asarray(config.holding_cost)
    # Stage i < S pays for what is shipped to it; the supplier pays r_S per unit it ships.
    purchases = np.concatenate([shipped, shipped[:, :, -1:]], axis=2)
    held = np.concatenate([trace["on_hand"], np.zeros(shipped.shape[:2] + (1,))], axis=2)
    expected = (price * sales - cost * purchases - penalty * trace["unfulfilled"]
                - np.append(holding, 0.0) * held)
    assert np.allclose(trace["stage_profit"], expected, rtol=1e-12, atol=1e-9)
    assert trace["stage_profit"].shape[-1] == stages + 1


@SETTINGS
@given(scenarios())
def test_unfilled_units_are_lost_in_v1_and_carried_in_v0(scenario):
    config, demand, orders = scenario
    trace = _play(config, demand, orders)
    zeros = np.zeros_like(trace["unfulfilled"])
    if config.backlog:
        assert np.array_equal(trace["backlog"], trace["unfulfilled"])
        assert np.array_equal(trace["lost_sales"], zeros)
        carried = _previous_unfulfilled(trace)
        assert np.array_equal(trace["start_backlog"], carried)
    else:
        assert np.array_equal(trace["lost_sales"], trace["unfulfilled"])
        assert np.array_equal(trace["backlog"], zeros)
        carried = zeros
        assert np.array_equal(trace["start_backlog"], zeros)
    customers = trace["demand"] + carried[:, :, 0]
    available = trace["start_on_hand"][:, :, 0] + trace["arrivals"][:, :, 0]
    assert np.array_equal(trace["demand"], demand.T)
    assert np.array_equal(trace["sales"][:, :, 0], np.minimum(available, customers))
    assert np.array_equal(trace["unfulfilled"][:, :, 0], customers - trace["sales"][:, :, 0])
    requested = trace["requests"] + carried[:, :, 1:]
    assert np.array_equal(trace["unfulfilled"][:, :, 1:], requested - trace["shipped"])


@SETTINGS
@given(scenarios())
def test_pipeline_and_arrivals_follow_lead_times(scenario):
    config, demand, orders = scenario
    trace = _play(config, demand, orders)
    shipped = trace["shipped"]
    for n in range(config.periods):
        for i, lead in enumerate(config.lead_time):
            arrived = shipped[n - lead, :, i] if n >= lead else np.zeros(demand.shape[0])
            assert np.array_equal(trace["arrivals"][n, :, i], arrived)
            # Shipped in periods n-L+1 .. n and not yet received (nothing when L = 0).
            in_transit = shipped[max(0, n - lead + 1): n + 1, :, i].sum(axis=0)
            if lead == 0:
                in_transit = np.zeros(demand.shape[0])
            assert np.array_equal(trace["pipeline"][n, :, i], in_transit)


@SETTINGS
@given(scenarios())
def test_batched_core_equals_single_episode_cores_and_envs(scenario):
    config, demand, orders = scenario
    batched = _play(config, demand, orders)
    for i in range(demand.shape[0]):
        single = _play(config, demand[i], orders[:, i: i + 1])
        for name, values in single.items():
            assert np.array_equal(values[:, 0], batched[name][:, i]), name

        env = echelon.InvManagementEnv(config=config)
        obs, info = env.reset(options={"demand": demand[i]})
        assert np.array_equal(obs, batched["obs"][0, i])
        assert np.array_equal(info["demand_path"], demand[i])
        for n in range(config.periods):
            obs, reward, terminated, truncated, info = env.step(orders[n, i])
            assert reward == batched["reward"][n, i]
            assert np.array_equal(obs, batched["obs"][n + 1, i])
            assert terminated == (n == config.periods - 1) and truncated is False
            for name in ("requests", "shipped", "arrivals", "sales", "lost_sales", "backlog",
                         "on_hand", "pipeline", "stage_profit"):
                assert np.array_equal(info[name], batched[name][n, i]), name
            assert info["demand"] == demand[i, n]


@SETTINGS
@given(scenarios())
def test_observation_is_on_hand_then_request_history(scenario):
    config, demand, orders = scenario
    trace = _play(config, demand, orders)
    stages, depth = config.stages, config.max_lead_time
    for n in range(config.periods + 1):
        obs = trace["obs"][n]
        assert obs.shape == (demand.shape[0], stages * (depth + 1))
        on_hand = trace["start_on_hand"][n] if n < config.periods else trace["on_hand"][-1]
        assert np.array_equal(obs[:, :stages], on_hand)
        rows = obs[:, stages:].reshape(demand.shape[0], depth, stages)
        for back in range(1, depth + 1):
            want = trace["requests"][n - back] if n - back >= 0 else 0.0
            assert np.array_equal(rows[:, depth - back], np.broadcast_to(want, rows[:, 0].shape))


# Hand-worked cases -----------------------------------------------------------------------------

# One stage (the retailer) below the supplier; every number is a binary fraction, so exact.
_ONE_STAGE = dict(
    periods=3, initial_inventory=[10], price=2.0, replenishment_cost=[1.0, 0.5],
    unfulfilled_penalty=[0.5, 0.25], holding_cost=[0.25], capacity=[8], lead_time=[1], alpha=0.5,
)
_ONE_STAGE_DEMAND = [4.0, 13.0, 6.0]
_ONE_STAGE_ORDERS = [5.0, 12.7, -3.0]


def _run_one(config, demand, orders):
    state = core.reset(config, np.asarray(demand))
    outs = []
    for order in orders:
        state, out = core.step(config, state, np.atleast_1d(order)[None, :])
        outs.append(out)
    return outs


def test_one_stage_lost_sales_by_hand():
    config = ChainConfig(**_ONE_STAGE)
    outs = _run_one(config, _ONE_STAGE_DEMAND, _ONE_STAGE_ORDERS)
    # n=0: request 5 (< capacity 8) ships 5, arrives at n=1. Nothing arrives. Sell min(10, 4) = 4,
    #      10 - 4 = 6 left. Retailer: 2*4 - 1*5 - 0.25*6 = 1.5; supplier: 1*5 - 0.5*5 = 2.5.
    #      reward 0.5**0 * 4.0 = 4.0.
    # n=1: request 12 (12.7 truncated), capacity ships 8, 4 unfilled at the supplier. The 5 arrive:
    #      6 + 5 = 11 on hand, demand 13: sell 11, lose 2, 0 left. Pipeline 8.
    #      Retailer: 2*11 - 1*8 - 0.5*2 = 13; supplier: 1*8 - 0.5*8 - 0.25*4 = 3.
    #      reward 0.5**1 * 16 = 8.0.
    # n=2: order -3 -> request 0. The 8 arrive: 8 on hand, demand 6: sell 6, 2 left. Pipeline 0.
    #      Retailer: 2*6 - 0.25*2 = 11.5; supplier 0. reward 0.5**2 * 11.5 = 2.875.
    assert [o.requests[0].tolist() for o in outs] == [[5.0], [12.0], [0.0]]
    assert [o.shipped[0].tolist() for o in outs] == [[5.0], [8.0], [0.0]]
    assert [o.arrivals[0].tolist() for o in outs] == [[0.0], [5.0], [8.0]]
    assert [o.on_hand[0].tolist() for o in outs] == [[6.0], [0.0], [2.0]]
    assert [o.pipeline[0].tolist() for o in outs] == [[5.0], [8.0], [0.0]]
    assert [o.sales[0].tolist() for o in outs] == [[4.0, 5.0], [11.0, 8.0], [6.0, 0.0]]
    assert [o.lost_sales[0].tolist() for o in outs] == [[0.0, 0.0], [2.0, 4.0], [0.0, 0.0]]
    assert [o.backlog[0].tolist() for o in outs] == [[0.0, 0.0]] * 3
    assert [o.stage_profit[0].tolist() for o in outs] == [[1.5, 2.5], [13.0, 3.0], [11.5, 0.0]]
    assert [o.reward[0] for o in outs] == [4.0, 8.0, 2.875]


def test_one_stage_backlog_by_hand():
    config = ChainConfig(**_ONE_STAGE, backlog=True)
    outs = _run_one(config, _ONE_STAGE_DEMAND, _ONE_STAGE_ORDERS)
    # n=0 and n=1 as with lost sales (nothing is carried into them): rewards 4.0 and 8.0, and
    #      at the end of n=1 the 2 unmet customers and the supplier's 4 unshipped units carry over.
    # n=2: request 0 + 4 carried = 4, ships 4 (capacity 8). The 8 arrive: 8 on hand; demand
    #      6 + 2 carried = 8: sell 8, 0 left, nothing unfilled. Pipeline 8 - 8 + 4 = 4.
    #      Retailer: 2*8 - 1*4 = 12; supplier: 1*4 - 0.5*4 = 2. reward 0.25 * 14 = 3.5.
    assert [o.requests[0].tolist() for o in outs] == [[5.0], [12.0], [0.0]]
    assert [o.shipped[0].tolist() for o in outs] == [[5.0], [8.0], [4.0]]
    assert [o.on_hand[0].tolist() for o in outs] == [[6.0], [0.0], [0.0]]
    assert [o.pipeline[0].tolist() for o in outs] == [[5.0], [8.0], [4.0]]
    assert [o.sales[0].tolist() for o in outs] == [[4.0, 5.0], [11.0, 8.0], [8.0, 4.0]]
    assert [o.backlog[0].tolist() for o in outs] == [[0.0, 0.0], [2.0, 4.0], [0.0, 0.0]]
    assert [o.lost_sales[0].tolist() for o in outs] == [[0.0, 0.0]] * 3
    assert [o.stage_profit[0].tolist() for o in outs] == [[1.5, 2.5], [13.0, 3.0], [12.0, 2.0]]
    assert [o.reward[0] for o in outs] == [4.0, 8.0, 3.5]


def test_two_stages_with_zero_lead_time_by_hand():
    config = ChainConfig(
        periods=2, initial_inventory=[5, 3], price=2.0, replenishment_cost=[1.0, 0.5, 0.25],
        unfulfilled_penalty=[0.5, 0.25, 0.125], holding_cost=[0.25, 0.125], capacity=[10, 4],
        lead_time=[0, 1], alpha=1.0,
    )
    outs = _run_one(config, [6.0, 2.0], [[7.0, 6.0], [2.9, 0.0]])
    # n=0: requests [7, 6]. The distributor holds 3 at the start: ships 3 to the retailer (L=0,
    #      arrives now); the supplier's capacity 4 ships 4 to the distributor (arrives at n=1).
    #      Retailer 5 + 3 = 8, sells 6, keeps 2; distributor 3 - 3 = 0. Unfilled [0, 4, 2].
    #      Retailer: 2*6 - 1*3 - 0.25*2 = 8.5; distributor: 1*3 - 0.5*4 - 0.25*4 = 0;
    #      supplier: 0.5*4 - 0.25*4 - 0.125*2 = 0.75. reward 9.25.
    # n=1: requests [2, 0]. The distributor held 0 at the start (its 4 arrive this period), so
    #      it ships 0. Retailer 2, sells 2, keeps 0; distributor 0 + 4 = 4. Unfilled [0, 2, 0].
    #      Retailer: 2*2 = 4; distributor: -0.25*2 - 0.125*4 = -1; supplier 0. reward 3.
    assert [o.shipped[0].tolist() for o in outs] == [[3.0, 4.0], [0.0, 0.0]]
    assert [o.arrivals[0].tolist() for o in outs] == [[3.0, 0.0], [0.0, 4.0]]
    assert [o.on_hand[0].tolist() for o in outs] == [[2.0, 0.0], [0.0, 4.0]]
    assert [o.pipeline[0].tolist() for o in outs] == [[0.0, 4.0], [0.0, 0.0]]
    assert [o.sales[0].tolist() for o in outs] == [[6.0, 3.0, 4.0], [2.0, 0.0, 0.0]]
    assert [o.unfulfilled[0].tolist() for o in outs] == [[0.0, 4.0, 2.0], [0.0, 2.0, 0.0]]
    assert [o.stage_profit[0].tolist() for o in outs] == [[8.5, 0.0, 0.75], [4.0, -1.0, 0.0]]
    assert [o.reward[0] for o in outs] == [9.25, 3.0]


@pytest.mark.parametrize("backlog", [False, True])
def test_all_zero_lead_times_deliver_in_the_same_period(backlog):
    config = ChainConfig(lead_time=[0, 0, 0], periods=4, backlog=backlog)
    demand = np.array([[30.0, 0.0, 150.0, 10.0]])
    state = core.reset(config, demand)
    assert core.observation(config, state).tolist() == [[100.0, 100.0, 200.0]]
    state, out = core.step(config, state, np.array([[50.0, 20.0, 10.0]]))
    assert np.array_equal(out.arrivals, out.shipped)
    assert out.pipeline.tolist() == [[0.0, 0.0, 0.0]]
    # Retailer 100 + 50 - 30; distributor 100 + 20 - 50; manufacturer 200 + 10 - 20.
    assert out.on_hand.tolist() == [[120.0, 70.0, 190.0]]
    assert core.observation(config, state).tolist() == [[120.0, 70.0, 190.0]]


# Absurd orders: any finite value, however large, gives finite results ---------------------------

_LARGEST = float(np.finfo(np.float64).max)
_any_finite = st.floats(-_LARGEST, _LARGEST, allow_nan=False, allow_infinity=False)
_huge = st.one_of(st.floats(1e15, _LARGEST), st.just(_LARGEST), _any_finite)


@st.composite
def huge_scenarios(draw):
    """A chain, N demand paths (N, T) of whole units 0-80, and orders (T, N, S), mostly huge."""
    config = draw(chains())
    episodes = draw(st.integers(1, 4))
    demand = draw(hnp.arrays(np.float64, (episodes, config.periods),
                             elements=st.integers(0, 80).map(float)))
    orders = draw(hnp.arrays(np.float64, (config.periods, episodes, config.stages),
                             elements=_huge))
    return config, demand, orders


def _assert_finite(trace):
    for name, values in trace.items():
        assert np.all(np.isfinite(values)), name


@SETTINGS
@given(huge_scenarios())
def test_any_finite_order_gives_finite_rewards_and_states(scenario):
    config, demand, orders = scenario
    trace = _play(config, demand, orders)
    _assert_finite(trace)
    capped = np.floor(np.clip(orders, 0.0, core.MAX_REQUEST))
    assert np.array_equal(trace["requests"], capped)
    # A carried request grows by at most the cap a period (v0); nothing is carried in v1.
    periods = np.arange(1, config.periods + 1)[:, None, None]
    assert np.all(trace["unfulfilled"][:, :, 1:] <= periods * core.MAX_REQUEST)


@pytest.mark.parametrize("backlog", [False, True])
@pytest.mark.parametrize("periods", [30, 2000])
@pytest.mark.parametrize("penalty", [None, 1e6], ids=["orgym-costs", "penalty-1e6"])
def test_largest_orders_every_period_give_finite_rewards(backlog, periods, penalty):
    # An order of 1.7e308 in OR-Gym's v0 overflowed the backlog, and then the reward, to -inf.
    config = ChainConfig(backlog=backlog, periods=periods)
    if penalty is not None:
        config = config.replace(unfulfilled_penalty=[penalty] * 4)
    rng = np.random.default_rng(periods)
    demand = config.demand.sample(rng, 3, periods)
    orders = np.stack([np.full((periods, 3), _LARGEST),
                       _LARGEST * rng.uniform(-1.0, 1.0, size=(periods, 3)),
                       rng.choice([_LARGEST, 1e300, 0.0], size=(periods, 3))], axis=1)
    trace = _play(config, demand, orders)
    _assert_finite(trace)
    assert trace["requests"].max() == core.MAX_REQUEST
    if backlog:  # the first episode's requests pile up, 2^53 more each period
        assert trace["backlog"][-1, 0, 1:].min() > (periods - 1) * core.MAX_REQUEST
