"""Shifted worlds and the robustness grid, on hand-made data."""

import numpy as np
import pytest

from echelon.evaluation.figures import robustness_heatmap
from echelon.evaluation.robustness import (
    SHIFTS,
    parse_shifts,
    robustness_rows,
    robustness_section,
    scaled_demand,
    shifted_chain,
)
from echelon.sim import ChainConfig
from echelon.sim.demand import (
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
    demand_to_dict,
    mean_curve,
)


def test_every_shift_changes_what_it_names():
    chain = ChainConfig()
    worlds = {name: shift.apply(chain) for name, shift in SHIFTS.items()}
    assert worlds["demand-x0.75"].demand == Poisson(15.0)
    assert worlds["demand-x1.25"].demand == Poisson(25.0)
    assert worlds["negative-binomial"].demand == NegativeBinomial(20.0, 2.0)
    assert worlds["geometric"].demand.mean == pytest.approx(20.0)
    assert worlds["lead-time+1"].lead_time == (4, 6, 11)
    assert worlds["capacity-20%"].capacity == (80.0, 72.0, 64.0)
    assert worlds["seasonal"].demand == MeanCurve(level=20.0, season=10, amplitude=0.5)
    for name, world in worlds.items():  # only what it names
        assert len(chain.differences(world)) == 1, name
    assert scaled_demand(chain.replace(demand=MeanCurve(level=8.0, season=4)), 2.0).demand == (
        MeanCurve(level=16.0, season=4))
    assert scaled_demand(chain.replace(demand=MarkovModulated()), 2.0).demand == (
        MarkovModulated(rates=(20.0, 60.0)))


PERIODS = 30
SEASON = 1.0 + 0.5 * np.sin(2.0 * np.pi * np.arange(PERIODS) / 10)
# Every law and engine of the registry, flat or not in its mean per period.
DEMANDS = {
    "poisson": Poisson(20.0),
    "binomial": Binomial(40, 0.5),
    "binomial-high-p": Binomial(40, 0.9),
    "uniform": DiscreteUniform(10, 31),
    "geometric": Geometric(0.05),
    "geometric-near-1": Geometric(0.9),
    "negative-binomial": NegativeBinomial(20.0, 5.0),
    "path": DemandPath(tuple(float(v % 7) for v in range(PERIODS))),
    "curve": MeanCurve(level=20.0, trend=0.02, shocks=((5, 2.0),), dispersion=4.0),
    "curve-seasonal": MeanCurve(level=20.0, season=7, amplitude=0.3),
    "regimes": MarkovModulated(),
    "regimes-started-low": MarkovModulated(initial=(1.0, 0.0)),
    "log-ar1": LogAR1(level=15.0, phi=0.9, sigma=0.3),
    "bootstrap": BlockBootstrap(history=(3.0, 8.0, 0.0, 12.0, 5.0, 7.0, 30.0), block=3),
}
# What each shift does to the mean of every period (the others keep it).
CURVES = {"demand-x0.75": lambda c: 0.75 * c, "demand-x1.25": lambda c: 1.25 * c,
          "seasonal": lambda c: c * SEASON}
# The mean's distance from that, from whole units (see each law's ``scaled``).
ROUNDING = {("uniform", "demand-x0.75"): 0.25, ("uniform", "demand-x1.25"): 0.25,
            ("path", "demand-x0.75"): 0.5, ("path", "demand-x1.25"): 0.5,
            ("bootstrap", "demand-x0.75"): 0.5, ("bootstrap", "demand-x1.25"): 0.5}
# The worlds that do not exist, and why.
REFUSED = {
    ("binomial-high-p", "demand-x1.25"): "p = 0.9 times 1.25 exceeds 1",
    ("geometric-near-1", "demand-x0.75"): "below 1, the least a geometric law has",
    ("path", "negative-binomial"): "a negative binomial law has one mean for all periods",
    ("path", "geometric"): "a geometric law has one mean for all periods",
    ("path", "seasonal"): "only the curve engine takes a season",
    ("curve", "geometric"): "its mean changes from period to period (20 to 44)",
    ("curve-seasonal", "geometric"): "a geometric law has one mean for all periods",
    ("curve-seasonal", "seasonal"): "it has a season of its own (7 periods)",
    ("regimes-started-low", "negative-binomial"): "changes from period to period (10 to 19.",
    ("regimes-started-low", "geometric"): "a geometric law has one mean for all periods",
    ("regimes-started-low", "seasonal"): "only the curve engine takes a season",
}


