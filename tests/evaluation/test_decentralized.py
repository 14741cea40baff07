"""The decentralized view's report section and the bullwhip ratio, on hand-made results."""

import numpy as np
import pytest

from echelon.evaluation.decentralized import BullwhipRow, bullwhip_ratios, decentralized_section
from echelon.evaluation.evaluate import Kind, PolicyResult


def result(name, kind, profit, **params):
    profit = np.asarray(profit, dtype=np.float64)
    return PolicyResult(name, kind, profit, profit, np.ones_like(profit),
                        np.zeros((len(profit), 3)), 0.0, params)


def test_bullwhip_ratio_by_hand():
    # Path 0: demand 2, 4 (variance 1); path 1: 1, 5 (variance 4): mean demand variance 2.5.
    demand = np.array([[2.0, 4.0], [1.0, 5.0]])
    # Stage 0 orders what was demanded (ratio 1); stage 1 orders 0, 6 and 0, 10 (variances 9
    # and 25: ratio 17 / 2.5 = 6.8).
    orders = np.stack([demand, np.array([[0.0, 6.0], [0.0, 10.0]])], axis=2)
    np.testing.assert_allclose(bullwhip_ratios(orders, demand), [1.0, 6.8])
    with pytest.raises(ValueError, match="never varies"):
        bullwhip_ratios(orders, np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"orders must be \(N, T, S\)"):
        bullwhip_ratios(orders[0], demand)


def test_the_section_pairs_each_decentralized_agent_with_its_centralized_twin():
    rng = np.random.default_rng(0)
    base = np.array([100.0, 110.0, 90.0, 105.0])
    results = [
        result("bound", Kind.BOUND, base + 100.0),
        result("iql seed 0", Kind.AGENT, base, variant="iql", algorithm="iql", seed=0),
        result("iql seed 1", Kind.AGENT, base + 2.0, variant="iql", algorithm="iql", seed=1),
        result("iql-decentralized-local seed 0", Kind.DECENTRALIZED, base - 10.0,
               variant="iql-decentralized-local", algorithm="iql", reward="local", seed=0),
        result("iql-decentralized-local seed 1", Kind.DECENTRALIZED, base - 8.0,
               variant="iql-decentralized-local", algorithm="iql", reward="local", seed=1),
        result("iql-decentralized-team seed 0", Kind.DECENTRALIZED, base - 4.0,
               variant="iql-decentralized-team", algorithm="iql", reward="team", seed=0),
        result("tuned base-stock", Kind.BASELINE, base + 50.0),
        result("tuned decentralized base-stock", Kind.BASELINE, base + 40.0),
    ]
    lines = decentralized_section(results, results[0], rng, 200,
                                  [("tuned base-stock", "tuned decentralized base-stock"),
                                   ("absent", "tuned decentralized base-stock")],
                                  [BullwhipRow("iql seed 0", np.array([1.0, 2.5, 4.0]))],
                                  "orders.png", number=5)
    text = "\n".join(lines)
    assert lines[0] == "## 5. The decentralized view"
    # local: on both seeds every path is 10 below its twin's: difference -10, its interval a
    # point; the bound's mean is 201.25, so the cost is 10 / 201.25 = 4.97 points.
    assert ("| iql | local | 2 | 92.25 | 45.8% | 102.25 | 50.8% | -10.00 [-10.00, -10.00] | "
            "+4.97 |") in text
    # team: seed 0 only.
    assert "| iql | team | 1 | 97.25 | 48.3% | 101.25 | 50.3% | -4.00 [-4.00, -4.00] | +1.99 |" in text
    assert ("- iql: the team reward works best (97.25), clearly ahead of local by +6.00 [+6.00, "
            "+6.00].") in text
    assert ("| tuned base-stock | 151.25 | 75.2% | tuned decentralized base-stock | 141.25 | "
            "70.2% | -10.00 [-10.00, -10.00] | +4.97 |") in text
    assert text.count("| tuned base-stock |") == 1  # the pair with an absent policy is left out
    assert "| iql seed 0 | 1.00 | 2.50 | 4.00 |" in text
    assert "](figures/orders.png)" in text


def test_no_section_without_anything_decentralized():
    rng = np.random.default_rng(0)
    results = [result("iql seed 0", Kind.AGENT, [1.0, 2.0], variant="iql", seed=0)]
    assert decentralized_section(results, None, rng, 200) == []
