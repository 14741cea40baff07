"""What a wrong demand model costs: plan from logs whose demand the fitted law cannot describe.

Two worlds, each logged with the run's behaviour policies: a geometric (over-dispersed) demand of
the same mean as the default Poisson one, with a Poisson law fitted to its logs; and a demand that
was 50% higher when logged (Poisson 30) than when the plan is used (Poisson 20). In each, the plan
made in the fitted model is compared with the same planner given the law of the world it is used
in, on common test paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.models.demand_fit import compare_laws, fit_demand, fitted_chain
from echelon.models.planning import plan_time_aware, policy_from_spec
from echelon.sim.config import ChainConfig
from echelon.sim.demand import Geometric, Poisson, child_seeds
from echelon.sim.rollout import rollout


def misspecification_study(
    chain: ChainConfig,
    behaviours: Sequence[Behaviour],
    collect_settings: CollectConfig,
    *,
    law: str,
    plan_episodes: int,
    test_episodes: int,
    seed: np.random.SeedSequence,
    log=print,
) -> list[dict[str, Any]]:
    """Plans from logs of misspecified worlds and measures the cost against the true law.

    Args:
        chain: The run's chain (the world a plan is used in, but for its demand).
        behaviours: The behaviour policies that make the logs.
        collect_settings: How many episodes are logged, with what noise.
        law: The law fitted by censored maximum likelihood.
        plan_episodes: Model paths each plan is searched on.
        test_episodes: Test paths each pair of plans is compared on.
        seed: The study's stream; each world takes one child (logs, two plans, test paths).
        log: Where one line per world goes.

    Returns:
        One row per world, as ``model.json`` keeps them.
    """
    worlds = [
        ("geometric demand of mean 20, Poisson fitted", chain.replace(demand=Geometric(0.05)),
         chain.replace(demand=Geometric(0.05))),
        ("logged at Poisson(30), used at Poisson(20)", chain.replace(demand=Poisson(30.0)), chain),
    ]
    rows = []
    for (label, logged, used), world_seed in zip(worlds, child_seeds(seed, len(worlds))):
        collect_seed, plan_a, plan_b, test_seed = child_seeds(world_seed, 4)
        logs = collect(logged, behaviours, collect_settings, collect_seed)
        fit = fit_demand(logs, law)
        fitted = plan_time_aware(fitted_chain(logs, fit), plan_a, plan_episodes)
        known = plan_time_aware(used, plan_b, plan_episodes)
        test = used.demand.sample(np.random.default_rng(test_seed), test_episodes, used.periods)
        profit_fitted = rollout(used, policy_from_spec(fitted.spec, used), test).profit
        profit_known = rollout(used, policy_from_spec(known.spec, used), test).profit
        rows.append({
            "case": label,
            "fitted_mean": fit.params["mean"],
            "true_mean_when_used": used.demand.mean,
            "goodness_of_fit_p": fit.goodness_of_fit.p_value,
            "flagged": fit.goodness_of_fit.misspecified,
            "best_law_by_aic": compare_laws(logs)[0].name,
            "profit_fitted_plan": float(profit_fitted.mean()),
            "profit_true_law_plan": float(profit_known.mean()),
            "gap_percent": float(100.0 * (profit_fitted.mean() - profit_known.mean())
                                 / abs(profit_known.mean())),
            "paths": int(len(test)),
        })
        log(f"  misspecified: {label}: {rows[-1]['gap_percent']:+.1f}% against planning with "
            "the true law")
    return rows
