"""The PyTorch twin of the core equals the NumPy core, float64, bit for bit.

Random chains (1 to 4 stages, lead times 0 to 6, v0 and v1), integer demand, and orders that are
negative, fractional, beyond capacity and beyond the upstream stage's stock, so that every clip of
the order of events is exercised; plus OR-Gym's defaults over whole episodes.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from echelon.sim import ChainConfig, core
from echelon.sim import differentiable as twin

SETTINGS = settings(max_examples=150, deadline=None)
_FIELDS = ("requests", "shipped", "arrivals", "sales", "unfulfilled", "stage_profit", "reward")


@st.composite
def cases(draw):
    """A chain, N integer demand paths (N, T), and orders (T, N, S) in [-20, 150] (some fractional)."""
    stages = draw(st.integers(1, 4))

    def per_stage(elements, extra=0):
        return draw(st.lists(elements, min_size=stages + extra, max_size=stages + extra))

    costs = st.integers(0, 9).map(float)
    config = ChainConfig(
        periods=draw(st.integers(1, 12)),
        initial_inventory=per_stage(st.integers(0, 120)),
        price=draw(st.integers(0, 12).map(float)),
        replenishment_cost=per_stage(costs, extra=1),
        unfulfilled_penalty=per_stage(costs, extra=1),
        holding_cost=per_stage(costs),
        capacity=per_stage(st.integers(1, 60)),
        lead_time=per_stage(st.integers(0, 6)),
        backlog=draw(st.booleans()),
        alpha=draw(st.sampled_from([1.0, 0.97, 0.5])),
    )
    episodes = draw(st.integers(1, 5))
    demand = draw(hnp.arrays(np.float64, (episodes, config.periods),
                             elements=st.integers(0, 80).map(float)))
    orders = draw(hnp.arrays(np.float64, (config.periods, episodes, config.stages),
                             elements=st.one_of(st.integers(-20, 150).map(float),
                                                st.floats(-20.0, 150.0, allow_nan=False))))
    return config, demand, orders


def _assert_same_state(config, numpy_state, tensor_state):
    """The twin's state equals the core's (transit rebuilt from the core's shipment log)."""
    rebuilt = twin.from_chain_state(config, numpy_state)
    assert tensor_state.period == numpy_state.period
    np.testing.assert_array_equal(tensor_state.on_hand.numpy(), numpy_state.on_hand)
    np.testing.assert_array_equal(tensor_state.backlog.numpy(), numpy_state.backlog)
    np.testing.assert_array_equal(tensor_state.pipeline.numpy(), numpy_state.pipeline)
    for ours, theirs in zip(tensor_state.transit, rebuilt.transit):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(tensor_state.sales.numpy(), rebuilt.sales.numpy())
    for depth in (0, 1, 3, config.periods):
        np.testing.assert_array_equal(twin.sales_history(tensor_state, depth).numpy(),
                                      core.sales_history(numpy_state, depth))


@SETTINGS
@given(cases())
def test_twin_equals_core_bit_for_bit(case):
    config, demand, orders = case
    numpy_state = core.reset(config, demand)
    tensor_state = twin.reset(config, torch.as_tensor(demand))
    _assert_same_state(config, numpy_state, tensor_state)
    for period in range(config.periods):
        numpy_state, expected = core.step(config, numpy_state, orders[period])
        tensor_state, got = twin.step(config, tensor_state, torch.as_tensor(orders[period]))
        for name in _FIELDS:
            np.testing.assert_array_equal(getattr(got, name).numpy(), getattr(expected, name),
                                          err_msg=f"{name} in period {period}")
        _assert_same_state(config, numpy_state, tensor_state)
        np.testing.assert_array_equal(
            twin.echelon_inventory_position(config, tensor_state).numpy(),
            core.echelon_inventory_position(config, numpy_state))


@SETTINGS
@given(cases())
def test_twin_steps_on_from_any_core_state(case):
    """A state converted mid-episode steps on exactly as the core does."""
    config, demand, orders = case
    numpy_state = core.reset(config, demand)
    half = config.periods // 2
    for period in range(half):
        numpy_state, _ = core.step(config, numpy_state, orders[period])
    tensor_state = twin.from_chain_state(config, numpy_state)
    for period in range(half, config.periods):
        numpy_state, expected = core.step(config, numpy_state, orders[period])
        tensor_state, got = twin.step(config, tensor_state, torch.as_tensor(orders[period]))
        np.testing.assert_array_equal(got.reward.numpy(), expected.reward)
    _assert_same_state(config, numpy_state, tensor_state)


@pytest.mark.parametrize("backlog", [False, True])
def test_orgym_defaults_over_whole_episodes(backlog):
    config = ChainConfig(backlog=backlog)
    rng = np.random.default_rng(7)
    demand = config.demand.sample(rng, 64, config.periods)
    numpy_state = core.reset(config, demand)
    tensor_state = twin.reset(config, torch.as_tensor(demand))
    numpy_total, tensor_total = np.zeros(64), torch.zeros(64, dtype=torch.float64)
    for _ in range(config.periods):
        orders = rng.integers(-5, 110, size=(64, config.stages)).astype(float)
        numpy_state, expected = core.step(config, numpy_state, orders)
        tensor_state, got = twin.step(config, tensor_state, torch.as_tensor(orders))
        numpy_total += expected.reward
        tensor_total = tensor_total + got.reward
    np.testing.assert_array_equal(tensor_total.numpy(), numpy_total)


def test_clip_requests_matches_the_heuristics_clip():
    from echelon.policies.base_stock import clip_requests

    config = ChainConfig()
    rng = np.random.default_rng(3)
    demand = config.demand.sample(rng, 16, config.periods)
    state = core.reset(config, demand)
    for _ in range(4):
        state, _ = core.step(config, state, rng.integers(0, 150, size=(16, 3)).astype(float))
    requests = rng.integers(0, 300, size=(16, 3)).astype(float)
    np.testing.assert_array_equal(
        twin.clip_requests(config, twin.from_chain_state(config, state),
                           torch.as_tensor(requests)).numpy(),
        clip_requests(config, state, requests))


def test_units_options_and_their_gradients():
    config = ChainConfig(periods=1, lead_time=(0, 0, 0))
    demand = torch.full((1, 1), 20.0, dtype=torch.float64)
    orders = torch.tensor([[10.6, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    whole = twin.step(config, twin.reset(config, demand), orders, units="whole")[1]
    continuous = twin.step(config, twin.reset(config, demand), orders, units="continuous")[1]
    straight = twin.step(config, twin.reset(config, demand), orders, units="straight-through")[1]
    assert whole.requests[0, 0].item() == 10.0
    assert continuous.requests[0, 0].item() == pytest.approx(10.6)
    assert straight.requests[0, 0].item() == 10.0
    # A unit more moves from the distributor (h_1 = 0.10) to the retailer (h_0 = 0.15), which
    # cannot sell it (demand 20 is met from stock 100); the transfer price r_0 cancels in the
    # chain's profit, so the unit costs h_0 - h_1 = 0.05.
    (gradient,) = torch.autograd.grad(straight.reward.sum(), orders)
    assert gradient[0, 0].item() == pytest.approx(-0.05)
    (floored,) = torch.autograd.grad(whole.reward.sum(), orders, allow_unused=True)
    assert floored is None or floored[0, 0].item() == 0.0


def test_refusals():
    config = ChainConfig(periods=2)
    with pytest.raises(ValueError, match="demand must be shaped"):
        twin.reset(config, torch.zeros(3, 5))
    state = twin.reset(config, torch.zeros(1, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="units must be one of"):
        twin.step(config, state, torch.zeros(1, 3, dtype=torch.float64), units="round")
    for _ in range(2):
        state, _ = twin.step(config, state, torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="episodes are over"):
        twin.step(config, state, torch.zeros(1, 3, dtype=torch.float64))
