"""Customer demand at the retailer: distributions, seeded demand paths and run streams.

Every demand path is drawn from an explicit ``numpy.random.Generator`` as an array shaped
(N, T): N episodes of T periods. Several policies evaluated on the same array face identical
demand (common random numbers).

The four laws are those of OR-Gym's ``InvManagement`` (``dist`` 1 to 4): Poisson, binomial,
discrete uniform (``scipy.stats.randint``: ``low`` inclusive, ``high`` exclusive) and geometric
(number of trials up to the first success, so its support starts at 1). ``DemandPath`` replays a
user-given path (OR-Gym's ``dist=5``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
from scipy import stats

from echelon._limits import check_memory

# Bytes per value while a law draws paths: NumPy's int64 draws and their float64 copy.
_DRAW_BYTES = 16


@runtime_checkable
class Demand(Protocol):
    """A law of per-period retail demand, i.i.d. over periods and episodes."""

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


DEMAND_LAWS: dict[str, type] = {
    "poisson": Poisson,
    "binomial": Binomial,
    "uniform": DiscreteUniform,
    "geometric": Geometric,
    "path": DemandPath,
}


def demand_from_dict(spec: dict) -> Demand:
    """Builds a demand law from ``{"law": "poisson", "mu": 20}`` (as in TOML presets).

    Raises:
        ValueError: If the law is unknown or a parameter is missing or out of range.
    """
    spec = dict(spec)
    law = spec.pop("law", None)
    if not isinstance(law, str) or law not in DEMAND_LAWS:
        raise ValueError(f"demand.law must be one of {sorted(DEMAND_LAWS)}, got {law!r}")
    try:
        return DEMAND_LAWS[law](**spec)
    except TypeError as error:
        raise ValueError(f"bad parameters for demand law {law!r}: {error}") from None


def demand_to_dict(demand: Demand) -> dict:
    """Inverse of :func:`demand_from_dict`."""
    for name, cls in DEMAND_LAWS.items():
        if type(demand) is cls:
            fields = {key: getattr(demand, key) for key in demand.__dataclass_fields__}
            if "values" in fields:
                fields["values"] = list(fields["values"])
            return {"law": name, **fields}
    raise ValueError(f"unknown demand law {type(demand).__name__}")


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
