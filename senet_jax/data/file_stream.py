"""Input streamed from the prepared files, for splits too big to hold in memory (ImageNet):
each process reads only its own files, decodes per example, and its batches stay a pure
function of (seed, step).

- Chosen by `config.data.stream=True`, or automatically when the training split decoded at
  `image_size` (examples x size^2 x 3 bytes) exceeds `config.data.max_cache_bytes`.
- Sharding: process p of c reads the split's files p, p + c, ...; fewer files than processes
  is refused. The shards are disjoint and together cover the split.
- Order: epoch e permutes this process's files and shuffles their records through a bounded
  buffer (`config.data.shuffle_buffer`), both seeded by (seed, e, process); augmentation is
  keyed by (seed, e, position in the epoch). Every process runs the same number of steps per
  epoch (its smallest shard decides), so pmap collectives stay matched.
- Exact resume without saving iterator state: the stream at step N is rebuilt by skipping the
  raw records already consumed in that epoch (read, never decoded). The stream depends on the
  process count, so checkpoints record it and a resume under another count is refused.
- No validation holdout (it would need the whole split in memory): refused with one line;
  select on the dataset's own split through `config.data.eval_split`.
- Evaluation: tfds.even_splits per process, shorter side resized to image_size / eval_crop,
  centre crop, padded with a mask so every example counts once over all hosts.
- The sharding, file checks, record parser and epoch order also stream a semi-supervised
  run's unlabelled split (data/unlabelled_stream.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from senet_jax.data import augment
from senet_jax.data.batching import ProcessLayout, num_eval_steps, streamed_epoch_steps
from senet_jax.data.dataset_info import num_examples
from senet_jax.data.tf_setup import load_tf, load_tfds

_MAX_CYCLE = 16  # files read at once per process (interleaved)


class StreamError(ValueError):
    """The streamed input path cannot run with this dataset, config or host."""


def decoded_bytes(data, examples: int) -> int:
    size = int(data.image_size)
    return int(examples) * size * size * 3


def is_streamed(data, builder) -> bool:
    """True when config.data.stream is set or the decoded training split exceeds the cap."""
    if data.stream:
        return True
    limit = data.max_cache_bytes
    if limit is None:
        return False
    examples = num_examples(builder, data.train_split, "train_split")
    return decoded_bytes(data, examples) > float(limit)


def check_supported(data) -> None:
    """One line for each setting the streamed path does not offer."""
    held = int(data.validation_examples)
    if held:
        raise StreamError(
            f"config.data.validation_examples={held}: the streamed input path (data.stream, or "
            "a training split over data.max_cache_bytes) keeps no holdout; set "
            "--config.data.validation_examples=0 and evaluate on the dataset's own split "
            "(config.data.eval_split, e.g. 'validation' for imagenet2012)"
        )
    if data.crop == "pad_crop":
        raise StreamError(
            "config.data.crop='pad_crop' is for the in-memory path; streamed data uses "
            "--config.data.crop=random_resized_crop (or none)"
        )
    if data.cutout_size:
        raise StreamError(
            f"config.data.cutout_size={data.cutout_size} is not offered on the streamed input "
            "path; set --config.data.cutout_size=0"
        )


def _file_format(builder) -> str:
    fmt = builder.info.file_format
    return str(getattr(fmt, "value", fmt))


def split_files(builder, split: str) -> tuple[list[str], list[int]]:
    """The prepared files of a whole split and their example counts, in file order."""
    try:
        info = builder.info.splits[split]
        paths, lengths = [str(p) for p in info.filepaths], [int(n) for n in info.shard_lengths]
    except Exception as e:
        raise StreamError(
            f"split {split!r} of {builder.name} has no prepared files to stream ({e}); "
            "name a whole split (no slicing) of a tfds dataset"
        ) from None
    if _file_format(builder) != "tfrecord":
        raise StreamError(
            f"{builder.name} is prepared as {_file_format(builder)}; the streamed input path "
            "reads tfrecord files: prepare it with tfds' default file format"
        )
    return paths, lengths


def shard_layout(builder, split: str, index: int, count: int):
    """Process `index` of `count`: its files (every count-th from index), the index in the
    whole split of each file's first example, and each file's example count."""
    paths, lengths = split_files(builder, split)
    if len(paths) < count:
        raise StreamError(
            f"split {split!r} of {builder.name} is stored in {len(paths)} file(s) but {count} "
            "processes stream it: each needs a file of its own; prepare it in more shards "
            "(tfds DownloadConfig(num_shards=...)) or run fewer processes"
        )
    starts = [sum(lengths[:i]) for i in range(len(paths))]
    mine = range(index, len(paths), count)
    return [paths[i] for i in mine], [starts[i] for i in mine], [lengths[i] for i in mine]


def shard(builder, split: str, index: int, count: int) -> tuple[list[str], int]:
    """Process `index` of `count`: its files (every count-th from index) and their examples."""
    files, _, lengths = shard_layout(builder, split, index, count)
    return files, sum(lengths)


def shard_examples(builder, split: str, count: int) -> tuple[int, ...]:
    """Examples per process for `count` processes (equal on every host: no file is read)."""
    return tuple(shard(builder, split, i, count)[1] for i in range(count))


def check_files(paths, index: int) -> None:
    """Every file of this process's shard is visible here (e.g. a data_dir not on all hosts)."""
    tf = load_tf()
    missing = [p for p in paths if not tf.io.gfile.exists(p)]
    if missing:
        raise StreamError(
            f"process {index}: {len(missing)} of its {len(paths)} data files are missing on "
            f"this host (first: {missing[0]}); every host must see the same prepared "
            "config.data.data_dir (e.g. a gs:// bucket)"
        )


