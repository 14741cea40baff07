"""Offline datasets: collection from behaviour policies, the HDF5 file, export and import."""

from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import SCHEMA_VERSION, DatasetError, OfflineDataset
from echelon.data.dataset_file import load, save
from echelon.data.importer import export_log, import_log
from echelon.data.minari_export import export_minari

__all__ = [
    "SCHEMA_VERSION",
    "Behaviour",
    "CollectConfig",
    "DatasetError",
    "OfflineDataset",
    "collect",
    "export_log",
    "export_minari",
    "import_log",
    "load",
    "save",
]
