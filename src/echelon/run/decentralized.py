"""The decentralized view as a stage of the run: per-stage logs, per-stage agents, joint agents.

    split  -> stages/<reward>/<agent>.h5, stages.json   each stage's own log, per stage reward
    train  -> agents/decentralized/<algo>-<reward>-s<seed>/<agent>/checkpoint.pt
              agents/decentralized/<algo>-<reward>-s<seed>/decentralized.json (the joint agent)

Every stage's agent of an algorithm is trained with the settings of the centralized variant of
that algorithm (its preset, epochs and overrides) and the same seeds: independent learners,
nothing shared. An algorithm that ignores rewards (behaviour cloning) is trained once, on the
first reward's split, and labelled with the reward ``any``. Each split and each agent is redone
only when its inputs change, like every stage of the run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from echelon.run.config import RunConfig
from echelon.run.folder import RunFolder, digest, stage_digest, write_json
from echelon.run.stages import AgentVariant, TrainJob, TrainSource, train_sources

# The reward label of agents whose algorithm reads no rewards: any stage reward gives them.
ANY_REWARD = "any"


class DecentralizedAgent(NamedTuple):
    """A joint agent of the decentralized view: one trained agent per stage, and its manifest."""

    variant: str
    """Its label, e.g. ``iql-decentralized-local``."""
    algorithm: str
    reward: str
    """The stage reward its agents were trained with (``any`` when the algorithm reads none)."""
    seed: int
    folder: Path
    """The folder of its manifest (``decentralized.json``) and its stages' folders."""


def _splits(run: RunConfig, folder: RunFolder, data, collect_digest: str,
            log=print) -> dict[str, tuple[Any, str]]:
    """Each reward's per-stage split, made (or found) in ``stages/<reward>/``.

    Returns:
        The loaded split and its digest, by reward.
    """
    from echelon.data.stage_split import STAGES_FILE, load_stage_split, save_stage_split, split_stages

    out = {}
    for reward in run.decentralized.rewards:
        relative = f"stages/{reward}"
        where = folder.path / relative
        inputs = digest("stage-split", collect_digest, reward)
        recorded = stage_digest(where / "stage.json")
        finished = (where / STAGES_FILE).exists()
        if recorded == inputs and finished:
            log(f"  per-stage logs ({reward} reward): done earlier, skipped")
        else:
            if (recorded is not None and recorded != inputs) or (recorded is None and finished):
                # Made from other inputs (or by hand): moved aside with force, else refused. A
                # split of these inputs cut short is redone in place.
                folder.clear(f"stage split {reward}", inputs, relative, recorded="other inputs")
            where.mkdir(parents=True, exist_ok=True)
            write_json(where / "stage.json", {"digest": inputs})
            save_stage_split(split_stages(data, reward), where, source_file="dataset.h5")
            log(f"  per-stage logs ({reward} reward): {where}")
        out[reward] = (load_stage_split(where), inputs)
    return out


def decentralized_agents(run: RunConfig, folder: RunFolder, data, variants: list[AgentVariant],
                         collect_digest: str, *, executor: Any = None, resources: Any = None,
                         progress: bool = False, log=print) -> list[DecentralizedAgent]:
    """The decentralized stage: splits the dataset per stage and reward, trains every stage's
    agent of every algorithm, reward and seed, and writes each joint agent's manifest.

    Args:
        run: The run (``run.decentralized`` says what to train).
        folder: The run folder.
        data: The run's dataset.
        variants: The centralized variants (``agent_variants(run)``): each algorithm's settings.
        collect_digest: The dataset's digest.
        executor, resources, progress, log: As :func:`echelon.run.stages.train_agents`.

    Returns:
        The joint agents, by algorithm, reward and seed.
    """
    from echelon.agents.decentralized import write_manifest
    from echelon.agents.registry import ALGORITHMS
    from echelon.agents.trainer import CHECKPOINT_NAME

    view = run.decentralized
    seeds = view.chosen_seeds(run.train)
    splits = _splits(run, folder, data, collect_digest, log=log)
    settings = {v.algorithm: v for v in variants if v.name == v.algorithm}
    plans = []  # (algorithm, reward label, split reward)
    for algorithm in view.chosen_algorithms(run.train):
        if ALGORITHMS[algorithm].uses_rewards:
            plans += [(algorithm, reward, reward) for reward in view.rewards]
        else:
            plans.append((algorithm, ANY_REWARD, view.rewards[0]))
    root = folder.path / "agents" / "decentralized"
    agents = [DecentralizedAgent(f"{algorithm}-decentralized-{label}", algorithm, label, seed,
                                 root / f"{algorithm}-{label}-s{seed}")
              for algorithm, label, _ in plans for seed in seeds]
    sources = []
    for reward in dict.fromkeys(source for _, _, source in plans):
        split, split_digest = splits[reward]
        for stage, name in enumerate(split.names):
            jobs = []
            for algorithm, label, source in plans:
                if source != reward:
                    continue
                base = settings[algorithm]
                variant = dataclasses.replace(base, name=f"{algorithm}-decentralized-{label}-{name}")
                for seed in seeds:
                    train_config = base.for_seed(seed)[1]
                    jobs.append(TrainJob(variant, seed,
                                         root / f"{algorithm}-{label}-s{seed}" / name,
                                         digest("train", split_digest, stage, algorithm,
                                                base.algo_config, train_config)))
            sources.append(TrainSource(split.dataset(stage), split.files[stage], jobs))
    train_sources(sources, folder, ensemble=run.train.ensemble, executor=executor,
                  resources=resources, progress=progress, log=log)
    for agent in agents:
        reward = agent.reward if agent.reward != ANY_REWARD else view.rewards[0]
        split = splits[reward][0]
        write_manifest(agent.folder, chain=run.chain, algorithm=agent.algorithm, reward=reward,
                       checkpoints=[agent.folder / name / CHECKPOINT_NAME for name in split.names])
    return agents




