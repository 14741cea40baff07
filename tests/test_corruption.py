"""Loaders against damaged files: every corruption gives a valid object or our own error.

A small real dataset file and a small real checkpoint are damaged at random: bytes flipped or
overwritten at random offsets, the file cut short, attributes, datasets or keys dropped or replaced
by values of other types, dtypes and shapes, tensors filled with NaN. ``dataset.load`` must return
a valid :class:`OfflineDataset` or raise :class:`DatasetError`; ``AgentPolicy`` must give a policy
whose orders are finite and within the env's bounds, or raise :class:`CheckpointError`. Anything
else (a ``TypeError``, a ``KeyError``, a NaN order) fails the test.

The examples are derandomized: the same corruptions every run, so that a failure reproduces.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import types
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from echelon.agents import AgentPolicy, CheckpointError, TrainConfig, algorithm_config, train
from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import DatasetError, OfflineDataset, dataset_fields, validate
from echelon.data.dataset_file import load, save
from echelon.policies.base_stock import RequestMode
from echelon.policies.search import Family
from echelon.sim.config import ChainConfig

# Torch warns about an optimizer state that holds a list where it keeps a tensor; the policy acts
# from the networks' weights, which are checked.
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")

# Five periods and short lead times: a file of a few kilobytes, read in milliseconds.
CHAIN = ChainConfig(periods=5, lead_time=(1, 2, 2), initial_inventory=(40.0, 60.0, 80.0))
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory(prefix="echelon-corruption-") as name:
        yield Path(name)


@pytest.fixture(scope="module")
def dataset_file(folder) -> Path:
    behaviours = [
        Behaviour("raw", Family.BASE_STOCK, {"z": [60.0, 120.0, 180.0]}, RequestMode.RAW),
        Behaviour("clip", Family.BASE_STOCK, {"z": [50.0, 90.0, 130.0]}),
    ]
    data = collect(CHAIN, behaviours, CollectConfig(episodes=6, noise_std=5.0),
                   np.random.SeedSequence(11), seeds_info={"run_seed": 11})
    return save(data, folder / "dataset.h5")


@pytest.fixture(scope="module")
def checkpoint_file(folder) -> Path:
    behaviour = Behaviour("z", Family.BASE_STOCK, {"z": [60.0, 100.0, 140.0]})
    data = collect(CHAIN, [behaviour], CollectConfig(episodes=8, noise_std=5.0),
                   np.random.SeedSequence(12))
    # IQL: the largest state (actor, critics, value, three optimizers) to damage.
    config = algorithm_config("iql", {"hidden": (8,)})
    return train(data, "iql", config, TrainConfig(epochs=1, batch_size=16, device="cpu"),
                 folder / "agent").checkpoint


# --- what must come out ----------------------------------------------------------------------------


def assert_dataset_or_our_error(path: Path) -> None:
    try:
        data = load(path)
    except DatasetError as error:
        assert str(error).startswith(str(path)), str(error)
        return
    assert isinstance(data, OfflineDataset)
    validate(data)


OBSERVATIONS = np.linspace(0.0, 150.0, 4 * CHAIN.observation_size).reshape(4, -1)


def assert_policy_or_our_error(path: Path) -> None:
    try:
        policy = AgentPolicy(path, CHAIN)
        orders = policy.act(OBSERVATIONS, types.SimpleNamespace(period=np.arange(4)))
    except CheckpointError as error:
        assert str(error).startswith(str(path)), str(error)
        return
    assert orders.shape == (4, CHAIN.stages)
    assert np.all(orders >= 0) and np.all(orders <= np.asarray(CHAIN.capacity))


# --- byte-level damage, for both kinds of file -----------------------------------------------------

damage = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                   st.integers(0, 7)), min_size=1, max_size=8)),
    st.tuples(st.just("overwrite"), st.tuples(st.floats(0, 1, exclude_max=True),
                                              st.binary(min_size=1, max_size=64))),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
)


def damaged_bytes(content: bytes, how: tuple[str, Any]) -> bytes:
    data = bytearray(content)
    kind, spec = how
    if kind == "flip":
        for where, bit in spec:
            data[int(where * len(data))] ^= 1 << bit
    elif kind == "overwrite":
        where, junk = spec
        start = int(where * len(data))
        data[start : start + len(junk)] = junk[: len(data) - start]
    else:
        data = data[: int(spec * len(data))]
    return bytes(data)


@SETTINGS
@given(how=damage)
def test_a_dataset_file_with_damaged_bytes(dataset_file, folder, how):
    path = folder / "bytes.h5"
    path.write_bytes(damaged_bytes(dataset_file.read_bytes(), how))
    assert_dataset_or_our_error(path)


@SETTINGS
@given(how=damage)
def test_a_checkpoint_with_damaged_bytes(checkpoint_file, folder, how):
    path = folder / "bytes.pt"
    path.write_bytes(damaged_bytes(checkpoint_file.read_bytes(), how))
    assert_policy_or_our_error(path)


# --- structural damage to a dataset file -----------------------------------------------------------

ATTRIBUTES = ["schema_version", "echelon_version", "chain", "behaviour_policies", "seeds", "source"]
NODES = [*dataset_fields(), "log"]

# Text that h5py can store as an attribute (no surrogates, no NUL).
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
attribute_values = st.one_of(
    st.integers(-3, 3), st.floats(allow_nan=True), st.booleans(), texts,
    st.binary(max_size=20).map(np.bytes_),
    json_values.map(lambda value: json.dumps(value, allow_nan=True)),
    hnp.arrays(st.sampled_from([np.int64, np.float64]), hnp.array_shapes(max_dims=2, max_side=3)),
)
array_dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.uint64, np.bool_,
                                np.int8, np.dtype("S3"), np.dtype([("a", "f8"), ("b", "i4")])])
CHAIN_FIELDS = sorted(CHAIN.to_dict())
# A number and where it goes: (share of the rows, value).
numbers = st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                             st.floats(allow_nan=True, allow_infinity=True)), min_size=1, max_size=5)


def damage_structure(f: h5py.File, data: st.DataObject) -> None:
    """One random change to the file's attributes, groups or datasets."""
    kind = data.draw(st.sampled_from(["drop attribute", "set attribute", "drop chain field",
                                      "set chain field", "drop node", "group for node",
                                      "replace array", "set values"]), label="kind")
    if kind == "drop attribute":
        del f.attrs[data.draw(st.sampled_from(ATTRIBUTES))]
    elif kind == "set attribute":
        f.attrs[data.draw(st.sampled_from(ATTRIBUTES))] = data.draw(attribute_values)
    elif kind in ("drop chain field", "set chain field"):
        chain = json.loads(f.attrs["chain"])
        name = data.draw(st.sampled_from([*CHAIN_FIELDS, "colour"]))
        if kind == "drop chain field":
            chain.pop(name, None)
        else:
            chain[name] = data.draw(json_values)
        f.attrs["chain"] = json.dumps(chain, allow_nan=True)
    elif kind == "drop node":
        del f[data.draw(st.sampled_from(NODES))]
    elif kind == "group for node":
        name = data.draw(st.sampled_from(NODES))
        del f[name]
        f.create_group(name)
    elif kind == "replace array":
        name, rows = data.draw(st.sampled_from(NODES)), f["rewards"].shape[0]
        # Mostly the right number of rows, so that the dtype and the trailing shape are what
        # is tested; sometimes any shape at all.
        shape = data.draw(st.one_of(
            st.integers(0, 40).map(lambda width: (rows, width) if width else (rows,)),
            hnp.array_shapes(min_dims=0, max_dims=3, max_side=rows + 1),
        ))
        value = data.draw(hnp.arrays(array_dtypes, shape))
        del f[name]
        f[name] = value
    else:  # damaged numbers at random rows of a field
        name = data.draw(st.sampled_from(dataset_fields()))
        array = f[name][()]
        flat = array.reshape(len(array), -1)
        for where, value in data.draw(numbers):
            row = int(where * len(flat))
            if array.dtype.kind != "f":  # ids, periods and flags: any integer
                value = int(value) if math.isfinite(value) and abs(value) < 2**62 else -1
            flat[row, row % flat.shape[1]] = value
        f[name][...] = array


