"""Robustness: every policy of a run in worlds it was not made for, and how to report it.

A shift is one change of the chain (:data:`SHIFTS`, a registry): demand's mean scaled, another
law of the same mean, longer lead times, smaller capacities, a season. In each shifted world
every policy keeps what it was tuned or trained with (its levels, weights, forecasts) and acts on
the world's dynamics; its profit is given as a share of that world's own perfect-information
bound and paired against the best heuristic re-tuned for that world (what an operator who
re-tunes would get).

The demand shifts are defined on every law and engine of the demand registry through what each
states, its mean per period (:func:`~echelon.sim.demand.mean_curve`), and change only what they
name. Where a shift has no meaning for the chain's demand (a law of one mean for an engine whose
mean changes from period to period), it is refused in one line naming the shift and the law.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from echelon.sim.config import ChainConfig
from echelon.sim.demand import DEMAND_LAWS, Geometric, MeanCurve, NegativeBinomial, mean_curve

# A mean curve this flat (relative to its size) is one mean: a stationary regime chain's curve,
# computed by repeated matrix products, drifts by rounding alone.
_FLAT_TOLERANCE = 1e-9
# The seasonal shift: a 10-period season, +-50% (three cycles of OR-Gym's 30 periods).
_SEASON, _AMPLITUDE = 10, 0.5
# The negative-binomial shift's dispersion: variance mean + mean^2 / 2.
_DISPERSION = 2.0


@dataclass(frozen=True)
class Shift:
    """One change of the chain."""

    label: str
    """Its name in tables and figures."""
    apply: Callable[[ChainConfig], ChainConfig]
    """The shifted chain; raises ValueError (why, without the shift's name) where the shift has
    no meaning for the chain (see :func:`shifted_chain`)."""
    description: str
    """What the world changes, for every demand law, and where it is refused."""


def _law(demand: Any) -> str:
    """The demand's name in the registry (its class name if it has none)."""
    return next((name for name, cls in DEMAND_LAWS.items() if type(demand) is cls),
                type(demand).__name__)


def scaled_demand(chain: ChainConfig, factor: float) -> ChainConfig:
    """The chain with its demand's mean in every period multiplied by ``factor``: the same law or
    engine, through its ``scaled`` (exact but for whole units: uniform within 1/4, a whole
    bootstrap history or path within 1/2).

    Raises:
        ValueError: If the law cannot take that mean (a binomial's p or a geometric's mean
            would leave its range).
    """
    return chain.replace(demand=chain.demand.scaled(factor))


def _one_mean(chain: ChainConfig, why: str) -> float:
    """The demand's mean, the same in every period of the chain.

    Raises:
        ValueError: If the mean changes from period to period (``why``: why the shift cannot
            follow it).
    """
    curve = mean_curve(chain.demand, chain.periods)
    low, high = float(curve.min()), float(curve.max())
    if high - low > _FLAT_TOLERANCE * max(1.0, high):
        raise ValueError(f"its mean changes from period to period ({low:.4g} to {high:.4g}) and "
                         f"{why}")
    return float(curve[0])


def _negative_binomial(chain: ChainConfig) -> ChainConfig:
    demand = chain.demand
    if isinstance(demand, MeanCurve):  # the curve engine has negative binomial counts of its own
        return chain.replace(demand=replace(demand, dispersion=_DISPERSION))
    return chain.replace(demand=NegativeBinomial(
        _one_mean(chain, "a negative binomial law has one mean for all periods"), _DISPERSION))


def _geometric(chain: ChainConfig) -> ChainConfig:
    mean = _one_mean(chain, "a geometric law has one mean for all periods")
    if mean < 1.0:
        raise ValueError(f"its mean {mean:.4g} is below 1, the least a geometric law has")
    return chain.replace(demand=Geometric(1.0 / mean))


def _seasonal(chain: ChainConfig) -> ChainConfig:
    demand = chain.demand
    if isinstance(demand, MeanCurve):  # the season multiplies its curve; the rest is kept
        if demand.season:
            raise ValueError(f"it has a season of its own ({demand.season} periods) and a "
                             "curve holds one")
        return chain.replace(demand=replace(demand, season=_SEASON, amplitude=_AMPLITUDE,
                                            phase=0.0))
    dispersion = demand.dispersion if isinstance(demand, NegativeBinomial) else None
    level = _one_mean(chain, "only the curve engine takes a season on top of such a mean")
    return chain.replace(demand=MeanCurve(level=level, season=_SEASON, amplitude=_AMPLITUDE,
                                          dispersion=dispersion))


def _longer_lead_times(chain: ChainConfig) -> ChainConfig:
    longest = max(chain.periods, 10)
    return chain.replace(lead_time=tuple(min(lead + 1, longest) for lead in chain.lead_time))


# Said of each shift that puts another law in the place of the chain's.
_SAME_MEAN = ("The mean of every period is kept, so demand whose mean changes from period to "
              "period (a curve with a season, trend or shock, regimes started off their "
              "long-run mix, a varying path) is refused")

SHIFTS: dict[str, Shift] = {
    "demand-x0.75": Shift(
        "demand x0.75", lambda chain: scaled_demand(chain, 0.75),
        "The mean of every period times 0.75, the same law or engine (regimes: the rates; "
        "curve and log-ar1: the level): exact, but for whole units (a uniform law's mean "
        "within 1/4, a whole bootstrap history or path rounded value by value, within 1/2). "
        "Refused for a geometric law whose mean would fall below 1."),
    "demand-x1.25": Shift(
        "demand x1.25", lambda chain: scaled_demand(chain, 1.25),
        "The mean of every period times 1.25, as demand x0.75. Refused for a binomial law "
        "whose p would exceed 1."),
    "negative-binomial": Shift(
        "negative binomial, same mean", _negative_binomial,
        f"Over-dispersed counts of the same mean (dispersion {_DISPERSION:g}: variance mean + "
        f"mean^2 / {_DISPERSION:g}); a curve keeps its curve and takes these counts. "
        f"{_SAME_MEAN}, curves excepted."),
    "geometric": Shift(
        "geometric, same mean", _geometric,
        f"Geometric counts of the same mean (refused below 1, the least a geometric law has). "
        f"{_SAME_MEAN}."),
    "lead-time+1": Shift("lead times +1", _longer_lead_times,
                         "Every stage's lead time one period longer (at most the chain's "
                         "periods, or 10)."),
    "capacity-20%": Shift("capacities -20%", lambda chain: chain.replace(
        capacity=tuple(0.8 * c for c in chain.capacity)),
        "Every stage's production capacity 20% smaller."),
    "seasonal": Shift(
        f"seasonal (+-{100 * _AMPLITUDE:.0f}%)", _seasonal,
        f"The mean of every period times 1 + {_AMPLITUDE:g} sin(2 pi n / {_SEASON}). A curve "
        "without a season takes this one and keeps the rest (one with a season is refused); "
        "any other demand becomes a curve at its mean, with the same negative binomial counts "
        "for negative binomial demand and Poisson counts otherwise. "
        f"{_SAME_MEAN}, curves excepted."),
}
"""The registry of shifts, by the name ``--shifts`` takes."""

SHIFT_SETS: dict[str, tuple[str, ...]] = {"default": tuple(SHIFTS)}
"""Named sets of shifts (``--shifts default``)."""


def parse_shifts(text: str) -> tuple[str, ...]:
    """``default`` or ``name,name,...`` as shift names.

    Raises:
        ValueError: Naming the unknown shift and the known ones.
    """
    names: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item in SHIFT_SETS:
            names += SHIFT_SETS[item]
        elif item in SHIFTS:
            names.append(item)
        else:
            raise ValueError(f"--shifts: unknown shift {item!r}; known: {list(SHIFT_SETS)} or "
                             f"{list(SHIFTS)}")
    if not names:
        raise ValueError(f"--shifts must name at least one shift of {list(SHIFTS)}")
    return tuple(dict.fromkeys(names))


def shifted_chain(name: str, chain: ChainConfig) -> ChainConfig:
    """The world of shift ``name`` (a key of :data:`SHIFTS`) for ``chain``.

    Raises:
        ValueError: In one line naming the shift and the chain's demand law, where the shift
            has no meaning for that law.
    """
    try:
        return SHIFTS[name].apply(chain)
    except ValueError as error:
        raise ValueError(f"shift {name!r} does not apply to this chain's {_law(chain.demand)} "
                         f"demand: {error}") from None


def _group(name: str, params: dict[str, Any]) -> str:
    """Seeds of one trained variant share a row; every other policy has its own."""
    variant = params.get("variant")
    return f"{variant} (mean of seeds)" if variant is not None and "seed" in params else name


def robustness_rows(worlds: Sequence[dict[str, Any]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The grid of ``robustness.json``'s worlds: rows (policies, seeds of a variant averaged),
    shares of the bound and paired differences to the re-tuned heuristic.

    Returns:
        Row labels, (R, W) shares of the bound and (R, W) mean differences; NaN where a policy
        could not act in a world.
    """
    rows: dict[str, None] = {}
    cells: list[dict[str, list[tuple[float, float]]]] = []
    for world in worlds:
        here: dict[str, list[tuple[float, float]]] = {}
        for policy in world["policies"]:
            row = _group(policy["name"], policy.get("params", {}))
            rows.setdefault(row)
            if "share_of_bound" in policy:
                here.setdefault(row, []).append((policy["share_of_bound"],
                                                 policy["vs_retuned"]["mean_difference"]))
        cells.append(here)
    labels = list(rows)
    shares = np.full((len(labels), len(worlds)), np.nan)
    differences = np.full_like(shares, np.nan)
    for w, here in enumerate(cells):
        for r, label in enumerate(labels):
            if label in here:
                shares[r, w] = np.mean([s for s, _ in here[label]])
                differences[r, w] = np.mean([d for _, d in here[label]])
    return labels, shares, differences


def robustness_section(data: dict[str, Any], figure: str | None, number: int) -> list[str]:
    """The report's section "Robustness" from ``robustness.json``."""
    worlds = data["worlds"]
    labels, shares, differences = robustness_rows(worlds)
    names = [world["label"] for world in worlds]
    lines = [f"## {number}. Robustness", "",
             f"Every policy of this run in worlds it was not made for ({data['episodes']} common "
             "paths per world, `echelon robustness`): each keeps what it was tuned or trained "
             "with and acts on the world's dynamics. First each policy's mean as a share of that "
             "world's perfect-information bound, then its mean difference to the time-aware "
             "base-stock re-tuned for that world (negative: re-tuning would have earned more). "
             "Seeds of a trained variant are averaged; n/a where a policy cannot act there.", "",
             "| policy | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, row in zip(labels, shares, strict=True):
        lines.append(f"| {label} | " + " | ".join(
            "n/a" if np.isnan(v) else f"{100 * v:.1f}%" for v in row) + " |")
    lines += ["", "| policy | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, row in zip(labels, differences, strict=True):
        lines.append(f"| {label} | " + " | ".join(
            "n/a" if np.isnan(v) else f"{v:+.2f}" for v in row) + " |")
    skipped = {(p["name"], p["skipped"]) for w in worlds for p in w["policies"] if "skipped" in p}
    if skipped:
        lines += ["", "Not evaluated: " + "; ".join(f"{n} ({why})" for n, why in sorted(skipped))
                  + "."]
    described = {w["label"]: w["description"] for w in worlds if "description" in w}
    if described:
        lines += ["", "What each world changes:", ""]
        lines += [f"- **{label}**: {text}" for label, text in described.items()]
    lines.append("")
    if figure is not None:
        caption = "Each policy's share of the perfect-information bound in each shifted world."
        lines += [f"![{caption}](figures/{figure})", "", f"*{caption}*", ""]
    return lines


__all__ = ["SHIFTS", "SHIFT_SETS", "Shift", "parse_shifts", "robustness_rows",
           "robustness_section", "scaled_demand", "shifted_chain"]
