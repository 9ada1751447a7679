"""Datasets in BEIR layout: local folders, or named BEIR datasets downloaded on first use."""

from __future__ import annotations

from inpars_core.datasets.beir import Dataset, load_beir_folder
from inpars_core.datasets.registry import (
    BEIR_DATASETS,
    NamedDataset,
    data_dir,
    download_beir_dataset,
    resolve_dataset,
)

__all__ = [
    "BEIR_DATASETS",
    "Dataset",
    "NamedDataset",
    "data_dir",
    "download_beir_dataset",
    "load_beir_folder",
    "resolve_dataset",
]