@SETTINGS
@given(data=st.data())
def test_a_dataset_file_with_damaged_structure(dataset_file, folder, data):
    path = folder / "structure.h5"
    shutil.copyfile(dataset_file, path)
    with h5py.File(path, "r+") as f:
        damage_structure(f, data)
    assert_dataset_or_our_error(path)


# --- structural damage to a checkpoint -------------------------------------------------------------

plain_values = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2**70), st.floats(allow_nan=True),
    st.text(max_size=8), st.lists(st.integers(-2, 300), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=3),
    st.just(torch.zeros(3)),
)


def key_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into the nested dicts of a checkpoint, tensors' included."""
    paths = []
    if isinstance(value, dict):
        for key, inner in value.items():
            paths.append((*prefix, key))
            paths.extend(key_paths(inner, (*prefix, key)))
    return paths


def tensor_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(value, torch.Tensor):
        return [prefix]
    if isinstance(value, dict):
        return [p for key, inner in value.items() for p in tensor_paths(inner, (*prefix, key))]
    return []


def copied(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {key: copied(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [copied(inner) for inner in value]
    return value


def parent_of(saved: dict, path: tuple) -> dict:
    for key in path[:-1]:
        saved = saved[key]
    return saved


@pytest.fixture(scope="module")
def saved_checkpoint(checkpoint_file) -> dict:
    return torch.load(checkpoint_file, weights_only=True)


@SETTINGS
@given(data=st.data())
def test_a_checkpoint_with_damaged_content(saved_checkpoint, folder, data):
    saved = copied(saved_checkpoint)
    kind = data.draw(st.sampled_from(["drop key", "replace key", "damage tensor"]))
    if kind == "damage tensor":
        where = data.draw(st.sampled_from(tensor_paths(saved["state"], ("state",))))
        parent, tensor = parent_of(saved, where), parent_of(saved, where)[where[-1]]
        how = data.draw(st.sampled_from(["nan", "inf", "shape", "dtype", "not a tensor"]))
        if how in ("nan", "inf") and tensor.is_floating_point() and tensor.numel():
            tensor.view(-1)[data.draw(st.integers(0, tensor.numel() - 1))] = (
                math.nan if how == "nan" else -math.inf)
        elif how == "shape":
            parent[where[-1]] = torch.zeros(data.draw(st.lists(st.integers(0, 5), max_size=3)))
        elif how == "dtype":
            parent[where[-1]] = tensor.to(torch.int64)
        else:
            parent[where[-1]] = tensor.tolist()
    else:
        where = data.draw(st.sampled_from(key_paths(saved)))
        if kind == "drop key":
            del parent_of(saved, where)[where[-1]]
        else:
            parent_of(saved, where)[where[-1]] = data.draw(plain_values)
    path = folder / "content.pt"
    torch.save(saved, path)
    assert_policy_or_our_error(path)