def record_parser(tf, builder):
    """serialized record -> (encoded image bytes, int32 label), through tfds's own features."""
    tfds = load_tfds()
    features = builder.info.features
    decoders = {"image": tfds.decode.SkipDecoding()}

    def parse(record):
        example = features.deserialize_example(record, decoders=decoders)
        return example["image"], tf.cast(example["label"], tf.int32)

    return parse


def _crop_window(tf, shape, u):
    """[y, x, h, w]: area fraction in [0.08, 1], aspect log-uniform in [3/4, 4/3], clipped."""
    hf, wf = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    area = (0.08 + 0.92 * u[3]) * hf * wf
    ratio = tf.exp(math.log(3 / 4) + math.log(16 / 9) * u[4])
    h = tf.clip_by_value(tf.round(tf.sqrt(area / ratio)), 1.0, hf)
    w = tf.clip_by_value(tf.round(tf.sqrt(area * ratio)), 1.0, wf)
    y = tf.minimum(tf.floor(u[5] * (hf - h + 1.0)), hf - h)
    x = tf.minimum(tf.floor(u[6] * (wf - w + 1.0)), wf - w)
    return tf.cast(tf.stack([y, x, h, w]), tf.int32)


def train_image(tf, image_bytes, u, *, size: int, crop: str, flip: bool):
    """Encoded image -> float32 [size, size, 3] in pixel units; JPEGs decode only the crop."""

    def jpeg():
        if crop != "random_resized_crop":
            return tf.io.decode_jpeg(image_bytes, channels=3)
        window = _crop_window(tf, tf.io.extract_jpeg_shape(image_bytes), u)
        return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)

    def other():
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        if crop != "random_resized_crop":
            return image
        w = _crop_window(tf, tf.shape(image), u)
        return tf.slice(image, [w[0], w[1], 0], [w[2], w[3], 3])

    image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
    image = tf.image.resize(image, [size, size], method="bilinear")
    if flip:
        image = tf.cond(u[2] < 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)
    return image


