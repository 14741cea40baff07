"""The decentralized view in the report: what it costs to let each stage decide from its own view.

Three comparisons on the run's held-out paths, each paired (the same paths, and for agents the
same training seeds):

* decentralized agents (one per stage, each trained on its own log with a stage reward) against
  the centralized agent of the same algorithm, seeds and budget;
* decentralized heuristics (each stage orders up to a level of the position it sees) against
  their centralized counterparts (echelon base-stock, time-aware);
* the bullwhip of each: the variance of each stage's orders over the variance of customer
  demand (:func:`bullwhip_ratios`).

The cost of decentralization is the centralized mean minus the decentralized mean, as a share
(percentage points) of the perfect-information bound's mean on the same paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echelon.evaluation import stats
from echelon.evaluation.kinds import PolicyKind


@dataclass(frozen=True)
class BullwhipRow:
    """One policy's bullwhip: each stage's order variance over the demand's."""

    label: str
    ratios: np.ndarray
    """(S,) Var(orders of stage i) / Var(customer demand), retailer first."""


def bullwhip_ratios(orders: np.ndarray, demand: np.ndarray) -> np.ndarray:
    """Each stage's order variance over the customer demand's variance, on the same paths.

    Variances are taken over the periods of each path (ddof 0) and averaged over paths, then
    divided: ``mean_paths Var_t(orders_i) / mean_paths Var_t(demand)``. A ratio above 1 means
    the stage's orders swing more than the demand it ultimately serves (Lee, Padmanabhan and
    Whang's bullwhip effect); a ratio that grows up the chain is the effect amplifying.

    Args:
        orders: (N, T, S) each stage's requests (after the core's truncation) on N paths.
        demand: (N, T) the customer demand of those paths.

    Returns:
        (S,) the ratio of each stage, retailer first.

    Raises:
        ValueError: If the shapes disagree or the demand never varies.
    """
    orders = np.asarray(orders, dtype=np.float64)
    demand = np.asarray(demand, dtype=np.float64)
    if orders.ndim != 3 or demand.shape != orders.shape[:2]:
        raise ValueError(f"orders must be (N, T, S) and demand (N, T) on the same paths, got "
                         f"{orders.shape} and {demand.shape}")
    demand_variance = demand.var(axis=1).mean()
    if demand_variance == 0.0:
        raise ValueError("the demand never varies on these paths: a bullwhip ratio is undefined")
    return orders.var(axis=1).mean(axis=0) / demand_variance


def _by_seed(results, kind: PolicyKind, key: tuple[str, ...]) -> dict[tuple, dict[int, object]]:
    """Results of one kind grouped by the params in ``key``, then by training seed."""
    out: dict[tuple, dict[int, object]] = {}
    for r in results:
        if r.kind is kind:
            out.setdefault(tuple(r.params.get(k) for k in key), {})[r.params["seed"]] = r
    return out


def _best_reward(algorithm: str, reward: str, mean: float, decentralized: dict, rng,
                 n_bootstrap: int) -> str:
    """The line saying which stage reward works best for ``algorithm``, and by how much it
    leads the runner-up on the seeds both have (paired, two-level bootstrap)."""
    runs = {r: by_seed for (a, r), by_seed in decentralized.items() if a == algorithm}
    if len(runs) == 1:
        return (f"- {algorithm}: its learning reads no reward, so one set of agents serves every "
                "stage reward." if reward == "any" else
                f"- {algorithm}: only the {reward} reward was trained.")
    means = {r: np.mean([p.profit for p in by_seed.values()]) for r, by_seed in runs.items()}
    second = max((r for r in runs if r != reward), key=means.get)
    seeds = sorted(set(runs[reward]) & set(runs[second]))
    if not seeds:
        return (f"- {algorithm}: the {reward} reward works best ({_fmt(mean)}), ahead of "
                f"{second} ({_fmt(means[second])}), on other seeds.")
    gap, (low, high) = stats.seeds_and_paths_ci(
        np.stack([runs[reward][s].profit - runs[second][s].profit for s in seeds]), rng,
        n_bootstrap=n_bootstrap)
    settled = "clearly" if low > 0 else "not clearly (the interval includes 0)"
    return (f"- {algorithm}: the {reward} reward works best ({_fmt(mean)}), {settled} ahead of "
            f"{second} by {gap:+.2f} [{low:+.2f}, {high:+.2f}].")


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _share(mean: float, bound) -> str:
    return f"{100 * mean / bound.profit.mean():.1f}%" if bound is not None else "n/a"


def _points(difference: float, bound) -> str:
    return f"{100 * difference / bound.profit.mean():+.2f}" if bound is not None else "n/a"


