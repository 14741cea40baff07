"""``echelon robustness RUN_DIR``: every policy of a finished run in shifted worlds.

For each shift (:data:`echelon.evaluation.robustness.SHIFTS`) the world is the run's chain with
that change. Every policy of the run's ``eval.json`` is rebuilt as it was made: heuristics keep
their levels, planners their demand forecast (the run's, or the law they fitted), trained agents
and neural policies their weights, reading the state as they were trained to (their own
observation layout, so longer lead times do not change what they see). They all face the same
held-out paths of the world (drawn from the run's test stream), beside the world's
perfect-information bound and the time-aware base-stock re-tuned for that world on the run's
search stream. The results go to ``robustness.json``; the run's report then gets its section.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from echelon.evaluation.kinds import PolicyKind
from echelon.run.config import RunConfig
from echelon.sim import core
from echelon.sim.config import ChainConfig

ROBUSTNESS_FILE = "robustness.json"
# What rebuilding or running one policy in a world may raise when it cannot act there (weights of
# another shape, a spec that does not fit): the policy is reported as not evaluated, with why.
_CANNOT_ACT = (ValueError, RuntimeError, KeyError, IndexError)
# The child of the run's search stream the re-tuned heuristics search on (the run's stages use
# its first 2 + len(TUNED) children).
_RETUNE_CHILD = 1000


class _TrainedView:
    """A policy that reads the state through the chain it was trained on (its observation
    layout), whatever chain it acts in: same stages, its own history depth."""

    reads_observation = False

    def __init__(self, policy: Any, trained: ChainConfig) -> None:
        self.policy, self.trained = policy, trained

    def act(self, obs: np.ndarray | None, state: core.ChainState) -> np.ndarray:
        seen = core.observation(self.trained, state) if self.policy.reads_observation else None
        return self.policy.act(seen, state)


def _policy(result: dict[str, Any], run: RunConfig, world: ChainConfig, folder: Path) -> Any:
    """The policy behind one entry of ``eval.json``, acting in ``world`` as it was made."""
    from echelon.agents.decentralized import load_agent
    from echelon.models.planning import policy_from_spec
    from echelon.policies.families import HeuristicSpec
    from echelon.run.baselines import BASELINES

    kind, params = PolicyKind(result["kind"]), result["params"]
    if kind in (PolicyKind.AGENT, PolicyKind.DECENTRALIZED):
        agent = load_agent(folder / params["checkpoint"], device="cpu")
        return _TrainedView(agent, getattr(agent, "chain", run.chain))
    if kind is PolicyKind.MODEL:
        spec = params["spec"]
        if spec.get("kind") == "neural":
            return _TrainedView(policy_from_spec(spec, ChainConfig.from_dict(spec["chain"]),
                                                 base=folder), run.chain)
        return policy_from_spec(spec, world, base=folder)
    if "family" in params:
        rest = {k: v for k, v in params.items() if k not in ("family", "mode")}
        return HeuristicSpec(params["family"], params["mode"], rest).policy(world)
    planner = next((b for b in BASELINES.values() if b.label == result["name"] and b.planner),
                   None)
    if planner is None or "neural" in planner.params:
        raise ValueError("trained for the run's chain by a planner that is not rebuilt per world")
    # It plans with the world's dynamics and the run's demand law, as it was built.
    return planner.planner(world.replace(demand=run.chain.demand))


def robustness(run: RunConfig, folder: str | os.PathLike, shifts: tuple[str, ...], *,
               episodes: int | None = None, log=print) -> dict[str, Any]:
    """Evaluates every policy of a finished run in each shifted world.

    Args:
        run: The run's configuration (its ``config.toml``).
        folder: The run folder, holding ``eval.json`` and the policies' files.
        shifts: Keys of ``SHIFTS``.
        episodes: Held-out paths per world (default: the run's ``evaluate.episodes``).
        log: Where progress lines go.

    Returns:
        What ``robustness.json`` holds.

    Raises:
        ValueError: If the run has no ``eval.json``, or a shift does not apply to its chain
            (one line naming the shift and the demand law, before any work).
    """
    from echelon.evaluation import stats
    from echelon.evaluation.evaluate import evaluate_bound, evaluate_policy
    from echelon.evaluation.robustness import SHIFTS, shifted_chain
    from echelon.policies.base_stock import RequestMode
    from echelon.policies.families import Family, HeuristicSpec
    from echelon.policies.search import SearchConfig, Space, run_search
    from echelon.run.folder import read_json
    from echelon.sim.demand import child_seeds, run_streams

    folder = Path(folder)
    if not (folder / "eval.json").is_file():
        raise ValueError(f"{folder}: no eval.json; robustness needs a finished run "
                         "(echelon reproduce --out RUN_DIR)")
    evaluation = read_json(folder / "eval.json")
    results = [p for p in evaluation["policies"] if p["kind"] != PolicyKind.BOUND.value]
    episodes = episodes or run.evaluate.episodes
    worlds = [(name, shifted_chain(name, run.chain)) for name in shifts]  # refuses before work
    streams = run_streams(run.seed)
    # A child of the run's search stream that no stage of the run draws from.
    retune_seed = child_seeds(streams.search, _RETUNE_CHILD + 1)[_RETUNE_CHILD]
    rng = np.random.default_rng(np.random.SeedSequence([run.seed, 0x5B1F7]))
    out = []
    for index, (name, world) in enumerate(worlds):
        log(f"[{index + 1}/{len(worlds)}] {SHIFTS[name].label}: re-tuning the time-aware "
            f"base-stock, then {len(results)} policies on {episodes} paths")
        paths = world.demand.sample(np.random.default_rng(streams.test), episodes, world.periods)
        bound = evaluate_bound(world, paths)
        settings = SearchConfig(space=Space.WIDE, family=Family.TIME_AWARE, mode=RequestMode.CLIP,
                                episodes=run.evaluate.tuning_episodes, top_k=1)
        best = run_search(world, settings, retune_seed).best
        retuned_spec = HeuristicSpec(Family.TIME_AWARE, RequestMode.CLIP, best.params)
        retuned = evaluate_policy(world, "re-tuned time-aware base-stock", PolicyKind.BASELINE,
                                  retuned_spec.policy(world), paths)
        entries = []
        for result in [*results, None]:
            if result is None:
                played, label, params = retuned, retuned.name, {"params": best.params}
            else:
                label, params = result["name"], result["params"]
                try:
                    played = evaluate_policy(world, label, PolicyKind(result["kind"]),
                                             _policy(result, run, world, folder), paths)
                except _CANNOT_ACT as error:
                    entries.append({"name": label, "kind": result["kind"], "params": params,
                                    "skipped": " ".join(str(error).split())[:200]})
                    continue
            versus = stats.paired_comparison(played.profit, retuned.profit, rng,
                                             n_bootstrap=run.evaluate.bootstrap)
            entries.append({
                "name": label, "kind": played.kind.value, "params": params,
                "mean": float(played.profit.mean()),
                "share_of_bound": stats.share_of_bound(played.profit, bound.profit).ratio_of_means,
                "vs_retuned": {"mean_difference": versus.mean_difference,
                               "ci_low": versus.ci_low, "ci_high": versus.ci_high},
            })
        out.append({"shift": name, "label": SHIFTS[name].label,
                    "description": SHIFTS[name].description, "chain": world.to_dict(),
                    "bound_mean": float(bound.profit.mean()), "policies": entries})
    return {"episodes": episodes, "seed": run.seed, "worlds": out}


__all__ = ["ROBUSTNESS_FILE", "robustness"]
