"""Data by role: sources (tfds builders; STL10 in stl10_prepare, image folders in folder),
augment (keyed batch augmentation), iterators (per-host train and eval batches, in memory or
streamed from files), batching (batch layout and step counts)."""

from __future__ import annotations

from senet_jax.data.augment import CROPS
from senet_jax.data.availability import DatasetUnavailableError
from senet_jax.data.batching import num_eval_steps, steps_per_epoch, unlabelled_steps_per_epoch
from senet_jax.data.dataset_info import DatasetInfo
from senet_jax.data.iterators import eval_batches, train_batches
from senet_jax.data.sources import get_dataset_info
from senet_jax.data.stl10_prepare import Stl10ArchiveError

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
    "unlabelled_steps_per_epoch",
]
