"""Per-stage datasets: the log each company of a decentralized chain would hold of its own view.

From a dataset of the whole chain (collected, or imported from a CSV history),
:func:`split_stages` makes one dataset per stage in the same schema, as a dataset of the stage's
own one-stage chain (:func:`echelon.sim.stage_view.stage_chain`):

| field                 | stage i's file                                                         |
|-----------------------|------------------------------------------------------------------------|
| ``observations``      | (M, 1 + L_i) its local observation: on-hand, its last L_i requests     |
| ``actions``           | (M, 1) its own orders                                                  |
| ``rewards``           | (M,) the chosen :class:`~echelon.sim.stage_view.StageReward`           |
| ``next_observations`` | (M, 1 + L_i) the local observation at the start of the next period     |
| flags, ids, periods   | as in the chain's dataset                                              |
| ``log/sales``         | (M, 2) what it sold, what its supplier shipped to it                    |
| ``log/on_hand``       | (M, 1) its on-hand at the end of the period                            |
| ``log/shipped``       | (M, 1) units shipped to it                                             |
| ``log/unfulfilled``   | (M, 2) its customer's unfilled orders, its own unfilled requests       |
| ``log/demand``        | (M,) the demand it faced: customer demand (retailer), else its customer stage's request |

Nothing is simulated: every column is a slice of the chain's log or computed from it. The
``source`` attribute records the split (``kind`` ``stage-split``, the stage, agent name,
reward, history and the whole chain). :func:`save_stage_split` writes the files as
``<agent>.h5`` beside a manifest, ``stages.json``, that :func:`load_stage_split` reads back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from echelon._fields import manifest_field
from echelon._io import atomic_write_json
from echelon.data.dataset import DatasetError, OfflineDataset
from echelon.sim import core
from echelon.sim.config import ChainConfig
from echelon.sim.stage_view import (
    StageReward,
    agent_names,
    observation_columns,
    parse_reward,
    profit_shares,
    stage_chain,
    stage_rewards,
)

STAGES_FILE = "stages.json"
STAGES_FORMAT = "echelon-stage-split"
STAGES_VERSION = 1
SOURCE_KIND = "stage-split"
# The profit shares of a log must add up to its rewards to this relative tolerance: they differ
# only by the order of a few float additions (a few ulps), while a log whose rewards another
# accounting made (or an edit) differs by whole units.
_ACCOUNTING_RTOL = 1e-9


def split_stages(data: OfflineDataset, reward: StageReward | str = StageReward.LOCAL) -> list[OfflineDataset]:
    """The per-stage datasets of a dataset of the whole chain.

    Args:
        data: A dataset of the chain (any echelon dataset, collected or imported).
        reward: Each stage's reward (``local``, ``profit`` or ``team``).

    Returns:
        One dataset per stage, retailer first, each of the stage's one-stage chain.

    Raises:
        ValueError: If ``reward`` is unknown.
        DatasetError: If ``data`` is itself a per-stage dataset, or its log does not account
            for its rewards (the stages' profits do not add up to them).
    """
    kind = parse_reward(reward)
    if data.source.get("kind") == SOURCE_KIND:
        raise DatasetError("this dataset is already one stage's split; split the chain's dataset")
    chain, log = data.chain, data.log
    stage_profit = core.stage_profits(chain, log["sales"], log["shipped"], log["unfulfilled"],
                                      log["on_hand"])
    _check_accounting(chain, data, stage_profit)
    rewards = stage_rewards(chain, kind, data.periods, stage_profit=stage_profit,
                            unfulfilled=log["unfulfilled"], on_hand=log["on_hand"],
                            team=data.rewards)
    # The core truncates orders to whole units >= 0 before anyone sees them (step 1).
    requests = np.floor(np.maximum(data.actions, 0.0))
    names = agent_names(chain.stages)
    out = []
    for i, name in enumerate(names):
        columns = observation_columns(chain, i)
        faced = log["demand"] if i == 0 else requests[:, i - 1]
        out.append(OfflineDataset(
            chain=stage_chain(chain, i),
            observations=np.ascontiguousarray(data.observations[:, columns]),
            actions=np.ascontiguousarray(data.actions[:, i : i + 1]),
            rewards=np.ascontiguousarray(rewards[:, i]),
            next_observations=np.ascontiguousarray(data.next_observations[:, columns]),
            terminations=data.terminations.copy(),
            truncations=data.truncations.copy(),
            episode_ids=data.episode_ids.copy(),
            periods=data.periods.copy(),
            behaviour_ids=data.behaviour_ids.copy(),
            log={
                "sales": np.ascontiguousarray(log["sales"][:, i : i + 2]),
                "on_hand": np.ascontiguousarray(log["on_hand"][:, i : i + 1]),
                "shipped": np.ascontiguousarray(log["shipped"][:, i : i + 1]),
                "unfulfilled": np.ascontiguousarray(log["unfulfilled"][:, i : i + 2]),
                "demand": np.array(faced, dtype=np.float64),
            },
            behaviour_policies=data.behaviour_policies,
            seeds=data.seeds,
            source={"kind": SOURCE_KIND, "stage": i, "agent": name, "reward": kind.value,
                    "history": chain.lead_time[i], "chain": chain.to_dict(),
                    "parent": data.source},
        ))
    return out


def _check_accounting(chain: ChainConfig, data: OfflineDataset, stage_profit: np.ndarray) -> None:
    """Raises DatasetError unless the stages' discounted profits add up to the rewards."""
    total = profit_shares(stage_profit).sum(axis=1) * chain.alpha ** data.periods.astype(np.float64)
    scale = np.maximum(np.abs(data.rewards), 1.0)
    wrong = np.abs(total - data.rewards) > _ACCOUNTING_RTOL * scale
    if np.any(wrong):
        row = int(np.argmax(wrong))
        raise DatasetError(
            f"row {row}: the log (sales, shipped, unfulfilled, on_hand) gives a profit of "
            f"{total[row]:.6g} and the rewards say {data.rewards[row]:.6g}; the stages' shares "
            "cannot be told apart from a log that does not account for its rewards"
        )


@dataclass(frozen=True)
class StageSplit:
    """A folder of per-stage datasets, as :func:`load_stage_split` reads it."""

    folder: Path
    chain: ChainConfig
    """The whole chain."""
    reward: StageReward
    names: tuple[str, ...]
    """The agents' names, retailer first."""
    files: tuple[Path, ...]
    """Each stage's dataset file."""

    def dataset(self, stage: int) -> OfflineDataset:
        """Stage ``stage``'s dataset, checked to be that stage's.

        Raises:
            DatasetError: If the file is damaged or holds another stage's data.
        """
        from echelon.data.dataset_file import load

        path = self.files[stage]
        data = load(path)
        expected = stage_chain(self.chain, stage)
        differ = expected.differences(data.chain)
        if differ or data.source.get("stage") != stage:
            shown = "; ".join(f"{name} {want!r} expected, {got!r} there" for name, want, got in differ)
            raise DatasetError(f"{path}: not the data of stage {stage} ({self.names[stage]}) of "
                               f"the chain in {self.folder / STAGES_FILE}"
                               f"{': ' + shown if shown else ''}")
        return data

    def datasets(self) -> list[OfflineDataset]:
        """Every stage's dataset, retailer first."""
        return [self.dataset(i) for i in range(len(self.files))]


def save_stage_split(datasets: list[OfflineDataset], folder: str | os.PathLike, *,
                     source_file: str | os.PathLike | None = None) -> Path:
    """Writes per-stage datasets as ``<agent>.h5`` and the manifest ``stages.json`` (last, so a
    folder with a manifest is complete). Every file is written atomically.

    Args:
        datasets: From :func:`split_stages`.
        folder: Where to write them.
        source_file: The chain's dataset file they came from, recorded in the manifest.

    Returns:
        The manifest's path.
    """
    from echelon.data.dataset_file import save

    folder = Path(folder)
    first = datasets[0].source
    chain = ChainConfig.from_dict(first["chain"])
    stages = []
    for data in datasets:
        name = data.source["agent"]
        save(data, folder / f"{name}.h5")
        stages.append({"stage": data.source["stage"], "agent": name, "file": f"{name}.h5",
                       "transitions": len(data)})
    manifest = {"format": STAGES_FORMAT, "version": STAGES_VERSION, "chain": chain.to_dict(),
                "reward": first["reward"], "history": "own lead time",
                "source_file": str(source_file) if source_file is not None else None,
                "stages": stages}
    return atomic_write_json(folder / STAGES_FILE, manifest)


def load_stage_split(folder: str | os.PathLike) -> StageSplit:
    """Reads a folder written by :func:`save_stage_split`, trusting nothing in it.

    Raises:
        DatasetError: Naming the manifest's field that is missing or wrong, or a missing file.
    """
    folder = Path(folder)
    path = folder / STAGES_FILE if folder.is_dir() or not folder.exists() else folder
    folder = path.parent
    if not path.exists():
        raise DatasetError(f"{folder}: no {STAGES_FILE}; make the per-stage datasets with "
                           "'echelon dataset split-stages FILE --out DIR'")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: not a JSON file: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != STAGES_FORMAT:
        raise DatasetError(f"{path}: not a per-stage split manifest (format {STAGES_FORMAT!r})")
    if manifest.get("version") != STAGES_VERSION:
        raise DatasetError(f"{path}: version must be {STAGES_VERSION}, got "
                           f"{manifest.get('version')!r}")
    chain = manifest_field(path, manifest, "chain", ChainConfig.from_dict, DatasetError)
    reward = manifest_field(path, manifest, "reward", parse_reward, DatasetError)
    stages = manifest.get("stages")
    names = agent_names(chain.stages)
    if not isinstance(stages, list) or len(stages) != chain.stages:
        raise DatasetError(f"{path}: stages must be a list of {chain.stages} entries (one per "
                           "stage of the chain)")
    files = []
    for i, entry in enumerate(stages):
        file = entry.get("file") if isinstance(entry, dict) else None
        if (not isinstance(entry, dict) or entry.get("stage") != i or entry.get("agent") != names[i]
                or not isinstance(file, str) or Path(file).name != file):
            raise DatasetError(f"{path}: stages[{i}] must be {{'stage': {i}, 'agent': "
                               f"{names[i]!r}, 'file': a file name in the folder}}")
        if not (folder / file).is_file():
            raise DatasetError(f"{path}: stages[{i}].file {file}: no such file in {folder}")
        files.append(folder / file)
    return StageSplit(folder, chain, reward, names, tuple(files))


__all__ = [
    "STAGES_FILE",
    "StageSplit",
    "load_stage_split",
    "save_stage_split",
    "split_stages",
]
