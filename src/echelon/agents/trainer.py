"""The training loop shared by every algorithm.

The dataset lives in tensors on the training device (:mod:`echelon.agents.preprocessing`). An
epoch is one pass over the training transitions in an order drawn from a seeded
``torch.Generator``; 10% of the episodes (chosen from the seed) are held out, and the train and
validation losses of every network are logged per epoch to ``metrics.csv``. A checkpoint
(:mod:`echelon.agents.checkpoint`) is written atomically after each epoch, so a killed run
resumes with ``resume=True`` and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
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
from echelon.agents.common import Algorithm, Batch
from echelon.agents.config import TrainConfig, resolve_device
from echelon.agents.ensemble import LearnerEnsemble
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
    "train_ensemble",
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
    return train_ensemble(data, algorithm, algo_config, [config], [out], resume=resume,
                          progress=progress)[0]


def train_ensemble(
    data: OfflineDataset,
    algorithm: str,
    algo_config: Any,
    configs: list[TrainConfig],
    outs: list[str | os.PathLike],
    *,
    resume: bool = False,
    progress: bool = False,
) -> list[TrainResult]:
    """Trains one algorithm at several seeds together, each member into its own folder.

    The members (one per config, which may differ only in the seed) run as one ensemble
    (:class:`echelon.agents.ensemble.LearnerEnsemble`): each with the initial weights, noise,
    validation split, preprocessing and batch order its seed gives it alone, so each ends with
    the weights :func:`train` gives that seed alone, to float32 tolerance, and writes the same
    files (``checkpoint.pt``, ``metrics.csv``). A single config is :func:`train` exactly.

    Members whose splits differ in size (episodes of unequal lengths) train in separate
    ensembles; on ``resume``, members whose checkpoints stopped at different epochs (a kill
    between two members' writes) are first brought to a common epoch.

    Args:
        data: The offline dataset.
        algorithm: A key of ``ALGORITHMS``.
        algo_config: That algorithm's config dataclass.
        configs: One ``TrainConfig`` per member, equal but for distinct seeds.
        outs: Each member's folder (created), as many as ``configs`` and distinct.
        resume: Continue each member from the checkpoint in its folder, where there is one.
        progress: Show progress on stderr.

    Returns:
        Each member's result, in the order of ``configs``.

    Raises:
        ValueError: As :func:`train`, or if the configs differ in more than the seed, repeat a
            seed, or ``outs`` does not match them; nothing is created then.
        CheckpointError: As :func:`train`, for any member.
        TrainingDiverged: If a member's loss becomes NaN or infinite (every member keeps its
            last checkpoint).
    """
    # Every argument is checked before any folder is created, so that a refused run leaves
    # nothing behind.
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    if not isinstance(algo_config, ALGORITHMS[algorithm].config):
        raise ValueError(f"algo_config must be a {ALGORITHMS[algorithm].config.__name__} for "
                         f"{algorithm}, got {type(algo_config).__name__}")
    configs, outs = list(configs), [Path(out) for out in outs]
    if not configs or len(outs) != len(configs):
        raise ValueError(f"train_ensemble needs one folder per config, got {len(configs)} configs "
                         f"and {len(outs)} folders")
    for config in configs:
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        if dataclasses.replace(config, seed=configs[0].seed) != configs[0]:
            raise ValueError("the members of an ensemble must share every training setting but "
                             "the seed")
    if len({c.seed for c in configs}) != len(configs) or len(set(outs)) != len(outs):
        raise ValueError("the members of an ensemble need distinct seeds and distinct folders")
    if not isinstance(data, OfflineDataset):
        raise ValueError(f"data must be an OfflineDataset, got {type(data).__name__}")
    if configs[0].sales_history > data.chain.periods:
        raise ValueError(f"train.sales_history must be at most the chain's {data.chain.periods} "
                         f"periods, got {configs[0].sales_history}")
    device = resolve_device(configs[0].device)
    for out in outs:
        checkpoint_path = out / CHECKPOINT_NAME
        if checkpoint_path.exists() and not resume:
            raise CheckpointError(
                f"{checkpoint_path} exists; pass resume to continue that run, or choose another "
                "folder")
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out} is a file, not a folder for the run")
    members = [_Member.prepare(data, algorithm, algo_config, config, out, resume, device)
               for config, out in zip(configs, outs, strict=True)]

    start = time.perf_counter()
    total = sum(m.total_steps for m in members)
    done = sum((m.first_epoch - 1) * m.steps_per_epoch for m in members)
    seeds = [c.seed for c in configs]
    desc = algorithm if len(seeds) == 1 else f"{algorithm} x{len(seeds)} seeds"
    bar = progress_bar(total=total, initial=done, enabled=progress, desc=desc,
                       unit="step" if len(seeds) == 1 else "member-step")
    try:
        while True:
            waiting = [m for m in members if m.first_epoch <= m.config.epochs]
            if not waiting:
                break
            # The members furthest behind, of one split size, to the next epoch where another
            # member stands (or the end): usually every member, in one go.
            epoch = min(m.first_epoch for m in waiting)
            size = next(m.shape for m in waiting if m.first_epoch == epoch)
            group = [m for m in waiting if m.first_epoch == epoch and m.shape == size]
            later = [m.first_epoch for m in waiting if m.first_epoch > epoch and m.shape == size]
            last = min(later) - 1 if later else group[0].config.epochs
            _train_group(group, algorithm, epoch, last, device, bar, start)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    return [TrainResult(m.checkpoint_path, m.metrics, seconds, m.total_steps) for m in members]


@dataclass
class _Member:
    """One seed of a training: its split, tensors, learner, generators and progress."""

    config: TrainConfig
    out: Path
    training: TransitionTensors
    validation: TransitionTensors | None
    steps_per_epoch: int
    total_steps: int
    learner: Any
    algo_generator: torch.Generator
    data_generator: torch.Generator
    header: dict[str, Any]
    metrics: list[dict[str, float]]
    first_epoch: int
    """The next epoch to train (``epochs + 1`` when finished)."""

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    @property
    def shape(self) -> tuple[int, int]:
        """What members of one ensemble must share: training and validation sizes."""
        return self.training.size, self.validation.size if self.validation is not None else 0

    @classmethod
    def prepare(cls, data: OfflineDataset, algorithm: str, algo_config: Any, config: TrainConfig,
                out: Path, resume: bool, device: torch.device) -> _Member:
        out.mkdir(parents=True, exist_ok=True)
        train_eps, val_eps = split_episodes(data.episodes, config.validation_fraction, config.seed)
        train_rows = np.flatnonzero(np.isin(data.episode_ids, train_eps))
        val_rows = np.flatnonzero(np.isin(data.episode_ids, val_eps))
        prep = Preprocessing.fit(data, train_rows, config.time_feature, config.sales_history,
                                 config.action_scaling)
        training = TransitionTensors(data, train_rows, prep, config.reward_scale, device)
        validation = (TransitionTensors(data, val_rows, prep, config.reward_scale, device)
                      if len(val_rows) else None)
        steps_per_epoch = math.ceil(training.size / config.batch_size)
        total_steps = steps_per_epoch * config.epochs

        algo_generator = torch.Generator(device=device).manual_seed(config.seed)
        data_generator = torch.Generator().manual_seed(config.seed + 1)
        obs_dim = training.observations.shape[1]
        learner = ALGORITHMS[algorithm].learner(
            obs_dim, data.chain.stages, algo_config, total_steps, algo_generator, device
        )
        header = checkpoint_header(algorithm, algo_config, config, data.chain, obs_dim, prep,
                                   dataset_fingerprint(data), total_steps)
        member = cls(config, out, training, validation, steps_per_epoch, total_steps, learner,
                     algo_generator, data_generator, header, [], 1)
        checkpoint_path = member.checkpoint_path
        if resume and checkpoint_path.exists():
            saved = load_for_resume(checkpoint_path, header)
            try:
                learner.load_state_dict(saved["state"])
                algo_generator.set_state(saved["rng"]["algo"].to(algo_generator.get_state().device))
                data_generator.set_state(saved["rng"]["data"])
            except STATE_LOAD_ERRORS as error:
                raise CheckpointError(f"{checkpoint_path}: its weights or random state do not "
                                      f"fit this run: {error}") from None
            member.metrics = list(saved["metrics"])
            member.first_epoch = saved["epoch"] + 1
            learner.steps = saved["epoch"] * steps_per_epoch  # not every learner saves its count
        return member


def _train_group(group: list[_Member], algorithm: str, first: int, last: int,
                 device: torch.device, bar, start: float) -> None:
    """Epochs ``first`` to ``last`` of members at the same epoch and of one split size: alone
    for one member (the solo learner itself), as an ensemble for several."""
    solo = len(group) == 1
    engine = group[0].learner if solo else LearnerEnsemble([m.learner for m in group])
    config, steps_per_epoch = group[0].config, group[0].steps_per_epoch
    if not solo:
        training = _stacked([m.training for m in group])
        validation = (_stacked([m.validation for m in group]) if group[0].validation is not None
                      else None)
        members = torch.arange(len(group), device=device)[:, None]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=config.precision == "bfloat16")
    for epoch in range(first, last + 1):
        orders = [torch.randperm(m.training.size, generator=m.data_generator).to(device)
                  for m in group]
        sums: list[dict[str, float]] = [{} for _ in group]
        counts: dict[str, int] = {}
        for step in range(steps_per_epoch):
            window = slice(step * config.batch_size, (step + 1) * config.batch_size)
            with autocast:
                if solo:
                    index = orders[0][window]
                    losses = [engine.update(group[0].training.batch(index))]
                else:
                    index = torch.stack([order[window] for order in orders])
                    losses = engine.update(_gather(training, members, index))
            for member, member_losses, member_sums in zip(group, losses, sums, strict=True):
                for name, value in member_losses.items():
                    if not math.isfinite(value):
                        raise _diverged(_label(algorithm, member, group), name, value,
                                        f"at epoch {epoch}, step {step + 1}", epoch,
                                        member.checkpoint_path)
                    member_sums[name] = member_sums.get(name, 0.0) + value
            for name in losses[0]:
                counts[name] = counts.get(name, 0) + 1
            bar.update(len(group))
        # A loss is computed before its step, so the epoch's last step may have broken the
        # weights unseen: check the losses after it before the epoch is checkpointed.
        with autocast:
            if solo:
                member = group[0]
                after = [_validate(engine, member.validation) if member.validation is not None
                         else engine.losses(member.training.batch(index))]
            elif validation is not None:
                after = _validate_ensemble(engine, validation, members)
            else:
                after = engine.losses(_gather(training, members, index))
        for member, member_after in zip(group, after, strict=True):
            for name, value in member_after.items():
                if not math.isfinite(value):
                    raise _diverged(_label(algorithm, member, group), name, value,
                                    f"after epoch {epoch}", epoch, member.checkpoint_path)
        for index_in_group, member in enumerate(group):
            row: dict[str, float] = {"epoch": epoch, "step": epoch * steps_per_epoch,
                                     "seconds": time.perf_counter() - start}
            row.update({f"train_{k}": v / counts[k] for k, v in sums[index_in_group].items()})
            if member.validation is not None:
                row.update({f"val_{k}": v for k, v in after[index_in_group].items()})
            member.metrics.append(row)
            state = engine.state_dict() if solo else engine.member_state(index_in_group)
            rng = {"algo": member.algo_generator.get_state().cpu(),
                   "data": member.data_generator.get_state()}
            save_checkpoint(member.checkpoint_path, member.header, epoch=epoch, state=state,
                            metrics=member.metrics, rng=rng)
            atomic_write_csv(member.out / METRICS_NAME, member.metrics)
            member.first_epoch = epoch + 1
        bar.set_postfix({k: f"{v:.3g}" for k, v in group[0].metrics[-1].items()
                         if k.endswith("_loss")})


def _label(algorithm: str, member: _Member, group: list[_Member]) -> str:
    return algorithm if len(group) == 1 else f"{algorithm} (seed {member.config.seed})"


def _stacked(splits: list[TransitionTensors]) -> Batch:
    """The members' splits stacked: each field (K, R, ...)."""
    return Batch(*(torch.stack([getattr(s, field) for s in splits]) for field in Batch._fields))


def _gather(stacked: Batch, members: torch.Tensor, index: torch.Tensor) -> Batch:
    """Each member's rows ``index[k]`` of its own split: each field (K, B, ...)."""
    return Batch(*(field[members, index] for field in stacked))


def _validate_ensemble(ensemble: LearnerEnsemble, split: Batch, members: torch.Tensor,
                       chunk: int = 4096) -> list[dict[str, float]]:
    """:func:`_validate` for every member at once (their validation splits are of one size)."""
    size = split.observations.shape[1]
    totals: list[dict[str, float]] = [{} for _ in range(ensemble.members)]
    for start in range(0, size, chunk):
        index = torch.arange(start, min(start + chunk, size), device=members.device)
        rows = index.expand(ensemble.members, -1)
        for total, losses in zip(totals, ensemble.losses(_gather(split, members, rows)), strict=True):
            for name, value in losses.items():
                total[name] = total.get(name, 0.0) + value * len(index)
    return [{name: value / size for name, value in total.items()} for total in totals]


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


