"""The parameters of a serial supply chain, validated once, on construction.

Stages are indexed from the customer up: stage 0 is the retailer, stage ``S`` is the raw-material
supplier with unlimited stock. Stages ``0 .. S-1`` hold inventory and order from the stage above;
the supplier only ships. With the defaults (OR-Gym 0.5.0 ``InvManagement``), ``S = 3``: retailer,
distributor, manufacturer, and supplier.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from echelon.sim.demand import Demand, DemandPath, Poisson, demand_from_dict, demand_to_dict

# OR-Gym's short keyword names, accepted wherever a ChainConfig field name is.
ORGYM_ALIASES = {
    "I0": "initial_inventory",
    "p": "price",
    "r": "replenishment_cost",
    "k": "unfulfilled_penalty",
    "h": "holding_cost",
    "c": "capacity",
    "L": "lead_time",
}

# A lead time may exceed the horizon up to OR-Gym's longest default lead time, so that OR-Gym's
# default chain (L = 3, 5, 10) stays valid at every horizon: OR-Gym accepts it, and the conformance
# fixture ``default-short-horizon`` plays it over 5 periods. Beyond max(periods, 10) an order could
# never arrive within the episode; it would only widen the observation, which holds max(L) rows of
# requests (L = 100,000 made 1.4 GB of observations for 3 episodes of 30 periods).
ORGYM_MAX_LEAD_TIME = 10


class ChainArrays(NamedTuple):
    """A config's per-stage parameters as arrays (computed once per config)."""

    capacity: np.ndarray
    replenishment_cost: np.ndarray
    unfulfilled_penalty: np.ndarray
    holding_cost: np.ndarray
    stage_price: np.ndarray


def _frozen_array(values: tuple[float, ...]) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False
    return array


