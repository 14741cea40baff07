"""The offline dataset: transitions of logged episodes, and its HDF5 file.

Schema (version 1). Every array has one row per transition, M = episodes x periods, stored in
episode order and period order within an episode:

| path                   | shape       | dtype   | meaning                                          |
|------------------------|-------------|---------|--------------------------------------------------|
| ``observations``       | (M, D)      | float64 | OR-Gym observation at the start of the period    |
| ``actions``            | (M, S)      | float64 | orders the behaviour policy requested, before the simulator truncated and clipped them |
| ``rewards``            | (M,)        | float64 | the period's reward (profit discounted by alpha^n, OR-Gym's) |
| ``next_observations``  | (M, D)      | float64 | observation at the start of the next period      |
| ``terminations``       | (M,)        | bool    | the episode ended at the horizon after this step |
| ``truncations``        | (M,)        | bool    | the episode was cut short (never, in simulated logs) |
| ``episode_ids``        | (M,)        | int64   | 0 .. E-1                                         |
| ``periods``            | (M,)        | int64   | period index n of the step, 0 .. T-1             |
| ``behaviour_ids``      | (M,)        | int64   | index into the ``behaviour_policies`` attribute (-1: unknown) |
| ``log/sales``          | (M, S+1)    | float64 | retail sales, then units shipped by stages 1..S  |
| ``log/on_hand``        | (M, S)      | float64 | on-hand at the end of the period                 |
| ``log/shipped``        | (M, S)      | float64 | units shipped to each stage after clipping       |
| ``log/unfulfilled``    | (M, S+1)    | float64 | unfilled demand and requests (lost in v1, backlogged in v0) |
| ``log/demand``         | (M,)        | float64 | customer demand; NaN where the log did not see it (real logs see sales only) |

File attributes (JSON strings unless noted): ``schema_version`` (int), ``echelon_version``,
``chain`` (the full ``ChainConfig``), ``behaviour_policies`` (a list of ``{"name", "family",
"params", "mode", "noise_std"}``), ``seeds``, ``source`` (how the data was made). The file is
written atomically: to a temporary file beside the target, then renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from echelon._io import set_default_mode
from echelon.sim.config import ChainConfig

SCHEMA_VERSION = 1

_TRANSITION_FIELDS = {
    # name: (dtype, trailing shape as a function of (D, S))
    "observations": (np.float64, lambda d, s: (d,)),
    "actions": (np.float64, lambda d, s: (s,)),
    "rewards": (np.float64, lambda d, s: ()),
    "next_observations": (np.float64, lambda d, s: (d,)),
    "terminations": (np.bool_, lambda d, s: ()),
    "truncations": (np.bool_, lambda d, s: ()),
    "episode_ids": (np.int64, lambda d, s: ()),
    "periods": (np.int64, lambda d, s: ()),
    "behaviour_ids": (np.int64, lambda d, s: ()),
}
_LOG_FIELDS = {
    "sales": (np.float64, lambda d, s: (s + 1,)),
    "on_hand": (np.float64, lambda d, s: (s,)),
    "shipped": (np.float64, lambda d, s: (s,)),
    "unfulfilled": (np.float64, lambda d, s: (s + 1,)),
    "demand": (np.float64, lambda d, s: ()),
}


class DatasetError(ValueError):
    """A dataset file or array that does not meet the schema; the message names the problem."""


@dataclass(frozen=True)
class OfflineDataset:
    """Logged transitions of E episodes of a chain, with where they came from.

    Array fields are described in the module docstring; ``log`` holds the ``log/*`` arrays.
    """

    chain: ChainConfig
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    episode_ids: np.ndarray
    periods: np.ndarray
    behaviour_ids: np.ndarray
    log: dict[str, np.ndarray]
    behaviour_policies: list[dict[str, Any]] = field(default_factory=list)
    seeds: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate(self)

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def episodes(self) -> int:
        """Number of episodes E."""
        return int(self.episode_ids.max()) + 1 if len(self) else 0

    def episode_returns(self) -> np.ndarray:
        """(E,) the sum of rewards of each episode (OR-Gym's discounted episode profit)."""
        return np.bincount(self.episode_ids, weights=self.rewards, minlength=self.episodes)

    def episode_behaviour(self) -> np.ndarray:
        """(E,) the behaviour-policy id of each episode."""
        out = np.full(self.episodes, -1, dtype=np.int64)
        out[self.episode_ids] = self.behaviour_ids
        return out

    def select_episodes(self, keep: np.ndarray) -> OfflineDataset:
        """The dataset restricted to some episodes, renumbered 0 .. len(keep)-1 in given order.

        Args:
            keep: Episode ids to keep, each at most once.
        """
        keep = np.asarray(keep, dtype=np.int64)
        if len(np.unique(keep)) != len(keep):
            raise DatasetError("select_episodes: an episode id is given more than once")
        if np.any(keep < 0) or np.any(keep >= self.episodes):
            raise DatasetError(f"select_episodes: episode ids must lie in [0, {self.episodes - 1}]")
        new_id = np.full(self.episodes, -1, dtype=np.int64)
        new_id[keep] = np.arange(len(keep))
        rows = np.flatnonzero(new_id[self.episode_ids] >= 0)
        rows = rows[np.argsort(new_id[self.episode_ids[rows]], kind="stable")]
        arrays = {f: getattr(self, f)[rows] for f in _TRANSITION_FIELDS}
        arrays["episode_ids"] = new_id[self.episode_ids[rows]]
        return OfflineDataset(
            chain=self.chain,
            **arrays,
            log={k: v[rows] for k, v in self.log.items()},
            behaviour_policies=self.behaviour_policies,
            seeds=self.seeds,
            source={**self.source, "selected_episodes": len(keep)},
        )


def from_trajectory(
    chain: ChainConfig,
    trajectory: dict[str, np.ndarray],
    behaviour_ids: np.ndarray,
    *,
    behaviour_policies: list[dict[str, Any]],
    seeds: dict[str, Any],
    source: dict[str, Any],
) -> OfflineDataset:
    """The dataset of recorded episodes (``rollout(..., record=True).trajectory``).

    Args:
        chain: The chain the episodes were played in.
        trajectory: Arrays (E, T, ...) per field, and ``observation`` (E, T+1, D).
        behaviour_ids: (E,) the behaviour policy of each episode (-1: unknown).
        behaviour_policies: Their descriptions; ``seeds`` and ``source`` as in the schema.
    """
    obs = trajectory["observation"]
    episodes, periods = obs.shape[0], obs.shape[1] - 1

    def flat(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array.reshape(episodes * periods, *array.shape[2:]))

    period = np.tile(np.arange(periods, dtype=np.int64), episodes)
    return OfflineDataset(
        chain=chain,
        observations=flat(obs[:, :-1]),
        actions=flat(trajectory["action"]),
        rewards=flat(trajectory["reward"]),
        next_observations=flat(obs[:, 1:]),
        terminations=period == periods - 1,
        truncations=np.zeros(episodes * periods, dtype=bool),
        episode_ids=np.repeat(np.arange(episodes, dtype=np.int64), periods),
        periods=period,
        behaviour_ids=np.repeat(np.asarray(behaviour_ids, dtype=np.int64), periods),
        log={name: flat(trajectory[name]) for name in _LOG_FIELDS},
        behaviour_policies=behaviour_policies,
        seeds=seeds,
        source=source,
    )


def validate(data: OfflineDataset) -> None:
    """Checks shapes, dtypes, finiteness and the episode structure of a dataset.

    Raises:
        DatasetError: Naming the first field that is wrong and how.
    """
    obs_size, stages = data.chain.observation_size, data.chain.stages
    rows = len(data.rewards) if np.ndim(data.rewards) == 1 else -1
    if rows < 1:
        raise DatasetError("rewards must be a non-empty one-dimensional array")
    checks = [(name, getattr(data, name), spec) for name, spec in _TRANSITION_FIELDS.items()]
    missing = sorted(set(_LOG_FIELDS) - set(data.log))
    if missing:
        raise DatasetError(f"log is missing {missing}")
    checks += [(f"log/{name}", data.log[name], spec) for name, spec in _LOG_FIELDS.items()]
    for name, array, (dtype, trailing) in checks:
        want = (rows, *trailing(obs_size, stages))
        if not isinstance(array, np.ndarray) or array.shape != want:
            got = getattr(array, "shape", type(array).__name__)
            hint = ""
            if name in ("observations", "next_observations") and np.ndim(array) == 2:
                hint = f" (the chain's observation has {obs_size} entries)"
            if name == "actions" and np.ndim(array) == 2:
                hint = f" (the chain has {stages} ordering stages)"
            raise DatasetError(f"{name} must be shaped {want}, got {got}{hint}")
        if array.dtype != dtype:
            raise DatasetError(f"{name} must have dtype {np.dtype(dtype).name}, got {array.dtype}")
        if name != "log/demand" and array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise DatasetError(f"{name} holds NaN or infinite values")
    demand = data.log["demand"]
    if np.any(np.isinf(demand)) or np.any(demand[~np.isnan(demand)] < 0):
        raise DatasetError("log/demand must be >= 0 or NaN (unobserved)")
    if np.any(data.terminations & data.truncations):
        raise DatasetError("a step cannot be both terminated and truncated")
    _validate_episodes(data)
    n_policies = len(data.behaviour_policies)
    if np.any(data.behaviour_ids < -1) or np.any(data.behaviour_ids >= n_policies):
        raise DatasetError(
            f"behaviour_ids must lie in [-1, {n_policies - 1}] ({n_policies} behaviour policies)"
        )


def _validate_episodes(data: OfflineDataset) -> None:
    ids, periods = data.episode_ids, data.periods
    if ids[0] != 0 or np.any(np.diff(ids) < 0) or np.any(np.diff(ids) > 1):
        raise DatasetError("episode_ids must run 0, 1, 2, ... in order, each episode contiguous")
    starts = np.flatnonzero(np.diff(ids, prepend=-1))
    ends = np.append(starts[1:], len(ids)) - 1
    if np.any(periods[starts] < 0) or np.any(periods >= data.chain.periods):
        raise DatasetError(f"periods must lie in [0, {data.chain.periods - 1}]")
    within = np.ones(len(ids), dtype=bool)
    within[starts] = False
    if np.any(np.diff(periods)[within[1:]] != 1):
        raise DatasetError("periods must increase by one within an episode")
    ended = data.terminations | data.truncations
    if not np.all(ended[ends]):
        bad = int(ids[ends[~ended[ends]][0]])
        raise DatasetError(
            f"episode {bad} does not end with a terminated or truncated step (is the file cut short?)"
        )
    inner = np.ones(len(ids), dtype=bool)
    inner[ends] = False
    if np.any(ended[inner]):
        raise DatasetError("a terminated or truncated step is followed by a step of the same episode")
    horizon = periods == data.chain.periods - 1
    if np.any(data.terminations != (horizon & ended)):
        raise DatasetError(
            f"terminations must be set exactly on the last period ({data.chain.periods - 1}) "
            "of each episode: the horizon ends the episode"
        )
    follows = inner.copy()
    if np.any(data.next_observations[:-1][follows[:-1]] != data.observations[1:][follows[:-1]]):
        raise DatasetError("next_observations must equal the following step's observations")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def save(data: OfflineDataset, path: str | os.PathLike) -> Path:
    """Writes the dataset to an HDF5 file, atomically (temp file beside it, then rename).

    The bytes depend only on the content, so the same data gives an identical file.

    Returns:
        The path written.
    """
    import h5py

    from echelon import __version__

    validate(data)  # arrays may have been changed in place since construction
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w", track_order=False) as f:
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["echelon_version"] = __version__
            f.attrs["chain"] = _json(data.chain.to_dict())
            f.attrs["behaviour_policies"] = _json(data.behaviour_policies)
            f.attrs["seeds"] = _json(data.seeds)
            f.attrs["source"] = _json(data.source)
            for name in _TRANSITION_FIELDS:
                f.create_dataset(name, data=getattr(data, name), track_times=False,
                                 compression="gzip", compression_opts=4, shuffle=True)
            log = f.create_group("log", track_order=False)
            for name in _LOG_FIELDS:
                log.create_dataset(name, data=data.log[name], track_times=False,
                                   compression="gzip", compression_opts=4, shuffle=True)
        set_default_mode(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load(path: str | os.PathLike, chain: ChainConfig | None = None) -> OfflineDataset:
    """Reads and validates a dataset file.

    Args:
        path: The HDF5 file.
        chain: If given, the file's chain must have the same observation and action sizes.

    Raises:
        DatasetError: If the file is missing, truncated or not HDF5, a field is missing, the
            schema version is unknown, or the content fails :func:`validate`.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise DatasetError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {error}") from None
    with f:
        version = f.attrs.get("schema_version")
        if version is None:
            raise DatasetError(f"{path}: no schema_version attribute; not an echelon dataset")
        if int(version) != SCHEMA_VERSION:
            raise DatasetError(
                f"{path}: schema version {int(version)}, this echelon reads version {SCHEMA_VERSION}"
            )
        try:
            file_chain = ChainConfig.from_dict(json.loads(f.attrs["chain"]))
            meta = {k: json.loads(f.attrs[k]) for k in ("behaviour_policies", "seeds", "source")}
        except KeyError:
            missing = [k for k in ("chain", "behaviour_policies", "seeds", "source") if k not in f.attrs]
            raise DatasetError(f"{path}: missing attribute {missing[0] if missing else '?'!r}") from None
        except ValueError as error:
            raise DatasetError(f"{path}: bad chain attribute: {error}") from None
        arrays = {}
        try:
            for name in _TRANSITION_FIELDS:
                arrays[name] = _read(f, name)
            log = {name: _read(f, f"log/{name}") for name in _LOG_FIELDS}
        except KeyError as error:
            raise DatasetError(f"{path}: missing field {error.args[0]}") from None
        except OSError as error:
            raise DatasetError(f"{path}: cannot read (truncated or corrupt?): {error}") from None
    if chain is not None:
        for what, mine, theirs in (
            ("observation size", chain.observation_size, file_chain.observation_size),
            ("number of ordering stages", chain.stages, file_chain.stages),
        ):
            if mine != theirs:
                raise DatasetError(f"{path}: {what} is {theirs}, the env expects {mine}")
    try:
        return OfflineDataset(chain=file_chain, **arrays, log=log, **meta)
    except DatasetError as error:
        raise DatasetError(f"{path}: {error}") from None


def _read(f, name: str) -> np.ndarray:
    if name not in f:
        raise KeyError(name)
    return f[name][()]


def dataset_fields() -> list[str]:
    """Names of the array fields, in schema order (``log/*`` last)."""
    names = [f.name for f in fields(OfflineDataset)][1:10]
    return names + [f"log/{name}" for name in _LOG_FIELDS]
