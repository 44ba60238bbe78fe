"""The training and evaluation iterators the trainer reads: in memory (data/in_memory.py) for
splits that fit, streamed from this process's files (data/file_stream.py) for large ones; and
the same two paths for the unlabelled images of semi-supervised runs (data/unlabelled.py,
data/unlabelled_stream.py).

Both paths yield [local devices, per device, S, S, 3] batches that are a pure function of
(seed, step), and evaluation batches padded with a mask so every example counts once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from senet_jax.data import (
    file_stream,
    folder,
    in_memory,
    sources,
    unlabelled,
    unlabelled_stream,
)
from senet_jax.data.batching import process_layout
from senet_jax.data.dataset_info import DatasetInfo
from senet_jax.data.in_memory import VALIDATION
from senet_jax.data.tf_setup import load_tf

__all__ = [
    "VALIDATION",
    "eval_batches",
    "iterator_identity",
    "statistics",
    "train_batches",
    "unlabelled_batches",
]


def statistics(data) -> tuple[tuple, tuple]:
    """(mean, std) for normalisation: the config's, or exact over the training split (cached).

    An image folder's are over its training images as the in-memory path holds them (resized
    to image_size), so the folder is decoded once for both.
    """

    def images_of_split():
        builder = sources.prepared_builder(data)
        if folder.parse_folder_dataset(data.dataset) is not None:
            yield in_memory.split_arrays(data, builder, data.train_split)[0]
            return
        tf = load_tf()
        ds = builder.as_dataset(split=data.train_split, shuffle_files=False)
        ds = ds.map(lambda e: e["image"], num_parallel_calls=tf.data.AUTOTUNE)
        for image in ds.as_numpy_iterator():
            yield image if image.shape[-1] == 3 else np.repeat(image, 3, axis=-1)

    return sources.channel_statistics(data, images_of_split)


def iterator_identity(data, info: DatasetInfo) -> dict:
    """What the training stream after a checkpoint depends on besides (seed, step): saved with
    every checkpoint, and a resume that differs is refused (checkpointing.check_data)."""
    return {
        "dataset": str(data.dataset),
        "train_split": str(data.train_split),
        "streamed": bool(info.streamed),
        "processes": len(info.shard_examples) if info.streamed else None,
        "unlabelled_streamed": bool(info.unlabelled_streamed),
        "unlabelled_processes": (
            len(info.unlabelled_shard_examples) if info.unlabelled_streamed else None
        ),
    }


def train_batches(
    data,
    *,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    process_index=None,
    process_count=None,
    local_devices=None,
) -> Iterator[dict]:
    """Infinite training stream from global step `start_step`, in memory or streamed (module
    doc); `process_*` and `local_devices` default to what JAX sees (tests simulate hosts)."""
    layout = process_layout(batch_size, process_index, process_count, local_devices)
    builder = sources.prepared_builder(data)
    path = in_memory
    if file_stream.is_streamed(data, builder):
        file_stream.check_supported(data)
        path = file_stream
    return path.train_batches(
        data,
        builder,
        batch_size=batch_size,
        seed=seed,
        start_step=start_step,
        layout=layout,
        stats=statistics(data),
    )


def unlabelled_batches(
    data,
    *,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    process_index=None,
    process_count=None,
    local_devices=None,
) -> Iterator[dict]:
    """Semi-supervised runs' second stream: `batch_size` unlabelled images a global step in a
    weak and a strong view, a pure function of (seed, step): held in memory
    (data/unlabelled.py) or, for a named split too big for it, streamed from this process's
    files (data/unlabelled_stream.py)."""
    layout = process_layout(batch_size, process_index, process_count, local_devices)
    builder = sources.prepared_builder(data)
    path = unlabelled_stream if unlabelled_stream.is_streamed(data, builder) else unlabelled
    return path.unlabelled_batches(
        data,
        builder,
        batch_size=batch_size,
        seed=seed,
        start_step=start_step,
        layout=layout,
        stats=statistics(data),
    )


def eval_batches(
    data,
    *,
    batch_size: int,
    split: str | None = None,
    process_index=None,
    process_count=None,
    local_devices=None,
) -> Iterator[dict]:
    """One pass over the split; padded examples carry mask=False; equal batch count per process.

    `split` "test" (the trainer's name for the held-out evaluation) reads config.data.eval_split.
    """
    split = data.eval_split if split in (None, "test") else split
    layout = process_layout(batch_size, process_index, process_count, local_devices)
    builder = sources.prepared_builder(data)
    holdout = split == VALIDATION and data.validation_examples
    path = file_stream if not holdout and file_stream.is_streamed(data, builder) else in_memory
    return path.eval_batches(
        data, builder, split, batch_size=batch_size, layout=layout, stats=statistics(data)
    )
