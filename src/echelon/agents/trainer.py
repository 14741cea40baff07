"""The training loop shared by every algorithm: tensors, batches, validation, checkpoints.

The dataset lives in tensors on the training device. An epoch is one pass over the training
transitions in an order drawn from a seeded ``torch.Generator``; 10% of the episodes (chosen
from the seed) are held out, and the train and validation losses of every network are logged
per epoch to ``metrics.csv``. A checkpoint is written atomically after each epoch, so a killed
run resumes with ``resume=True`` and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from echelon._fields import check_types
from echelon._io import atomic_write
from echelon.agents.common import Batch
from echelon.agents.registry import ALGORITHMS, algorithm_config
from echelon.data.dataset import OfflineDataset
from echelon.sim.config import ChainConfig

CHECKPOINT_FORMAT = "echelon-agent"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, of another format, or does not match the run."""


@dataclass(frozen=True)
class TrainConfig:
    """How an algorithm is trained on a dataset."""

    epochs: int = 100
    """Passes over the training transitions, >= 1."""
    batch_size: int = 256
    """Transitions per gradient step, >= 1."""
    seed: int = 0
    """Seeds the validation split, the initial weights and the batch order."""
    validation_fraction: float = 0.1
    """Share of episodes held out for validation losses, in [0, 0.5]."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before training (1: as logged, OR-Gym's discounted profit)."""
    time_feature: bool = False
    """Append the normalised period n/T to the observation (OR-Gym's has no time index)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    precision: str = "float32"
    """``float32``, or ``bfloat16`` to run the hidden layers under bfloat16 autocast (output
    layers, losses and weights stay float32): several times faster on CPUs with bfloat16
    instructions, at some cost in precision."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"train.{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"train.seed must be an integer >= 0, got {self.seed!r}")
        if not 0.0 <= self.validation_fraction <= 0.5:
            raise ValueError(
                f"train.validation_fraction must be in [0, 0.5], got {self.validation_fraction!r}"
            )
        if not math.isfinite(self.reward_scale) or self.reward_scale <= 0:
            raise ValueError(f"train.reward_scale must be > 0, got {self.reward_scale!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"train.precision must be float32 or bfloat16, got {self.precision!r}")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device")
    return torch.device(name)


_PREPROCESSING_KEYS = ("obs_mean", "obs_std", "action_low", "action_high", "time_feature", "periods")


