"""Demand estimation from logs: censored maximum likelihood, exact v0 recovery, laws, bad inputs."""

import json

import numpy as np
import pytest

from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.models.curve_fit import fit_curve
from echelon.models.demand_fit import (
    UnsupportedLawError,
    compare_laws,
    fit_demand,
    fitted_chain,
    observe_demand,
)
from echelon.models.regime_fit import fit_regimes
from echelon.policies.base_stock import RequestMode
from echelon.policies.search import Family
from echelon.sim.config import ChainConfig
from echelon.sim.demand import (
    Binomial,
    DemandPath,
    DiscreteUniform,
    Geometric,
    MarkovModulated,
    MeanCurve,
    NegativeBinomial,
    Poisson,
)


def _logs(chain: ChainConfig, z=(40.0, 150.0, 250.0), episodes: int = 200, seed: int = 1):
    """Logs of one echelon base-stock policy (a low retail level stocks out often in v1)."""
    behaviour = Behaviour("lean", Family.BASE_STOCK, {"z": list(z)}, RequestMode.CLIP)
    settings = CollectConfig(episodes=episodes)
    return collect(chain, [behaviour], settings, np.random.SeedSequence(seed))


@pytest.fixture(scope="module")
def lost_sales_logs():
    return _logs(ChainConfig())


def test_censored_poisson_recovers_the_mean_where_sales_are_biased_low(lost_sales_logs):
    data = lost_sales_logs
    fit = fit_demand(data, "poisson")
    low, high = fit.ci["mu"]
    assert fit.method == "lost-sales"
    assert fit.observations == len(data) == 6000
    # Many sold-out periods: only demand >= sales is known there.
    assert fit.censored == int(np.sum(data.log["on_hand"][:, 0] == 0)) > 1000
    assert low < 20.0 < high
    assert high - low < 1.0
    assert low < fit.params["mu"] < high and fit.law == Poisson(fit.params["mu"])
    # The naive estimate (sales as demand) is far below, its interval nowhere near 20.
    assert fit.naive.params["mu"] < 0.8 * 20.0
    assert fit.naive.ci["mu"][1] < low - 3.0
    assert not fit.goodness_of_fit.misspecified
    assert fit.naive.goodness_of_fit.misspecified
    assert fit.se["mu"] == pytest.approx((high - low) / (2 * 1.96), rel=0.05)
    summary = json.loads(json.dumps(fit.to_dict()))
    assert summary["law"] == {"law": "poisson", "mu": fit.params["mu"]}
    assert summary["censored"] == fit.censored and summary["naive"]["params"]["mu"] < 16.0
    assert fitted_chain(data, fit) == data.chain.replace(demand=fit.law)


def test_only_sales_and_on_hand_are_read(lost_sales_logs):
    data = lost_sales_logs
    unseen = {**data.log, "demand": np.full(len(data), np.nan)}
    blind = type(data)(**{**data.__dict__, "log": unseen})
    assert fit_demand(blind).params == fit_demand(data).params
    obs = observe_demand(data)
    exact = ~obs.censored
    assert np.array_equal(obs.values[exact], data.log["demand"][exact])
    assert np.all(data.log["demand"][obs.censored] >= obs.values[obs.censored])


def test_backlog_logs_recover_demand_exactly():
    data = _logs(ChainConfig(backlog=True), z=(30.0, 120.0, 250.0), episodes=50)
    assert np.any(data.log["unfulfilled"][:, 0] > 0)  # the backlog is really used
    obs = observe_demand(data)
    assert obs.method == "backlog" and not obs.censored.any()
    np.testing.assert_array_equal(obs.values, data.log["demand"])
    fit = fit_demand(data, "poisson")
    assert fit.censored == 0
    assert fit.params["mu"] == pytest.approx(np.mean(data.log["demand"]), rel=1e-8)


