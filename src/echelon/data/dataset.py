"""The offline dataset: transitions of logged episodes, their schema and its validation.

The HDF5 file of a dataset is written and read by :mod:`echelon.data.dataset_file`.

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
| ``log/sales``          | (M, S+1)    | float64 | retail sales, then units shipped by stages 1..S (the retail column gives the ``sales_history`` observation: :meth:`OfflineDataset.sales_history`) |
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

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

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

    def summary(self) -> dict[str, Any]:
        """What ``echelon dataset inspect`` shows: sizes, returns per behaviour policy, ranges.

        Returns:
            A JSON-ready dict; a behaviour with no episode has ``mean_return`` None, and one
            with a single episode ``std_return`` None.
        """
        returns, behaviour = self.episode_returns(), self.episode_behaviour()
        known = bool(self.behaviour_policies)
        policies = []
        for k, spec in enumerate(self.behaviour_policies or [{"name": "unknown"}]):
            mine = returns[behaviour == (k if known else -1)]
            policies.append({
                "id": k if known else -1,
                "name": spec.get("name"),
                "params": spec.get("params"),
                "episodes": int(len(mine)),
                "mean_return": float(mine.mean()) if len(mine) else None,
                "std_return": float(mine.std(ddof=1)) if len(mine) > 1 else None,
            })
        return {
            "transitions": len(self),
            "episodes": self.episodes,
            "observation_size": self.chain.observation_size,
            "action_size": self.chain.stages,
            "mean_return": float(returns.mean()),
            "behaviour_policies": policies,
            "action_min": self.actions.min(axis=0).tolist(),
            "action_max": self.actions.max(axis=0).tolist(),
            "observation_min": self.observations.min(axis=0).tolist(),
            "observation_max": self.observations.max(axis=0).tolist(),
            "source": self.source,
        }

    def sales_history(self, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``depth`` periods' retail sales seen at each transition, from ``log/sales``.

        What the env's ``sales_history=depth`` option appends to the observation: oldest first,
        zero before the episode's first logged period (as before period 0 in the env).

        Returns:
            (M, depth) before each step, and (M, depth) after it (for ``next_observations``).
        """
        retail = self.log["sales"][:, 0]
        rows = np.arange(len(self))
        first = np.flatnonzero(np.diff(self.episode_ids, prepend=-1))[self.episode_ids]
        before, after = np.zeros((len(self), depth)), np.zeros((len(self), depth))
        for back in range(1, depth + 1):
            seen = rows - back >= first
            before[seen, depth - back] = retail[rows[seen] - back]
            seen = rows - back + 1 >= first
            after[seen, depth - back] = retail[rows[seen] - back + 1]
        return before, after

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


def concatenate(parts: list[OfflineDataset], *, source: dict[str, Any]) -> OfflineDataset:
    """One dataset of the episodes of several of the same chain, in the given order.

    Episode ids run on from part to part, the behaviour policies are listed part after part
    (each part's ids shifted to its own), and the seeds are kept per part.

    Raises:
        DatasetError: If there is no part or the chains differ.
    """
    if not parts:
        raise DatasetError("concatenate needs at least one dataset")
    chain = parts[0].chain
    if any(part.chain != chain for part in parts):
        raise DatasetError("concatenate needs datasets of one chain")
    arrays: dict[str, list[np.ndarray]] = {name: [] for name in _TRANSITION_FIELDS}
    logs: dict[str, list[np.ndarray]] = {name: [] for name in parts[0].log}
    policies: list[dict[str, Any]] = []
    episodes = 0
    for part in parts:
        for name in _TRANSITION_FIELDS:
            arrays[name].append(getattr(part, name))
        arrays["episode_ids"][-1] = part.episode_ids + episodes
        known = part.behaviour_ids >= 0
        arrays["behaviour_ids"][-1] = np.where(known, part.behaviour_ids + len(policies), -1)
        for name in logs:
            logs[name].append(part.log[name])
        policies += part.behaviour_policies
        episodes += part.episodes
    return OfflineDataset(
        chain=chain,
        **{name: np.concatenate(values) for name, values in arrays.items()},
        log={name: np.concatenate(values) for name, values in logs.items()},
        behaviour_policies=policies,
        seeds={"parts": [part.seeds for part in parts]},
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


def type_name(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return type(value).__name__


def _validate_metadata(data: OfflineDataset) -> None:
    if not isinstance(data.chain, ChainConfig):
        raise DatasetError(f"chain must be a ChainConfig, got {type_name(data.chain)}")
    if not isinstance(data.log, dict):
        raise DatasetError(f"log must be a dict of the log/* arrays, got {type_name(data.log)}")
    if not isinstance(data.behaviour_policies, list):
        raise DatasetError("behaviour_policies must be a list of objects, got "
                           f"{type_name(data.behaviour_policies)}")
    for k, spec in enumerate(data.behaviour_policies):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            got = (f"name {spec.get('name')!r}" if isinstance(spec, dict) else type_name(spec))
            raise DatasetError(f"behaviour_policies[{k}] must be an object with a string name, "
                               f"got {got}")
        if "params" in spec and not isinstance(spec["params"], dict):
            raise DatasetError(f"behaviour_policies[{k}].params must be an object, got "
                               f"{type_name(spec['params'])}")
    for name in ("seeds", "source"):
        if not isinstance(getattr(data, name), dict):
            raise DatasetError(f"{name} must be a dict, got {type_name(getattr(data, name))}")


def shape_error(name: str, got: Any, want: tuple[int, ...], obs_size: int,
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
            raise shape_error(name, getattr(array, "shape", type(array).__name__), want,
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


def dataset_fields() -> list[str]:
    """Names of the array fields, in schema order (``log/*`` last)."""
    names = [f.name for f in fields(OfflineDataset)][1:10]
    return names + [f"log/{name}" for name in _LOG_FIELDS]