def _real(value: Any) -> float:
    """The value as a float if it is a real number (not a string or bool), else NaN."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        return math.nan
    return float(value)


def _as_tuple(name: str, value: Any) -> tuple[float, ...]:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {value!r}") from None
    if array.ndim == 0:
        array = array[None]
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return tuple(float(v) for v in array)


def _check_range(name: str, values: tuple[float, ...], low: float, *, strict: bool = False) -> None:
    for i, v in enumerate(values):
        if not math.isfinite(v) or (v <= low if strict else v < low):
            relation = ">" if strict else ">="
            raise ValueError(f"{name}[{i}] must be finite and {relation} {low}, got {v!r}")


@dataclass(frozen=True)
class ChainConfig:
    """A serial supply chain of ``S`` inventory stages below an unlimited supplier.

    The defaults are OR-Gym 0.5.0's ``InvManagement-v1`` (lost sales); ``backlog=True`` gives
    ``InvManagement-v0``. Every field may also be given by its OR-Gym name (``I0``, ``p``, ``r``,
    ``k``, ``h``, ``c``, ``L``) through :meth:`from_kwargs`.

    Where it departs from OR-Gym, for absurd inputs only: a lead time longer than
    max(periods, 10) is refused (OR-Gym accepts it; such an order never arrives, and the
    observation would hold max(L) rows of requests).

    Raises:
        ValueError: On construction, naming the field and its allowed range, if a length does
            not match the number of stages or a value is out of range.
    """

    periods: int = 30
    """Number of periods in an episode [T], >= 1."""
    initial_inventory: tuple[float, ...] = (100.0, 100.0, 200.0)
    """On-hand inventory of stages 0..S-1 at the start [I0], >= 0; its length sets S."""
    price: float = 2.0
    """Retail price per unit sold to customers [p], >= 0."""
    replenishment_cost: tuple[float, ...] = (1.5, 1.0, 0.75, 0.5)
    """Cost per unit bought by stages 0..S-1, and per unit the supplier ships [r], length S+1."""
    unfulfilled_penalty: tuple[float, ...] = (0.10, 0.075, 0.05, 0.025)
    """Penalty per unit of unfilled demand or request at stages 0..S [k], length S+1."""
    holding_cost: tuple[float, ...] = (0.15, 0.10, 0.05)
    """Cost per unit on hand at the end of a period at stages 0..S-1 [h], length S."""
    capacity: tuple[float, ...] = (100.0, 90.0, 80.0)
    """Most units stage i+1 can ship to stage i per period [c], > 0, length S."""
    lead_time: tuple[int, ...] = (3, 5, 10)
    """Periods between stage i+1 shipping and stage i receiving [L], length S, in
    [0, max(periods, 10)] (``ORGYM_MAX_LEAD_TIME``: an order never arrives after the horizon)."""
    backlog: bool = False
    """Unfilled demand and requests carry over (InvManagement-v0) instead of being lost (v1)."""
    demand: Demand = field(default_factory=lambda: Poisson(20.0))
    """Law of the retailer's demand per period (a ``DemandPath`` replays a given path)."""
    alpha: float = 0.97
    """Per-period discount of the reward [alpha], in (0, 1]."""

    def __post_init__(self) -> None:
        if isinstance(self.periods, bool) or not isinstance(self.periods, (int, np.integer)):
            raise ValueError(f"periods must be an integer >= 1, got {self.periods!r}")
        if self.periods < 1:
            raise ValueError(f"periods must be an integer >= 1, got {self.periods!r}")
        object.__setattr__(self, "periods", int(self.periods))
        for name in ("initial_inventory", "replenishment_cost", "unfulfilled_penalty",
                     "holding_cost", "capacity"):
            object.__setattr__(self, name, _as_tuple(name, getattr(self, name)))
        lead = _as_tuple("lead_time", self.lead_time)
        if any(not math.isfinite(v) or v != int(v) for v in lead):
            raise ValueError(f"lead_time must hold whole numbers of periods, got {self.lead_time!r}")
        object.__setattr__(self, "lead_time", tuple(int(v) for v in lead))
        price = _real(self.price)
        if not math.isfinite(price) or price < 0:
            raise ValueError(f"price must be a finite number >= 0, got {self.price!r}")
        object.__setattr__(self, "price", price)
        if not isinstance(self.backlog, (bool, np.bool_)):
            raise ValueError(f"backlog must be True or False, got {self.backlog!r}")
        object.__setattr__(self, "backlog", bool(self.backlog))
        alpha = _real(self.alpha)
        if not (0.0 < alpha <= 1.0):
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha!r}")
        object.__setattr__(self, "alpha", alpha)

        stages = len(self.initial_inventory)
        if stages < 1:
            raise ValueError("initial_inventory must name at least one stage (S >= 1)")
        expected = {
            "replenishment_cost": stages + 1,
            "unfulfilled_penalty": stages + 1,
            "holding_cost": stages,
            "capacity": stages,
            "lead_time": stages,
        }
        for name, length in expected.items():
            if len(getattr(self, name)) != length:
                raise ValueError(
                    f"{name} must have length {length} (S = {stages} stages from "
                    f"initial_inventory{' plus the supplier' if length > stages else ''}), "
                    f"got {len(getattr(self, name))}"
                )
        _check_range("initial_inventory", self.initial_inventory, 0.0)
        _check_range("replenishment_cost", self.replenishment_cost, 0.0)
        _check_range("unfulfilled_penalty", self.unfulfilled_penalty, 0.0)
        _check_range("holding_cost", self.holding_cost, 0.0)
        _check_range("capacity", self.capacity, 0.0, strict=True)
        longest = max(self.periods, ORGYM_MAX_LEAD_TIME)
        for i, lead in enumerate(self.lead_time):
            if not 0 <= lead <= longest:
                raise ValueError(
                    f"lead_time[{i}] must be a whole number of periods in [0, {longest}] (at most "
                    f"max(periods, {ORGYM_MAX_LEAD_TIME}): a longer lead time never delivers "
                    f"within the episode), got {lead}"
                )

        demand = self.demand
        if isinstance(demand, type):
            raise ValueError(f"demand must be a demand law instance such as Poisson(20.0), got the class {demand.__name__}")
        if isinstance(demand, dict):
            demand = demand_from_dict(demand)
        elif not isinstance(demand, Demand) and np.ndim(demand) == 1:
            demand = DemandPath(tuple(demand))
        if not isinstance(demand, Demand):
            raise ValueError(f"demand must be a demand law or a path, got {self.demand!r}")
        if isinstance(demand, DemandPath) and len(demand.values) != self.periods:
            raise ValueError(
                f"demand path has {len(demand.values)} periods, periods is {self.periods}"
            )
        object.__setattr__(self, "demand", demand)

    # Derived quantities ------------------------------------------------------------------------

    @property
    def stages(self) -> int:
        """Number of inventory stages S (the supplier excluded)."""
        return len(self.initial_inventory)

    @property
    def max_lead_time(self) -> int:
        """Longest lead time, the depth of the order history in the observation."""
        return max(self.lead_time)

    @property
    def observation_size(self) -> int:
        """Length of OR-Gym's observation: S on-hand values and max(L) rows of S requests."""
        return self.stages * (self.max_lead_time + 1)

    @functools.cached_property
    def stage_price(self) -> np.ndarray:
        """(S+1,) price per unit each stage sells at: [p, r_0, ..., r_{S-1}] (read-only)."""
        return _frozen_array((self.price, *self.replenishment_cost[:-1]))

    @functools.cached_property
    def arrays(self) -> ChainArrays:
        """The per-stage parameters as read-only float64 arrays, for the core's inner loop."""
        return ChainArrays(
            capacity=_frozen_array(self.capacity),
            replenishment_cost=_frozen_array(self.replenishment_cost),
            unfulfilled_penalty=_frozen_array(self.unfulfilled_penalty),
            holding_cost=_frozen_array(self.holding_cost),
            stage_price=self.stage_price,
        )

    # Construction helpers ----------------------------------------------------------------------

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ChainConfig:
        """Builds a config from field names or OR-Gym's short names (``L=[3, 5, 10]``).

        Raises:
            ValueError: If a name is neither a field nor an OR-Gym alias, or a value is bad.
        """
        return cls().replace(**kwargs)

    def replace(self, **kwargs: Any) -> ChainConfig:
        """A copy with some fields changed (OR-Gym names accepted), validated again."""
        names = {f.name for f in dataclasses.fields(self)}
        changes = {}
        for key, value in kwargs.items():
            name = ORGYM_ALIASES.get(key, key)
            if name not in names:
                raise ValueError(
                    f"unknown chain parameter {key!r}; known: {sorted(names)} "
                    f"or OR-Gym's {sorted(ORGYM_ALIASES)}"
                )
            if name in changes:
                raise ValueError(f"{name} is given twice (as {name!r} and its OR-Gym alias)")
            changes[name] = value
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-ready dict; ``ChainConfig.from_dict`` inverts it."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
        out["demand"] = demand_to_dict(self.demand)
        return out

    def differences(self, other: ChainConfig) -> list[tuple[str, Any, Any]]:
        """``(field, value here, value there)`` for every field in which the chains differ
        (the demand law compared as its dict)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [(name, mine[name], theirs[name]) for name in mine if mine[name] != theirs[name]]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChainConfig:
        """Builds a config from :meth:`to_dict`'s output (unknown keys are an error)."""
        data = dict(data)
        if isinstance(data.get("demand"), dict):
            data["demand"] = demand_from_dict(data["demand"])
        return cls.from_kwargs(**data)
