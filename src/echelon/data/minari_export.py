"""Export of an offline dataset as a Minari dataset, for the tools that read Minari.

Minari (``pip install 'echelon[minari]'``, 0.5.x) stores a dataset as episodes under
``$MINARI_DATASETS_PATH/<dataset_id>/data`` (default root ``~/.minari/datasets``), read back with
``minari.load_dataset(dataset_id)``. Each of our episodes becomes one Minari episode, in order:

| Minari field       | shape    | dtype   | from our dataset                                        |
|--------------------|----------|---------|---------------------------------------------------------|
| ``observations``   | (T+1, D) | float64 | the episode's ``observations``, then its last ``next_observations`` |
| ``actions``        | (T, S)   | float64 | ``actions`` (orders as requested, before truncation and clipping) |
| ``rewards``        | (T,)     | float64 | ``rewards``                                             |
| ``terminations``   | (T,)     | bool    | ``terminations``                                        |
| ``truncations``    | (T,)     | bool    | ``truncations``                                         |

Per-episode metadata: ``behaviour_id`` and, where the logged demand path is complete,
``options = {"demand": path}``: ``dataset.recover_environment().reset(options=...)`` then replays
the episode. The dataset's ``env_spec`` is our registered env (``echelon/InvManagement-v1``, or
``-v0`` with backlog) with the dataset's chain as keyword arguments, so ``recover_environment()``
rebuilds it offline once ``echelon`` is installed. The dataset metadata key ``echelon`` holds the
chain, behaviour policies, seeds and source. The ``log/*`` arrays and ``periods`` are not exported:
a replay of the episode in the recovered env gives them.

The spaces are the env's: ``Box(0, inf, (D,), float64)`` observations and ``Box(0, capacity, (S,),
float64)`` actions. Actions are the orders as requested, so noisy or unclipped behaviour policies
may have logged values outside the action box (the env accepts them: it truncates and clips).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from echelon.data.dataset import SCHEMA_VERSION, OfflineDataset

_INSTALL_HINT = "pip install 'echelon[minari]'"

# Minari's id grammar (minari.dataset.minari_dataset.DATASET_ID_RE), with the namespace and the
# version made mandatory: ``namespace/name-vN``, the namespace possibly nested (``a/b/name-v0``).
_DATASET_ID = re.compile(
    r"(?P<namespace>[-_\w][-_\w/]*[-_\w]+)/(?P<name>[-_\w]+?)-v(?P<version>\d+)"
)

# Minari nags when optional metadata is left out; the caller chose to leave it out.
_NAGS = r"`(code_permalink|author|author_email|algorithm_name|description|eval_env)` is set to None"


class MinariNotInstalledError(ImportError):
    """Minari, an optional dependency, is not installed."""


def _import_minari():
    try:
        # Minari's HDF5 storage imports these two, but minari itself does not require them.
        import h5py  # noqa: F401
        import minari
        import PIL  # noqa: F401
    except ImportError as error:
        raise MinariNotInstalledError(
            f"exporting to Minari needs the optional dependency minari with its HDF5 storage "
            f"({error}); install it with: {_INSTALL_HINT}"
        ) from error
    return minari


def env_id(data: OfflineDataset) -> str:
    """Our registered Gymnasium id for the dataset's chain: ``-v0`` with backlog, else ``-v1``."""
    return f"echelon/InvManagement-{'v0' if data.chain.backlog else 'v1'}"


def check_dataset_id(dataset_id: str) -> None:
    """Checks that an id follows Minari's ``namespace/name-vN`` convention.

    Raises:
        ValueError: Saying what the id should look like.
    """
    if not isinstance(dataset_id, str) or _DATASET_ID.fullmatch(dataset_id) is None:
        raise ValueError(
            f"invalid Minari dataset id {dataset_id!r}: it must look like 'namespace/name-vN' "
            "(letters, digits, '-' and '_'; a nested namespace 'a/b/name-v0' is fine), "
            "e.g. 'echelon/base-stock-v0'"
        )


@contextlib.contextmanager
def _datasets_root(data_path: str | os.PathLike | None) -> Iterator[None]:
    """Points Minari at ``data_path`` for the duration (it reads MINARI_DATASETS_PATH each call)."""
    if data_path is None:
        yield
        return
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = os.fspath(data_path)
    try:
        yield
    finally:
        if before is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def _episode_buffers(data: OfflineDataset, buffer_type) -> list:
    starts = np.flatnonzero(np.diff(data.episode_ids, prepend=-1))
    ends = np.append(starts[1:], len(data))
    buffers = []
    for episode, (start, end) in enumerate(zip(starts, ends)):
        rows = slice(start, end)
        last = data.next_observations[end - 1][None]
        demand = data.log["demand"][rows]
        complete = end - start == data.chain.periods and bool(np.all(np.isfinite(demand)))
        buffers.append(buffer_type(
            id=episode,
            options={"demand": demand.copy()} if complete else None,
            observations=np.concatenate([data.observations[rows], last]),
            actions=data.actions[rows].copy(),
            rewards=data.rewards[rows].copy(),
            terminations=data.terminations[rows].copy(),
            truncations=data.truncations[rows].copy(),
            infos={},  # None breaks EpisodeData's repr; Minari's own collector never gives None
        ))
    return buffers


