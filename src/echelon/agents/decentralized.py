"""Trained decentralized agents: one checkpoint per stage, and the manifest that joins them.

Each stage's agent is an ordinary echelon agent of the stage's one-stage chain
(:func:`echelon.sim.stage_view.stage_chain`), trained on that stage's dataset of a per-stage
split (:mod:`echelon.data.stage_split`); its OR-Gym observation is the stage's local
observation, so acting in the whole chain it sees only that. A folder of such agents holds a
manifest, ``decentralized.json``::

    {"format": "echelon-decentralized", "version": 1,
     "chain": {... the whole chain ...}, "algorithm": "iql", "reward": "local",
     "stages": [{"stage": 0, "agent": "retailer", "checkpoint": "retailer/checkpoint.pt"}, ...]}

with checkpoint paths relative to the manifest's folder. :func:`load_decentralized` makes it a
:class:`~echelon.policies.decentralized.DecentralizedPolicy`, each stage's checkpoint checked to
be of that stage's chain; :func:`load_agent` loads either kind of agent folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from echelon._fields import manifest_field
from echelon._io import atomic_write_json
from echelon.agents.checkpoint import CheckpointError
from echelon.agents.policy import AgentPolicy
from echelon.agents.registry import ALGORITHMS
from echelon.policies.decentralized import DecentralizedPolicy
from echelon.sim.config import ChainConfig
from echelon.sim.stage_view import StageReward, agent_names, parse_reward, stage_chain

MANIFEST_NAME = "decentralized.json"
MANIFEST_FORMAT = "echelon-decentralized"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class DecentralizedManifest:
    """A manifest of per-stage agents, as :func:`read_manifest` reads it."""

    path: Path
    """The manifest file."""
    chain: ChainConfig
    """The whole chain."""
    algorithm: str
    """The algorithm every stage's agent was trained with (a key of ``ALGORITHMS``)."""
    reward: StageReward
    """The stages' reward in their datasets."""
    names: tuple[str, ...]
    """The agents' names, retailer first."""
    checkpoints: tuple[Path, ...]
    """Each stage's checkpoint, resolved against the manifest's folder."""

    @property
    def folder(self) -> Path:
        return self.path.parent


