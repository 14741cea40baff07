"""Robustness: every policy of a run in worlds it was not made for, and how to report it.

A shift is one change of the chain (:data:`SHIFTS`, a registry): demand's mean scaled, another
law of the same mean, longer lead times, smaller capacities, a season. In each shifted world
every policy keeps what it was tuned or trained with (its levels, weights, forecasts) and acts on
the world's dynamics; its profit is given as a share of that world's own perfect-information
bound and paired against the best heuristic re-tuned for that world (what an operator who
re-tunes would get).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from echelon.sim.config import ChainConfig
from echelon.sim.demand import Geometric, MeanCurve, NegativeBinomial, Poisson


@dataclass(frozen=True)
class Shift:
    """One change of the chain."""

    label: str
    """Its name in tables and figures."""
    apply: Callable[[ChainConfig], ChainConfig]
    """The shifted chain."""


def scaled_demand(chain: ChainConfig, factor: float) -> ChainConfig:
    """The chain with its demand's mean multiplied by ``factor`` (same law).

    Raises:
        ValueError: If the law has no mean parameter to scale (poisson, negative-binomial and
            curve have).
    """
    demand = chain.demand
    if isinstance(demand, Poisson):
        return chain.replace(demand=Poisson(demand.mu * factor))
    if isinstance(demand, NegativeBinomial):
        return chain.replace(demand=NegativeBinomial(demand.mu * factor, demand.dispersion))
    if isinstance(demand, MeanCurve):
        return chain.replace(demand=MeanCurve(demand.level * factor, demand.season,
                                              demand.amplitude, demand.phase, demand.trend,
                                              demand.shocks, demand.dispersion))
    raise ValueError(f"a demand shift scales the mean of poisson, negative-binomial or curve "
                     f"demand; this chain's demand is {type(demand).__name__}")


def _geometric(chain: ChainConfig) -> ChainConfig:
    mean = max(float(chain.demand.mean), 1.0)  # a geometric law's mean is at least 1
    return chain.replace(demand=Geometric(1.0 / mean))


def _longer_lead_times(chain: ChainConfig) -> ChainConfig:
    longest = max(chain.periods, 10)
    return chain.replace(lead_time=tuple(min(lead + 1, longest) for lead in chain.lead_time))


SHIFTS: dict[str, Shift] = {
    "demand-x0.75": Shift("demand x0.75", lambda chain: scaled_demand(chain, 0.75)),
    "demand-x1.25": Shift("demand x1.25", lambda chain: scaled_demand(chain, 1.25)),
    # Over-dispersed counts of the same mean: variance mean + mean^2 / 2.
    "negative-binomial": Shift("negative binomial, same mean", lambda chain: chain.replace(
        demand=NegativeBinomial(float(chain.demand.mean), 2.0))),
    "geometric": Shift("geometric, same mean", _geometric),
    "lead-time+1": Shift("lead times +1", _longer_lead_times),
    "capacity-20%": Shift("capacities -20%", lambda chain: chain.replace(
        capacity=tuple(0.8 * c for c in chain.capacity))),
    # A 10-period season, +-50% around the same level: three cycles of OR-Gym's 30 periods.
    "seasonal": Shift("seasonal (+-50%)", lambda chain: chain.replace(
        demand=MeanCurve(level=float(chain.demand.mean), season=10, amplitude=0.5))),
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
    lines.append("")
    if figure is not None:
        caption = "Each policy's share of the perfect-information bound in each shifted world."
        lines += [f"![{caption}](figures/{figure})", "", f"*{caption}*", ""]
    return lines


__all__ = ["SHIFTS", "SHIFT_SETS", "Shift", "parse_shifts", "robustness_rows",
           "robustness_section", "scaled_demand"]
