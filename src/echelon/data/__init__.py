"""Offline datasets: collection from behaviour policies, the HDF5 file, export and import."""

from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import SCHEMA_VERSION, DatasetError, OfflineDataset, load, save

__all__ = [
    "SCHEMA_VERSION",
    "Behaviour",
    "CollectConfig",
    "DatasetError",
    "OfflineDataset",
    "collect",
    "load",
    "save",
]
