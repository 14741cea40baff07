"""Planning in a fitted model: policies optimised for the chain with an estimated demand law.

Once :mod:`echelon.models.demand_fit` has estimated the demand law from logs, the chain is fully
specified (its dynamics are known accounting identities) and policies can be optimised in it
directly, instead of being learned model-free from the logs:

* :func:`plan_time_aware` searches the time-aware base-stock family (:func:`~echelon.policies.
  search.optimize`) on demand paths sampled from the MODEL's law; its profit on the true demand
  is what the estimate is worth.
* :class:`~echelon.policies.receding.RollingScenarioLP` (re-exported here) re-plans every period
  with a scenario LP (:class:`~echelon.policies.chain_lp.ScenarioLP`) over the remaining horizon:
  K demand paths sampled from the model's law share the first period's orders
  (non-anticipativity in the first period only; later periods adapt to each scenario), the
  average discounted profit is maximised, and the shared first-period orders are played.

A planned policy is stored as a JSON spec (``policy.json``) that :func:`load_policy` turns back
into a :class:`~echelon.policies.base.Policy` for any chain with the same stages::

    {"kind": "heuristic", "family": "time-aware", "mode": "clip", "params": {...}}
    {"kind": "rolling-lp", "demand": {"law": "poisson", "mu": 19.8}, "scenarios": 16, "seed": 0}
    {"kind": "neural", "architecture": "mlp", ..., "weights": "network.pt", "sha256": "..."}

A heuristic spec may carry the ``demand`` it was planned for, for the record; loading ignores it.
A neural spec (:mod:`echelon.models.neural`) names its weights file, relative to the folder the
spec is loaded from (``base``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from echelon._io import atomic_write_json
from echelon.policies.base import Policy
from echelon.policies.base_stock import RequestMode
from echelon.policies.families import Family, HeuristicSpec
from echelon.policies.receding import RollingScenarioLP
from echelon.policies.search import SearchConfig, SearchResult, Space, run_search
from echelon.sim.config import ChainConfig
from echelon.sim.demand import Demand, demand_from_dict, demand_to_dict

PolicySpec = dict[str, Any]
"""A JSON-ready description of a planned policy (see the module docstring)."""

SPEC_FILE = "policy.json"
SPEC_KINDS = ("heuristic", "rolling-lp", "neural")


# --- time-aware base-stock in the model -------------------------------------------------------


@dataclass(frozen=True)
class PlanResult:
    """The best policy of a family found in a model of the chain."""

    spec: PolicySpec
    """The policy, as :func:`load_policy` reads it."""
    search: SearchResult
    """The search in the model: ranked candidates with their mean profit on model paths."""
    model: ChainConfig
    """The chain planned in (the fitted demand law)."""

    @property
    def params(self) -> dict[str, list[float]]:
        """The best parameters (``{"z": [...], "last_order_period": [...]}``)."""
        return self.search.best.params

    @property
    def model_mean(self) -> float:
        """Mean discounted profit of the best policy on the model's ranking paths (model demand)."""
        return self.search.best.mean

    def policy(self, chain: ChainConfig) -> Policy:
        """The planned policy acting in ``chain`` (e.g. the true chain, for evaluation)."""
        return policy_from_spec(self.spec, chain)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "model": self.model.to_dict(), "search": self.search.to_dict()}


def plan_time_aware(
    chain: ChainConfig,
    seed: np.random.SeedSequence,
    episodes: int = 200,
    *,
    mode: RequestMode = RequestMode.CLIP,
    top_k: int = 3,
    progress: bool = False,
    workers: int = 2,
) -> PlanResult:
    """Optimises the time-aware base-stock family on demand paths sampled from ``chain.demand``.

    Pass the fitted chain (:func:`~echelon.models.demand_fit.fitted_chain`) to plan in the
    estimated model; the true chain gives the benchmark of a planner that knows the law.

    Args:
        chain: The model: the chain's dynamics with the demand law to plan for.
        seed: Seed of the model's search paths (its first child) and ranking paths (second).
        episodes: Demand paths to search on, and as many to rank the finalists on, >= 1.
        mode: How shortfalls become requests.
        top_k: Finalists ranked on the separate paths, >= 1.
        progress: Show a progress bar on stderr.
        workers: Threads.

    Returns:
        The best parameters, as a spec and with the search that found them.
    """
    settings = SearchConfig(space=Space.WIDE, family=Family.TIME_AWARE, mode=mode,
                            episodes=episodes, top_k=top_k)
    result = run_search(chain, settings, seed, progress=progress, workers=workers)
    spec = heuristic_spec(Family.TIME_AWARE, result.best.params, mode, demand=chain.demand)
    return PlanResult(spec=spec, search=result, model=chain)