def eval_image(tf, image_bytes, *, size: int, eval_crop: float):
    """Shorter side resized to size / eval_crop, then the centre size x size, float32."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    hw = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = round(size / float(eval_crop)) / tf.reduce_min(hw)
    new_hw = tf.maximum(tf.cast(tf.round(hw * scale), tf.int32), size)
    image = tf.image.resize(image, new_hw, method="bilinear", antialias=True)
    top, left = (new_hw[0] - size) // 2, (new_hw[1] - size) // 2
    return tf.slice(image, [top, left, 0], [size, size, 3])


def train_batches(
    data, builder, *, batch_size: int, seed: int, start_step: int, layout: ProcessLayout, stats
):
    """Infinite per-process stream of [devices, per_device, S, S, 3] batches from start_step.

    `stats` is the (mean, std) to normalise with.
    """
    tf = load_tf()
    index, count, local_devices, per_process = layout
    files, _ = shard(builder, data.train_split, index, count)
    check_files(files, index)
    steps = streamed_epoch_steps(batch_size, shard_examples(builder, data.train_split, count))
    if steps < 1:
        raise StreamError(
            f"config.batch_size={batch_size} exceeds what each of {count} processes holds of "
            f"{data.train_split!r}; make it smaller"
        )
    start_epoch, offset = divmod(int(start_step), steps)
    keys = (augment.key(seed, 3, index), augment.key(seed, 4, index))
    records = epoch_records(tf, files, data, steps * per_process, keys=keys)
    # (epoch, position in the epoch, record)
    ds = epochs_from(
        tf, lambda epoch: records(epoch).enumerate(), start_epoch, offset * per_process
    )
    make = _example_maker(tf, data, builder, seed, index, count, stats)
    size = int(data.image_size)
    ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(per_process, drop_remainder=True).map(
        lambda x, y: (
            tf.reshape(x, [local_devices, -1, size, size, 3]),
            tf.reshape(y, [local_devices, -1]),
        )
    )
    for x, y in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        yield {"image": x, "label": y}


def epochs_from(tf, records, start_epoch: int, skip: int):
    """Every epoch's elements of `records(epoch)` from `start_epoch` on, as (epoch, *element),
    the first `skip` of `start_epoch` left out: a resumed stream read on from where it was."""
    first = tf.constant(start_epoch, tf.int64)

    @tf.autograph.experimental.do_not_convert
    def epoch_stream(epoch):
        left_out = tf.where(epoch == first, tf.constant(skip, tf.int64), 0)
        return records(epoch).skip(left_out).map(lambda *element: (epoch, *element))

    return tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch_stream)


def epoch_records(tf, files, data, take: int, *, keys: tuple[int, int], starts=None):
    """epoch -> this process's records of that epoch: files permuted, then a bounded shuffle,
    seeded by `keys` (file order, shuffle) and the epoch. With `starts` (each file's first
    index in the whole split) a record comes as (its index in the split, record)."""
    file_key, shuffle_key = keys
    buffer = int(data.shuffle_buffer)
    paths = tf.constant(files)
    firsts = tf.constant([0] * len(files) if starts is None else list(starts), tf.int64)
    cycle = min(len(files), _MAX_CYCLE)

    def read(path, first):
        ds = tf.data.TFRecordDataset(path, buffer_size=8 << 20)
        return ds if starts is None else ds.enumerate(first)

    @tf.autograph.experimental.do_not_convert
    def records(epoch):
        noise = tf.random.stateless_uniform(
            [len(files)], seed=tf.stack([tf.constant(file_key, tf.int64), epoch])
        )
        order = tf.argsort(noise, stable=True)
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.gather(paths, order), tf.gather(firsts, order))
        ).interleave(
            read, cycle_length=cycle, block_length=1, num_parallel_calls=cycle, deterministic=True
        )
        seed_t = tf.bitwise.bitwise_xor(tf.constant(shuffle_key, tf.int64), epoch * 1_000_003)
        return ds.shuffle(buffer, seed=seed_t, reshuffle_each_iteration=False).take(take)

    return records


def _example_maker(tf, data, builder, seed: int, index: int, count: int, stats):
    """(epoch, position, record) -> (normalised image, label), keyed for exact rebuilding."""
    parse = record_parser(tf, builder)
    mean, scale = augment.normalisation(*stats)
    aug_key = augment.key(seed, 2)
    size, crop, flip = int(data.image_size), data.crop, bool(data.flip)

    @tf.autograph.experimental.do_not_convert
    def make(epoch, position, record):
        image_bytes, label = parse(record)
        example_id = tf.reshape(position * count + index, [1])
        u = augment.example_uniforms(tf, aug_key, epoch, example_id)[0]
        image = train_image(tf, image_bytes, u, size=size, crop=crop, flip=flip)
        return (image - mean) * scale, label

    return make


def eval_batches(
    data, builder, split: str, *, batch_size: int, layout: ProcessLayout, stats
) -> Iterator[dict]:
    """One pass over this process's even share of `split`, padded to the common step count."""
    tf, tfds = load_tf(), load_tfds()
    index, count, local_devices, per_process = layout
    total = num_examples(builder, split, "eval_split")
    spec = split if count == 1 else tfds.even_splits(split, n=count)[index]
    ds = builder.as_dataset(
        split=spec, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()}
    )
    mean, scale = augment.normalisation(*stats)
    size, eval_crop = int(data.image_size), float(data.eval_crop)

    @tf.autograph.experimental.do_not_convert
    def make(example):
        image = eval_image(tf, example["image"], size=size, eval_crop=eval_crop)
        return (image - mean) * scale, tf.cast(example["label"], tf.int32), True

    padding = (tf.zeros([size, size, 3]), tf.constant(0, tf.int32), tf.constant(False))
    ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.concatenate(tf.data.Dataset.from_tensors(padding).repeat())
    ds = ds.take(num_eval_steps(batch_size, total, count) * per_process).batch(per_process)
    shape = [local_devices, per_process // local_devices]
    for x, y, m in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        yield {
            "image": x.reshape(shape + [size, size, 3]),
            "label": y.reshape(shape),
            "mask": m.reshape(shape),
        }
