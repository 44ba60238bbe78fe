"""Training and evaluation streams: per-host shards of in-memory splits, as device batches.

- The training split is decoded once, resized to `config.data.image_size` and held in
  memory as uint8 (STL10 train is 138 MB). Every batch is a pure function of its step
  number: epoch e's order is a permutation seeded by (seed, e), and the augmentation of an
  example is keyed on (seed, epoch, example index). `train_batches(config, start_step=N)`
  restarts exactly where an uninterrupted run was, skipping whole epochs arithmetically.
- Multi-host: process p takes the p-th disjoint slice of every global batch, so the data a
  run sees does not depend on how many processes share it. Evaluation is sharded by
  example (tfds.even_splits) and padded with a mask; every process yields
  `num_eval_steps` batches (pmap collectives need equal counts), so each example counts once.
- Validation: `config.data.validation_examples` of the training split, stratified by class
  and fixed (the same examples for every seed and host count), are held out of training and
  form the split named "validation".
- `config.data.cache=False` only stops keeping decoded splits between calls (for memory).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from senet_jax.data import augment, sources, streamed
from senet_jax.data.sources import DatasetInfo

_ARRAY_CACHE: dict = {}


def process_layout(batch_size: int, process_index=None, process_count=None, local_devices=None):
    """(process index, process count, local devices, examples per process) of a global batch.

    None means "as JAX sees it"; tests pass explicit values to simulate other hosts.
    """
    if process_count is None or process_index is None or local_devices is None:
        import jax  # only here, never inside tf.data functions

        process_count = jax.process_count() if process_count is None else process_count
        process_index = jax.process_index() if process_index is None else process_index
        local_devices = jax.local_device_count() if local_devices is None else local_devices
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} outside 0..{process_count - 1}")
    per_process = batch_size // process_count
    if batch_size % process_count or per_process % local_devices:
        raise ValueError(
            f"config.batch_size={batch_size} must be divisible by processes x local devices "
            f"({process_count} x {local_devices}); make it a multiple of "
            f"{process_count * local_devices}"
        )
    return process_index, process_count, local_devices, per_process


def _shard_spec(split: str, process_index: int, process_count: int):
    if process_count == 1:
        return split
    return sources.load_tfds().even_splits(split, n=process_count)[process_index]


def _load_arrays(data, builder, split_spec) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, S, S, 3] images and int32 [n] labels of one (sharded) split, in file order."""
    size = int(data.image_size)
    key = (builder.name, str(builder.data_dir), str(split_spec), size, bool(data.cache))
    if key in _ARRAY_CACHE:
        return _ARRAY_CACHE[key]
    tf = sources.load_tf()
    channels = builder.info.features["image"].shape[-1]
    static_hw = tuple(builder.info.features["image"].shape[:2])

    @tf.autograph.experimental.do_not_convert
    def decode(example):
        image = example["image"]
        if channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        if static_hw != (size, size):
            image = augment.resize_uint8(tf, image, size)
        return image, tf.cast(example["label"], tf.int32)

    ds = builder.as_dataset(split=split_spec, shuffle_files=False)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(1024)
    images, labels = [], []
    for x, y in ds.as_numpy_iterator():
        images.append(x)
        labels.append(y)
    if not images:
        raise ValueError(f"split {split_spec} of {builder.name} is empty")
    arrays = (np.concatenate(images), np.concatenate(labels))
    if data.cache:
        _ARRAY_CACHE[key] = arrays
    return arrays


VALIDATION = "validation"
_HOLDOUT_SEED = 20180705  # fixed: every run, seed and host count holds out the same examples


