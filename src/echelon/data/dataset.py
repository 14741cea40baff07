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

File attributes (JSON strings unless noted): ``schema_version`` (an integer), ``echelon_version``,
``chain`` (the full ``ChainConfig``, an object), ``behaviour_policies`` (a list of objects
``{"name", "family", "params", "mode", "noise_std"}``: ``name`` a string, ``params`` an object
where given), ``seeds`` and ``source`` (objects; ``source`` says how the data was made). The file
is written atomically: to a temporary file beside the target, then renamed. On load, a dataset of
a narrower type of the same kind (float32, int32, big-endian) is widened to the schema's dtype;
any other type (strings, compound types, bool for numbers) is refused.

Allowed ranges, checked by :func:`validate` (so on construction, before saving and on load):

| field                                                       | range                        |
|-------------------------------------------------------------|------------------------------|
| ``observations``, ``next_observations``                     | [0, U] (on-hand, requests)   |
| ``actions``                                                 | [-U, U] (negative: order 0)  |
| ``rewards``                                                 | [-R, R]                      |
| ``log/sales``, ``on_hand``, ``shipped``, ``unfulfilled``    | [0, U]                       |
| ``log/demand``                                              | [0, U], or NaN               |

U = :func:`unit_limit` = max(1e6, 100 * max(max_i(I0_i + T c_i), T * mean demand)) units: a stage
never holds more than I0_i + T c_i (it receives at most c_i a period), and no sensible order,
backlog or demand is a hundred times that, or a hundred horizons of mean demand. R =
:func:`reward_limit` = U * (p + sum_i r_i + sum_i k_i + sum_i h_i + sum_{i<S} r_i), the most a
period can earn or cost with every quantity at U. Both are at most 2**53 / T, so that sums over an
episode stay exact. For the default chain, U = 1e6 and R = 9.55e6.
"""

from __future__ import annotations

import json
import mmap
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from echelon._io import atomic_write_path
from echelon.sim.config import ChainConfig

SCHEMA_VERSION = 1

# Whole numbers up to 2**53 are exact in float64: with every value at most 2**53 / T in magnitude,
# a sum over an episode of T values (its return, a backlog carried over) stays exact to the unit.
EXACT_SUM = 2.0**53
# A stage never holds more than I0_i + T c_i (it receives at most c_i a period); a hundred times
# that leaves room for whole-shortfall (raw) requests over long lead times, backlogs carried over
# (v0) and demand far above capacity, while a file off by a factor 1e6 is corrupt or mis-scaled.
UNIT_HEADROOM = 100.0
# Small chains (I0 + T c of a few units) still accept behaviour policies that ask for far more.
MIN_UNIT_LIMIT = 1e6

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


def unit_limit(chain: ChainConfig) -> float:
    """U, the most units an order, observation or log entry of the chain's data may hold.

    ``max(MIN_UNIT_LIMIT, UNIT_HEADROOM * max(max_i(I0_i + T c_i), T * mean demand))``, at most
    ``EXACT_SUM / T`` (see the module docstring).
    """
    horizon = float(min(chain.periods, 2**63))  # a longer horizon fits no int64 period index
    most_held = max(i0 + horizon * c for i0, c in zip(chain.initial_inventory, chain.capacity))
    scale = max(most_held, horizon * float(chain.demand.mean))
    return min(max(MIN_UNIT_LIMIT, UNIT_HEADROOM * scale), EXACT_SUM / horizon)


def reward_limit(chain: ChainConfig) -> float:
    """R, the largest reward magnitude of the chain's data: a period with every quantity at U.

    ``U * (p + sum(r) + sum(k) + sum(h) + sum(r_0..r_{S-1}))`` (sales at the stage prices, and
    purchases, penalties and holding costs), at most ``EXACT_SUM / T``.
    """
    horizon = float(min(chain.periods, 2**63))
    per_unit = (chain.price + 2.0 * sum(chain.replenishment_cost) - chain.replenishment_cost[-1]
                + sum(chain.unfulfilled_penalty) + sum(chain.holding_cost))
    return min(unit_limit(chain) * per_unit, EXACT_SUM / horizon)


def _type_name(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return type(value).__name__


def _validate_metadata(data: OfflineDataset) -> None:
    if not isinstance(data.chain, ChainConfig):
        raise DatasetError(f"chain must be a ChainConfig, got {_type_name(data.chain)}")
    if not isinstance(data.log, dict):
        raise DatasetError(f"log must be a dict of the log/* arrays, got {_type_name(data.log)}")
    if not isinstance(data.behaviour_policies, list):
        raise DatasetError("behaviour_policies must be a list of objects, got "
                           f"{_type_name(data.behaviour_policies)}")
    for k, spec in enumerate(data.behaviour_policies):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            got = (f"name {spec.get('name')!r}" if isinstance(spec, dict) else _type_name(spec))
            raise DatasetError(f"behaviour_policies[{k}] must be an object with a string name, "
                               f"got {got}")
        if "params" in spec and not isinstance(spec["params"], dict):
            raise DatasetError(f"behaviour_policies[{k}].params must be an object, got "
                               f"{_type_name(spec['params'])}")
    for name in ("seeds", "source"):
        if not isinstance(getattr(data, name), dict):
            raise DatasetError(f"{name} must be a dict, got {_type_name(getattr(data, name))}")


def _shape_error(name: str, got: Any, want: tuple[int, ...], obs_size: int,
                 stages: int) -> DatasetError:
    """The error for a field whose shape is ``got`` (a tuple, or a type's name)."""
    ndim = len(got) if isinstance(got, tuple) else -1
    hint = ""
    if name in ("observations", "next_observations") and ndim == 2:
        hint = f" (the chain's observation has {obs_size} entries)"
    if name == "actions" and ndim == 2:
        hint = f" (the chain has {stages} ordering stages)"
    return DatasetError(f"{name} must be shaped {want}, got {got}{hint}")


def _check_range(name: str, array: np.ndarray, low: float, high: float, reason: str) -> None:
    values = array[~np.isnan(array)] if name == "log/demand" else array
    if values.size and (values.min() < low or values.max() > high):
        flat = array.reshape(len(array), -1)
        row, column = np.argwhere((flat < low) | (flat > high))[0]
        where = f"row {row}" + (f", column {column}" if array.ndim > 1 else "")
        raise DatasetError(f"{name} must lie in [{low:.6g}, {high:.6g}] ({reason}); {where} holds "
                           f"{float(flat[row, column])!r}")


def validate(data: OfflineDataset) -> None:
    """Checks types, shapes, dtypes, value ranges and the episode structure of a dataset.

    The ranges are those of the module docstring (:func:`unit_limit`, :func:`reward_limit`).

    Raises:
        DatasetError: Naming the first field that is wrong and how.
    """
    _validate_metadata(data)
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
            raise _shape_error(name, getattr(array, "shape", type(array).__name__), want,
                               obs_size, stages)
        if array.dtype != dtype:
            raise DatasetError(f"{name} must have dtype {np.dtype(dtype).name}, got {array.dtype}")
        if name != "log/demand" and array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise DatasetError(f"{name} holds NaN or infinite values")
    demand = data.log["demand"]
    if np.any(np.isinf(demand)) or np.any(demand[~np.isnan(demand)] < 0):
        raise DatasetError("log/demand must be >= 0 or NaN (unobserved)")
    units, money = unit_limit(data.chain), reward_limit(data.chain)
    unit_reason = "U, the chain's unit limit: see echelon.data.dataset.unit_limit"
    for name, array, (dtype, _) in checks:
        if name == "rewards":
            _check_range(name, array, -money, money,
                         "R, a period with every quantity at the chain's unit limit: see "
                         "echelon.data.dataset.reward_limit")
        elif name == "actions":
            _check_range(name, array, -units, units, unit_reason)
        elif dtype is np.float64:
            _check_range(name, array, 0.0, units, unit_reason)
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

    def write(tmp: Path) -> None:
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

    return atomic_write_path(path, write)


# What h5py raises for a damaged object varies with the damage (and a vlen string attribute that
# is not UTF-8 raises UnicodeDecodeError, a ValueError).
_H5PY_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)
# The same for a JSON value that the config classes cannot take (a list where a number belongs,
# an integer too large for a float).
_CONFIG_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError,
                  RecursionError)