def export_minari(
    data: OfflineDataset,
    dataset_id: str,
    *,
    data_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    author: str | None = None,
    author_email: str | None = None,
    code_permalink: str | None = None,
    description: str | None = None,
) -> str:
    """Writes the dataset as a local Minari dataset that ``minari.load_dataset`` reads offline.

    Not thread-safe when ``data_path`` is given: Minari reads its root from the environment
    variable ``MINARI_DATASETS_PATH``, which is set for the duration of the call.

    Args:
        data: The dataset.
        dataset_id: Minari id ``namespace/name-vN``, e.g. ``echelon/base-stock-v0``.
        data_path: Root folder of Minari datasets; default ``$MINARI_DATASETS_PATH``, else
            Minari's ``~/.minari/datasets``. Loading needs the same root in
            ``MINARI_DATASETS_PATH`` (or ``minari.MinariDataset(<returned path>/data)``).
        overwrite: Replace an existing dataset of the same id.
        author: Recorded in Minari's metadata.
        author_email: Recorded in Minari's metadata.
        code_permalink: Recorded in Minari's metadata.
        description: Recorded in Minari's metadata; a summary of the dataset by default.

    Returns:
        The dataset's folder, ``<root>/<dataset_id>``.

    Raises:
        MinariNotInstalledError: If Minari (or its HDF5 storage: h5py, pillow) is missing.
        ValueError: If the id is malformed, or a dataset of that id exists and not ``overwrite``.
    """
    minari = _import_minari()
    from minari.data_collector import EpisodeBuffer
    from minari.storage import get_dataset_path

    from echelon import __version__

    check_dataset_id(dataset_id)
    spec = dataclasses.replace(_registered_spec(env_id(data)), kwargs=data.chain.to_dict())
    buffers = _episode_buffers(data, EpisodeBuffer)
    kind = data.source.get("kind", "unknown")
    names = [policy.get("name", "?") for policy in data.behaviour_policies]
    if description is None:
        description = (
            f"echelon {kind} dataset: {data.episodes} episodes, {len(data)} transitions of "
            f"{env_id(data)} (chain in the 'echelon' metadata and in env_spec kwargs)"
        )

    with _datasets_root(data_path):
        target = Path(get_dataset_path(dataset_id))
        backup = None
        if target.exists():
            if not overwrite:
                raise ValueError(
                    f"a Minari dataset with id {dataset_id!r} already exists at {target}; "
                    "pass overwrite=True (echelon dataset export-minari --overwrite) to replace "
                    "it, or choose another name or version"
                )
            if not (target / "data").is_dir():
                raise ValueError(f"{target} exists and is not a Minari dataset; not replacing it")
            # Moved aside (a hidden sibling, which Minari's listings skip) until the new one is
            # complete, so that a failed export leaves the old dataset in place.
            backup = target.with_name(f".{target.name}.replaced-{uuid.uuid4().hex}")
            os.replace(target, backup)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_NAGS, category=UserWarning)
                dataset = minari.create_dataset_from_buffers(
                    dataset_id=dataset_id,
                    buffer=buffers,
                    env=spec,
                    algorithm_name=", ".join(names) if names else kind,
                    author=author,
                    author_email=author_email,
                    code_permalink=code_permalink,
                    description=description,
                    data_format="hdf5",
                    requirements=[f"echelon>={__version__}"],
                )
            behaviour = data.episode_behaviour()
            dataset.storage.update_episode_metadata(
                [{"behaviour_id": int(b)} for b in behaviour], range(len(behaviour))
            )
            dataset.storage.update_metadata({"echelon": {
                "schema_version": SCHEMA_VERSION,
                "echelon_version": __version__,
                "chain": data.chain.to_dict(),
                "behaviour_policies": data.behaviour_policies,
                "seeds": data.seeds,
                "source": data.source,
            }})
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            if backup is not None:
                os.replace(backup, target)
            raise
        if backup is not None:
            shutil.rmtree(backup)
    return str(target)


def _registered_spec(env: str):
    import gymnasium as gym

    import echelon  # noqa: F401  (registers the envs)

    return gym.spec(env)
