"""Training and evaluation batches from splits held in memory, per host.

- The training split is decoded once, resized to `config.data.image_size` and held in
  memory as uint8 (STL10 train is 138 MB). Every batch is a pure function of its step
  number: epoch e's order is a permutation seeded by (seed, e), and the augmentation of an
  example is keyed on (seed, epoch, example index). A stream started at step N is exactly
  where an uninterrupted run was, skipping whole epochs arithmetically.
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
import tqdm

from senet_jax.data import augment, folder, folder_cache, labelled_subset, stl10_prepare
from senet_jax.data.batching import ProcessLayout, num_eval_steps
from senet_jax.data.dataset_info import num_examples
from senet_jax.data.tf_setup import load_tf, load_tfds

_ARRAY_CACHE: dict = {}


def _shard_spec(split: str, process_index: int, process_count: int):
    if process_count == 1:
        return split
    return load_tfds().even_splits(split, n=process_count)[process_index]


def split_arrays(data, builder, split_spec) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, S, S, 3] images and int32 [n] labels of one (sharded) split, in file order.

    Kept in memory between calls when config.data.cache; an image folder's splits are also
    kept on disk, decoded once (data/folder_cache.py).
    """
    size = int(data.image_size)
    key = (builder.name, str(builder.data_dir), str(split_spec), size, bool(data.cache))
    if key in _ARRAY_CACHE:
        return _ARRAY_CACHE[key]
    path = folder.parse_folder_dataset(data.dataset)
    if path is None:
        arrays = _decode_split(data, builder, split_spec)
    else:
        arrays = folder_cache.cached_split(
            path,
            str(split_spec),
            size,
            data.data_dir,
            lambda: _decode_folder_split(data, builder, split_spec, path),
        )
    if data.cache:
        _ARRAY_CACHE[key] = arrays
    return arrays


def _decode_folder_split(data, builder, split_spec, path: str):
    """_decode_split with a progress bar; a file TensorFlow cannot decode is named (one line)."""
    tf = load_tf()
    total = int(builder.info.splits[split_spec].num_examples)
    try:
        with tqdm.tqdm(total=total, desc=f"decoding {split_spec}", unit="img", disable=None) as bar:
            return _decode_split(data, builder, split_spec, bar.update)
    except tf.errors.OpError:
        folder.check_decodes(path)  # raises naming the files
        raise


