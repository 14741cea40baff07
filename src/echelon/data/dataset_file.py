"""The HDF5 file of an offline dataset: an atomic, byte-reproducible writer and a reader that
trusts nothing the file holds (the schema is in :mod:`echelon.data.dataset`)."""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np

from echelon._io import atomic_write_path
from echelon.data.dataset import (
    _LOG_FIELDS,
    _TRANSITION_FIELDS,
    SCHEMA_VERSION,
    DatasetError,
    OfflineDataset,
    shape_error,
    type_name,
    validate,
)
from echelon.sim.config import ChainConfig


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
                               f"{type_name(version)} {_short(version)}")
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
                           f"{type_name(raw)} {_short(raw)}")
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
            raise DatasetError(f"{path}: {shape_error(full, shape, want, obs_size, stages)}")
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
