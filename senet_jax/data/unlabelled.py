"""The unlabelled stream of semi-supervised training: batches of weak and strong views.

The unlabelled images (`data.unlabelled_split`: STL10's "unlabelled", any tfds split, or
"rest", the training images a labelled subset leaves out) are decoded once and held in
memory as uint8, like the training split. Like `in_memory.train_batches`, every batch is a
pure function of (seed, step): epoch e's order is a permutation keyed by (seed, e), each view
of an image is keyed by (seed, epoch, image), and every process holds the whole set and takes
its slice of each global batch, so the batches do not depend on the process count and a
resumed run sees exactly the batches of an uninterrupted one. The weak view is flip and
pad-and-crop; the strong view adds RandAugment, then cutout (data/randaugment.py).

A named split over `data.max_cache_bytes`, or any named split with `data.stream`, is read from
its files instead, each process its own (data/unlabelled_stream.py); its views come from
`view_maker` here, so an image gets the same views on either path. "rest" comes out of the
in-memory training split and is always held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from senet_jax.data import augment, in_memory, randaugment
from senet_jax.data.batching import ProcessLayout
from senet_jax.data.dataset_info import num_examples
from senet_jax.data.tf_setup import load_tf

# augment.key parts of the unlabelled stream's random numbers (1-4: the labelled stream's);
# the streamed path orders its files by ORDER_STREAM and its shuffle buffer by SHUFFLE_STREAM.
ORDER_STREAM, WEAK_STREAM, STRONG_STREAM, SHUFFLE_STREAM = 6, 7, 5, 8
REST = "rest"


def num_unlabelled(data, builder) -> int:
    """How many unlabelled images there are; a ValueError naming the field when "rest" (held
    in memory, never streamed) would not fit in data.max_cache_bytes."""
    split = data.unlabelled_split
    if split != REST:
        return num_examples(builder, split, "unlabelled_split")
    count = len(in_memory.training_partition(data, builder)[1][1])
    size = int(data.image_size)
    needed = count * size * size * 3
    limit = data.get("max_cache_bytes")
    if limit is not None and needed > limit:
        raise ValueError(
            f"config.data.max_cache_bytes={limit}: the {count} unlabelled 'rest' images need "
            f"{needed} bytes at {size}px and are held in memory (streaming needs a named tfds "
            "split in config.data.unlabelled_split); raise it, or lower data.image_size"
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
    views = view_maker(tf, data, seed, stats)
    size = int(data.image_size)

    @tf.autograph.experimental.do_not_convert
    def make_batch(epoch, idx):
        weak, strong = views(epoch, idx, tf.gather(images, idx))
        return by_device(tf, local_devices, size, weak, strong, idx, tf.gather(labels, idx))

    return make_batch


def view_maker(tf, data, seed: int, stats):
    """(epoch, global image indices, uint8 images padded for the crop) -> (weak, strong) float32
    views, keyed by (seed, epoch, image index) alone: the same on the in-memory and streamed
    paths."""
    weak_view = augment.augmenter(tf, augment.without_cutout(data), *stats)
    strong_view = randaugment.strong_augmenter(tf, data, *stats)
    weak_key, strong_key = augment.key(seed, WEAK_STREAM), augment.key(seed, STRONG_STREAM)

    def views(epoch, idx, images):
        weak = weak_view(images, augment.example_uniforms(tf, weak_key, epoch, idx))
        strong_uniforms = augment.example_uniforms(tf, strong_key, epoch, idx, randaugment.UNIFORMS)
        return weak, strong_view(images, strong_uniforms)

    return views


def by_device(tf, local_devices: int, size: int, weak, strong, idx, labels):
    """A process's batch split over its devices: views [devices, per_device, S, S, 3], int32
    indices and labels [devices, per_device]."""
    shape = [local_devices, -1]
    return (
        tf.reshape(weak, shape + [size, size, 3]),
        tf.reshape(strong, shape + [size, size, 3]),
        tf.reshape(tf.cast(idx, tf.int32), shape),
        tf.reshape(tf.cast(labels, tf.int32), shape),
    )
