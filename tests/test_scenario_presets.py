"""The scenario presets (seasonal, regime): the paper's pipeline and the model route end to end on
non-stationary demand, with the adaptive baselines beside the stationary ones."""

import json

import numpy as np
import pytest

from echelon import pipeline
from echelon.sim.demand import MarkovModulated, MeanCurve, mean_curve

TINY = [
    "collect.episodes=30", "train.epochs=1", "train.seeds=[0]", "train.sweep=[]",
    "evaluate.episodes=20", "evaluate.paper_episodes=10", "evaluate.tuning_episodes=10",
    "evaluate.bootstrap=200", "model.plan_episodes=10", "model.scenarios=2",
    "model.neural=[]", "model.misspecification=false",
]


@pytest.mark.parametrize("preset, engine", [("seasonal", MeanCurve), ("regime", MarkovModulated)])
def test_the_preset_runs_end_to_end(preset, engine, tmp_path):
    # The regime preset's agents also train seeing the last periods' sales (its own sweep).
    sweep = ['train.sweep=["bc.sales_history=3"]'] if preset == "regime" else []
    run = pipeline.resolve(preset, [*TINY, *sweep])
    assert isinstance(run.chain.demand, engine) and run.chain.demand.mean == pytest.approx(20.0)
    out = tmp_path / preset
    report = pipeline.reproduce(run, out, progress=False, log=lambda *a: None)
    names = {p["name"] for p in json.loads((out / "eval.json").read_text())["policies"]}
    assert {"tuned time-varying base-stock", "shrinking-horizon LP",
            "perfect-information bound", "bc seed 0", "iql seed 0"} <= names
    model = json.loads((out / "model.json").read_text())
    # Each preset fits its own engine from the censored logs.
    assert model["fit"]["law"]["law"] == {"seasonal": "curve", "regime": "regimes"}[preset]
    if preset == "regime":
        assert "bc-sales_history3 seed 0" in names
    assert {"time-aware (fitted model)", "rolling scenario LP (fitted model)"} <= names
    assert "## 4. From logs to a policy with a model" in report.read_text()
    assert pipeline.resolve(out / "config.toml") == run


def test_the_seasonal_curve_swings_around_its_level():
    curve = mean_curve(pipeline.resolve("seasonal").chain.demand, 30)
    # Three whole cycles of 10 periods, +-50% around 20, peaking at periods 2 and 3 of each.
    peak = 20.0 * (1.0 + 0.5 * np.sin(0.4 * np.pi))
    assert curve.max() == pytest.approx(peak) and curve.min() == pytest.approx(40.0 - peak)
    assert np.mean(curve) == pytest.approx(20.0)


@pytest.mark.parametrize("overrides, message", [
    (["model.season=10"], r"model\.season and model\.counts apply to model\.law = \"curve\" only"),
    (['model.law="curve"', "model.misspecification=true"], r"set it to false with model\.law"),
    (['model.law="curve"', "model.misspecification=false", 'model.counts="geometric"'],
     r"model\.counts must be one of \['poisson', 'negative-binomial'\]"),
    (['model.law="curve"', "model.misspecification=false", "model.season=1"],
     r"model\.season must be an integer >= 2 \(0: none\)"),
    (['model.law="regimes"', "model.misspecification=false"],
     r"model\.regimes goes with model\.law = \"regimes\", which needs it"),
    (["model.regimes=2"], r"model\.regimes goes with model\.law"),
    (['model.law="regimes"', "model.misspecification=false", "model.regimes=9"],
     r"model\.regimes must be an integer in \[2, 6\]"),
])
def test_curve_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        pipeline.resolve("quick", overrides)


def test_the_model_route_plans_in_fitted_regimes(tmp_path):
    run = pipeline.resolve("regime", [*TINY, 'model.law="regimes"', "model.regimes=2",
                                      "model.misspecification=false", "train.algorithms=[\"bc\"]",
                                      'evaluate.baselines=["paper-best", "oracle"]'])
    report = pipeline.reproduce(run, tmp_path / "run", progress=False, log=lambda *a: None)
    model = json.loads((tmp_path / "run" / "model.json").read_text())
    assert model["fit"]["law"]["law"] == "regimes" and len(model["fit"]["law"]["rates"]) == 2
    fitted = next(law for law in model["laws"] if law["law"] == "regimes (2)")
    # The fit's intervals and its period-by-period check travel with it, into the report too.
    assert fitted["goodness_of_fit_p"] == model["fit"]["period_check"]["p_value"]
    assert set(model["fit"]["ci"]) == {"rates[0]", "rates[1]", "transition[0][0]",
                                       "transition[1][1]"}
    assert "The fitted regimes engine checked period by period" in report.read_text()
    assert "rolling scenario LP (fitted model)" in model["policies"]
