"""One table of an evaluation: each policy's summary, share of the bound, and paired difference
to the best expert on the same paths."""

from __future__ import annotations

from typing import Any

import numpy as np

from echelon.evaluation.evaluate import Kind, PolicyResult
from echelon.evaluation.stats import paired_comparison, share_of_bound, summarize


def comparison_rows(results: list[PolicyResult], rng: np.random.Generator) -> list[dict[str, Any]]:
    """A row per policy, in the order given.

    Args:
        results: Every policy's results on common paths; one of them the best expert.
        rng: The source of the paired bootstraps' draws (one comparison after another).

    Returns:
        Rows with ``name``, ``kind``, the :class:`~echelon.evaluation.stats.Summary` fields,
        ``undiscounted_mean``, ``service_level``, ``share_of_bound`` (when the bound is among
        the results) and ``vs_best_expert`` (a paired comparison, for every other policy).
    """
    expert = next(r for r in results if r.kind is Kind.BEST_EXPERT)
    bound = next((r for r in results if r.kind is Kind.BOUND), None)
    rows = []
    for r in results:
        row = {"name": r.name, "kind": r.kind.value, **summarize(r.profit).to_dict(),
               "undiscounted_mean": float(r.undiscounted_profit.mean()),
               "service_level": float(r.service_level.mean())}
        if bound is not None:
            row["share_of_bound"] = share_of_bound(r.profit, bound.profit).ratio_of_means
        if r is not expert:
            row["vs_best_expert"] = paired_comparison(r.profit, expert.profit, rng).to_dict()
        rows.append(row)
    return rows