# Narrower types of the schema's kind that load widens: float32 to float64, int32 to int64.
_WIDENED_KINDS = {np.float64: "f", np.int64: "iu", np.bool_: "b"}


def load(path: str | os.PathLike, chain: ChainConfig | None = None) -> OfflineDataset:
    """Reads and validates a dataset file.

    Args:
        path: The HDF5 file.
        chain: If given, the file's chain must have the same observation and action sizes.

    Raises:
        DatasetError: Naming the file and what is wrong: it is missing, truncated or not HDF5; the
            schema version is missing, not an integer or unknown; an attribute is missing, not
            JSON, or JSON of the wrong type (or the chain is invalid); a field is missing, of
            another type, shape or HDF5 kind (a group for a dataset); or the content fails
            :func:`validate` (values out of range, a broken episode structure).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    try:
        f = h5py.File(path, "r")
    except _H5PY_ERRORS as error:
        raise DatasetError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {error}") from None
    with f:
        _check_global_heaps(path)
        version = _attribute(f, path, "schema_version", "schema_version must be an integer")
        if version is None:
            raise DatasetError(f"{path}: no schema_version attribute; not an echelon dataset")
        if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
            raise DatasetError(f"{path}: schema_version must be an integer, got "
                               f"{_type_name(version)} {_short(version)}")
        if version != SCHEMA_VERSION:
            raise DatasetError(
                f"{path}: schema version {int(version)}, this echelon reads version {SCHEMA_VERSION}"
            )
        chain_dict = _json_attribute(f, path, "chain", dict)
        try:
            file_chain = ChainConfig.from_dict(chain_dict)
        except _CONFIG_ERRORS as error:
            raise DatasetError(f"{path}: bad chain attribute: {error}") from None
        meta = {"behaviour_policies": _json_attribute(f, path, "behaviour_policies", list),
                "seeds": _json_attribute(f, path, "seeds", dict),
                "source": _json_attribute(f, path, "source", dict)}
        arrays, log = _read_arrays(f, path, file_chain)
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


# A global heap collection (where HDF5 keeps the attributes' strings): "GCOL", version 1, three
# reserved bytes, then its size in bytes (8 bytes little-endian), then its objects, each with a
# 16-byte header (index, reference count, reserved, size) and its data padded to 8 bytes; index 0
# is the free space, whose size includes its header (HDF5 File Format Specification, III.E).
_GLOBAL_HEAP = b"GCOL\x01\x00\x00\x00"
_HEAP_OBJECT_HEADER = 16


def _check_global_heaps(path: Path) -> None:
    """Refuses a global heap collection whose objects do not tile it.

    libhdf5 (2.0) walks a collection's objects up to its claimed end, each object's size giving
    the step to the next. A damaged collection size sends it past the collection into other
    bytes, where an object size of 0, or one near 2**64 that wraps the address around, never
    reaches the end: reading an attribute then never returns (found by fuzzing our files). The
    same walk, with every step checked to move forward and stay inside, refuses the file first.
    """
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:  # nothing to map (HDF5 refused it already)
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            start = data.find(_GLOBAL_HEAP)
            while start >= 0:
                size = int.from_bytes(data[start + 8 : start + 16], "little")
                end = start + size
                if end > len(data):
                    raise DatasetError(f"{path}: a global heap collection at byte {start} runs "
                                       "past the end of the file (truncated or corrupt?)")
                at = start + 16
                while at + _HEAP_OBJECT_HEADER <= end:
                    index = int.from_bytes(data[at : at + 2], "little")
                    length = int.from_bytes(data[at + 8 : at + 16], "little")
                    step = _HEAP_OBJECT_HEADER + -(-length // 8) * 8 if index else length
                    if step <= 0 or at + step > end:
                        raise DatasetError(f"{path}: the global heap collection at byte {start} is "
                                           f"damaged (an object at byte {at} does not fit it)")
                    at += step
                start = data.find(_GLOBAL_HEAP, start + 1)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _attribute(f, path: Path, name: str, rule: str) -> Any:
    """The attribute's value, or None where it is missing.

    Its shape and type are checked before it is read: a damaged header may claim an array of any
    size, which h5py would allocate first. (A damaged length of a variable-length string still
    makes libhdf5 allocate up to 4 GiB, its 32-bit limit, before it reports the damage.)

    Args:
        rule: What the attribute must be, the message's start (``"schema_version must be an
            integer"``).
    """
    import h5py

    try:
        if name not in f.attrs:
            return None
        attribute = h5py.h5a.open(f.id, name.encode())
        shape, itemsize = attribute.shape, attribute.dtype.itemsize
        kind = type(attribute.get_type())
    except _H5PY_ERRORS as error:
        raise DatasetError(f"{path}: cannot read attribute {name!r} (corrupt?): {error}") from None
    if shape != ():
        raise DatasetError(f"{path}: {rule}, got an array of shape {shape}")
    # Numbers, strings and h5py's bools (an enum) only: libhdf5 crashes reading some damaged
    # variable-length types (a string's type field changed to a reserved value reads as a
    # sequence, and reading it segfaults), and none of the others is ours.
    if kind not in (h5py.h5t.TypeIntegerID, h5py.h5t.TypeFloatID, h5py.h5t.TypeStringID,
                    h5py.h5t.TypeEnumID):
        what = kind.__name__.removeprefix("Type").removesuffix("ID").lower()
        raise DatasetError(f"{path}: {rule}, got an HDF5 {what} attribute")
    if itemsize > path.stat().st_size:
        raise DatasetError(f"{path}: attribute {name!r} claims {itemsize:,} bytes, more than the "
                           "file holds (corrupt?)")
    try:
        return f.attrs[name]
    except _H5PY_ERRORS as error:
        raise DatasetError(f"{path}: cannot read attribute {name!r} (corrupt?): {error}") from None


def _json_attribute(f, path: Path, name: str, kind: type) -> Any:
    """A JSON string attribute, parsed and checked to be a ``kind`` (dict: an object, or list)."""
    raw = _attribute(f, path, name, f"bad {name} attribute: must be a JSON string")
    if raw is None:
        raise DatasetError(f"{path}: missing attribute {name!r}")
    if isinstance(raw, (bytes, np.bytes_)):  # a fixed-length string written by another tool
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise DatasetError(f"{path}: bad {name} attribute: not UTF-8 text") from None
    if not isinstance(raw, str):
        raise DatasetError(f"{path}: bad {name} attribute: must be a JSON string, got "
                           f"{_type_name(raw)} {_short(raw)}")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise DatasetError(f"{path}: bad {name} attribute: not valid JSON: {error}") from None
    if not isinstance(value, kind):
        want = "an object" if kind is dict else "a list"
        raise DatasetError(f"{path}: bad {name} attribute: must be {want}, got "
                           f"{type(value).__name__} {_short(value)}")
    return value


def _read_arrays(f, path: Path,
                 chain: ChainConfig) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The transition and log arrays, their HDF5 kind, dtype and shape checked before reading."""
    import h5py

    def node(parent, name: str, full: str, kind: type, missing: str | None = None):
        """The group or dataset ``name``, with its shape and dtype for a dataset."""
        try:
            item = parent.get(name)
            if kind is h5py.Dataset and isinstance(item, kind):  # the dtype is decoded here
                return item, item.shape, item.dtype
        except _H5PY_ERRORS as error:
            raise DatasetError(f"{path}: cannot read {full} (truncated or corrupt?): "
                               f"{error}") from None
        if item is None:
            raise DatasetError(f"{path}: missing field {missing or full}")
        if not isinstance(item, kind):
            want, got = ("a group", "a dataset") if kind is h5py.Group else ("a dataset", "a group")
            raise DatasetError(f"{path}: {full} must be {want} in the file, got {got}")
        return item, None, None

    obs_size, stages = chain.observation_size, chain.stages
    _, shape, _ = node(f, "rewards", "rewards", h5py.Dataset)
    rows = shape[0] if shape is not None and len(shape) == 1 else -1
    if rows < 1:
        raise DatasetError(f"{path}: rewards must be a non-empty one-dimensional array, got shape "
                           f"{shape}")
    fields = [(f, name, name, spec) for name, spec in _TRANSITION_FIELDS.items()]
    group, _, _ = node(f, "log", "log", h5py.Group, missing="log/sales")
    fields += [(group, name, f"log/{name}", spec) for name, spec in _LOG_FIELDS.items()]
    # Every shape is checked before anything is read: a damaged header may claim any size.
    items = []
    for parent, name, full, (dtype, trailing) in fields:
        item, shape, stored = node(parent, name, full, h5py.Dataset)
        want = (rows, *trailing(obs_size, stages))
        if shape != want:
            raise DatasetError(f"{path}: {_shape_error(full, shape, want, obs_size, stages)}")
        if stored != dtype and not (stored.kind in _WIDENED_KINDS[dtype]
                                    and np.can_cast(stored, dtype, "safe")):
            raise DatasetError(f"{path}: {full} must have dtype {np.dtype(dtype).name}, got "
                               f"{stored}")
        items.append((name, full, item, dtype))
    arrays, log = {}, {}
    for name, full, item, dtype in items:
        try:
            array = np.asarray(item[()], dtype=dtype)
        except _H5PY_ERRORS as error:
            raise DatasetError(f"{path}: cannot read {full} (truncated or corrupt?): "
                               f"{error}") from None
        (log if full.startswith("log/") else arrays)[name] = array
    return arrays, log


def dataset_fields() -> list[str]:
    """Names of the array fields, in schema order (``log/*`` last)."""
    names = [f.name for f in fields(OfflineDataset)][1:10]
    return names + [f"log/{name}" for name in _LOG_FIELDS]