def manifest_path(path: str | os.PathLike) -> Path | None:
    """The manifest of an agent folder (or the manifest file itself), or None if it has none."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    return path if path.name == MANIFEST_NAME and path.is_file() else None


def write_manifest(folder: str | os.PathLike, chain: ChainConfig, algorithm: str,
                   reward: StageReward | str, checkpoints: Sequence[str | os.PathLike],
                   names: Sequence[str] | None = None) -> Path:
    """Writes ``decentralized.json`` in ``folder`` (atomically), joining per-stage agents.

    Args:
        folder: Where the manifest goes; the checkpoints are recorded relative to it.
        chain: The whole chain.
        algorithm: The algorithm of every stage's agent.
        reward: The stages' reward in their datasets.
        checkpoints: Each stage's ``checkpoint.pt``, retailer first.
        names: The agents' names (default: :func:`~echelon.sim.stage_view.agent_names`).

    Returns:
        The manifest's path.

    Raises:
        ValueError: If there is not one checkpoint (and name) per stage, or the algorithm or
            reward is unknown.
    """
    folder = Path(folder)
    names = tuple(names) if names is not None else agent_names(chain.stages)
    if len(checkpoints) != chain.stages or len(names) != chain.stages:
        raise ValueError(f"a decentralized manifest needs one checkpoint and one name per stage "
                         f"({chain.stages}), got {len(checkpoints)} and {len(names)}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    stages = [{"stage": i, "agent": name,
               "checkpoint": Path(os.path.relpath(Path(checkpoint).resolve(),
                                                  folder.resolve())).as_posix()}
              for i, (name, checkpoint) in enumerate(zip(names, checkpoints))]
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "chain": chain.to_dict(),
                "algorithm": algorithm, "reward": parse_reward(reward).value, "stages": stages}
    return atomic_write_json(folder / MANIFEST_NAME, manifest)


def read_manifest(path: str | os.PathLike) -> DecentralizedManifest:
    """Reads and checks a manifest, trusting nothing in it (the checkpoints are not opened).

    Args:
        path: The agents' folder or its ``decentralized.json``.

    Raises:
        CheckpointError: Naming the file and the field that is missing or wrong.
    """
    path = Path(path)
    file = path / MANIFEST_NAME if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(f"{file}: no such manifest of decentralized agents")
    try:
        manifest = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{file}: not a JSON file: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise CheckpointError(f"{file}: not a manifest of decentralized agents (format "
                              f"{MANIFEST_FORMAT!r})")
    if manifest.get("version") != MANIFEST_VERSION:
        raise CheckpointError(f"{file}: version must be {MANIFEST_VERSION}, got "
                              f"{manifest.get('version')!r}")
    chain = manifest_field(file, manifest, "chain", ChainConfig.from_dict, CheckpointError)
    algorithm = manifest_field(file, manifest, "algorithm", _algorithm, CheckpointError)
    reward = manifest_field(file, manifest, "reward", parse_reward, CheckpointError)
    stages = manifest.get("stages")
    if not isinstance(stages, list) or len(stages) != chain.stages:
        raise CheckpointError(f"{file}: stages must be a list of {chain.stages} entries (one per "
                              "stage of the chain)")
    names, checkpoints = [], []
    for i, entry in enumerate(stages):
        name = entry.get("agent") if isinstance(entry, dict) else None
        checkpoint = entry.get("checkpoint") if isinstance(entry, dict) else None
        if (not isinstance(entry, dict) or entry.get("stage") != i or not isinstance(name, str)
                or not name or not isinstance(checkpoint, str) or not checkpoint
                or PurePosixPath(checkpoint).is_absolute() or Path(checkpoint).is_absolute()):
            raise CheckpointError(f"{file}: stages[{i}] must be {{'stage': {i}, 'agent': a name, "
                                  "'checkpoint': a path relative to the manifest's folder}")
        names.append(name)
        checkpoints.append(file.parent / checkpoint)
    return DecentralizedManifest(file, chain, algorithm, reward, tuple(names), tuple(checkpoints))


def _algorithm(value: Any) -> str:
    if not isinstance(value, str) or value not in ALGORITHMS:
        raise ValueError(f"must be one of {sorted(ALGORITHMS)}, got {value!r}")
    return value


def load_decentralized(path: str | os.PathLike, chain: ChainConfig | None = None,
                       device: str = "cpu") -> DecentralizedPolicy:
    """The per-stage agents of a manifest as the chain's policy.

    Args:
        path: The agents' folder or its ``decentralized.json``.
        chain: If given, the chain the policy will act in; it must be the manifest's.
        device: Where to run the actors.

    Returns:
        Each stage's agent acting on its local observation.

    Raises:
        CheckpointError: If the manifest is wrong (see :func:`read_manifest`), its chain is not
            ``chain``, or a stage's checkpoint is missing, damaged, of another algorithm, or
            trained on another chain than the stage's (another stage's agent, say); the message
            names the manifest and the stage.
    """
    manifest = read_manifest(path)
    if chain is not None:
        differ = manifest.chain.differences(chain)
        if differ:
            shown = "; ".join(f"{name} {then!r} there, {now!r} here" for name, then, now in differ)
            raise CheckpointError(f"{manifest.path}: the agents are of a different chain: {shown}")
    agents = []
    for i, (name, checkpoint) in enumerate(zip(manifest.names, manifest.checkpoints)):
        where = f"{manifest.path}: stages[{i}] ({name})"
        if not checkpoint.is_file():
            raise CheckpointError(f"{where}: checkpoint {checkpoint}: no such file")
        try:
            agent = AgentPolicy(checkpoint, stage_chain(manifest.chain, i), device=device)
        except CheckpointError as error:
            raise CheckpointError(f"{where}: {error}") from None
        if agent.algorithm != manifest.algorithm:
            raise CheckpointError(f"{where}: {checkpoint} is a {agent.algorithm} agent, the "
                                  f"manifest says {manifest.algorithm}")
        if agent.preprocessing.sales_history:
            raise CheckpointError(f"{where}: {checkpoint} reads a sales history, which a stage "
                                  "of the decentralized view does not see (train it with "
                                  "sales_history 0)")
        agents.append(agent)
    return DecentralizedPolicy(manifest.chain, agents, manifest.names)


def load_agent(path: str | os.PathLike, chain: ChainConfig | None = None,
               device: str = "cpu") -> AgentPolicy | DecentralizedPolicy:
    """A trained agent from its folder: per-stage agents where the folder holds
    ``decentralized.json`` (or ``path`` is it), else one agent of the whole chain.

    Args:
        path: An agent folder, a ``checkpoint.pt`` or a ``decentralized.json``.
        chain: If given, the chain it will act in; the agent must have been trained for it.
        device: Where to run the actors.

    Raises:
        CheckpointError: As :class:`AgentPolicy` or :func:`load_decentralized`.
    """
    if manifest_path(path) is not None:
        return load_decentralized(path, chain, device)
    return AgentPolicy(path, chain, device)


__all__ = [
    "MANIFEST_NAME",
    "DecentralizedManifest",
    "load_agent",
    "load_decentralized",
    "manifest_path",
    "read_manifest",
    "write_manifest",
]
