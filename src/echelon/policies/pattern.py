"""Batched pattern search on the integer lattice, and the coarse grid it starts from.

A pattern search needs only a score of batches of points: here the mean profit of parameter
vectors on common demand paths (:mod:`echelon.policies.search`), so that the neighbourhoods of
all incumbents are scored as one batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np


def coarse_grid(lower: np.ndarray, upper: np.ndarray, budget: int) -> np.ndarray:
    """About ``budget`` whole-numbered points evenly spread over the box [lower, upper].

    Returns:
        (K, P) the grid: per axis max(2, floor(budget^(1/P))) values, rounded and deduplicated.
    """
    per_axis = max(2, int(budget ** (1.0 / len(lower))))
    axes = [np.unique(np.round(np.linspace(lo, hi, per_axis))) for lo, hi in zip(lower, upper)]
    return np.array(list(itertools.product(*axes)), dtype=np.float64)


def _neighbourhood(point: np.ndarray, step: np.ndarray, lower, upper, full: bool) -> np.ndarray:
    size = len(point)
    if full:
        moves = np.array(list(itertools.product((-1, 0, 1), repeat=size)), dtype=np.float64)
    else:
        moves = np.vstack([np.zeros(size), np.eye(size), -np.eye(size)])
    return np.clip(point + moves * step, lower, upper)


def pattern_search(
    score: Callable[[np.ndarray], np.ndarray],
    starts: np.ndarray,
    step: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    max_neighbourhood: int = 729,
) -> np.ndarray:
    """Batched pattern search on the integer lattice, from each start at once.

    Each round evaluates the neighbourhood of every incumbent (all 3^P points when that is at
    most ``max_neighbourhood``, else the 2P compass moves) and moves to its best point; an
    incumbent that is already the best halves its step, and stops once the step is one unit.

    Args:
        score: Maps (K, P) vectors to (K,) mean profits (deterministic: common paths).
        starts: (M, P) integer starting points.
        step: (P,) initial steps, >= 1.
        lower, upper: (P,) bounds.

    Returns:
        (M, P) the local optimum reached from each start.
    """
    full = 3 ** starts.shape[1] <= max_neighbourhood
    points = np.array(starts, dtype=np.float64)
    steps = np.tile(np.maximum(np.round(step), 1.0), (len(points), 1))
    active = np.ones(len(points), dtype=bool)
    while active.any():
        hoods = [_neighbourhood(points[i], steps[i], lower, upper, full)
                 for i in np.flatnonzero(active)]
        means = score(np.concatenate(hoods))
        offset = 0
        for i, hood in zip(np.flatnonzero(active), hoods):
            local = means[offset : offset + len(hood)]
            offset += len(hood)
            here = local[0] if not full else local[len(hood) // 2]
            best = int(np.argmax(local))
            if local[best] > here:
                points[i] = hood[best]
            elif np.all(steps[i] <= 1.0):
                active[i] = False
            else:
                steps[i] = np.maximum(np.floor(steps[i] / 2.0), 1.0)
    return points
