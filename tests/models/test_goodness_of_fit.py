"""The period-by-period check of an engine fit, on a hand-worked case."""

import math

import numpy as np
import pytest
from scipy import stats

from echelon.models.goodness_of_fit import check_periods
from echelon.models.observations import DemandObservations


def test_the_period_check_of_a_hand_worked_case():
    # Period 0: six periods of exact demand (stock infinite), each Poisson(1) or Poisson(3) with
    # probability 1/2: mean 2, variance 1/2 (1 + 1) + 1/2 (3 + 9) - 4 = 3; demands sum to 18, the
    # model expects 12 with variance 18, so z = 6 / sqrt(18).
    # Period 1: ten periods of Poisson(2) demand with 3 units in stock, all sold out. With
    # P(D >= k) = S_k: S_1 = 1 - e^-2 = 0.864665, S_2 = 0.593994, S_3 = 0.323324, so
    # E[min(D, 3)] = S_1 + S_2 + S_3 = 1.781982 and E[min(D, 3)^2] = S_1 + 3 S_2 + 5 S_3 =
    # 4.263265, variance 1.087804; z = (30 - 17.81982) / sqrt(10.87804) = 3.69299.
    # Period 2: three periods with 1 unit in stock; the model expects demand below the stock in
    # 3 e^-2 = 0.41 of them, fewer than 5, so the period is not checked.
    values = np.array([0, 1, 2, 3, 4, 8] + [3] * 10 + [1, 1, 0], dtype=np.float64)
    available = np.array([math.inf] * 6 + [3.0] * 10 + [1.0] * 3)
    periods = np.array([0] * 6 + [1] * 10 + [2] * 3)
    obs = DemandObservations(values=values, censored=values >= available, available=available,
                             method="lost-sales", periods=periods)
    components = [stats.poisson(1.0), stats.poisson(3.0), stats.poisson(2.0)]
    weights = np.array([[0.5, 0.5, 0.0]] * 6 + [[0.0, 0.0, 1.0]] * 13)
    check = check_periods(obs, components, weights, 4)
    np.testing.assert_allclose(check.expected[:3], [2.0, 1.781982, 0.864665], rtol=1e-6)
    np.testing.assert_allclose(check.observed[:3], [3.0, 3.0, 2 / 3])
    np.testing.assert_allclose(check.standard_error[:2], [math.sqrt(18) / 6,
                                                          math.sqrt(10.87804) / 10], rtol=1e-6)
    np.testing.assert_allclose(check.z[:2], [6 / math.sqrt(18), 3.69299], rtol=1e-5)
    assert np.isnan(check.z[2]) and np.isnan(check.z[3]) and np.isnan(check.observed[3])
    assert check.dof == 2 and check.flagged == [1]
    assert check.statistic == pytest.approx(2.0 + 3.69299 ** 2, rel=1e-5)
    assert check.p_value == pytest.approx(math.exp(-check.statistic / 2))  # chi2(2)'s tail
    assert check.misspecified
    saved = check.to_dict()
    assert saved["z"][2] is None and saved["flagged"] == [1]
    assert "p 0.000402; flagged periods (z): 1 (+3.7)" in check.summary()
