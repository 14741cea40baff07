"""The training loop shared by every algorithm.

The dataset lives in tensors on the training device (:mod:`echelon.agents.preprocessing`). An
epoch is one pass over the training transitions in an order drawn from a seeded
``torch.Generator``; 10% of the episodes (chosen from the seed) are held out, and the train and
validation losses of every network are logged per epoch to ``metrics.csv``. A checkpoint
(:mod:`echelon.agents.checkpoint`) is written atomically after each epoch, so a killed run
resumes with ``resume=True`` and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from echelon._io import atomic_write_csv
from echelon._progress import progress as progress_bar
from echelon.agents.checkpoint import (
    CHECKPOINT_NAME,
    STATE_LOAD_ERRORS,
    CheckpointError,
    checkpoint_header,
    load_checkpoint,
    load_for_resume,
    save_checkpoint,
)
from echelon.agents.common import Algorithm
from echelon.agents.config import TrainConfig, resolve_device
from echelon.agents.policy import AgentPolicy
from echelon.agents.preprocessing import (
    Preprocessing,
    TransitionTensors,
    dataset_fingerprint,
    split_episodes,
)
from echelon.agents.registry import ALGORITHMS
from echelon.data.dataset import OfflineDataset

# Besides its own names, the module re-exports those it was split from (checkpoints, the
# preprocessing, the policy), which ``run/`` and ``cli.py`` import from here.
__all__ = [
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "AgentPolicy",
    "CheckpointError",
    "Preprocessing",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "load_checkpoint",
    "split_episodes",
    "train",
]

METRICS_NAME = "metrics.csv"


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run's files are, and its per-epoch metrics."""

    checkpoint: Path
    metrics: list[dict[str, float]]
    seconds: float
    steps: int


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
        progress: Show progress on stderr: a bar on a terminal, a few lines with the losses
            elsewhere (see :func:`echelon._progress.progress`).

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
    prep = Preprocessing.fit(data, train_rows, config.time_feature)
    training = TransitionTensors(data, train_rows, prep, config.reward_scale, device)
    validation = (TransitionTensors(data, val_rows, prep, config.reward_scale, device)
                  if len(val_rows) else None)
    steps_per_epoch = math.ceil(training.size / config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    algo_generator = torch.Generator(device=device).manual_seed(config.seed)
    data_generator = torch.Generator().manual_seed(config.seed + 1)
    obs_dim = training.observations.shape[1]
    learner = ALGORITHMS[algorithm].learner(
        obs_dim, chain.stages, algo_config, total_steps, algo_generator, device
    )
    header = checkpoint_header(algorithm, algo_config, config, chain, obs_dim, prep,
                               dataset_fingerprint(data), total_steps)
    metrics: list[dict[str, float]] = []
    first_epoch = 1
    if resume and checkpoint_path.exists():
        saved = load_for_resume(checkpoint_path, header)
        try:
            learner.load_state_dict(saved["state"])
            algo_generator.set_state(saved["rng"]["algo"].to(algo_generator.get_state().device))
            data_generator.set_state(saved["rng"]["data"])
        except STATE_LOAD_ERRORS as error:
            raise CheckpointError(f"{checkpoint_path}: its weights or random state do not fit "
                                  f"this run: {error}") from None
        metrics = list(saved["metrics"])
        first_epoch = saved["epoch"] + 1

    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=config.precision == "bfloat16")
    start = time.perf_counter()
    bar = progress_bar(total=total_steps, initial=(first_epoch - 1) * steps_per_epoch,
                       enabled=progress, desc=algorithm, unit="step")
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
            rng = {"algo": algo_generator.get_state().cpu(), "data": data_generator.get_state()}
            save_checkpoint(checkpoint_path, header, epoch=epoch, state=learner.state_dict(),
                            metrics=metrics, rng=rng)
            atomic_write_csv(out / METRICS_NAME, metrics)
    finally:
        bar.close()
    return TrainResult(checkpoint_path, metrics, time.perf_counter() - start, total_steps)


def _diverged(algorithm: str, name: str, value: float, when: str, epoch: int,
              checkpoint_path: Path) -> TrainingDiverged:
    kept = (f"the last good checkpoint (epoch {epoch - 1}) is kept in {checkpoint_path}"
            if epoch > 1 else "no checkpoint was written")
    return TrainingDiverged(f"{algorithm}: {name} became {value} {when}; {kept}. Lower the learning "
                            "rate or scale the rewards (train.reward_scale).")


def _validate(learner: Algorithm, split: TransitionTensors, chunk: int = 4096) -> dict[str, float]:
    """The learner's losses over a whole split, in chunks, weighted by the chunks' sizes."""
    totals: dict[str, float] = {}
    for start in range(0, split.size, chunk):
        index = torch.arange(start, min(start + chunk, split.size), device=split.observations.device)
        for name, value in learner.losses(split.batch(index)).items():
            totals[name] = totals.get(name, 0.0) + value * len(index)
    return {name: value / split.size for name, value in totals.items()}


