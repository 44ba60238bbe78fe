"""The unlabelled stream of semi-supervised training: batches of weak and strong views.

The unlabelled images (`data.unlabelled_split`: STL10's "unlabelled", any tfds split, or
"rest", the training images a labelled subset leaves out) are decoded once and held in
memory as uint8, like the training split. Like `in_memory.train_batches`, every batch is a
pure function of (seed, step): epoch e's order is a permutation keyed by (seed, e), each view
of an image is keyed by (seed, epoch, image), and every process holds the whole set and takes
its slice of each global batch, so the batches do not depend on the process count and a
resumed run sees exactly the batches of an uninterrupted one. The weak view is flip and
pad-and-crop; the strong view adds RandAugment, then cutout (data/randaugment.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from senet_jax.data import augment, in_memory, randaugment
from senet_jax.data.batching import ProcessLayout
from senet_jax.data.dataset_info import num_examples
from senet_jax.data.tf_setup import load_tf

# augment.key parts of the unlabelled stream's random numbers (1-4: the labelled stream's).
ORDER_STREAM, WEAK_STREAM, STRONG_STREAM = 6, 7, 5
REST = "rest"


def num_unlabelled(data, builder) -> int:
    """How many unlabelled images there are; a ValueError naming the field when they would
    not fit in data.max_cache_bytes (streaming them is not supported yet)."""
    split = data.unlabelled_split
    if split == REST:
        count = len(in_memory.training_partition(data, builder)[1][1])
    else:
        count = num_examples(builder, split, "unlabelled_split")
    size = int(data.image_size)
    needed = count * size * size * 3
    if needed > data.get("max_cache_bytes", 2**63):
        raise ValueError(
            f"config.data.max_cache_bytes={data.max_cache_bytes}: the {count} unlabelled images "
            f"of {split!r} need {needed} bytes at {size}px and are held in memory (streaming "
            "them is not supported yet); raise it, or lower data.image_size"
        )
    return count


def unlabelled_arrays(data, builder) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, S, S, 3] images and int32 [n] labels, -1 where unknown (STL10's split)."""
    split = data.unlabelled_split
    if split == REST:
        (images, labels), (_, rest, _) = in_memory.training_partition(data, builder)
        return images[rest], labels[rest].astype(np.int32)
    num_examples(builder, split, "unlabelled_split")  # one line for a split that is not there
    images, labels = in_memory.split_arrays(data, builder, split)
    return images, labels.astype(np.int32)


def unlabelled_batches(
    data, builder, *, batch_size: int, seed: int, start_step: int, layout: ProcessLayout, stats
) -> Iterator[dict]:
    """Infinite stream from global step `start_step` of {weak, strong: float32 [devices,
    per_device, S, S, 3], index: global image index, label: -1 where unknown}, `batch_size`
    unlabelled images a global step."""
    tf = load_tf()
    images_np, labels_np = unlabelled_arrays(data, builder)
    if len(labels_np) < batch_size:
        raise ValueError(
            f"config.ssl.unlabelled_ratio x config.batch_size = {batch_size} exceeds the "
            f"{len(labels_np)} unlabelled images of {data.unlabelled_split!r}; make it smaller"
        )
    padded = in_memory.pad_for_crop(data, images_np)
    make_batch = _views_maker(tf, data, padded, labels_np, seed, layout.local_devices, stats)
    batches = in_memory.keyed_batches(
        tf, len(labels_np), batch_size, seed, start_step, layout, make_batch, stream=ORDER_STREAM
    )
    for weak, strong, idx, label in batches:
        yield {"weak": weak, "strong": strong, "index": idx, "label": label}


def _views_maker(tf, data, images_np, labels_np, seed: int, local_devices: int, stats):
    """(epoch, indices) -> weak and strong views, indices and labels, split over devices."""
    images, labels = tf.constant(images_np), tf.constant(labels_np)
    weak_view = augment.augmenter(tf, augment.without_cutout(data), *stats)
    strong_view = randaugment.strong_augmenter(tf, data, *stats)
    weak_key, strong_key = augment.key(seed, WEAK_STREAM), augment.key(seed, STRONG_STREAM)
    size = int(data.image_size)

    @tf.autograph.experimental.do_not_convert
    def make_batch(epoch, idx):
        x = tf.gather(images, idx)
        weak = weak_view(x, augment.example_uniforms(tf, weak_key, epoch, idx))
        strong_uniforms = augment.example_uniforms(tf, strong_key, epoch, idx, randaugment.UNIFORMS)
        strong = strong_view(x, strong_uniforms)
        shape = [local_devices, -1]
        return (
            tf.reshape(weak, shape + [size, size, 3]),
            tf.reshape(strong, shape + [size, size, 3]),
            tf.reshape(tf.cast(idx, tf.int32), shape),
            tf.reshape(tf.gather(labels, idx), shape),
        )

    return make_batch