@pytest.mark.parametrize(
    ("law", "name", "truth"),
    [
        # n and p are strongly correlated; n and the mean are the robust checks.
        (Binomial(40, 0.5), "binomial", {"n": 40}),
        (DiscreteUniform(10, 31), "uniform", {"low": 10, "high": 31}),
        (Geometric(0.05), "geometric", {"p": 0.05}),
    ],
)
def test_other_laws_fit_uncensored_logs(law, name, truth):
    # Backlog logs: every period's demand is recovered exactly (no censoring).
    chain = ChainConfig(backlog=True, demand=law)
    data = _logs(chain, z=(80.0, 200.0, 300.0), episodes=100, seed=3)
    fit = fit_demand(data, name)
    assert fit.censored == 0
    for key, value in truth.items():
        low, high = fit.ci[key]
        assert low <= value <= high, (key, fit.params, fit.ci)
    assert fit.ci["mean"][0] <= law.mean <= fit.ci["mean"][1]
    assert not fit.goodness_of_fit.misspecified
    ranked = compare_laws(data)
    assert ranked[0].name == name
    assert [f.aic for f in ranked] == sorted(f.aic for f in ranked)
    if name != "poisson":
        poisson = next(f for f in ranked if f.name == "poisson")
        assert poisson.goodness_of_fit.misspecified


@pytest.mark.parametrize("backlog, z", [(True, (80.0, 200.0, 300.0)), (False, (40.0, 150.0, 250.0))],
                         ids=["exact", "censored"])
def test_the_negative_binomial_is_recovered_with_and_without_heavy_censoring(backlog, z):
    truth = NegativeBinomial(mu=20.0, dispersion=4.0)
    data = _logs(ChainConfig(backlog=backlog, demand=truth), z=z, episodes=100, seed=3)
    fit = fit_demand(data, "negative-binomial")
    assert (fit.censored > 1500) == (not backlog)  # most periods sell out in the lean v1 logs
    for key, value in (("mu", 20.0), ("dispersion", 4.0)):
        low, high = fit.ci[key]
        assert low <= value <= high, (key, fit.params, fit.ci)
        assert high - low < 0.35 * value
    assert fit.law == NegativeBinomial(fit.params["mu"], fit.params["dispersion"])
    assert fit.se["mu"] == pytest.approx((fit.ci["mu"][1] - fit.ci["mu"][0]) / (2 * 1.96), rel=0.1)
    assert not fit.goodness_of_fit.misspecified and not fit.notes
    ranked = compare_laws(data)
    assert ranked[0].name == "negative-binomial"
    assert next(f for f in ranked if f.name == "poisson").goodness_of_fit.misspecified
    if not backlog:  # sales as demand: biased low, and seemingly more dispersed
        assert fit.naive.params["mu"] < 15.0


def test_the_negative_binomial_on_poisson_data_tends_to_the_poisson(lost_sales_logs):
    fit = fit_demand(lost_sales_logs, "negative-binomial")
    assert fit.ci["dispersion"][1] == np.inf and fit.ci["mu"][0] < 20.0 < fit.ci["mu"][1]
    assert any("not shown to be over-dispersed" in note for note in fit.notes)
    ranked = [f.name for f in compare_laws(lost_sales_logs)]
    assert ranked.index("poisson") < ranked.index("negative-binomial")  # one parameter fewer


def test_uniform_endpoints_are_exact_with_many_observations():
    data = _logs(ChainConfig(backlog=True, demand=DiscreteUniform(10, 31)), episodes=100, seed=3)
    fit = fit_demand(data, "uniform")
    assert fit.law == DiscreteUniform(10, 31)
    assert fit.ci["low"] == (10.0, 10.0) and fit.ci["high"] == (31.0, 31.0)


def test_binomial_on_poisson_data_says_n_is_unbounded(lost_sales_logs):
    fit = fit_demand(lost_sales_logs, "binomial")
    assert fit.ci["n"][1] == np.inf
    assert any("not under-dispersed" in note for note in fit.notes)
    assert fit.to_dict()["ci"]["n"][1] is None
    assert compare_laws(lost_sales_logs)[0].name == "poisson"