@dataclass(frozen=True)
class Preprocessing:
    """How raw observations and actions map to what the networks see (kept in the checkpoint)."""

    obs_mean: np.ndarray
    """(D,) mean of the training observations (time feature included)."""
    obs_std: np.ndarray
    """(D,) their standard deviation, floored at 1e-3."""
    action_low: np.ndarray
    """(A,) the env's lowest order per stage (0)."""
    action_high: np.ndarray
    """(A,) the env's highest order per stage (the capacities)."""
    time_feature: bool
    periods: int

    def observations(self, obs: np.ndarray, period: np.ndarray | int) -> np.ndarray:
        """Raw (N, obs_size) observations at the given periods -> normalised (N, D) float32."""
        obs = np.asarray(obs, dtype=np.float64)
        if self.time_feature:
            time_index = np.broadcast_to(np.asarray(period, dtype=np.float64) / self.periods, obs.shape[:1])
            obs = np.column_stack([obs, time_index])
        return ((obs - self.obs_mean) / self.obs_std).astype(np.float32)

    def scale_actions(self, actions: np.ndarray) -> np.ndarray:
        """Orders -> [-1, 1] over the env's bounds (orders beyond the bounds map beyond)."""
        return (2.0 * (actions - self.action_low) / (self.action_high - self.action_low) - 1.0).astype(np.float32)

    def unscale_actions(self, scaled: np.ndarray) -> np.ndarray:
        """[-1, 1] -> orders, clipped to the env's bounds."""
        orders = self.action_low + (np.asarray(scaled, dtype=np.float64) + 1.0) * 0.5 * (self.action_high - self.action_low)
        return np.clip(orders, self.action_low, self.action_high)

    def to_dict(self) -> dict[str, Any]:
        return {"obs_mean": self.obs_mean.tolist(), "obs_std": self.obs_std.tolist(),
                "action_low": self.action_low.tolist(), "action_high": self.action_high.tolist(),
                "time_feature": self.time_feature, "periods": self.periods}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`, checked.

        Raises:
            ValueError: Naming the key that is missing or wrong: the arrays must be
                one-dimensional lists of finite numbers, ``obs_std`` > 0, ``action_high`` >
                ``action_low`` of the same length, ``time_feature`` a bool, ``periods`` an
                integer >= 1.
        """
        if not isinstance(data, dict):
            raise ValueError(f"preprocessing must be a dict, got {type(data).__name__}")
        missing = [k for k in _PREPROCESSING_KEYS if k not in data]
        if missing:
            raise ValueError(f"preprocessing lacks {missing}")
        arrays = {}
        for key in ("obs_mean", "obs_std", "action_low", "action_high"):
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
        if not isinstance(data["time_feature"], bool):
            raise ValueError(f"preprocessing.time_feature must be true or false, got "
                             f"{data['time_feature']!r}")
        periods = data["periods"]
        if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
            raise ValueError(f"preprocessing.periods must be an integer >= 1, got {periods!r}")
        return cls(**arrays, time_feature=data["time_feature"], periods=periods)


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


class _Tensors:
    """One split of the dataset as tensors on the device."""

    def __init__(self, data: OfflineDataset, rows: np.ndarray, prep: Preprocessing,
                 reward_scale: float, device: torch.device) -> None:
        def put(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=device)

        periods = data.periods[rows]
        self.observations = put(prep.observations(data.observations[rows], periods))
        self.next_observations = put(prep.observations(data.next_observations[rows], periods + 1))
        self.actions = put(prep.scale_actions(data.actions[rows]))
        self.rewards = put(data.rewards[rows, None] * reward_scale)
        self.terminations = put(data.terminations[rows, None])
        self.size = len(rows)

    def batch(self, index: torch.Tensor) -> Batch:
        return Batch(self.observations[index], self.actions[index], self.rewards[index],
                     self.next_observations[index], self.terminations[index])


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run's files are, and its per-epoch metrics."""

    checkpoint: Path
    metrics: list[dict[str, float]]
    seconds: float
    steps: int


def _write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    text = io.StringIO()
    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda handle: handle.write(text.getvalue().encode()))


def train(
    data: OfflineDataset,
    algorithm: str,
    algo_config: Any,
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = False,
) -> TrainResult:
    """Trains an algorithm on a dataset, writing ``checkpoint.pt`` and ``metrics.csv`` to ``out``.

    Args:
        data: The offline dataset.
        algorithm: A key of ``ALGORITHMS`` (``iql``, ``bc``, ``td3bc``, ``td3``, ``cql``).
        algo_config: That algorithm's config dataclass.
        config: Epochs, batch size, seed and the rest.
        out: The run's folder (created).
        resume: Continue from the checkpoint in ``out``.
        progress: Show a progress bar on stderr.

    Returns:
        The checkpoint's path and the metrics.

    Raises:
        ValueError: If the algorithm is unknown, ``algo_config`` is not its config, or the device
            is not available; nothing is created then.
        CheckpointError: If ``out`` holds a checkpoint and ``resume`` is off, or the checkpoint
            to resume does not match this run.
        TrainingDiverged: If a loss becomes NaN or infinite (the last checkpoint is kept).
    """
    # Every argument is checked before the folder is created, so that a refused run leaves
    # nothing behind.
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    if not isinstance(algo_config, ALGORITHMS[algorithm].config):
        raise ValueError(f"algo_config must be a {ALGORITHMS[algorithm].config.__name__} for "
                         f"{algorithm}, got {type(algo_config).__name__}")
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(data, OfflineDataset):
        raise ValueError(f"data must be an OfflineDataset, got {type(data).__name__}")
    device = resolve_device(config.device)
    out = Path(out)
    checkpoint_path = out / CHECKPOINT_NAME
    if checkpoint_path.exists() and not resume:
        raise CheckpointError(
            f"{checkpoint_path} exists; pass resume to continue that run, or choose another folder"
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder for the run")
    out.mkdir(parents=True, exist_ok=True)
    chain = data.chain
    train_eps, val_eps = split_episodes(data.episodes, config.validation_fraction, config.seed)
    train_rows = np.flatnonzero(np.isin(data.episode_ids, train_eps))
    val_rows = np.flatnonzero(np.isin(data.episode_ids, val_eps))
    raw_obs = data.observations[train_rows]
    if config.time_feature:
        raw_obs = np.column_stack([raw_obs, data.periods[train_rows] / chain.periods])
    prep = Preprocessing(
        obs_mean=raw_obs.mean(axis=0),
        obs_std=np.maximum(raw_obs.std(axis=0), 1e-3),
        action_low=np.zeros(chain.stages),
        action_high=np.asarray(chain.capacity, dtype=np.float64),
        time_feature=config.time_feature,
        periods=chain.periods,
    )
    training = _Tensors(data, train_rows, prep, config.reward_scale, device)
    validation = _Tensors(data, val_rows, prep, config.reward_scale, device) if len(val_rows) else None
    steps_per_epoch = math.ceil(training.size / config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    algo_generator = torch.Generator(device=device).manual_seed(config.seed)
    data_generator = torch.Generator().manual_seed(config.seed + 1)
    learner = ALGORITHMS[algorithm].learner(
        training.observations.shape[1], chain.stages, algo_config, total_steps, algo_generator, device
    )
    header = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "algorithm": algorithm,
        "algo_config": dataclasses.asdict(algo_config),
        "train_config": dataclasses.asdict(config),
        "chain": chain.to_dict(),
        "obs_dim": training.observations.shape[1],
        "action_dim": chain.stages,
        "preprocessing": prep.to_dict(),
        "dataset": dataset_fingerprint(data),
        "total_steps": total_steps,
    }
    metrics: list[dict[str, float]] = []
    first_epoch = 1
    if resume and checkpoint_path.exists():
        saved = load_checkpoint(checkpoint_path)
        for key in ("algorithm", "algo_config", "train_config", "dataset", "obs_dim", "total_steps"):
            mine, theirs = _comparable(header[key]), _comparable(saved.get(key))
            if mine != theirs:
                raise CheckpointError(
                    f"{checkpoint_path}: its {key} differs from this run's; it cannot be resumed"
                )
        rng, saved_metrics = saved.get("rng"), saved.get("metrics")
        if (not isinstance(rng, dict) or not all(isinstance(rng.get(k), torch.Tensor)
                                                 for k in ("algo", "data"))
                or not isinstance(saved_metrics, list)
                or not all(isinstance(row, dict) for row in saved_metrics)):
            raise CheckpointError(f"{checkpoint_path}: its rng or metrics are missing or damaged; "
                                  "it cannot be resumed")
        try:
            learner.load_state_dict(saved["state"])
            algo_generator.set_state(rng["algo"].to(algo_generator.get_state().device))
            data_generator.set_state(rng["data"])
        except _STATE_ERRORS as error:
            raise CheckpointError(f"{checkpoint_path}: its weights or random state do not fit "
                                  f"this run: {error}") from None
        metrics = list(saved_metrics)
        first_epoch = saved["epoch"] + 1

    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=config.precision == "bfloat16")
    start = time.perf_counter()
    bar = tqdm(total=total_steps, initial=(first_epoch - 1) * steps_per_epoch, disable=not progress,
               desc=algorithm, unit="step")
    try:
        for epoch in range(first_epoch, config.epochs + 1):
            order = torch.randperm(training.size, generator=data_generator).to(device)
            sums: dict[str, float] = {}
            counts: dict[str, int] = {}
            for step in range(steps_per_epoch):
                index = order[step * config.batch_size : (step + 1) * config.batch_size]
                with autocast:
                    losses = learner.update(training.batch(index))
                for name, value in losses.items():
                    if not math.isfinite(value):
                        raise _diverged(algorithm, name, value, f"at epoch {epoch}, step {step + 1}",
                                        epoch, checkpoint_path)
                    sums[name] = sums.get(name, 0.0) + value
                    counts[name] = counts.get(name, 0) + 1
                bar.update(1)
            row: dict[str, float] = {"epoch": epoch, "step": epoch * steps_per_epoch,
                                     "seconds": time.perf_counter() - start}
            row.update({f"train_{k}": v / counts[k] for k, v in sums.items()})
            # A loss is computed before its step, so the epoch's last step may have broken the
            # weights unseen: check the losses after it before the epoch is checkpointed.
            with autocast:
                after = (_validate(learner, validation) if validation is not None
                         else learner.losses(training.batch(index)))
            for name, value in after.items():
                if not math.isfinite(value):
                    raise _diverged(algorithm, name, value, f"after epoch {epoch}", epoch,
                                    checkpoint_path)
            if validation is not None:
                row.update({f"val_{k}": v for k, v in after.items()})
            metrics.append(row)
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k.endswith("_loss")})
            state = {**header, "epoch": epoch, "state": learner.state_dict(), "metrics": metrics,
                     "rng": {"algo": algo_generator.get_state().cpu(), "data": data_generator.get_state()}}
            atomic_write(checkpoint_path, lambda handle: torch.save(state, handle))
            _write_metrics(out / METRICS_NAME, metrics)
    finally:
        bar.close()
    return TrainResult(checkpoint_path, metrics, time.perf_counter() - start, total_steps)


def _diverged(algorithm: str, name: str, value: float, when: str, epoch: int,
              checkpoint_path: Path) -> TrainingDiverged:
    kept = (f"the last good checkpoint (epoch {epoch - 1}) is kept in {checkpoint_path}"
            if epoch > 1 else "no checkpoint was written")
    return TrainingDiverged(f"{algorithm}: {name} became {value} {when}; {kept}. Lower the learning "
                            "rate or scale the rewards (train.reward_scale).")


def _comparable(value: Any) -> Any:
    """Config values as plain lists, so that tuples saved in a checkpoint compare equal."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k != "device"}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


def _validate(learner, split: _Tensors, chunk: int = 4096) -> dict[str, float]:
    totals: dict[str, float] = {}
    for start in range(0, split.size, chunk):
        index = torch.arange(start, min(start + chunk, split.size), device=split.observations.device)
        for name, value in learner.losses(split.batch(index)).items():
            totals[name] = totals.get(name, 0.0) + value * len(index)
    return {name: value / split.size for name, value in totals.items()}


# What loading a damaged state dict into a module or optimizer raises: torch reports a shape or
# key mismatch as RuntimeError, and a value of the wrong type as any of the others.
_STATE_ERRORS = (KeyError, RuntimeError, TypeError, ValueError, IndexError, AttributeError)
# The same for a chain dict that ChainConfig cannot take (a list where a number belongs, an
# integer too large for a float).
_CONFIG_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError,
                  RecursionError)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a checkpoint file and checks everything an :class:`AgentPolicy` builds from it.

    Returns:
        The checkpoint's dict, as :func:`train` wrote it.

    Raises:
        CheckpointError: Naming the file and what is wrong: it is missing, unreadable (empty,
            truncated, or a pickle that is not plain data: it is loaded with
            ``weights_only=True``), not an echelon agent checkpoint or of another version; a key
            is missing or of the wrong type; the chain, ``algo_config`` (unknown keys, wrong
            types, out of range) or ``train_config`` are invalid; ``obs_dim`` or ``action_dim``
            are not positive integers or do not match the chain; the preprocessing is incomplete,
            non-finite or of the wrong lengths; or ``state`` is not a dict or holds NaN or
            infinite values.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated?): {error}") from None
    # Types first: a tensor compared with a string or a number gives a tensor, not a bool.
    if not isinstance(saved, dict) or not isinstance(saved.get("format"), str) \
            or saved["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an echelon agent checkpoint")
    if not _positive_int(saved.get("version")) or saved["version"] != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {_short(saved.get('version'))}, this echelon reads "
            f"{CHECKPOINT_VERSION}"
        )
    if not isinstance(saved.get("algorithm"), str) or saved["algorithm"] not in ALGORITHMS:
        raise CheckpointError(f"{path}: unknown algorithm {_short(saved.get('algorithm'))}")
    missing = [k for k in ("algo_config", "train_config", "chain", "obs_dim", "action_dim",
                           "preprocessing", "state", "epoch") if k not in saved]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    try:
        _check_checkpoint(saved)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return saved


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_checkpoint(saved: dict[str, Any]) -> None:
    """Raises ValueError naming the first key of a checkpoint that is wrong and how."""
    for key in ("obs_dim", "action_dim", "epoch"):
        if not _positive_int(saved[key]):
            raise ValueError(f"{key} must be an integer >= 1, got {_short(saved[key])}")
    if "total_steps" in saved and not _positive_int(saved["total_steps"]):
        raise ValueError(f"total_steps must be an integer >= 1, got {_short(saved['total_steps'])}")
    if not isinstance(saved["chain"], dict):
        raise ValueError(f"chain must be a dict, got {type(saved['chain']).__name__}")
    try:
        chain = ChainConfig.from_dict(saved["chain"])
    except _CONFIG_ERRORS as error:
        raise ValueError(f"bad chain: {error}") from None
    prep = Preprocessing.from_dict(saved["preprocessing"])
    obs_dim = chain.observation_size + int(prep.time_feature)
    time_note = " plus the time feature" if prep.time_feature else ""
    for key, mine, want, what in (
        ("obs_dim", saved["obs_dim"], obs_dim, f"the chain's observation size{time_note}"),
        ("action_dim", saved["action_dim"], chain.stages, "the chain's number of stages"),
        ("preprocessing.obs_mean length", len(prep.obs_mean), obs_dim, "obs_dim"),
        ("preprocessing.action_low length", len(prep.action_low), chain.stages, "action_dim"),
        ("preprocessing.action_low", prep.action_low.tolist(), [0.0] * chain.stages,
         "the env's lowest orders"),
        ("preprocessing.action_high", prep.action_high.tolist(), list(chain.capacity),
         "the chain's capacities"),
        ("preprocessing.periods", prep.periods, chain.periods, "the chain's periods"),
    ):
        if mine != want:
            raise ValueError(f"{key} is {mine}, not {want} ({what})")
    _check_config("algo_config", ALGORITHMS[saved["algorithm"]].config, saved["algo_config"])
    try:
        config = algorithm_config(saved["algorithm"], dict(saved["algo_config"]))
    except (TypeError, ValueError) as error:
        raise ValueError(f"bad algo_config: {error}") from None
    if any(width < 1 for width in config.hidden):
        raise ValueError(f"algo_config.hidden must hold layer sizes >= 1, got {list(config.hidden)}")
    _check_config("train_config", TrainConfig, saved["train_config"])
    try:
        settings = TrainConfig(**saved["train_config"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"bad train_config: {error}") from None
    if settings.time_feature != prep.time_feature:
        raise ValueError(f"preprocessing.time_feature is {prep.time_feature}, "
                         f"train_config.time_feature is {settings.time_feature}")
    state = saved["state"]
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict of weights, got {type(state).__name__}")
    # The learner allocates its networks from algo_config before the weights are compared with
    # them: a damaged hidden size must not ask for more memory than the file's weights hold.
    sizes = [saved["obs_dim"], *config.hidden, saved["action_dim"]]
    actor = sum(a * b for a, b in zip(sizes, sizes[1:]))
    held = 0
    stack: list[tuple[str, Any]] = [("state", state)]
    while stack:  # a walk without recursion: the nesting comes from the file
        where, value = stack.pop()
        if isinstance(value, torch.Tensor):
            held += value.numel()
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ValueError(f"{where} holds NaN or infinite values")
        elif isinstance(value, dict):
            stack.extend((f"{where}/{k}", v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
    if actor > held:
        raise ValueError(f"algo_config.hidden {list(config.hidden)} needs an actor of {actor:,} "
                         f"weights, the state holds {held:,} in all")


def _check_config(key: str, cls: type, values: Any) -> None:
    """Raises ValueError unless ``values`` is a dict of the config's fields, each of its type."""
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ValueError(f"{key} must be a dict of settings, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{key} has unknown settings {unknown}; known: {sorted(known)}")
    check_types(key, cls, values)


class AgentPolicy:
    """A trained checkpoint as a batched :class:`~echelon.policies.Policy`.

    The actor's deterministic action (the Gaussian mean for IQL) is mapped back to orders and
    clipped to the env's bounds.

    Args:
        checkpoint: A ``checkpoint.pt`` or the folder holding it.
        chain: If given, the chain the policy will act in; it must equal the chain the agent was
            trained on in every field (costs, capacities, lead times, backlog, demand law, ...).
        device: Where to run the actor.

    Raises:
        CheckpointError: If the checkpoint is corrupt (see :func:`load_checkpoint`), its weights
            do not fit the network, or it was trained on another chain than ``chain``; the
            message names the differing fields with both values.
    """

    reads_observation = True

    def __init__(self, checkpoint: str | os.PathLike, chain: ChainConfig | None = None,
                 device: str = "cpu") -> None:
        saved = load_checkpoint(checkpoint)
        self.checkpoint = checkpoint
        self.algorithm = saved["algorithm"]
        self.preprocessing = Preprocessing.from_dict(saved["preprocessing"])
        self.chain = ChainConfig.from_dict(saved["chain"])
        if chain is not None:
            _check_same_chain(checkpoint, self.chain, chain)
        self.device = resolve_device(device)
        config = algorithm_config(self.algorithm, dict(saved["algo_config"]))
        try:
            self.learner = ALGORITHMS[self.algorithm].learner(
                saved["obs_dim"], saved["action_dim"], config, saved.get("total_steps", 1),
                torch.Generator(device=self.device), self.device,
            )
            self.learner.load_state_dict(saved["state"])
        except _STATE_ERRORS as error:
            raise CheckpointError(f"{checkpoint}: weights do not fit the network: {error}") from None
        self.epoch = saved["epoch"]

    def act(self, obs: np.ndarray | None, state) -> np.ndarray:
        """(N, S) orders for (N, obs_size) observations at ``state.period``.

        Raises:
            CheckpointError: If the actor's output is NaN (finite but damaged weights can
                overflow inside the network); orders are never NaN.
        """
        inputs = torch.as_tensor(self.preprocessing.observations(obs, state.period), device=self.device)
        scaled = self.learner.act(inputs).cpu().numpy()
        if np.isnan(scaled).any():
            raise CheckpointError(f"{self.checkpoint}: the actor's output is NaN for these "
                                  "observations (damaged weights?)")
        return self.preprocessing.unscale_actions(scaled)


def _check_same_chain(checkpoint: str | os.PathLike, trained: ChainConfig, here: ChainConfig) -> None:
    """Raises CheckpointError naming every field in which the two chains differ."""
    theirs, mine = trained.to_dict(), here.to_dict()
    differ = [f"{name} {theirs[name]!r} when trained, {mine[name]!r} here" for name in theirs
              if theirs[name] != mine[name]]
    if differ:
        sizes = ""
        if (trained.observation_size, trained.stages) != (here.observation_size, here.stages):
            sizes = (f" (observation size {trained.observation_size} and {trained.stages} stages "
                     f"there, {here.observation_size} and {here.stages} here)")
        raise CheckpointError(f"{checkpoint}: trained on a different chain{sizes}: "
                              f"{'; '.join(differ)}")