@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("name", DEMANDS)
def test_every_shift_on_every_law_keeps_or_moves_the_mean_as_it_says(name, shift):
    chain = ChainConfig(periods=PERIODS, demand=DEMANDS[name])
    if (name, shift) in REFUSED:
        with pytest.raises(ValueError) as refusal:
            shifted_chain(shift, chain)
        text = str(refusal.value)
        law = demand_to_dict(chain.demand)["law"]
        assert text.startswith(f"shift {shift!r} does not apply to this chain's {law} demand: ")
        assert REFUSED[name, shift] in text and "\n" not in text
        return
    world = shifted_chain(shift, chain)
    # Only what it names (nothing, for the geometric law of a geometric chain).
    assert len(chain.differences(world)) == ((name, shift) != ("geometric", "geometric"))
    expected = CURVES.get(shift, lambda c: c)(mean_curve(chain.demand, PERIODS))
    np.testing.assert_allclose(mean_curve(world.demand, PERIODS), expected, rtol=1e-9,
                               atol=ROUNDING.get((name, shift), 0.0) + 1e-9)


def test_the_other_laws_keep_what_they_can_of_the_demand():
    curve = DEMANDS["curve"]
    chain = ChainConfig(periods=PERIODS, demand=curve)
    # A curve keeps its curve: negative binomial counts, or the season on top of its trend.
    assert shifted_chain("negative-binomial", chain).demand == MeanCurve(
        level=20.0, trend=0.02, shocks=((5, 2.0),), dispersion=2.0)
    assert shifted_chain("seasonal", chain).demand == MeanCurve(
        level=20.0, season=10, amplitude=0.5, trend=0.02, shocks=((5, 2.0),), dispersion=4.0)
    # Negative binomial demand keeps its dispersion in the seasonal world.
    assert shifted_chain("seasonal", ChainConfig(demand=NegativeBinomial(20.0, 5.0))).demand == (
        MeanCurve(level=20.0, season=10, amplitude=0.5, dispersion=5.0))
    # Engines of one mean in every period take an i.i.d. law of that mean.
    regimes = ChainConfig(demand=MarkovModulated())
    assert shifted_chain("negative-binomial", regimes).demand.mu == pytest.approx(20.0)
    assert shifted_chain("geometric", regimes).demand.mean == pytest.approx(20.0)
    assert shifted_chain("seasonal", regimes).demand.level == pytest.approx(20.0)


def test_parse_shifts():
    assert parse_shifts("default") == tuple(SHIFTS)
    assert parse_shifts("seasonal, lead-time+1,seasonal") == ("seasonal", "lead-time+1")
    with pytest.raises(ValueError, match="unknown shift 'x'"):
        parse_shifts("seasonal,x")
    with pytest.raises(ValueError, match="at least one shift"):
        parse_shifts(" , ")


def _policy(name, share, difference, **params):
    return {"name": name, "params": params, "share_of_bound": share,
            "vs_retuned": {"mean_difference": difference}}


def test_the_grid_averages_seeds_and_leaves_gaps():
    worlds = [
        {"label": "a", "policies": [_policy("iql seed 0", 0.5, -10.0, variant="iql", seed=0),
                                    _policy("iql seed 1", 0.7, -6.0, variant="iql", seed=1),
                                    _policy("tuned", 0.9, 1.0)]},
        {"label": "b", "policies": [{"name": "iql seed 0", "params": {"variant": "iql", "seed": 0},
                                     "skipped": "weights of another shape"},
                                    _policy("tuned", 0.8, -2.0)]},
    ]
    labels, shares, differences = robustness_rows(worlds)
    assert labels == ["iql (mean of seeds)", "tuned"]
    np.testing.assert_allclose(shares, [[0.6, np.nan], [0.9, 0.8]])
    np.testing.assert_allclose(differences, [[-8.0, np.nan], [1.0, -2.0]])
    worlds[1]["description"] = "What b changes."
    lines = robustness_section({"episodes": 5, "worlds": worlds}, None, number=8)
    text = "\n".join(lines)
    assert lines[0] == "## 8. Robustness" and "- **b**: What b changes." in text
    assert "| iql (mean of seeds) | 60.0% | n/a |" in text and "| tuned | +1.00 | -2.00 |" in text
    assert "Not evaluated: iql seed 0 (weights of another shape)." in text
    fig, ax = robustness_heatmap(labels, ["a", "b"], shares)
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    with pytest.raises(ValueError, match=r"shares must be shaped \(2, 2\)"):
        robustness_heatmap(labels, ["a", "b"], shares[:1])