def _decode_split(data, builder, split_spec, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Every example of the split decoded, made RGB and resized to image_size, as uint8."""
    size = int(data.image_size)
    tf = load_tf()
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
    for x, y in ds.prefetch(2).as_numpy_iterator():
        images.append(x)
        labels.append(y)
        if progress is not None:
            progress(len(y))
    if not images:
        raise ValueError(f"split {split_spec} of {builder.name} is empty")
    return np.concatenate(images), np.concatenate(labels)


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


def training_partition(data, builder):
    """(images, labels) of the training split, and the global indices of its three parts:
    labelled (what supervised training sees), unlabelled "rest" (the training images whose
    labels a data.labels_per_class or data.labelled_fold subset leaves out; empty otherwise)
    and the validation holdout."""
    images, labels = split_arrays(data, builder, data.train_split)
    held_out = validation_indices(labels, int(data.validation_examples))
    available = labelled_subset.rest(len(labels), held_out)

    def read_folds():
        with open(stl10_prepare.fold_file(builder)) as f:
            return f.read()

    labelled = labelled_subset.labelled_indices(data, labels, available, read_folds)
    if labelled is None:
        return (images, labels), (available, np.zeros((0,), np.int64), held_out)
    rest = np.setdiff1d(available, labelled)
    return (images, labels), (labelled, rest, held_out)


def _training_arrays(data, builder):
    """The labelled training images, and the validation holdout."""
    (images, labels), (labelled, _, held_out) = training_partition(data, builder)
    return (images[labelled], labels[labelled]), (images[held_out], labels[held_out])


def _eval_shard(data, builder, split: str, index: int, count: int):
    """(images, labels) of this process's contiguous shard of `split`, and the split's size.

    tfds splits are read sharded (tfds.even_splits); the validation holdout and image folders
    (whose builder takes no sub-splits) are sliced in memory the same way.
    """
    if split == VALIDATION and data.validation_examples:
        images, labels = _training_arrays(data, builder)[1]
    elif count > 1 and folder.parse_folder_dataset(data.dataset) is not None:
        images, labels = split_arrays(data, builder, split)
    else:
        total = num_examples(builder, split, "eval_split")
        return split_arrays(data, builder, _shard_spec(split, index, count)), total
    total = len(labels)
    bounds = np.linspace(0, total, count + 1).round().astype(int)
    shard = slice(bounds[index], bounds[index + 1])
    return (images[shard], labels[shard]), total


def train_batches(
    data, builder, *, batch_size: int, seed: int, start_step: int, layout: ProcessLayout, stats
) -> Iterator[dict]:
    """Infinite training stream from global step `start_step`, normalised with `stats`.

    Every process holds the whole (small, cached) split and takes its slice of each global
    batch, so the batches, their order and augmentation do not depend on the process count."""
    tf = load_tf()
    images_np, labels_np = _training_arrays(data, builder)[0]
    if len(labels_np) < batch_size:
        raise ValueError(
            f"config.batch_size={batch_size} exceeds the {data.train_split!r} split "
            f"({len(labels_np)} examples); make it smaller"
        )
    padded = pad_for_crop(data, images_np)
    make_batch = _batch_maker(tf, data, padded, labels_np, seed, layout.local_devices, stats)
    batches = keyed_batches(tf, len(labels_np), batch_size, seed, start_step, layout, make_batch)
    for x, y in batches:
        yield {"image": x, "label": y}


def pad_for_crop(data, images: np.ndarray) -> np.ndarray:
    """The cached images padded once for pad-and-crop, rather than every batch."""
    pad = augment.crop_pad_pixels(data)
    return np.pad(images, [(0, 0), (pad, pad), (pad, pad), (0, 0)]) if pad else images


def keyed_batches(
    tf,
    n: int,
    batch_size: int,
    seed: int,
    start_step: int,
    layout: ProcessLayout,
    make_batch,
    stream: int = 1,
):
    """`make_batch` over this process's share of each global batch of a seeded permutation of
    n examples per epoch (the last partial batch dropped), from global step `start_step`."""
    epoch_steps = n // batch_size
    orders = epoch_orders(tf, n, epoch_steps, batch_size, seed, stream=stream)
    first = layout.process_index * layout.per_process
    start_epoch, offset = divmod(int(start_step), epoch_steps)
    ds = tf.data.Dataset.range(start_epoch, 2**62).flat_map(
        lambda epoch: orders(epoch, first, layout.per_process)
    )
    ds = ds.skip(offset).map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def epoch_orders(tf, n: int, epoch_steps: int, batch_size: int, seed: int, stream: int = 1):
    """epoch -> dataset of (epoch, this process's example indices) per step of that epoch;
    `stream` keys the permutation (the unlabelled stream has its own)."""
    order_seed = augment.key(seed, stream)

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


def _batch_maker(tf, data, images_np, labels_np, seed: int, local_devices: int, stats):
    """(epoch, indices) -> augmented [devices, per_device, S, S, 3] images and labels."""
    images, labels = tf.constant(images_np), tf.constant(labels_np)
    augmenter = augment.augmenter(tf, data, *stats)
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
    data, builder, split: str, *, batch_size: int, layout: ProcessLayout, stats
) -> Iterator[dict]:
    """One pass over this process's shard of `split`; padded examples carry mask=False."""
    tf = load_tf()
    index, count, local_devices, per_process = layout
    (images_np, labels_np), total = _eval_shard(data, builder, split, index, count)
    n = len(labels_np)
    if n == 0:  # a process with an empty shard still yields masked batches (pmap needs them)
        images_np = np.zeros((1, *images_np.shape[1:]), np.uint8)
        labels_np = np.zeros((1,), np.int32)
    size = int(data.image_size)
    images, labels = tf.constant(images_np), tf.constant(labels_np)
    normalise = augment.normaliser(tf, *stats)

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
