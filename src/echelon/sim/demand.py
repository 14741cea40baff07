"""Customer demand at the retailer: distributions, engines, seeded demand paths, run streams.

Every demand path is drawn from an explicit ``numpy.random.Generator`` as an array shaped
(N, T): N episodes of T periods. Several policies evaluated on the same array face identical
demand (common random numbers).

The i.i.d. laws: OR-Gym's ``InvManagement`` four (``dist`` 1 to 4): Poisson, binomial, discrete
uniform (``scipy.stats.randint``: ``low`` inclusive, ``high`` exclusive) and geometric (number of
trials up to the first success, so its support starts at 1), and the over-dispersed negative
binomial. ``DemandPath`` replays a user-given path (OR-Gym's ``dist=5``).

The engines, whose periods are not i.i.d.: ``MeanCurve`` (a level times a season, a trend and
shocks, with Poisson or negative binomial counts), ``MarkovModulated`` (regime switching),
``LogAR1`` (an autocorrelated log-mean) and ``BlockBootstrap`` (blocks of an observed history).
Each states its expected demand per period (:func:`mean_curve`). Every law and engine is an
entry of :data:`DEMAND_LAWS`, written as a ``{"law": name, ...}`` table (``[chain.demand]`` in a
preset) by :func:`demand_to_dict` and read back by :func:`demand_from_dict`.

Every entry also has ``scaled(factor)``: the same law or engine with its mean in every period
multiplied by ``factor``. The product is exact except where demand must stay in whole units:
a discrete uniform law's mean is a multiple of 1/2 (the nearest, within 1/4), and a history or
path of whole units is rounded value by value (within 1/2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
from scipy import stats

from echelon._limits import check_memory

# Bytes per value while a law draws paths: NumPy's int64 draws and their float64 copy.
_DRAW_BYTES = 16


@runtime_checkable
class Demand(Protocol):
    """A law or engine of retail demand: paths of independent episodes (periods i.i.d. for the
    laws, not for the engines, which also have ``mean_curve``)."""

    def sample(self, rng: np.random.Generator, episodes: int, periods: int) -> np.ndarray:
        """Draws demand paths shaped (episodes, periods) as float64 integers.

        Raises:
            ValueError: If a size is not an integer >= 0.
            SizeLimitError: If the paths would exceed the memory limit (``echelon._limits``),
                checked before anything is drawn.
        """
        ...

    @property
    def mean(self) -> float:
        """Expected demand per period."""
        ...


def _check_finite(name: str, value: float, low: float, high: float, *, open_low: bool = False) -> None:
    """Raises ValueError unless ``low <= value <= high`` (``low < value`` when ``open_low``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    bad = not math.isfinite(value) or value > high or (value <= low if open_low else value < low)
    if bad:
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} must be a finite number in {bracket}{low}, {high}], got {value!r}")


