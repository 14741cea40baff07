"""The regime filter: what the retailer has seen, the regime posterior, and draws given it."""

import itertools

import numpy as np
import pytest
from scipy import stats

from echelon.policies.receding import RollingScenarioLP
from echelon.sim import ChainConfig, core
from echelon.sim.demand import MarkovModulated
from echelon.sim.regime_filter import regime_now, sample_given
from echelon.sim.rollout import rollout

ENGINE = MarkovModulated(rates=(8.0, 30.0), transition=((0.8, 0.2), (0.3, 0.7)))


@pytest.mark.parametrize("backlog", [False, True])
def test_the_observed_demand_is_what_the_retailer_saw(backlog):
    config = ChainConfig(periods=9, lead_time=(2, 1, 1), backlog=backlog)
    rng = np.random.default_rng(4)
    demand = rng.integers(0, 70, size=(6, config.periods)).astype(float)
    state, sold_out, sales = core.reset(config, demand), [], []
    for _ in range(config.periods):
        state, out = core.step(config, state, rng.integers(0, 50, size=(6, 3)).astype(float))
        sold_out.append(out.on_hand[:, 0] <= 0)
        sales.append(out.sales[:, 0].copy())
        values, censored = core.observed_demand(config, state)
        if backlog:
            np.testing.assert_array_equal(values, demand[:, :state.period])
            assert not censored.any()
        else:
            np.testing.assert_array_equal(values, np.array(sales).T)
            np.testing.assert_array_equal(censored, np.array(sold_out).T)
    if not backlog:
        assert np.array(sold_out).any() and not np.array(sold_out).all()


def _brute_force(engine, values, censored):
    """P(regime in period n | periods 0..n-1) by summing over every regime path."""
    rates, matrix = np.asarray(engine.rates), np.asarray(engine.transition)
    n, k = len(values), len(rates)
    weights = np.zeros(k)
    for path in itertools.product(range(k), repeat=n + 1):
        p = engine.start()[path[0]]
        for m in range(1, n + 1):
            p *= matrix[path[m - 1], path[m]]
        for m in range(n):
            rate = rates[path[m]]
            p *= stats.poisson.sf(values[m] - 1, rate) if censored[m] else \
                stats.poisson.pmf(values[m], rate)
        weights[path[n]] += p
    return weights / weights.sum()


def test_the_posterior_is_the_sum_over_regime_paths():
    values = np.array([[9.0, 27.0, 31.0, 12.0, 25.0], [3.0, 5.0, 20.0, 20.0, 6.0]])
    censored = np.array([[False, False, True, False, True], [False] * 5])
    got = regime_now(ENGINE, values, censored)
    for row in range(2):
        np.testing.assert_allclose(got[row], _brute_force(ENGINE, values[row], censored[row]),
                                   rtol=1e-12)
    np.testing.assert_allclose(regime_now(ENGINE, values[:, :0], censored[:, :0]),
                               [ENGINE.start()] * 2)


def test_an_impossible_observation_is_passed_over():
    engine = MarkovModulated(rates=(0.0, 0.001), transition=((0.9, 0.1), (0.2, 0.8)))
    # 400 units where the rates are 0 and 0.001: no regime gives it a positive probability in
    # floats (0.001^400 / 400! underflows)
    got = regime_now(engine, np.array([[0.0, 400.0]]), np.array([[False, False]]))
    after_zero = regime_now(engine, np.array([[0.0]]), np.array([[False]]))
    np.testing.assert_allclose(got, after_zero @ np.asarray(engine.transition))


def test_draws_given_the_history_follow_the_posterior():
    high = np.array([[35.0, 28.0, 33.0]])
    low = np.array([[6.0, 9.0, 7.0]])
    seen = np.zeros((1, 3), dtype=bool)
    rng = np.random.default_rng(0)
    for history in (high, low):
        belief = regime_now(ENGINE, history, seen)[0]
        paths = sample_given(ENGINE, rng, history, seen, 40_000, 3)
        assert paths.shape == (1, 40_000, 3)
        second = belief @ np.asarray(ENGINE.transition)
        want = [belief @ ENGINE.rates, second @ ENGINE.rates]
        np.testing.assert_allclose(paths[0, :, :2].mean(axis=0), want, rtol=0.02)
    # Sure of the regime just seen, so the next one is that regime's row of the matrix.
    np.testing.assert_allclose(regime_now(ENGINE, high, seen)[0], [0.3, 0.7], atol=1e-3)
    np.testing.assert_allclose(regime_now(ENGINE, low, seen)[0], [0.8, 0.2], atol=1e-3)


def test_the_scenario_lp_plans_for_the_regime_it_has_seen():
    """Sticky regimes far apart: drawing the rest of the horizon given the history beats drawing
    it as if nothing had been seen, on the same paths (the planner's whole point)."""
    engine = MarkovModulated(rates=(5.0, 35.0), transition=((0.95, 0.05), (0.05, 0.95)))
    chain = ChainConfig(periods=12, lead_time=(1, 1, 1), initial_inventory=(20.0, 20.0, 20.0),
                        demand=engine)
    paths = engine.sample(np.random.default_rng(3), 24, chain.periods)
    profit = {history: rollout(chain, RollingScenarioLP(chain, np.random.default_rng(5),
                                                        scenarios=8, history=history),
                               paths).profit for history in (True, False)}
    gain = profit[True] - profit[False]
    assert gain.mean() > 3 * gain.std(ddof=1) / np.sqrt(len(gain))