def test_unknown_law_is_rejected(lost_sales_logs):
    with pytest.raises(ValueError, match="unknown demand law 'negbin'"):
        fit_demand(lost_sales_logs, "negbin")


def test_logs_without_an_exact_observation_are_rejected():
    # The retailer starts empty and nothing is ever ordered: it sells out (of nothing) every period.
    chain = ChainConfig(initial_inventory=(0.0, 100.0, 200.0))
    data = _logs(chain, z=(0.0, 0.0, 0.0), episodes=3)
    assert np.all(data.log["sales"][:, 0] == 0) and np.all(data.log["on_hand"][:, 0] == 0)
    with pytest.raises(ValueError, match="no period with exactly observed demand"):
        fit_demand(data, "poisson")
    with pytest.raises(ValueError, match="no period with exactly observed demand"):
        compare_laws(data)


def test_a_law_the_data_rule_out_is_named_and_left_out_of_the_comparison():
    data = _logs(ChainConfig(backlog=True, demand=Poisson(0.5)), episodes=10)
    with pytest.raises(UnsupportedLawError, match="exact demand of 0"):
        fit_demand(data, "geometric")
    assert "geometric" not in [f.name for f in compare_laws(data)]


def test_fractional_sales_are_rejected():
    chain = ChainConfig(periods=5, demand=DemandPath((1.5, 2.0, 2.5, 3.0, 0.5)))
    data = _logs(chain, episodes=2)
    with pytest.raises(ValueError, match="whole units"):
        fit_demand(data)


def test_the_censored_interval_covers_the_truth_in_most_replications():
    # 40 small lost-sales logs (10 episodes each): the 95% profile-likelihood interval should
    # cover mu = 20 in most of them; the naive interval almost never does.
    covered = naive_covered = 0
    for seed in range(40):
        fit = fit_demand(_logs(ChainConfig(), episodes=10, seed=100 + seed))
        covered += fit.ci["mu"][0] <= 20.0 <= fit.ci["mu"][1]
        naive_covered += fit.naive.ci["mu"][0] <= 20.0 <= fit.naive.ci["mu"][1]
    assert covered >= 34  # 95% nominal; P(fewer than 34 of 40) < 1% at the nominal rate
    assert naive_covered == 0


# --- a demand curve -------------------------------------------------------------------------------


SEASONAL = MeanCurve(level=20.0, season=10, amplitude=0.5, phase=2.0, trend=0.01, dispersion=8.0)


@pytest.mark.parametrize("backlog, z", [(True, (80.0, 200.0, 300.0)), (False, (40.0, 150.0, 250.0))],
                         ids=["exact", "censored"])
def test_a_seasonal_trending_curve_is_recovered(backlog, z):
    data = _logs(ChainConfig(backlog=backlog, demand=SEASONAL), z=z, episodes=60, seed=5)
    fit = fit_curve(data, 10, counts="negative-binomial")
    assert (fit.censored > 1000) == (not backlog)  # most periods sell out in the lean v1 logs
    for name in ("level", "amplitude", "trend"):
        low, high = fit.ci[name]
        assert low <= getattr(SEASONAL, name) <= high, (name, fit.params, fit.ci)
    assert fit.params["phase"] == pytest.approx(2.0, abs=0.3)
    assert fit.params["dispersion"] == pytest.approx(8.0, rel=0.35)
    assert fit.law.season == 10 and fit.law.dispersion == fit.params["dispersion"]
    # Against the i.i.d. laws on the same observations, AIC picks the curve.
    assert fit.aic < min(f.aic for f in compare_laws(data))
    # Its own law passes the period-by-period check.
    assert fit.period_check.p_value > 0.01, fit.period_check.summary()
    saved = json.loads(json.dumps(fit.to_dict()))
    assert saved["law"]["law"] == "curve" and saved["period_check"]["dof"] == fit.period_check.dof