# --- policy specs -----------------------------------------------------------------------------


def heuristic_spec(
    family: Family, params: dict[str, list[float]], mode: RequestMode = RequestMode.CLIP,
    *, demand: Demand | None = None,
) -> PolicySpec:
    """The spec of a heuristic policy (a :class:`~echelon.policies.families.HeuristicSpec` with
    its ``kind``); ``demand`` records the law it was planned for."""
    spec: PolicySpec = {"kind": "heuristic", **HeuristicSpec(family, mode, params).to_dict()}
    if demand is not None:
        spec["demand"] = demand_to_dict(demand)
    return spec


def rolling_lp_spec(demand: Demand, scenarios: int = 16, seed: int = 0) -> PolicySpec:
    """The spec of a :class:`RollingScenarioLP` drawing from ``demand``, ``default_rng(seed)``."""
    return {"kind": "rolling-lp", "demand": demand_to_dict(demand), "scenarios": int(scenarios),
            "seed": int(seed)}


def policy_from_spec(spec: PolicySpec, chain: ChainConfig, *,
                     base: str | os.PathLike | None = None) -> Policy:
    """Builds the policy a spec describes, acting in ``chain``.

    Args:
        spec: The spec.
        chain: The chain the policy acts in.
        base: The folder a neural spec's weights file is relative to.

    Raises:
        ValueError: If the kind is unknown, a key is missing, or a value is invalid for the chain.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"a policy spec must be a JSON object, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in SPEC_KINDS:
        raise ValueError(f"policy spec kind must be one of {list(SPEC_KINDS)}, got {kind!r}")
    if kind == "neural":
        from echelon.models.neural import neural_policy

        return neural_policy(spec, chain, base)
    needed = {"heuristic": ("family", "mode", "params"),
              "rolling-lp": ("demand", "scenarios", "seed")}[kind]
    missing = [key for key in needed if key not in spec]
    if missing:
        raise ValueError(f"a {kind!r} policy spec needs {list(needed)}, missing {missing}")
    if kind == "heuristic":
        try:
            heuristic = HeuristicSpec.from_dict(spec)
        except ValueError as error:
            raise ValueError(f"bad heuristic policy spec: {error}") from None
        return heuristic.policy(chain)
    seed = spec["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"rolling-lp spec seed must be an integer >= 0, got {seed!r}")
    return RollingScenarioLP(chain, np.random.default_rng(seed),
                             demand=demand_from_dict(spec["demand"]), scenarios=spec["scenarios"])


def save_spec(spec: PolicySpec, directory: str | os.PathLike) -> Path:
    """Writes ``policy.json`` into a folder, atomically, after checking the spec's shape.

    Returns:
        The file written.
    """
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind not in SPEC_KINDS:
        raise ValueError(f"policy spec kind must be one of {list(SPEC_KINDS)}, got {kind!r}")
    return atomic_write_json(Path(directory) / SPEC_FILE, spec)


def load_spec(path: str | os.PathLike) -> PolicySpec:
    """Reads a spec from ``policy.json`` or from a folder holding one.

    Raises:
        ValueError: If the file is missing or not a JSON object.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SPEC_FILE
    if not path.is_file():
        raise ValueError(f"{path}: no such policy spec file")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: a policy spec must be a JSON object")
    return spec


def load_policy(path: str | os.PathLike, chain: ChainConfig) -> Policy:
    """The planned policy saved at ``path`` (a folder or its ``policy.json``), in ``chain``."""
    spec = load_spec(path)
    base = Path(path) if Path(path).is_dir() else Path(path).parent
    try:
        return policy_from_spec(spec, chain, base=base)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    except (KeyError, TypeError, AttributeError, IndexError) as error:  # a spec missing or mistyping a field
        raise ValueError(f"{path}: not a valid policy spec ({type(error).__name__}: {error})") from None


__all__ = [
    "SPEC_FILE",
    "PlanResult",
    "PolicySpec",
    "RollingScenarioLP",
    "heuristic_spec",
    "load_policy",
    "load_spec",
    "plan_time_aware",
    "policy_from_spec",
    "rolling_lp_spec",
    "save_spec",
]
