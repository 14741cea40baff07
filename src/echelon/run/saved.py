"""Evaluating what was saved earlier: trained agents and planned policies, beside the baselines.

``echelon evaluate`` builds a run of the paper preset around them, on the chain the agents were
trained for, and evaluates everything on that run's held-out paths.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from echelon.evaluation.evaluate import PolicyResult
from echelon.run.config import RunConfig, resolve
from echelon.run.stages import TrainedAgent, evaluate_stage, search_stage, tune_baselines
from echelon.sim.config import ChainConfig


def saved_agent(path: str | Path) -> tuple[TrainedAgent, ChainConfig]:
    """A trained agent from its folder (or checkpoint file), and the chain it was trained for.

    A folder of decentralized agents (``decentralized.json``, from ``echelon train
    --decentralized``) is one agent: its algorithm and whole chain are the manifest's, its seed
    the first stage's, and its ``checkpoint`` the folder.

    Raises:
        CheckpointError: If the checkpoint (or the manifest, or its first stage's checkpoint) is
            missing or damaged.
    """
    from echelon.agents.decentralized import manifest_path, read_manifest
    from echelon.agents.trainer import CHECKPOINT_NAME, load_checkpoint

    if manifest_path(path) is not None:
        manifest = read_manifest(path)
        first = load_checkpoint(manifest.checkpoints[0])
        agent = TrainedAgent(manifest.folder.resolve().name, manifest.algorithm,
                             first["train_config"]["seed"], manifest.folder.resolve())
        return agent, manifest.chain
    path = Path(path)
    checkpoint = path / CHECKPOINT_NAME if path.is_dir() else path
    saved = load_checkpoint(checkpoint)
    agent = TrainedAgent(path.name if path.is_dir() else path.parent.name, saved["algorithm"],
                         saved["train_config"]["seed"], checkpoint.resolve())
    return agent, ChainConfig.from_dict(saved["chain"])


def agents_chain(chains: dict[str, ChainConfig], asked: ChainConfig | None = None) -> ChainConfig:
    """The chain an evaluation runs on: the one every agent was trained for.

    Args:
        chains: Each agent's chain, by the checkpoint it comes from.
        asked: The chain the user asked for (``--env``), if any.

    Raises:
        ValueError: If agents were trained for different chains, or ``asked`` is another.
    """
    if not chains:
        return asked or ChainConfig()
    (first_file, first), *others = chains.items()
    for file, chain in [*others, *([("--env", asked)] if asked else [])]:
        differences = first.differences(chain)
        if differences:
            shown = "; ".join(f"{name} {a!r} for {first_file}, {b!r} for {file}"
                              for name, a, b in differences[:6])
            raise ValueError(f"agents are evaluated on the chain they were trained for, and these "
                             f"differ: {shown}")
    return first


def evaluate_saved(
    agent_paths: Sequence[str | Path],
    policy_paths: Sequence[str | Path],
    *,
    baselines: Sequence[str],
    episodes: int,
    seed: int = 0,
    chain: ChainConfig | None = None,
    log=print,
) -> tuple[RunConfig, list[PolicyResult]]:
    """Saved agents and planned policies with the baselines on common held-out paths.

    Args:
        agent_paths: Agent folders (decentralized ones too) or checkpoint files.
        policy_paths: Folders (or files) of ``policy.json`` from ``echelon plan``.
        baselines: Keys of ``echelon.run.BASELINES``.
        episodes: Held-out paths, >= 2 (the paper's protocol uses the first 100 at most).
        seed: The run seed whose test stream gives the paths.
        chain: The chain asked for; the agents' chain by default.
        log: Where progress lines go.

    Returns:
        The run built around them and every policy's results.

    Raises:
        ValueError: On a damaged agent or policy, agents of different chains, or bad sizes.
    """
    from echelon.agents.decentralized import load_agent
    from echelon.models import load_spec
    from echelon.models.planning import load_policy

    run = resolve("paper", [f"evaluate.episodes={episodes}",
                            f"evaluate.paper_episodes={min(100, episodes)}",
                            f"evaluate.baselines={json.dumps(list(baselines))}", f"seed={seed}"])
    agents, chains = [], {}
    for path in agent_paths:
        agent, agent_chain = saved_agent(path)
        agents.append(agent)
        chains[str(path)] = agent_chain
    run = dataclasses.replace(run, chain=agents_chain(chains, chain))
    for agent in agents:  # refuses a damaged agent (any stage of a decentralized one) early
        load_agent(agent.checkpoint, run.chain, device="cpu")
    models = {}
    for path in policy_paths:
        load_policy(path, run.chain)  # refuses a damaged spec before any work
        spec = load_spec(path)
        if spec.get("kind") == "neural":  # its weights file, wherever the folder is
            base = Path(path) if Path(path).is_dir() else Path(path).parent
            spec = {**spec, "weights": str((base / spec["weights"]).resolve())}
        models[f"planned {Path(path).name}"] = spec
    evaluation = evaluate_stage(run, Path.cwd(), search_stage(run), tune_baselines(run), agents,
                                models=models, log=log)
    return run, [PolicyResult.from_dict(p) for p in evaluation["policies"]]