def test_curve_refusals():
    data = _logs(ChainConfig(backlog=True), episodes=2)
    with pytest.raises(ValueError, match="counts must be one of"):
        fit_curve(data, 10, counts="geometric")
    with pytest.raises(ValueError, match=r"season must be an integer >= 2 \(0: none\)"):
        fit_curve(data, 1)


def test_the_command_fits_a_curve(tmp_path, capsys):
    from echelon.cli import main
    from echelon.data import save

    path = save(_logs(ChainConfig(backlog=True, demand=SEASONAL), episodes=20, seed=6),
                tmp_path / "logs.h5")
    assert main(["fit-demand", str(path), "--law", "curve", "--season", "10", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["law"]["law"] == "curve" and fit["law"]["season"] == 10
    assert fit["ci"]["level"][0] < fit["params"]["level"] < fit["ci"]["level"][1]
    assert len(fit["period_check"]["z"]) == 30
    assert main(["fit-demand", str(path), "--law", "curve", "--season", "10"]) == 0
    out = capsys.readouterr().out
    assert f"level      {fit['params']['level']:.4g} [{fit['ci']['level'][0]:.4g}, " in out
    assert "  per-period check: sum of z^2 " in out
    assert main(["fit-demand", str(path), "--law", "poisson", "--season", "10"]) == 2
    assert "--season goes with --law curve or all" in capsys.readouterr().err
    assert main(["fit-demand", str(path), "--counts", "negative-binomial"]) == 2
    assert "--counts applies to --law curve (or all with --season) only" in capsys.readouterr().err
    assert main(["fit-demand", str(path), "--law", "curve"]) == 2
    assert "--law curve needs --season" in capsys.readouterr().err


# --- regimes --------------------------------------------------------------------------------------


REGIMES = MarkovModulated(rates=(10.0, 30.0), transition=((0.9, 0.1), (0.1, 0.9)))


@pytest.mark.parametrize("backlog, z", [(True, (80.0, 200.0, 300.0)), (False, (40.0, 150.0, 250.0))],
                         ids=["exact", "censored"])
def test_regime_switching_demand_is_recovered(backlog, z):
    data = _logs(ChainConfig(backlog=backlog, demand=REGIMES), z=z, episodes=60, seed=3)
    fit = fit_regimes(data, 2)
    assert (fit.censored > 900) == (not backlog)  # half the periods sell out in the lean v1 logs
    np.testing.assert_allclose(fit.law.rates, [10.0, 30.0], rtol=0.05)
    np.testing.assert_allclose(fit.law.transition, REGIMES.transition, atol=0.03)
    assert fit.params["mean"] == pytest.approx(20.0, rel=0.05)
    # The profile-likelihood intervals hold the truth, on either side of the estimate.
    for i, (rate, stay) in enumerate([(10.0, 0.9), (30.0, 0.9)]):
        for name, truth, estimate in [(f"rates[{i}]", rate, fit.law.rates[i]),
                                      (f"transition[{i}][{i}]", stay, fit.law.transition[i][i])]:
            low, high = fit.ci[name]
            assert low < estimate < high and low <= truth <= high, (name, fit.ci)
    # Against the i.i.d. laws on the same observations, AIC picks the regimes.
    assert fit.aic < min(f.aic for f in compare_laws(data))
    # Its own law passes the period-by-period check.
    assert fit.period_check.p_value > 0.01, fit.period_check.summary()
    saved = json.loads(json.dumps(fit.to_dict()))
    assert saved["law"]["law"] == "regimes" and saved["ci"]["transition[1][1]"][1] < 1.0


def test_regime_refusals_and_the_command(tmp_path, capsys):
    from echelon.cli import main
    from echelon.data import save

    data = _logs(ChainConfig(backlog=True, demand=REGIMES), episodes=10, seed=4)
    with pytest.raises(ValueError, match=r"regimes must be an integer in \[2, 6\]"):
        fit_regimes(data, 1)
    path = save(data, tmp_path / "logs.h5")
    assert main(["fit-demand", str(path), "--law", "regimes", "--regimes", "2", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["law"]["law"] == "regimes" and fit["period_check"]["dof"] > 0
    assert sorted(fit["ci"]) == ["rates[0]", "rates[1]", "transition[0][0]", "transition[1][1]"]
    assert main(["fit-demand", str(path), "--law", "regimes", "--regimes", "2"]) == 0
    out = capsys.readouterr().out
    low, high = fit["ci"]["rates[0]"]
    assert f"regime 0: rate {fit['params']['rates'][0]:.3f} [{low:.4g}, {high:.4g}], stays " in out
    assert "  per-period check: sum of z^2 " in out
    assert main(["fit-demand", str(path), "--law", "regimes"]) == 2
    assert "--law regimes needs --regimes" in capsys.readouterr().err
    assert main(["fit-demand", str(path), "--law", "poisson", "--regimes", "2"]) == 2
    assert "--regimes goes with --law regimes or all" in capsys.readouterr().err
    assert main(["fit-demand", str(path), "--regimes", "7"]) == 2
    assert r"--regimes must be an integer in [2, 6], got 7" in capsys.readouterr().err


def test_the_command_ranks_laws_and_engines_by_one_aic(tmp_path, capsys):
    """``--law all`` with --season and --regimes: the i.i.d. laws and both engines, one ranking;
    on regime-switching logs the regimes come first."""
    from echelon.cli import main
    from echelon.data import save

    data = _logs(ChainConfig(backlog=True, demand=REGIMES), episodes=20, seed=4)
    path = save(data, tmp_path / "logs.h5")
    argv = ["fit-demand", str(path), "--season", "10", "--regimes", "2"]
    assert main([*argv, "--json"]) == 0
    fits = json.loads(capsys.readouterr().out)
    assert [f["law"]["law"] for f in fits["engines"]] == ["curve", "regimes"]
    assert len(fits["laws"]) == len(compare_laws(data))
    ranked = sorted([*fits["laws"], *fits["engines"]], key=lambda f: f["aic"])
    assert ranked[0]["law"]["law"] == "regimes"
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "laws and engines by AIC" in lines[0] and len(lines) == 1 + len(ranked)
    assert lines[1].split()[0] == "regimes" and "period-check p" in lines[1]


# --- the period-by-period check of an engine fit --------------------------------------------------


@pytest.mark.parametrize("backlog, z", [(True, (80.0, 200.0, 300.0)),
                                        (False, (40.0, 150.0, 250.0))], ids=["exact", "censored"])
def test_the_period_check_flags_a_wrong_season_and_regimes_fitted_as_a_curve(backlog, z):
    seasonal = _logs(ChainConfig(backlog=backlog, demand=MeanCurve(level=20.0, season=10,
                                                                   amplitude=0.5, phase=2.0)),
                     z=z, episodes=20, seed=7)
    right = fit_curve(seasonal, 10, trend=False).period_check
    assert right.p_value > 0.01 and not right.flagged, right.summary()
    for season in (0, 4):  # no season, and one far too short
        wrong = fit_curve(seasonal, season, trend=False).period_check
        assert wrong.p_value < 1e-10 and len(wrong.flagged) >= 5, (season, wrong.summary())
        assert {4, 9} <= set(wrong.flagged)  # the season's peak and trough (phase 2 of 10)
    switching = _logs(ChainConfig(backlog=backlog, demand=REGIMES), z=z, episodes=20, seed=8)
    curve = fit_curve(switching, 0, trend=False).period_check
    assert curve.p_value < 1e-4 and curve.misspecified, curve.summary()
    regimes = fit_regimes(switching, 2).period_check
    assert regimes.p_value > 0.01 and not regimes.misspecified, regimes.summary()
