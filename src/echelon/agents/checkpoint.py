"""The checkpoint file: its format, writing it atomically, and reading it without trusting it.

A checkpoint (``checkpoint.pt``, written by ``torch.save``, read with ``weights_only=True``) is
a dict of plain data and tensors:

========================  ======================================================================
``format``, ``version``   ``"echelon-agent"`` and 1
``algorithm``             a key of ``ALGORITHMS``
``algo_config``           the algorithm's config, as a dict
``train_config``          the :class:`~echelon.agents.config.TrainConfig`, as a dict
``chain``                 the ``ChainConfig`` trained on, as a dict
``obs_dim``, ``action_dim``  the networks' input and output sizes
``preprocessing``         :meth:`Preprocessing.to_dict` of the run
``dataset``               :func:`dataset_fingerprint` of the transitions
``total_steps``           gradient steps of the whole run (the schedules' length)
``epoch``                 epochs done
``state``                 the learner's ``state_dict()`` (weights, optimizers, schedules)
``metrics``               one dict of losses per epoch done
``rng``                   ``{"algo", "data"}``: the two generators' states, to resume exactly
========================  ======================================================================
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from echelon._fields import check_types
from echelon._io import atomic_write
from echelon.agents.config import TrainConfig
from echelon.agents.preprocessing import Preprocessing
from echelon.agents.registry import ALGORITHMS, algorithm_config
from echelon.sim.config import ChainConfig

CHECKPOINT_FORMAT = "echelon-agent"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"

# What loading a damaged state dict into a module or optimizer raises: torch reports a shape or
# key mismatch as RuntimeError, and a value of the wrong type as any of the others.
STATE_LOAD_ERRORS = (KeyError, RuntimeError, TypeError, ValueError, IndexError, AttributeError)
# The same for a chain dict that ChainConfig cannot take (a list where a number belongs, an
# integer too large for a float).
_CONFIG_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError,
                  RecursionError)
# The header keys that must equal the run's for a checkpoint to be resumed by it.
_RESUME_KEYS = ("algorithm", "algo_config", "train_config", "dataset", "obs_dim", "total_steps")


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, of another format, or does not match the run."""


def checkpoint_header(algorithm: str, algo_config: Any, train_config: TrainConfig,
                      chain: ChainConfig, obs_dim: int, prep: Preprocessing, dataset: str,
                      total_steps: int) -> dict[str, Any]:
    """What every checkpoint of a run holds besides its progress (the keys above up to
    ``total_steps``)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "algorithm": algorithm,
        "algo_config": dataclasses.asdict(algo_config),
        "train_config": train_config.to_dict(),
        "chain": chain.to_dict(),
        "obs_dim": obs_dim,
        "action_dim": chain.stages,
        "preprocessing": prep.to_dict(),
        "dataset": dataset,
        "total_steps": total_steps,
    }


def save_checkpoint(path: Path, header: dict[str, Any], *, epoch: int, state: dict,
                    metrics: list[dict[str, float]], rng: dict[str, torch.Tensor]) -> None:
    """Writes the checkpoint atomically: a reader sees the previous epoch's or this one's."""
    saved = {**header, "epoch": epoch, "state": state, "metrics": metrics, "rng": rng}
    atomic_write(path, lambda handle: torch.save(saved, handle))


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


def load_for_resume(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    """Reads the checkpoint of an interrupted run and checks that this run can continue it.

    Args:
        path: The checkpoint file.
        header: This run's :func:`checkpoint_header`.

    Raises:
        CheckpointError: If the checkpoint is unusable (see :func:`load_checkpoint`), was
            written by another run (algorithm, configs, dataset or sizes differ), or its random
            state or metrics are missing or damaged.
    """
    saved = load_checkpoint(path)
    for key in _RESUME_KEYS:
        mine, theirs = _comparable(header[key]), _comparable(saved.get(key))
        if mine != theirs:
            raise CheckpointError(
                f"{path}: its {key} differs from this run's; it cannot be resumed")
    rng, metrics = saved.get("rng"), saved.get("metrics")
    if (not isinstance(rng, dict) or not all(isinstance(rng.get(k), torch.Tensor)
                                             for k in ("algo", "data"))
            or not isinstance(metrics, list) or not all(isinstance(row, dict) for row in metrics)):
        raise CheckpointError(f"{path}: its rng or metrics are missing or damaged; "
                              "it cannot be resumed")
    return saved


def _comparable(value: Any) -> Any:
    """Config values as plain lists, so that tuples saved in a checkpoint compare equal."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k != "device"}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


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
    obs_dim = chain.observation_size + prep.sales_history + int(prep.time_feature)
    time_note = ((f" plus {prep.sales_history} periods of sales" if prep.sales_history else "")
                 + (" plus the time feature" if prep.time_feature else ""))
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
    for key in ("time_feature", "sales_history"):
        if getattr(settings, key) != getattr(prep, key):
            raise ValueError(f"preprocessing.{key} is {getattr(prep, key)}, "
                             f"train_config.{key} is {getattr(settings, key)}")
    _check_state(saved["state"], [saved["obs_dim"], *config.hidden, saved["action_dim"]])


def _check_state(state: Any, sizes: list[int]) -> None:
    """Raises ValueError unless ``state`` is a dict whose tensors are finite and hold at least
    the weights of an actor with these layer sizes (input, hidden..., output)."""
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict of weights, got {type(state).__name__}")
    # The learner allocates its networks from algo_config before the weights are compared with
    # them: a damaged hidden size must not ask for more memory than the file's weights hold.
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
        raise ValueError(f"algo_config.hidden {sizes[1:-1]} needs an actor of {actor:,} "
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
