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
)
from echelon.sim import ChainConfig
from echelon.sim.demand import MarkovModulated, MeanCurve, NegativeBinomial, Poisson


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
    with pytest.raises(ValueError, match="scales the mean of poisson, negative-binomial or curve"):
        scaled_demand(chain.replace(demand=MarkovModulated()), 2.0)


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
    lines = robustness_section({"episodes": 5, "worlds": worlds}, None, number=9)
    text = "\n".join(lines)
    assert "| iql (mean of seeds) | 60.0% | n/a |" in text and "| tuned | +1.00 | -2.00 |" in text
    assert "Not evaluated: iql seed 0 (weights of another shape)." in text
    fig, ax = robustness_heatmap(labels, ["a", "b"], shares)
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    with pytest.raises(ValueError, match=r"shares must be shaped \(2, 2\)"):
        robustness_heatmap(labels, ["a", "b"], shares[:1])
