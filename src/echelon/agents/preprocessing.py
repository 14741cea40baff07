"""What the networks see of a dataset: normalised observations, scaled actions, tensors, batches.

The statistics come from the training episodes only (:func:`split_episodes` holds 10% out, drawn
from the seed), are kept in the checkpoint (:class:`Preprocessing`), and are applied again when
a trained agent acts. :func:`dataset_fingerprint` ties a checkpoint to the transitions it was
trained on, so that a resumed run trains on the same data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from echelon.agents.common import Batch
from echelon.agents.config import ACTION_SCALINGS
from echelon.data.dataset import OfflineDataset

_PREPROCESSING_KEYS = ("obs_mean", "obs_std", "action_low", "action_high", "time_feature", "periods")
# Keys added later, with the value a checkpoint written before them means.
_LATER_KEYS = {"sales_history": 0}
# Optional later keys: absent means the actions were scaled over the env's bounds.
_SCALE_KEYS = ("scale_low", "scale_high")
# A feature that is constant in the training data (std 0) is centred, not divided by zero.
_STD_FLOOR = 1e-3


@dataclass(frozen=True)
class Preprocessing:
    """How raw observations and actions map to what the networks see (kept in the checkpoint)."""

    obs_mean: np.ndarray
    """(D,) mean of the training observations (sales history and time feature included)."""
    obs_std: np.ndarray
    """(D,) their standard deviation, floored at 1e-3."""
    action_low: np.ndarray
    """(A,) the env's lowest order per stage (0)."""
    action_high: np.ndarray
    """(A,) the env's highest order per stage (the capacities)."""
    time_feature: bool
    periods: int
    sales_history: int = 0
    """Retail sales of the last k periods follow the OR-Gym observation (before the time)."""
    scale_low: np.ndarray | None = None
    """(A,) the order each stage's -1 stands for (None: ``action_low``)."""
    scale_high: np.ndarray | None = None
    """(A,) the order each stage's 1 stands for (None: ``action_high``)."""

    @classmethod
    def fit(cls, data: OfflineDataset, rows: np.ndarray, time_feature: bool,
            sales_history: int = 0, action_scaling: str = "bounds") -> Preprocessing:
        """The statistics of the transitions ``rows`` of ``data`` (the training split).

        Args:
            data: The dataset.
            rows: (R,) indices of the transitions to take the statistics of.
            time_feature: Append the normalised period n/T to the observation.
            sales_history: Append the last k periods' retail sales (0 .. T).
            action_scaling: ``bounds`` (the env's [0, capacity]) or ``data`` (each stage's
                lowest and highest logged order in ``rows``; a stage whose logged orders are
                all equal keeps the env's bounds).

        Raises:
            ValueError: If ``sales_history`` exceeds the chain's periods, or the scaling is
                unknown.
        """
        if action_scaling not in ACTION_SCALINGS:
            raise ValueError(f"train.action_scaling must be one of {list(ACTION_SCALINGS)}, got "
                             f"{action_scaling!r}")
        chain = data.chain
        if sales_history > chain.periods:
            raise ValueError(f"train.sales_history must be at most the chain's {chain.periods} "
                             f"periods, got {sales_history}")
        raw_obs = data.observations[rows]
        if sales_history:
            raw_obs = np.column_stack([raw_obs, data.sales_history(sales_history)[0][rows]])
        if time_feature:
            raw_obs = np.column_stack([raw_obs, data.periods[rows] / chain.periods])
        low, high = np.zeros(chain.stages), np.asarray(chain.capacity, dtype=np.float64)
        scale_low = scale_high = None
        if action_scaling == "data":
            logged = np.asarray(data.actions[rows], dtype=np.float64)
            scale_low, scale_high = logged.min(axis=0), logged.max(axis=0)
            flat = scale_high <= scale_low
            scale_low, scale_high = np.where(flat, low, scale_low), np.where(flat, high, scale_high)
        return cls(
            obs_mean=raw_obs.mean(axis=0),
            obs_std=np.maximum(raw_obs.std(axis=0), _STD_FLOOR),
            action_low=low,
            action_high=high,
            time_feature=time_feature,
            periods=chain.periods,
            sales_history=sales_history,
            scale_low=scale_low,
            scale_high=scale_high,
        )

    @property
    def action_range(self) -> tuple[np.ndarray, np.ndarray]:
        """The orders that -1 and 1 stand for, per stage."""
        if self.scale_low is None or self.scale_high is None:
            return self.action_low, self.action_high
        return self.scale_low, self.scale_high

    def observations(self, obs: np.ndarray, period: np.ndarray | int,
                     sales: np.ndarray | None = None) -> np.ndarray:
        """Raw (N, obs_size) observations at the given periods -> normalised (N, D) float32.

        ``sales`` is the (N, k) retail sales history when ``sales_history`` is k > 0."""
        obs = np.asarray(obs, dtype=np.float64)
        if self.sales_history:
            obs = np.column_stack([obs, sales])
        if self.time_feature:
            time_index = np.broadcast_to(np.asarray(period, dtype=np.float64) / self.periods, obs.shape[:1])
            obs = np.column_stack([obs, time_index])
        return ((obs - self.obs_mean) / self.obs_std).astype(np.float32)

    def scale_actions(self, actions: np.ndarray) -> np.ndarray:
        """Orders -> [-1, 1] over :attr:`action_range` (orders beyond it map beyond)."""
        low, high = self.action_range
        return (2.0 * (actions - low) / (high - low) - 1.0).astype(np.float32)

    def unscale_actions(self, scaled: np.ndarray) -> np.ndarray:
        """[-1, 1] -> orders over :attr:`action_range`, clipped to the env's bounds."""
        low, high = self.action_range
        orders = low + (np.asarray(scaled, dtype=np.float64) + 1.0) * 0.5 * (high - low)
        return np.clip(orders, self.action_low, self.action_high)

    def to_dict(self) -> dict[str, Any]:
        return {"obs_mean": self.obs_mean.tolist(), "obs_std": self.obs_std.tolist(),
                "action_low": self.action_low.tolist(), "action_high": self.action_high.tolist(),
                "time_feature": self.time_feature, "periods": self.periods,
                "sales_history": self.sales_history,
                **({"scale_low": self.scale_low.tolist(), "scale_high": self.scale_high.tolist()}
                   if self.scale_low is not None and self.scale_high is not None else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`, checked.

        Raises:
            ValueError: Naming the key that is missing or wrong: the arrays must be
                one-dimensional lists of finite numbers, ``obs_std`` > 0, ``action_high`` >
                ``action_low`` of the same length, ``time_feature`` a bool, ``periods`` an
                integer >= 1, ``sales_history`` (0 where absent) an integer in 0 .. periods,
                ``scale_low`` and ``scale_high`` (both or neither) one per stage, high above
                low.
        """
        if not isinstance(data, dict):
            raise ValueError(f"preprocessing must be a dict, got {type(data).__name__}")
        missing = [k for k in _PREPROCESSING_KEYS if k not in data]
        if missing:
            raise ValueError(f"preprocessing lacks {missing}")
        arrays = {}
        scaled = [key for key in _SCALE_KEYS if key in data]
        if scaled and len(scaled) != len(_SCALE_KEYS):
            raise ValueError(f"preprocessing needs both {list(_SCALE_KEYS)} or neither")
        for key in ("obs_mean", "obs_std", "action_low", "action_high", *scaled):
            value = data[key]
            ok = isinstance(value, (list, tuple)) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            array = np.asarray(value, dtype=np.float64) if ok else None
            if array is None or array.ndim != 1 or len(array) < 1 or not np.all(np.isfinite(array)):
                raise ValueError(f"preprocessing.{key} must be a non-empty list of finite numbers")
            arrays[key] = array
        if len(arrays["obs_std"]) != len(arrays["obs_mean"]) or np.any(arrays["obs_std"] <= 0):
            raise ValueError("preprocessing.obs_std must be > 0, one entry per obs_mean entry")
        low, high = arrays["action_low"], arrays["action_high"]
        if len(high) != len(low) or np.any(high <= low):
            raise ValueError("preprocessing.action_high must exceed action_low, stage by stage")
        if scaled and (len(arrays["scale_low"]) != len(low) or len(arrays["scale_high"]) != len(low)
                       or np.any(arrays["scale_high"] <= arrays["scale_low"])):
            raise ValueError("preprocessing.scale_high must exceed scale_low, one per stage")
        if not isinstance(data["time_feature"], bool):
            raise ValueError(f"preprocessing.time_feature must be true or false, got "
                             f"{data['time_feature']!r}")
        periods = data["periods"]
        if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
            raise ValueError(f"preprocessing.periods must be an integer >= 1, got {periods!r}")
        depth = data.get("sales_history", _LATER_KEYS["sales_history"])
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= periods:
            raise ValueError(f"preprocessing.sales_history must be an integer in 0 .. {periods}, "
                             f"got {depth!r}")
        return cls(**arrays, time_feature=data["time_feature"], periods=periods,
                   sales_history=depth)


def split_episodes(episodes: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) episode ids; the validation share is drawn from the seed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    order = rng.permutation(episodes)
    held = int(round(fraction * episodes)) if episodes > 1 else 0
    return np.sort(order[held:]), np.sort(order[:held])


def dataset_fingerprint(data: OfflineDataset) -> str:
    """A hash of the transitions, so that a resumed run trains on the same data."""
    digest = hashlib.sha256()
    for array in (data.observations, data.actions, data.rewards, data.next_observations,
                  data.terminations, data.episode_ids, data.periods):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


class TransitionTensors:
    """One split of the dataset as preprocessed float32 tensors on the device.

    Args:
        data: The dataset.
        rows: (R,) indices of the split's transitions.
        prep: The preprocessing of the run.
        reward_scale: Rewards are multiplied by it.
        device: Where the tensors live.
    """

    def __init__(self, data: OfflineDataset, rows: np.ndarray, prep: Preprocessing,
                 reward_scale: float, device: torch.device) -> None:
        def put(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=device)

        periods = data.periods[rows]
        before = after = None
        if prep.sales_history:
            before, after = (window[rows] for window in data.sales_history(prep.sales_history))
        # (R, D) normalised observations, and the next ones (at the next period)
        self.observations = put(prep.observations(data.observations[rows], periods, before))
        self.next_observations = put(prep.observations(data.next_observations[rows], periods + 1,
                                                       after))
        self.actions = put(prep.scale_actions(data.actions[rows]))  # (R, A) in [-1, 1]
        self.rewards = put(data.rewards[rows, None] * reward_scale)  # (R, 1) scaled
        self.terminations = put(data.terminations[rows, None])  # (R, 1) 1.0 where it ended
        self.size = len(rows)

    def batch(self, index: torch.Tensor) -> Batch:
        """The transitions at ``index`` (a (B,) tensor of row positions on the device)."""
        return Batch(self.observations[index], self.actions[index], self.rewards[index],
                     self.next_observations[index], self.terminations[index])