def _check_count(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_factor(factor: float) -> None:
    _check_finite("factor", factor, 0.0, math.inf, open_low=True)


def _scaled_units(values: tuple[float, ...], factor: float) -> tuple[float, ...]:
    """``values`` times ``factor``, rounded to whole units (half to even) when every value is
    whole, so a history of counts stays counts; each value moves by at most 1/2."""
    array = np.asarray(values, dtype=np.float64)
    scaled = array * factor
    if np.all(array == np.floor(array)):
        scaled = np.rint(scaled)
    return tuple(float(v) for v in scaled)


def demand_bytes(episodes: int, periods: int) -> int:
    """Peak memory of drawing demand paths shaped (episodes, periods), in bytes.

    A law's draws are int64 and are copied to float64, so both exist for a moment.
    """
    return _DRAW_BYTES * episodes * periods


def _check_sample(episodes: int, periods: int, bytes_per_value: int = _DRAW_BYTES) -> None:
    """Refuses bad or too large sample sizes before anything is drawn.

    Raises:
        ValueError: If ``episodes`` or ``periods`` is not an integer >= 0.
        SizeLimitError: If the paths would exceed the memory limit.
    """
    _check_count("episodes", episodes, 0)
    _check_count("periods", periods, 0)
    check_memory(f"drawing {episodes:,} demand path{'s' * (episodes != 1)} of {periods:,} periods",
                 bytes_per_value * episodes * periods, reduce="episodes or periods")


@dataclass(frozen=True)
class Poisson:
    """Poisson demand (OR-Gym ``dist=1``, ``dist_param={'mu': mu}``).

    Args:
        mu: Mean demand per period [mu], >= 0.
    """

    mu: float = 20.0

    def __post_init__(self) -> None:
        _check_finite("demand.mu", self.mu, 0.0, math.inf)

    @property
    def mean(self) -> float:
        return float(self.mu)

    def sample(self, rng: np.random.Generator, episodes: int, periods: int) -> np.ndarray:
        _check_sample(episodes, periods)
        return rng.poisson(self.mu, size=(episodes, periods)).astype(np.float64)

    def scaled(self, factor: float) -> Poisson:
        """The law of mean ``factor * mu``.

        Raises:
            ValueError: If ``factor`` is not a finite number > 0 (as for every law).
        """
        _check_factor(factor)
        return Poisson(self.mu * factor)

    def scipy(self) -> stats.rv_discrete:
        """The frozen ``scipy.stats`` law, for likelihoods and quantiles."""
        return stats.poisson(self.mu)


@dataclass(frozen=True)
class Binomial:
    """Binomial demand (OR-Gym ``dist=2``): ``n`` trials of success probability ``p``.

    Args:
        n: Number of trials, >= 0.
        p: Success probability, in [0, 1].
    """

    n: int = 40
    p: float = 0.5

    def __post_init__(self) -> None:
        _check_count("demand.n", self.n, 0)
        _check_finite("demand.p", self.p, 0.0, 1.0)

    @property
    def mean(self) -> float:
        return float(self.n * self.p)

    def sample(self, rng: np.random.Generator, episodes: int, periods: int) -> np.ndarray:
        _check_sample(episodes, periods)
        return rng.binomial(self.n, self.p, size=(episodes, periods)).astype(np.float64)

    def scaled(self, factor: float) -> Binomial:
        """The law of ``n`` trials and success probability ``factor * p`` (mean ``factor * n p``).

        Raises:
            ValueError: If ``factor * p`` exceeds 1.
        """
        _check_factor(factor)
        if self.p * factor > 1.0:
            raise ValueError(f"its success probability p = {self.p} times {factor} exceeds 1")
        return Binomial(self.n, self.p * factor)

    def scipy(self) -> stats.rv_discrete:
        return stats.binom(self.n, self.p)


@dataclass(frozen=True)
class DiscreteUniform:
    """Discrete uniform demand on ``low, ..., high - 1`` (OR-Gym ``dist=3``, scipy ``randint``).

    Args:
        low: Smallest demand, >= 0 (inclusive).
        high: One past the largest demand (exclusive), > low.
    """

    low: int = 10
    high: int = 31

    def __post_init__(self) -> None:
        _check_count("demand.low", self.low, 0)
        _check_count("demand.high", self.high, self.low + 1)

    @property
    def mean(self) -> float:
        return (self.low + self.high - 1) / 2.0

    def sample(self, rng: np.random.Generator, episodes: int, periods: int) -> np.ndarray:
        _check_sample(episodes, periods)
        return rng.integers(self.low, self.high, size=(episodes, periods)).astype(np.float64)

    def scaled(self, factor: float) -> DiscreteUniform:
        """The uniform law whose mean is the multiple of 1/2 nearest ``factor`` times this one's
        (exact when ``factor * (low + high - 1)`` is whole, within 1/4 otherwise) and whose
        width is the nearest that mean allows."""
        _check_factor(factor)
        # The ends' sum is the nearest whole number to factor times theirs; their difference
        # the nearest of the same parity to factor times theirs, and no more than the sum.
        total = int(np.rint(factor * (self.low + self.high - 1)))
        parity = total % 2
        width = 2 * int(np.rint((factor * (self.high - 1 - self.low) - parity) / 2)) + parity
        width = min(max(width, parity), total)
        return DiscreteUniform((total - width) // 2, (total + width) // 2 + 1)

    def scipy(self) -> stats.rv_discrete:
        return stats.randint(self.low, self.high)


@dataclass(frozen=True)
class Geometric:
    """Geometric demand (OR-Gym ``dist=4``): trials up to the first success, support 1, 2, ...

    Args:
        p: Success probability per trial, in (0, 1].
    """

    p: float = 0.05

    def __post_init__(self) -> None:
        _check_finite("demand.p", self.p, 0.0, 1.0, open_low=True)

    @property
    def mean(self) -> float:
        return 1.0 / self.p

    def sample(self, rng: np.random.Generator, episodes: int, periods: int) -> np.ndarray:
        _check_sample(episodes, periods)
        return rng.geometric(self.p, size=(episodes, periods)).astype(np.float64)

    def scaled(self, factor: float) -> Geometric:
        """The law of success probability ``p / factor`` (mean ``factor / p``).

        Raises:
            ValueError: If that mean is below 1, the least a geometric law has.
        """
        _check_factor(factor)
        if self.p / factor > 1.0:
            raise ValueError(f"its mean {self.mean:g} times {factor} is below 1, the least a "
                             "geometric law has")
        return Geometric(self.p / factor)

    def scipy(self) -> stats.rv_discrete:
        return stats.geom(self.p)


@dataclass(frozen=True)
class DemandPath:
    """A user-given demand path, replayed identically in every episode (OR-Gym ``dist=5``).

    Args:
        values: Demand in each period; non-negative, finite. Its length must equal the
            chain's number of periods (checked by ``ChainConfig``).
    """

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        values = tuple(float(v) for v in np.asarray(self.values, dtype=np.float64).ravel())
        object.__setattr__(self, "values", values)
        if not values:
            raise ValueError("demand.values must hold at least one period")
        array = np.asarray(values)
        if not np.all(np.isfinite(array)) or np.any(array < 0):
            raise ValueError("demand.values must be finite and >= 0")

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    def sample(self, rng: np.random.Generator, episodes: int, periods: int) -> np.ndarray:
        _check_sample(episodes, periods, bytes_per_value=8)
        if periods != len(self.values):
            raise ValueError(
                f"demand path has {len(self.values)} periods, the chain needs {periods}"
            )
        return np.broadcast_to(np.asarray(self.values), (episodes, periods)).copy()

    def scaled(self, factor: float) -> DemandPath:
        """The path times ``factor``, rounded to whole units if it is whole (each period within
        1/2 of ``factor`` times its demand)."""
        _check_factor(factor)
        return DemandPath(_scaled_units(self.values, factor))


@dataclass(frozen=True)
class NegativeBinomial:
    """Over-dispersed demand: Poisson counts whose mean is gamma-distributed (a gamma-Poisson
    mixture), of mean ``mu`` and variance ``mu + mu^2 / dispersion``.

    Args:
        mu: Mean demand per period [mu], >= 0.
        dispersion: The gamma's shape [k], > 0; small is over-dispersed, large nears Poisson.
    """

    mu: float = 20.0
    dispersion: float = 5.0

    def __post_init__(self) -> None:
        _check_finite("demand.mu", self.mu, 0.0, math.inf)
        _check_finite("demand.dispersion", self.dispersion, 0.0, math.inf, open_low=True)

    @property
    def mean(self) -> float:
        return float(self.mu)

    def sample(self, rng: np.random.Generator, episodes: int, periods: int) -> np.ndarray:
        _check_sample(episodes, periods)
        return _counts(rng, np.full((episodes, periods), float(self.mu)), self.dispersion)

    def scaled(self, factor: float) -> NegativeBinomial:
        """The law of mean ``factor * mu`` and the same dispersion."""
        _check_factor(factor)
        return NegativeBinomial(self.mu * factor, self.dispersion)

    def scipy(self) -> stats.rv_discrete:
        k = float(self.dispersion)
        return stats.nbinom(k, k / (k + self.mu))


def _counts(rng: np.random.Generator, means: np.ndarray, dispersion: float | None) -> np.ndarray:
    """Counts of the given means (any shape): Poisson, or negative binomial of that dispersion."""
    if dispersion is None:
        return rng.poisson(means).astype(np.float64)
    k = float(dispersion)
    return rng.negative_binomial(k, k / (k + means)).astype(np.float64)


# --- non-stationary engines -------------------------------------------------------------------
# Each draws whole paths (N, T) and states its expected demand per period (``mean_curve``);
# ``time_varying`` says whether that expectation depends on the period, so that a planner
# drawing the future from period n on must draw whole paths and keep their tail.


@dataclass(frozen=True)
class MeanCurve:
    """Counts around a mean curve: a level times a season, a linear trend and shocks.

    The mean in period n is ``level * (1 + amplitude * sin(2 pi (n - phase) / season)) *
    max(1 + trend * n, 0) * shock_n``, where ``shock_n`` is the factor of a shock at period n
    (1 elsewhere); demand is Poisson of that mean, or negative binomial of that mean and
    ``dispersion`` when one is given.

    Args:
        level: Mean demand per period before the curve [mu], >= 0.
        season: Periods in a seasonal cycle, >= 2; 0 for no season.
        amplitude: Relative swing of the season, in [0, 1].
        phase: Period at which the season crosses the level going up.
        trend: Relative change of the mean per period (0.01: +1% of the level a period), the
            mean held at 0 once a falling trend reaches it.
        shocks: ``[[period, factor], ...]``: the mean of each listed period (>= 0) is multiplied
            by its factor (>= 0).
        dispersion: The negative binomial's shape (> 0), or None for Poisson counts.
    """

    level: float = 20.0
    season: int = 0
    amplitude: float = 0.0
    phase: float = 0.0
    trend: float = 0.0
    shocks: tuple[tuple[int, float], ...] = ()
    dispersion: float | None = None

    time_varying = True

    def __post_init__(self) -> None:
        _check_finite("demand.level", self.level, 0.0, math.inf)
        if self.season != 0:
            _check_count("demand.season", self.season, 2)
        _check_finite("demand.amplitude", self.amplitude, 0.0, 1.0)
        _check_finite("demand.phase", self.phase, -math.inf, math.inf)
        _check_finite("demand.trend", self.trend, -1.0, 1.0)
        shocks = []
        for i, shock in enumerate(self.shocks):
            if np.ndim(shock) != 1 or len(shock) != 2:
                raise ValueError(f"demand.shocks[{i}] must be [period, factor], got {shock!r}")
            period, factor = shock
            _check_count(f"demand.shocks[{i}] period", period, 0)
            _check_finite(f"demand.shocks[{i}] factor", factor, 0.0, math.inf)
            shocks.append((int(period), float(factor)))
        object.__setattr__(self, "shocks", tuple(shocks))
        if self.dispersion is not None:
            _check_finite("demand.dispersion", self.dispersion, 0.0, math.inf, open_low=True)

    @property
    def mean(self) -> float:
        """The level (the mean per period is :meth:`mean_curve`)."""
        return float(self.level)

    def mean_curve(self, periods: int) -> np.ndarray:
        """(T,) expected demand in each period."""
        n = np.arange(periods, dtype=np.float64)
        curve = np.full(periods, float(self.level))
        if self.season:
            curve *= 1.0 + self.amplitude * np.sin(2.0 * np.pi * (n - self.phase) / self.season)
        curve *= np.maximum(1.0 + self.trend * n, 0.0)
        for period, factor in self.shocks:
            if period < periods:
                curve[period] *= factor
        return curve

    def sample(self, rng: np.random.Generator, episodes: int, periods: int) -> np.ndarray:
        _check_sample(episodes, periods)
        return _counts(rng, np.broadcast_to(self.mean_curve(periods), (episodes, periods)),
                       self.dispersion)

    def scaled(self, factor: float) -> MeanCurve:
        """The curve of level ``factor * level`` (the mean of every period times ``factor``)."""
        _check_factor(factor)
        return replace(self, level=self.level * factor)


def stationary_distribution(transition: np.ndarray) -> np.ndarray:
    """(K,) the long-run probabilities of a Markov chain of (K, K) row-stochastic transitions:
    the transition matrix's left eigenvector of eigenvalue 1, normalised."""
    values, vectors = np.linalg.eig(np.asarray(transition, dtype=np.float64).T)
    vector = np.abs(np.real(vectors[:, np.argmin(np.abs(values - 1.0))]))
    return vector / vector.sum()


@dataclass(frozen=True)
class MarkovModulated:
    """Regime switching: Poisson demand whose rate follows a Markov chain of K regimes.

    Args:
        rates: Mean demand in each regime, >= 0 (K values).
        transition: (K, K) probabilities of moving from regime i (row) to j (column) between
            periods; rows sum to 1.
        initial: Probabilities of the first period's regime (K values summing to 1); None for
            the chain's stationary distribution.
    """

    rates: tuple[float, ...] = (10.0, 30.0)
    transition: tuple[tuple[float, ...], ...] = ((0.9, 0.1), (0.1, 0.9))
    initial: tuple[float, ...] | None = None

    time_varying = True

    def __post_init__(self) -> None:
        rates = _vector("demand.rates", self.rates)
        k = len(rates)
        for i, rate in enumerate(rates):
            _check_finite(f"demand.rates[{i}]", rate, 0.0, math.inf)
        matrix = np.asarray(self.transition, dtype=np.float64) if np.ndim(self.transition) == 2 else None
        if matrix is None or matrix.shape != (k, k):
            raise ValueError(f"demand.transition must be a {k} x {k} matrix (one row per regime "
                             f"of demand.rates), got {self.transition!r}")
        for i, row in enumerate(matrix):
            _check_distribution(f"demand.transition[{i}]", row)
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "transition", tuple(tuple(float(v) for v in row) for row in matrix))
        if self.initial is not None:
            initial = _vector("demand.initial", self.initial)
            if len(initial) != k:
                raise ValueError(f"demand.initial must have {k} probabilities, got {len(initial)}")
            _check_distribution("demand.initial", np.asarray(initial))
            object.__setattr__(self, "initial", initial)

    def stationary(self) -> np.ndarray:
        """(K,) the regimes' long-run probabilities."""
        return stationary_distribution(np.asarray(self.transition))

    def start(self) -> np.ndarray:
        """(K,) the first period's regime probabilities."""
        return np.asarray(self.initial) if self.initial is not None else self.stationary()

    @property
    def mean(self) -> float:
        """The long-run mean (the stationary distribution's)."""
        return float(self.stationary() @ np.asarray(self.rates))

    def mean_curve(self, periods: int) -> np.ndarray:
        """(T,) expected demand in each period: the regime probabilities times the rates."""
        probabilities, out = self.start(), np.empty(periods)
        matrix, rates = np.asarray(self.transition), np.asarray(self.rates)
        for n in range(periods):
            out[n] = probabilities @ rates
            probabilities = probabilities @ matrix
        return out

    def sample(self, rng: np.random.Generator, episodes: int, periods: int) -> np.ndarray:
        _check_sample(episodes, periods)
        cumulative = np.cumsum(np.asarray(self.transition), axis=1)
        cumulative[:, -1] = 1.0  # rounding must not leave a draw of 0.9999999 without a regime
        regime = np.empty((episodes, periods), dtype=np.int64)
        if periods:
            first = np.cumsum(self.start())
            first[-1] = 1.0
            regime[:, 0] = np.searchsorted(first, rng.random(episodes), side="right")
        for n in range(1, periods):
            draws = rng.random(episodes)
            regime[:, n] = (draws[:, None] >= cumulative[regime[:, n - 1]]).sum(axis=1)
        return rng.poisson(np.asarray(self.rates)[regime]).astype(np.float64)

    def scaled(self, factor: float) -> MarkovModulated:
        """Every regime's rate times ``factor``, the switching unchanged (the mean of every
        period is the regime probabilities times the rates)."""
        _check_factor(factor)
        return replace(self, rates=tuple(rate * factor for rate in self.rates))


@dataclass(frozen=True)
class LogAR1:
    """Poisson demand whose log-mean follows an AR(1) process around ``log(level)``.

    ``log m_n = log(level) + x_n`` with ``x_n = phi x_{n-1} + sigma e_n`` (e_n standard normal)
    and x_0 drawn from the process's stationary law, so the expected demand is
    ``level * exp(sigma^2 / (2 (1 - phi^2)))`` in every period.

    Args:
        level: The median of the mean demand [mu], >= 0.
        phi: Persistence of the log-mean, in (-1, 1).
        sigma: Standard deviation of its innovations, >= 0.
    """

    level: float = 20.0
    phi: float = 0.8
    sigma: float = 0.2

    def __post_init__(self) -> None:
        _check_finite("demand.level", self.level, 0.0, math.inf)
        _check_finite("demand.phi", self.phi, -1.0, 1.0)
        if abs(self.phi) >= 1.0:
            raise ValueError(f"demand.phi must lie in (-1, 1) (a stationary process), got "
                             f"{self.phi!r}")
        _check_finite("demand.sigma", self.sigma, 0.0, 5.0)

    @property
    def mean(self) -> float:
        return float(self.level * math.exp(self.sigma**2 / (2.0 * (1.0 - self.phi**2))))

    def mean_curve(self, periods: int) -> np.ndarray:
        return np.full(periods, self.mean)

    def sample(self, rng: np.random.Generator, episodes: int, periods: int) -> np.ndarray:
        _check_sample(episodes, periods)
        spread = self.sigma / math.sqrt(1.0 - self.phi**2)
        log_mean = np.empty((episodes, periods))
        if periods:
            log_mean[:, 0] = spread * rng.standard_normal(episodes)
        for n in range(1, periods):
            log_mean[:, n] = self.phi * log_mean[:, n - 1] + self.sigma * rng.standard_normal(episodes)
        return rng.poisson(self.level * np.exp(log_mean)).astype(np.float64)

    def scaled(self, factor: float) -> LogAR1:
        """The level times ``factor`` (the log-mean shifted by ``log(factor)``): the mean,
        ``level * exp(...)``, is multiplied by ``factor`` and the AR(1) process unchanged."""
        _check_factor(factor)
        return replace(self, level=self.level * factor)


@dataclass(frozen=True)
class BlockBootstrap:
    """An empirical engine: paths made of blocks of a demand history, each block starting at a
    uniformly drawn period of the history (circularly), which keeps its short-range pattern.

    Args:
        history: The observed demand per period (>= 0, at least one value).
        block: Periods per block, >= 1.
    """

    history: tuple[float, ...] = ()
    block: int = 7

    def __post_init__(self) -> None:
        values = _vector("demand.history", self.history)
        if not values or any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError("demand.history must hold at least one finite demand >= 0")
        object.__setattr__(self, "history", values)
        _check_count("demand.block", self.block, 1)

    @classmethod
    def from_csv(cls, path: str, column: str = "demand", block: int = 7) -> BlockBootstrap:
        """The engine of one column of a CSV file (a header row, then one row per period).

        Raises:
            ValueError: If the file cannot be read, lacks the column, or a value is no demand.
        """
        import csv

        try:
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise ValueError(f"demand.file {path}: {error}") from None
        if not rows or column not in rows[0]:
            raise ValueError(f"demand.file {path}: no column {column!r}")
        try:
            values = [float(row[column]) for row in rows]
        except (TypeError, ValueError):
            raise ValueError(f"demand.file {path}: column {column!r} must hold numbers") from None
        return cls(tuple(values), block)

    @property
    def mean(self) -> float:
        return float(np.mean(self.history))

    def mean_curve(self, periods: int) -> np.ndarray:
        """Every period's demand is a uniformly drawn period of the history: its mean."""
        return np.full(periods, self.mean)

    def sample(self, rng: np.random.Generator, episodes: int, periods: int) -> np.ndarray:
        _check_sample(episodes, periods)
        history = np.asarray(self.history)
        blocks = -(-periods // self.block)
        starts = rng.integers(0, len(history), size=(episodes, blocks))
        offsets = np.arange(self.block)
        index = (starts[:, :, None] + offsets).reshape(episodes, -1)[:, :periods] % len(history)
        return history[index]

    def scaled(self, factor: float) -> BlockBootstrap:
        """The history times ``factor``, rounded to whole units if it is whole, the blocks
        unchanged. Rounding moves each value by at most 1/2, so the mean is ``factor`` times
        this one's within 1/2 (exactly, for a history that is not whole)."""
        _check_factor(factor)
        return replace(self, history=_scaled_units(self.history, factor))


def _vector(name: str, values) -> tuple[float, ...]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers, got {values!r}") from None
    if array.ndim != 1 or not len(array):
        raise ValueError(f"{name} must be a non-empty list of numbers, got {values!r}")
    return tuple(float(v) for v in array)


def _check_distribution(name: str, row: np.ndarray) -> None:
    if not np.all(np.isfinite(row)) or np.any(row < 0) or abs(row.sum() - 1.0) > 1e-9:
        raise ValueError(f"{name} must hold probabilities >= 0 that sum to 1, got {row.tolist()}")


def mean_curve(demand: Demand, periods: int) -> np.ndarray:
    """(T,) expected demand per period of any demand law or engine (the mean, for i.i.d. laws;
    the path itself, for a given path)."""
    if isinstance(demand, DemandPath):
        return np.asarray(demand.values, dtype=np.float64)[:periods]
    if hasattr(demand, "mean_curve"):
        return demand.mean_curve(periods)
    return np.full(periods, float(demand.mean))


DEMAND_LAWS: dict[str, type] = {
    "poisson": Poisson,
    "binomial": Binomial,
    "uniform": DiscreteUniform,
    "geometric": Geometric,
    "negative-binomial": NegativeBinomial,
    "path": DemandPath,
    "curve": MeanCurve,
    "regimes": MarkovModulated,
    "log-ar1": LogAR1,
    "bootstrap": BlockBootstrap,
}
"""The demand registry: each law or engine by the name its ``{"law": ...}`` table gives."""


def demand_from_dict(spec: dict) -> Demand:
    """Builds a demand law from ``{"law": "poisson", "mu": 20}`` (as in TOML presets).

    Raises:
        ValueError: If the law is unknown or a parameter is missing or out of range.
    """
    spec = dict(spec)
    law = spec.pop("law", None)
    if not isinstance(law, str) or law not in DEMAND_LAWS:
        raise ValueError(f"demand.law must be one of {sorted(DEMAND_LAWS)}, got {law!r}")
    if law == "bootstrap" and "file" in spec:  # a history in a CSV file: read it now
        if "history" in spec:
            raise ValueError("demand: give the bootstrap's history or its file, not both")
        return BlockBootstrap.from_csv(spec.pop("file"), **spec)
    try:
        return DEMAND_LAWS[law](**spec)
    except TypeError as error:
        raise ValueError(f"bad parameters for demand law {law!r}: {error}") from None


def demand_to_dict(demand: Demand) -> dict:
    """Inverse of :func:`demand_from_dict`."""
    for name, cls in DEMAND_LAWS.items():
        if type(demand) is cls:
            # Tuples as lists (TOML and JSON arrays); None left out (TOML has no null).
            fields = {key: _lists(getattr(demand, key)) for key in demand.__dataclass_fields__}
            return {"law": name, **{k: v for k, v in fields.items() if v is not None}}
    raise ValueError(f"unknown demand law {type(demand).__name__}")


def _lists(value):
    return [_lists(v) for v in value] if isinstance(value, tuple) else value


def check_paths(demand: np.ndarray, periods: int) -> np.ndarray:
    """Validates given demand paths and returns them as a float64 array (N, T).

    Args:
        demand: Demand shaped (T,) for one episode or (N, T).
        periods: The chain's number of periods T.

    Raises:
        ValueError: If the shape does not match or a value is negative or not finite.
    """
    paths = np.asarray(demand, dtype=np.float64)
    if paths.ndim == 1:
        paths = paths[None, :]
    if paths.ndim != 2 or paths.shape[1] != periods:
        raise ValueError(
            f"demand must be shaped (N, {periods}) (episodes x periods), got {np.shape(demand)}"
        )
    if not np.all(np.isfinite(paths)) or np.any(paths < 0):
        raise ValueError("demand must be finite and >= 0 in every period")
    return paths


class RunStreams(NamedTuple):
    """Independent seed streams of one run, spawned from its seed in a fixed order."""

    search: np.random.SeedSequence
    collect: np.random.SeedSequence
    train: np.random.SeedSequence
    test: np.random.SeedSequence


def child_seeds(seed: np.random.SeedSequence, count: int) -> list[np.random.SeedSequence]:
    """The first ``count`` children of a seed sequence, without advancing it.

    ``seed.spawn`` remembers how many children it gave, so calling it twice on one object gives
    different streams; these are the children a fresh ``spawn(count)`` gives, every time.
    """
    return [
        np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, i), pool_size=seed.pool_size)
        for i in range(count)
    ]


def run_streams(seed: int) -> RunStreams:
    """Spawns the run's independent streams, so that test paths never overlap training paths.

    Args:
        seed: The run's seed, an integer >= 0.
    """
    _check_count("seed", seed, 0)
    return RunStreams(*child_seeds(np.random.SeedSequence(seed), 4))