def decentralized_section(
    results: Sequence,
    bound,
    rng: np.random.Generator,
    n_bootstrap: int,
    heuristic_pairs: Sequence[tuple[str, str]] = (),
    bullwhip: Sequence[BullwhipRow] = (),
    figure: str | None = None,
    number: int = 5,
) -> list[str]:
    """The report's section "The decentralized view", or [] when the run has nothing of it.

    Args:
        results: Every ``PolicyResult`` of the evaluation.
        bound: The perfect-information bound's result, or None.
        rng: The bootstrap's random state.
        n_bootstrap: Bootstrap replicates of every interval.
        heuristic_pairs: (centralized label, decentralized label) of heuristics to pair.
        bullwhip: The bullwhip table's rows.
        figure: The orders figure's file name under ``figures/``, or None.
        number: The section's number in the report.

    Returns:
        Markdown lines.
    """
    by_name = {r.name: r for r in results}
    pairs = [(by_name[a], by_name[b]) for a, b in heuristic_pairs if a in by_name and b in by_name]
    decentralized = _by_seed(results, PolicyKind.DECENTRALIZED, ("algorithm", "reward"))
    centralized = _by_seed(results, PolicyKind.AGENT, ("variant",))
    if not (decentralized or pairs or bullwhip):
        return []
    paths = len(results[0].profit)
    lines = [f"## {number}. The decentralized view", "",
             "The paper's second formulation (Section III-B.2): each stage is an agent that sees "
             "only its own on-hand inventory and its own last L_i orders, orders from its "
             "supplier within the supplier's capacity, and learns from its own log alone (the "
             "per-stage split of the same dataset, `echelon dataset split-stages`; independent "
             "learners, nothing shared in training). Every policy below faced the same "
             f"{paths} held-out paths. The cost of decentralization is the centralized mean "
             "minus the decentralized mean in percentage points of the perfect-information "
             "bound (positive: decentralizing costs profit).", ""]
    if decentralized:
        lines += ["Decentralized agents against the centralized agent of the same algorithm, "
                  "trained on the same logs with the same settings, seeds and epochs. The "
                  "difference is decentralized minus centralized on the same paths and seeds, "
                  "with a 95% two-level bootstrap interval (seeds and paths resampled).", "",
                  "| algorithm | stage reward | seeds | decentralized mean | share of bound | "
                  "centralized mean | share of bound | difference [95% CI] | cost (points of "
                  "bound) |",
                  "|---|---|---:|---:|---:|---:|---:|---|---:|"]
        best: dict[str, tuple[str, float]] = {}
        for (algorithm, reward), runs in decentralized.items():
            twin = centralized.get((algorithm,), {})
            seeds = sorted(set(runs) & set(twin))
            mine = np.stack([runs[s].profit for s in sorted(runs)])
            mean = float(mine.mean())
            if best.get(algorithm, ("", -np.inf))[1] < mean:
                best[algorithm] = (reward, mean)
            if not seeds:
                lines.append(f"| {algorithm} | {reward} | {len(runs)} | {_fmt(mean)} | "
                             f"{_share(mean, bound)} | not trained | | | |")
                continue
            theirs = np.stack([twin[s].profit for s in seeds])
            matched = np.stack([runs[s].profit for s in seeds])
            difference, (low, high) = stats.seeds_and_paths_ci(matched - theirs, rng,
                                                               n_bootstrap=n_bootstrap)
            lines.append(
                f"| {algorithm} | {reward} | {len(seeds)} | {_fmt(matched.mean())} | "
                f"{_share(matched.mean(), bound)} | {_fmt(theirs.mean())} | "
                f"{_share(theirs.mean(), bound)} | {difference:+.2f} [{low:+.2f}, {high:+.2f}] | "
                f"{_points(-difference, bound)} |")
        lines.append("")
        for algorithm, (reward, mean) in best.items():
            lines.append(_best_reward(algorithm, reward, mean, decentralized, rng, n_bootstrap))
        lines.append("")
    if pairs:
        lines += ["Decentralized heuristics against their centralized counterparts, each tuned "
                  "by the same wide search on the run's search stream. A decentralized "
                  "base-stock stage orders up to its level of the position it sees: its on-hand "
                  "plus its own orders of the last L_i periods (it does not see what its "
                  "supplier shipped, nor anyone's stock).", "",
                  "| centralized | mean | share of bound | decentralized | mean | share of bound "
                  "| difference [95% CI] | cost (points of bound) |",
                  "|---|---:|---:|---|---:|---:|---|---:|"]
        for central, local in pairs:
            c = stats.paired_comparison(local.profit, central.profit, rng, n_bootstrap=n_bootstrap)
            lines.append(f"| {central.name} | {_fmt(c.mean_b)} | {_share(c.mean_b, bound)} | "
                         f"{local.name} | {_fmt(c.mean_a)} | {_share(c.mean_a, bound)} | "
                         f"{c.mean_difference:+.2f} [{c.ci_low:+.2f}, {c.ci_high:+.2f}] | "
                         f"{_points(-c.mean_difference, bound)} |")
        lines.append("")
    if bullwhip:
        stages = len(bullwhip[0].ratios)
        names = ["stage 0 (retailer)", *(f"stage {i}" for i in range(1, stages))]
        lines += ["The bullwhip: the variance of each stage's orders over the variance of "
                  "customer demand, on the same held-out paths (variances over the periods of "
                  "each path, averaged over paths). Above 1, a stage's orders swing more than the "
                  "demand the chain serves.", "",
                  "| policy | " + " | ".join(names) + " |",
                  "|---|" + "---:|" * stages]
        for row in bullwhip:
            lines.append(f"| {row.label} | " + " | ".join(_fmt(v) for v in row.ratios) + " |")
        lines.append("")
    if figure is not None:
        caption = ("Each stage's orders on the first held-out path under the centralized and the "
                   "decentralized view, customer demand in grey.")
        lines += [f"![{caption}](figures/{figure})", "", f"*{caption}*", ""]
    return lines


__all__ = ["BullwhipRow", "bullwhip_ratios", "decentralized_section"]
