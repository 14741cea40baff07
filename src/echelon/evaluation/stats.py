"""Summary statistics of per-episode scores."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Summary:
    """Mean, spread and a t-based confidence interval of the mean of n scores (NaN if n = 1)."""

    mean: float
    std: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    confidence: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(scores: np.ndarray, confidence: float = 0.95) -> Summary:
    """Summarises scores with the sample std (ddof=1) and a Student-t interval of the mean.

    Args:
        scores: (n,) per-episode scores, n >= 1.
        confidence: Coverage of the interval, in (0, 1).

    Raises:
        ValueError: If there are no scores or ``confidence`` is out of range.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("scores must hold at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    n = values.size
    mean = float(values.mean())
    if n == 1:  # no spread can be estimated from one score
        return Summary(mean, math.nan, math.nan, math.nan, math.nan, 1, confidence)
    std = float(values.std(ddof=1))
    se = std / np.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * se
    return Summary(mean, std, float(se), mean - half, mean + half, n, confidence)