def validation_indices(labels: np.ndarray, count: int) -> np.ndarray:
    """`count` example indices, as equal a share of every class as it has, sorted.

    Classes are taken in a fixed shuffled order for the remainder of count / classes, and
    each class's examples in a fixed random order, so the holdout is stratified and fixed.
    """
    if count <= 0:
        return np.zeros((0,), np.int64)
    rng = np.random.default_rng(_HOLDOUT_SEED)
    classes = rng.permutation(np.unique(labels))
    members = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    quota = {c: count // len(classes) + (i < count % len(classes)) for i, c in enumerate(classes)}
    chosen = [members[c][: quota[c]] for c in classes]
    short = count - sum(len(x) for x in chosen)
    if short:  # small classes: fill from the others' next examples, in the same fixed order
        rest = np.concatenate([members[c][quota[c] :] for c in classes])
        chosen.append(rest[:short])
    return np.sort(np.concatenate(chosen))


def _training_arrays(data, builder):
    """The training split less the validation holdout, and the holdout itself."""
    images, labels = _load_arrays(data, builder, data.train_split)
    held_out = validation_indices(labels, int(data.get("validation_examples") or 0))
    keep = np.ones(len(labels), bool)
    keep[held_out] = False
    return (images[keep], labels[keep]), (images[held_out], labels[held_out])


def _eval_shard(data, builder, split: str, index: int, count: int):
    """(images, labels) of this process's contiguous shard of `split`, and the split's size.

    tfds splits are read sharded (tfds.even_splits); the validation holdout and image folders
    (whose builder takes no sub-splits) are sliced in memory the same way.
    """
    if split == VALIDATION and data.get("validation_examples"):
        images, labels = _training_arrays(data, builder)[1]
    elif count > 1 and sources.folder.parse_folder_dataset(data.dataset) is not None:
        images, labels = _load_arrays(data, builder, split)
    else:
        total = sources.num_examples(builder, split, "eval_split")
        return _load_arrays(data, builder, _shard_spec(split, index, count)), total
    total = len(labels)
    bounds = np.linspace(0, total, count + 1).round().astype(int)
    shard = slice(bounds[index], bounds[index + 1])
    return (images[shard], labels[shard]), total


def statistics(data) -> tuple[tuple, tuple]:
    """(mean, std) for normalisation: the config's, or exact over the training split (cached)."""

    def images_of_split():
        tf = sources.load_tf()
        builder = sources.prepared_builder(data)
        ds = builder.as_dataset(split=data.train_split, shuffle_files=False)
        ds = ds.map(lambda e: e["image"], num_parallel_calls=tf.data.AUTOTUNE)
        for image in ds.as_numpy_iterator():
            yield image if image.shape[-1] == 3 else np.repeat(image, 3, axis=-1)

    return sources.channel_statistics(data, images_of_split)


def steps_per_epoch(batch_size: int, info: DatasetInfo) -> int:
    """Whole global batches per epoch; the remainder is dropped (a new random subset each epoch).
    Streamed: the smallest process shard decides (every process runs the same steps)."""
    if info.streamed:
        return streamed.epoch_steps(batch_size, info.shard_examples)
    return info.num_train_examples // int(batch_size)


def iterator_identity(data, info: DatasetInfo) -> dict:
    """What the training stream after a checkpoint depends on besides (seed, step): saved with
    every checkpoint, and a resume that differs is refused (checkpointing.check_data)."""
    return {
        "dataset": str(data.dataset),
        "train_split": str(data.train_split),
        "streamed": bool(info.streamed),
        "processes": len(info.shard_examples) if info.streamed else None,
    }


def num_eval_steps(batch_size: int, num_examples: int, process_count: int | None = None) -> int:
    """Batches every process yields in one evaluation pass (the largest shard, rounded up)."""
    if process_count is None:
        import jax

        process_count = jax.process_count()
    per_process = int(batch_size) // process_count
    largest_shard = -(-num_examples // process_count)
    return -(-largest_shard // per_process)


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
    """Infinite training stream from global step `start_step`: in memory (see the module
    docstring), or streamed from this process's files for large splits (data/streamed.py)."""
    layout = process_layout(batch_size, process_index, process_count, local_devices)
    builder = sources.prepared_builder(data)
    if streamed.is_streamed(data, builder):
        streamed.check_supported(data)
        return streamed.train_batches(
            data,
            builder,
            batch_size=batch_size,
            seed=seed,
            start_step=start_step,
            layout=layout,
            stats=statistics(data),
        )
    return _memory_train_batches(data, builder, batch_size, seed, start_step, layout)


def _memory_train_batches(data, builder, batch_size, seed, start_step, layout) -> Iterator[dict]:
    """Every process holds the whole (small, cached) split and takes its slice of each global
    batch, so the batches, their order and augmentation do not depend on the process count."""
    tf = sources.load_tf()
    index, _, local_devices, per_process = layout
    images_np, labels_np = _training_arrays(data, builder)[0]
    epoch_steps = len(labels_np) // batch_size
    if epoch_steps < 1:
        raise ValueError(
            f"config.batch_size={batch_size} exceeds the {data.train_split!r} split "
            f"({len(labels_np)} examples); make it smaller"
        )
    pad = augment.crop_pad_pixels(data)
    if pad:  # pad once here rather than every batch
        images_np = np.pad(images_np, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    orders = _epoch_orders(tf, len(labels_np), epoch_steps, batch_size, seed)
    make_batch = _batch_maker(tf, data, images_np, labels_np, seed, local_devices)
    first = index * per_process
    start_epoch, offset = divmod(int(start_step), epoch_steps)
    ds = tf.data.Dataset.range(start_epoch, 2**62).flat_map(
        lambda epoch: orders(epoch, first, per_process)
    )
    ds = ds.skip(offset).map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    for x, y in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        yield {"image": x, "label": y}


def _epoch_orders(tf, n: int, epoch_steps: int, batch_size: int, seed: int):
    """epoch -> dataset of (epoch, this process's example indices) per step of that epoch."""
    order_seed = augment.key(seed, 1)

    @tf.autograph.experimental.do_not_convert
    def orders(epoch, first, per_process):
        noise = tf.random.stateless_uniform(
            [n], seed=tf.stack([tf.constant(order_seed, tf.int64), epoch])
        )
        order = tf.argsort(noise, stable=True)[: epoch_steps * batch_size]
        order = tf.reshape(tf.cast(order, tf.int64), [epoch_steps, batch_size])
        order = order[:, first : first + per_process]
        return tf.data.Dataset.from_tensor_slices(order).map(
            tf.autograph.experimental.do_not_convert(lambda idx: (epoch, idx))
        )

    return orders


def _batch_maker(tf, data, images_np, labels_np, seed: int, local_devices: int):
    """(epoch, indices) -> augmented [devices, per_device, S, S, 3] images and labels."""
    images, labels = tf.constant(images_np), tf.constant(labels_np)
    augmenter = augment.augmenter(tf, data, *statistics(data))
    aug_key = augment.key(seed, 2)
    size = int(data.image_size)

    @tf.autograph.experimental.do_not_convert
    def make_batch(epoch, idx):
        rand = augment.example_uniforms(tf, aug_key, epoch, idx)
        x = augmenter(tf.gather(images, idx), rand)
        y = tf.gather(labels, idx)
        shape = [local_devices, -1]
        return tf.reshape(x, shape + [size, size, 3]), tf.reshape(y, shape)

    return make_batch


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
    holdout = split == VALIDATION and data.get("validation_examples")
    if not holdout and streamed.is_streamed(data, builder):
        return streamed.eval_batches(
            data, builder, split, batch_size=batch_size, layout=layout, stats=statistics(data)
        )
    return _memory_eval_batches(data, builder, split, batch_size, layout)


def _memory_eval_batches(data, builder, split, batch_size, layout) -> Iterator[dict]:
    tf = sources.load_tf()
    index, count, local_devices, per_process = layout
    (images_np, labels_np), total = _eval_shard(data, builder, split, index, count)
    n = len(labels_np)
    if n == 0:  # a process with an empty shard still yields masked batches (pmap needs them)
        images_np = np.zeros((1, *images_np.shape[1:]), np.uint8)
        labels_np = np.zeros((1,), np.int32)
    size = int(data.image_size)
    images, labels = tf.constant(images_np), tf.constant(labels_np)
    normalise = augment.normaliser(tf, *statistics(data))

    @tf.autograph.experimental.do_not_convert
    def make_batch(step):
        idx = step * per_process + tf.range(per_process, dtype=tf.int64)
        mask = idx < n
        safe = tf.minimum(idx, max(n - 1, 0))
        x = normalise(tf.gather(images, safe))
        y = tf.where(mask, tf.gather(labels, safe), 0)
        shape = [local_devices, per_process // local_devices]
        return tf.reshape(x, shape + [size, size, 3]), tf.reshape(y, shape), tf.reshape(mask, shape)

    steps = num_eval_steps(batch_size, total, count)
    ds = tf.data.Dataset.range(steps).map(
        make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    for x, y, m in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        yield {"image": x, "label": y, "mask": m}
