"""Data by role: sources (tfds builders, offline STL10), augment (keyed batch augmentation),
streams (per-host train and eval iterators)."""

from __future__ import annotations

from senet_jax.data.augment import CROPS
from senet_jax.data.sources import (
    DatasetInfo,
    DatasetUnavailableError,
    Stl10ArchiveError,
    get_dataset_info,
)
from senet_jax.data.streams import eval_batches, num_eval_steps, steps_per_epoch, train_batches

__all__ = [
    "CROPS",
    "DatasetInfo",
    "DatasetUnavailableError",
    "Stl10ArchiveError",
    "eval_batches",
    "get_dataset_info",
    "num_eval_steps",
    "steps_per_epoch",
    "train_batches",
]
