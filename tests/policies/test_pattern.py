"""Pattern search on the integer lattice, on known objectives; the coarse grid it starts from."""

import numpy as np
import pytest

from echelon.policies.pattern import coarse_grid, pattern_search


def test_coarse_grid_spreads_whole_numbers_over_the_box():
    grid = coarse_grid(np.array([0.0, -1.0]), np.array([10.0, 29.0]), 9)
    assert grid.shape == (9, 2)  # 3 values per axis
    assert sorted(set(grid[:, 0])) == [0.0, 5.0, 10.0]
    assert sorted(set(grid[:, 1])) == [-1.0, 14.0, 29.0]
    # Rounding merges values too close to differ: at most 2 distinct whole numbers in [0, 1].
    assert coarse_grid(np.array([0.0]), np.array([1.0]), 5).tolist() == [[0.0], [1.0]]


def _quadratic(target, weights, seen):
    """A concave separable quadratic with the integer maximiser ``target``; records each batch."""

    def score(vectors):
        seen.append(np.array(vectors))
        return -np.sum(weights * (vectors - target) ** 2, axis=1)

    return score


@pytest.mark.parametrize(("size", "max_neighbourhood"), [(3, 729), (3, 1), (7, 729)],
                         ids=["full-3^P", "compass-forced", "compass-P=7"])
def test_pattern_search_reaches_the_exact_maximiser(size, max_neighbourhood):
    rng = np.random.default_rng(5)
    target = rng.integers(-30, 31, size=size).astype(np.float64)
    weights = rng.uniform(0.5, 3.0, size=size)
    lower, upper = np.full(size, -50.0), np.full(size, 50.0)
    starts = np.vstack([lower, upper, np.zeros(size), rng.integers(-50, 51, size=(3, size))])
    seen = []
    found = pattern_search(_quadratic(target, weights, seen), starts, np.full(size, 16.0),
                           lower, upper, max_neighbourhood=max_neighbourhood)
    assert found.shape == (6, size)
    assert np.array_equal(found, np.tile(target, (6, 1)))
    # Every batch is a whole neighbourhood per active start: 3^P points, or 2P + 1.
    per_start = 3**size if 3**size <= max_neighbourhood else 2 * size + 1
    assert all(len(batch) % per_start == 0 for batch in seen)


def test_pattern_search_respects_bounds():
    # The unconstrained maximiser (70, -3, -90) lies outside [-20, 40]^3; the separable
    # objective's constrained maximiser is the target clipped to the box: (40, -3, -20).
    target = np.array([70.0, -3.0, -90.0])
    lower, upper = np.full(3, -20.0), np.full(3, 40.0)
    seen = []
    starts = np.array([[0.0, 0.0, 0.0], [-20.0, 40.0, 10.0], [39.0, -19.0, -20.0]])
    found = pattern_search(_quadratic(target, np.ones(3), seen), starts, np.full(3, 8.0),
                           lower, upper)
    assert found.tolist() == [[40.0, -3.0, -20.0]] * 3
    every = np.concatenate(seen)
    assert np.all(every >= lower) and np.all(every <= upper)
    assert np.all(every == np.round(every))  # integer lattice
