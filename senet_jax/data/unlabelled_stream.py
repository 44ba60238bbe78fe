"""The unlabelled split streamed from its prepared files, for splits too big to hold decoded
on every host (STL10's 100,000 unlabelled images are 2.8 GB at 96 px).

- Chosen for a named tfds split (never "rest", which comes out of the in-memory training
  split) with `config.data.stream=True`, or when the split decoded at `image_size` exceeds
  `config.data.max_cache_bytes`.
- Each process reads its own files (p, p + c, ... of c processes) in the supervised streamed
  path's epoch order (data/file_stream.py): files permuted, then a bounded shuffle, seeded by
  (seed, epoch, process) with the unlabelled stream's own keys. Every process runs the same
  number of steps per epoch (its smallest shard decides); the remainder is left out that epoch.
- Every image carries its global index in the split (its file's first index plus its place in
  the file), which FlexMatch's per-image record needs; its weak and strong views are keyed by
  (seed, epoch, that index) exactly as the in-memory path keys them (unlabelled.view_maker).
- Exact resume: the stream at step N skips the raw records already used in its epoch. The
  stream depends on the process count, so checkpoints record it (iterators.iterator_identity).
"""

from __future__ import annotations

from collections.abc import Iterator

from senet_jax.data import augment, file_stream, unlabelled
from senet_jax.data.batching import ProcessLayout, streamed_epoch_steps
from senet_jax.data.dataset_info import num_examples
from senet_jax.data.tf_setup import load_tf


def is_streamed(data, builder) -> bool:
    """True for a named split when data.stream is set or the split decoded exceeds the cap."""
    split = data.get("unlabelled_split")
    if split is None or split == unlabelled.REST:
        return False
    if data.stream:
        return True
    limit = data.get("max_cache_bytes")
    if limit is None:
        return False
    count = num_examples(builder, split, "unlabelled_split")
    return file_stream.decoded_bytes(data, count) > float(limit)


def shard_examples(data, builder, count: int) -> tuple[int, ...]:
    """Unlabelled images in each of `count` processes' files (no file is read)."""
    return file_stream.shard_examples(builder, data.unlabelled_split, count)


def unlabelled_batches(
    data, builder, *, batch_size: int, seed: int, start_step: int, layout: ProcessLayout, stats
) -> Iterator[dict]:
    """Infinite per-process stream from global step `start_step` of {weak, strong: float32
    [devices, per_device, S, S, 3], index: global image index, label: -1 where unknown}."""
    tf = load_tf()
    index, count, local_devices, per_process = layout
    split = data.unlabelled_split
    files, starts, _ = file_stream.shard_layout(builder, split, index, count)
    file_stream.check_files(files, index)
    steps = streamed_epoch_steps(batch_size, shard_examples(data, builder, count))
    if steps < 1:
        raise ValueError(
            f"config.ssl.unlabelled_ratio x config.batch_size = {batch_size} exceeds what each "
            f"of {count} processes holds of {split!r}; make it smaller"
        )
    start_epoch, offset = divmod(int(start_step), steps)
    keys = (
        augment.key(seed, unlabelled.ORDER_STREAM, index),
        augment.key(seed, unlabelled.SHUFFLE_STREAM, index),
    )
    records = file_stream.epoch_records(
        tf, files, data, steps * per_process, keys=keys, starts=starts
    )
    ds = file_stream.epochs_from(tf, records, start_epoch, offset * per_process)
    ds = ds.map(
        _decoder(tf, data, builder), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    ds = ds.batch(per_process, drop_remainder=True)
    make_batch = _batch_maker(tf, data, seed, local_devices, stats)
    ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    for weak, strong, idx, label in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        yield {"weak": weak, "strong": strong, "index": idx, "label": label}


def _decoder(tf, data, builder):
    """(epoch, index, record) -> (epoch, index, uint8 image as the in-memory path caches it:
    RGB, resized to image_size if it is not, padded for the crop; label)."""
    parse = file_stream.record_parser(tf, builder)
    size, pad = int(data.image_size), augment.crop_pad_pixels(data)
    resize = tuple(builder.info.features["image"].shape[:2]) != (size, size)

    @tf.autograph.experimental.do_not_convert
    def decode(epoch, idx, record):
        image_bytes, label = parse(record)
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        image = augment.resize_uint8(tf, image, size) if resize else image
        image = tf.ensure_shape(image, [size, size, 3])
        if pad:
            image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        return epoch, idx, image, label

    return decode


def _batch_maker(tf, data, seed: int, local_devices: int, stats):
    """A process's batch of decoded images -> weak and strong views, indices and labels, split
    over devices (one epoch a batch: an epoch is whole batches)."""
    views = unlabelled.view_maker(tf, data, seed, stats)
    size = int(data.image_size)

    @tf.autograph.experimental.do_not_convert
    def make_batch(epoch, idx, images, labels):
        weak, strong = views(epoch[0], idx, images)
        return unlabelled.by_device(tf, local_devices, size, weak, strong, idx, labels)

    return make_batch