# The centralized heuristics and their decentralized counterparts, as keys of BASELINES.
HEURISTIC_PAIRS = (("tuned", "decentralized"), ("time-aware", "decentralized-time-aware"))
# The bullwhip is measured on this many held-out paths: each policy's variances are averaged
# over them, which settles them to a few percent, and ten policies replay them in seconds.
_BULLWHIP_PATHS = 100


def decentralized_view(run: RunConfig, folder: Path, evaluation: dict[str, Any], search,
                       baselines: dict[str, Any], agents: list, decentralized: list[DecentralizedAgent]
                       ) -> dict[str, Any] | None:
    """The report step's data for "The decentralized view": the bullwhip of the policies it
    compares, and each stage's orders under both views on the first held-out path.

    Returns:
        ``write_report``'s ``decentralized_view`` (``bullwhip``, ``orders``, ``pairs``), or
        None when the run has neither decentralized agents nor decentralized heuristics.
    """
    from echelon.agents.decentralized import load_decentralized
    from echelon.agents.policy import AgentPolicy
    from echelon.evaluation.decentralized import BullwhipRow, bullwhip_ratios
    from echelon.evaluation.evaluate import PolicyResult
    from echelon.evaluation.kinds import PolicyKind
    from echelon.policies.families import HeuristicSpec
    from echelon.run.baselines import BASELINES
    from echelon.run.stages import behaviours_from_search, held_out_paths
    from echelon.sim.rollout import rollout

    pairs = [(central, local) for central, local in HEURISTIC_PAIRS
             if central in baselines and local in baselines]
    if not decentralized and not pairs:
        return None
    results = [PolicyResult.from_dict(p) for p in evaluation["policies"]]
    means = {r.name: r.profit.mean() for r in results}
    paths = held_out_paths(run)[:_BULLWHIP_PATHS]
    chain = run.chain
    policies: list[tuple[str, PolicyKind, Any]] = []
    expert = next(r.name for r in results if r.kind is PolicyKind.BEST_EXPERT)
    policies.append((expert, PolicyKind.BEST_EXPERT,
                     behaviours_from_search(run, search)[0].policy(chain)))
    for key in (name for pair in pairs for name in pair):
        policies.append((BASELINES[key].label, PolicyKind.BASELINE,
                         HeuristicSpec.from_dict(baselines[key]).policy(chain)))
    seed = min((agent.seed for agent in decentralized), default=None)
    best: dict[str, str] = {}  # per algorithm, the label of its best decentralized agent at seed
    for algorithm in dict.fromkeys(agent.algorithm for agent in decentralized):
        central = next((a for a in agents if a.variant == algorithm and a.seed == seed), None)
        if central is not None:
            policies.append((f"{algorithm} seed {seed} (centralized)", PolicyKind.AGENT,
                             AgentPolicy(central.checkpoint, chain, device="cpu")))
        for agent in decentralized:
            if agent.algorithm == algorithm and agent.seed == seed:
                label = f"{agent.variant} seed {seed}"
                policies.append((label, PolicyKind.DECENTRALIZED,
                                 load_decentralized(agent.folder, chain, device="cpu")))
                if means.get(label, -np.inf) > means.get(best.get(algorithm), -np.inf):
                    best[algorithm] = label
    rows, requests = [], {}
    for label, _kind, policy in policies:
        trajectory = rollout(chain, policy, paths, record=True).trajectory
        rows.append(BullwhipRow(label, bullwhip_ratios(trajectory["requests"], paths)))
        requests[label] = trajectory["requests"][0]
    shown = []
    if decentralized:
        algorithm = run.decentralized.chosen_algorithms(run.train)[0]
        shown += [label for label, kind, _ in policies
                  if (kind is PolicyKind.AGENT and label.startswith(f"{algorithm} seed"))
                  or label == best.get(algorithm)]
    if pairs:
        shown += [BASELINES[key].label for key in pairs[0]]
    kinds = {label: kind for label, kind, _ in policies}
    orders = (paths[0], [requests[label] for label in shown], shown,
              [kinds[label] for label in shown]) if shown else None
    return {"bullwhip": rows, "orders": orders,
            "pairs": [(BASELINES[a].label, BASELINES[b].label) for a, b in pairs]}


__all__ = ["ANY_REWARD", "HEURISTIC_PAIRS", "DecentralizedAgent", "decentralized_agents",
           "decentralized_view"]
