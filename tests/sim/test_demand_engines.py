"""Demand engines and the negative binomial: stated means, seeding, dict and TOML round trips,
refusals, and the simulator, env and planners running on them unchanged."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import echelon  # noqa: F401  (registers the envs)
from echelon import pipeline
from echelon.policies.lp import perfect_information_plan
from echelon.policies.receding import RollingScenarioLP, ShrinkingHorizonLP
from echelon.sim import ChainConfig, core
from echelon.sim.demand import (
    DEMAND_LAWS,
    Binomial,
    BlockBootstrap,
    DemandPath,
    DiscreteUniform,
    Geometric,
    LogAR1,
    MarkovModulated,
    MeanCurve,
    NegativeBinomial,
    Poisson,
    demand_from_dict,
    demand_to_dict,
    mean_curve,
)
from echelon.sim.rollout import rollout

ENGINES = {
    "negative-binomial": NegativeBinomial(mu=20.0, dispersion=4.0),
    "seasonal-nb": MeanCurve(level=20.0, season=7, amplitude=0.5, phase=1.0, trend=0.02,
                             shocks=((3, 2.5), (9, 0.0)), dispersion=6.0),
    "falling-trend": MeanCurve(level=30.0, trend=-0.1),
    "regimes": MarkovModulated(rates=(5.0, 20.0, 40.0),
                               transition=((0.8, 0.2, 0.0), (0.1, 0.8, 0.1), (0.0, 0.3, 0.7)),
                               initial=(1.0, 0.0, 0.0)),
    "regimes-stationary": MarkovModulated(),
    "log-ar1": LogAR1(level=15.0, phi=0.9, sigma=0.3),
    "bootstrap": BlockBootstrap(history=(3.0, 8.0, 0.0, 12.0, 5.0, 7.0, 30.0), block=3),
}
PERIODS = 14


@pytest.mark.parametrize("name", ENGINES)
def test_the_sample_mean_of_each_period_matches_the_stated_mean(name):
    engine = ENGINES[name]
    paths = engine.sample(np.random.default_rng(1), 50_000, PERIODS)
    assert paths.shape == (50_000, PERIODS) and paths.dtype == np.float64
    assert np.all(paths >= 0) and np.all(paths == np.floor(paths))
    # Within 4.5 standard errors in every period (a false alarm about once in 10^5 periods).
    error = paths.std(axis=0) / np.sqrt(len(paths)) + 1e-12
    np.testing.assert_array_less(np.abs(paths.mean(axis=0) - mean_curve(engine, PERIODS)),
                                 4.5 * error + 1e-9)


def test_the_curves_by_hand():
    curve = MeanCurve(level=10.0, season=4, amplitude=0.5, trend=0.1, shocks=((2, 3.0),))
    # sin(2 pi n / 4) = 0, 1, 0, -1; trend 1, 1.1, 1.2, 1.3; the shock triples period 2.
    np.testing.assert_allclose(curve.mean_curve(4), [10.0, 16.5, 36.0, 6.5], atol=1e-12)
    assert MeanCurve(level=10.0, trend=-0.5).mean_curve(4).tolist() == [10.0, 5.0, 0.0, 0.0]
    regimes = MarkovModulated(rates=(0.0, 10.0), transition=((0.5, 0.5), (0.0, 1.0)),
                              initial=(1.0, 0.0))
    np.testing.assert_allclose(regimes.mean_curve(3), [0.0, 5.0, 7.5])
    assert regimes.mean == pytest.approx(10.0)  # everything ends in the absorbing regime
    assert MarkovModulated().mean == pytest.approx(20.0)
    assert LogAR1(level=10.0, phi=0.6, sigma=0.4).mean == pytest.approx(10.0 * np.exp(0.08 / 0.64))
    nb = NegativeBinomial(mu=20.0, dispersion=4.0)
    assert nb.scipy().mean() == pytest.approx(20.0) and nb.scipy().var() == pytest.approx(120.0)


# Every entry of the registry, for ``scaled``: the engines above and the i.i.d. laws.
LAWS = {
    **ENGINES,
    "poisson": Poisson(12.0),
    "binomial": Binomial(30, 0.4),
    "uniform": DiscreteUniform(3, 12),
    "geometric": Geometric(0.1),
    "path": DemandPath((3.0, 8.0, 0.0, 12.0, 5.0, 7.0, 30.0, 1.0, 2.0, 9.0, 4.0, 6.0, 11.0, 5.0)),
    "bootstrap-fractional": BlockBootstrap(history=(0.5, 2.25, 7.75), block=2),
}
# What whole units cost the product (the bound each law's ``scaled`` states): a uniform law's
# mean is a multiple of 1/2, a whole history or path is rounded value by value.
ROUNDING = {"uniform": 0.25, "path": 0.5, "bootstrap": 0.5}


def test_every_law_of_the_registry_is_scaled_below():
    assert {type(law) for law in LAWS.values()} == set(DEMAND_LAWS.values())


@pytest.mark.parametrize("factor", [0.75, 1.25])
@pytest.mark.parametrize("name", LAWS)
def test_a_scaled_law_has_factor_times_the_mean_of_every_period(name, factor):
    law = LAWS[name]
    scaled = law.scaled(factor)
    assert type(scaled) is type(law) and demand_from_dict(demand_to_dict(scaled)) == scaled
    target = factor * mean_curve(law, PERIODS)
    rounding = ROUNDING.get(name, 0.0)
    np.testing.assert_allclose(mean_curve(scaled, PERIODS), target, rtol=1e-12,
                               atol=rounding + 1e-12)
    paths = scaled.sample(np.random.default_rng(2), 20_000, PERIODS)
    assert np.all(paths == np.floor(paths)) or name == "bootstrap-fractional"
    # Within 4.5 standard errors (and the rounding) in every period, as for the stated means.
    error = paths.std(axis=0) / np.sqrt(len(paths))
    np.testing.assert_array_less(np.abs(paths.mean(axis=0) - target),
                                 4.5 * error + rounding + 1e-9)


def test_scaled_laws_by_hand():
    # Uniform: the ends' sum and difference scaled and made whole (the mean 15 and 25 exactly).
    assert DiscreteUniform(10, 31).scaled(0.75) == DiscreteUniform(7, 24)
    assert DiscreteUniform(10, 31).scaled(1.25) == DiscreteUniform(13, 38)
    assert DiscreteUniform(5, 6).scaled(0.52) == DiscreteUniform(2, 4)  # 2.5 for 2.6: within 1/4
    # A whole history is rounded (half to even), a fractional one scaled exactly.
    assert BlockBootstrap((1.0, 3.0, 5.0), 2).scaled(0.5) == BlockBootstrap((0.0, 2.0, 2.0), 2)
    assert BlockBootstrap((0.5, 2.25), 2).scaled(2.0) == BlockBootstrap((1.0, 4.5), 2)
    assert MarkovModulated().scaled(1.25).rates == (12.5, 37.5)
    assert LogAR1(level=10.0).scaled(2.0) == LogAR1(level=20.0)
    assert Binomial(40, 0.5).scaled(0.75) == Binomial(40, 0.375)
    assert Geometric(0.05).scaled(1.25).mean == pytest.approx(25.0)


@pytest.mark.parametrize("law, factor, message", [
    (Binomial(10, 0.9), 1.25, r"success probability p = 0\.9 times 1\.25 exceeds 1"),
    (Geometric(0.9), 0.75, r"mean 1\.11111 times 0\.75 is below 1"),
    (Poisson(3.0), 0.0, r"factor must be a finite number in \(0\.0, inf\]"),
    (MarkovModulated(), float("nan"), "factor must be a finite number"),
])
def test_a_law_refuses_a_mean_it_cannot_take(law, factor, message):
    with pytest.raises(ValueError, match=message):
        law.scaled(factor)


@pytest.mark.parametrize("name", ENGINES)
def test_seeding_and_round_trips(name):
    engine = ENGINES[name]
    a = engine.sample(np.random.default_rng(7), 3, PERIODS)
    b = engine.sample(np.random.default_rng(7), 3, PERIODS)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, engine.sample(np.random.default_rng(8), 3, PERIODS))
    table = demand_to_dict(engine)
    assert demand_from_dict(table) == engine
    chain = ChainConfig(periods=PERIODS, demand=engine)
    assert ChainConfig.from_dict(chain.to_dict()) == chain


def test_a_preset_takes_an_engine_as_a_toml_table(tmp_path):
    run = pipeline.resolve("quick", [
        'chain.demand={law = "curve", level = 20, season = 7, amplitude = 0.3, '
        'shocks = [[10, 2.0]], dispersion = 5}'])
    assert run.chain.demand == MeanCurve(level=20.0, season=7, amplitude=0.3,
                                         shocks=((10, 2.0),), dispersion=5.0)
    path = tmp_path / "config.toml"
    path.write_text(pipeline.to_toml(run.to_dict()))
    assert pipeline.resolve(path).chain == run.chain


def test_the_bootstrap_reads_a_csv_column(tmp_path):
    log = tmp_path / "history.csv"
    log.write_text("day,demand\n1,4\n2,9\n3,0\n")
    engine = demand_from_dict({"law": "bootstrap", "file": str(log), "block": 2})
    assert engine == BlockBootstrap(history=(4.0, 9.0, 0.0), block=2)
    assert set(np.unique(engine.sample(np.random.default_rng(0), 5, 10))) <= {0.0, 4.0, 9.0}
    with pytest.raises(ValueError, match="no column 'sales'"):
        demand_from_dict({"law": "bootstrap", "file": str(log), "column": "sales"})
    with pytest.raises(ValueError, match="history or its file, not both"):
        demand_from_dict({"law": "bootstrap", "file": str(log), "history": [1.0]})


@pytest.mark.parametrize("spec, message", [
    ({"law": "negative-binomial", "dispersion": 0}, r"demand\.dispersion must be a finite number in \(0"),
    ({"law": "curve", "season": 1}, r"demand\.season must be an integer >= 2"),
    ({"law": "curve", "amplitude": 1.5}, r"demand\.amplitude must be a finite number in \[0.0, 1.0\]"),
    ({"law": "curve", "shocks": [[3]]}, r"demand\.shocks\[0\] must be \[period, factor\]"),
    ({"law": "curve", "shocks": [[-1, 2.0]]}, r"demand\.shocks\[0\] period must be an integer >= 0"),
    ({"law": "regimes", "rates": [1, 2], "transition": [[1.0, 0.0]]}, r"demand\.transition must be a 2 x 2"),
    ({"law": "regimes", "transition": [[0.5, 0.6], [0.5, 0.5]]}, r"demand\.transition\[0\] must hold probabilities"),
    ({"law": "regimes", "initial": [0.5]}, r"demand\.initial must have 2 probabilities"),
    ({"law": "log-ar1", "phi": 1.0}, r"demand\.phi must lie in \(-1, 1\)"),
    ({"law": "bootstrap", "history": []}, r"demand\.history must be a non-empty list"),
    ({"law": "bootstrap", "history": [1.0, -2.0]}, r"demand\.history must hold at least one finite demand >= 0"),
    ({"law": "seasonal"}, r"demand\.law must be one of \["),
])
def test_bad_parameters_name_the_field(spec, message):
    with pytest.raises(ValueError, match=message):
        demand_from_dict(spec)


def test_the_env_rollouts_and_the_bound_run_on_an_engine():
    engine = ENGINES["seasonal-nb"]
    env = gym.make("echelon/InvManagement-v1", demand=engine)
    env.reset(seed=0)
    steps = 0
    while not env.step(np.array([20.0, 20.0, 20.0]))[2]:
        steps += 1
    assert steps == 29
    chain = ChainConfig(demand=engine)
    paths = engine.sample(np.random.default_rng(0), 4, chain.periods)
    played = rollout(chain, ShrinkingHorizonLP(chain), paths)
    bound = perfect_information_plan(chain, paths).profit
    assert np.all(played.profit <= bound + 1e-6)


def test_the_planners_forecast_each_period_from_the_curve():
    engine = MeanCurve(level=20.0, season=10, amplitude=0.8)
    chain = ChainConfig(demand=engine)
    np.testing.assert_allclose(ShrinkingHorizonLP(chain).curve, engine.mean_curve(30))
    assert ShrinkingHorizonLP(chain, forecast=12.0).curve.tolist() == [12.0] * 30
    # The scenario LP draws periods n .. T-1 of the curve, not its first T - n periods.
    planner = RollingScenarioLP(chain, np.random.default_rng(0), scenarios=4000)
    state = core.reset(chain, engine.sample(np.random.default_rng(1), 1, 30))
    for _ in range(20):
        state, _ = core.step(chain, state, np.zeros((1, 3)))
    scenarios = planner._draw(state, 10)
    np.testing.assert_allclose(scenarios[0].mean(axis=0), engine.mean_curve(30)[20:], rtol=0.05)
