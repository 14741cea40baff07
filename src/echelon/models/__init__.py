"""Model-based planning from logs: estimate the demand law, then optimise in the known dynamics."""

from echelon.models.demand_fit import (
    LAWS,
    DemandFit,
    DemandObservations,
    Estimate,
    GoodnessOfFit,
    compare_laws,
    fit_demand,
    fitted_chain,
    observe_demand,
)
from echelon.models.planning import (
    PlanResult,
    PolicySpec,
    RollingScenarioLP,
    heuristic_spec,
    load_policy,
    load_spec,
    plan_time_aware,
    policy_from_spec,
    rolling_lp_spec,
    save_spec,
)

__all__ = [
    "LAWS",
    "DemandFit",
    "DemandObservations",
    "Estimate",
    "GoodnessOfFit",
    "PlanResult",
    "PolicySpec",
    "RollingScenarioLP",
    "compare_laws",
    "fit_demand",
    "fitted_chain",
    "heuristic_spec",
    "load_policy",
    "load_spec",
    "observe_demand",
    "plan_time_aware",
    "policy_from_spec",
    "rolling_lp_spec",
    "save_spec",
]
