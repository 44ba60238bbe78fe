"""Training and evaluation streams from a tfds image-classification dataset (STL10 by default).

Design, and why:
- The training split is decoded once, resized to config.image_size and held in memory as
  uint8 (STL10 train is 138 MB). Every batch is then a pure function of its step number:
  epoch e's order is a permutation seeded by (config.seed, e), and the random augmentation of
  an example is keyed on (config.seed, epoch, example index). So
  ``train_batches(config, start_step=N)`` restarts exactly where an uninterrupted run was,
  skipping whole epochs arithmetically and never augmenting a skipped batch.
- Multi-host: process p takes the p-th disjoint slice of every global batch, so the hosts'
  shards of an epoch are disjoint and cover it, and the data a run sees does not depend on
  how many processes share it (a 2-host run trains on exactly the batches of a 1-host run).
  Evaluation is sharded by example instead (tfds.even_splits): it needs no order at all.
- Augmentation runs on whole batches as one XLA-compiled function (crop, flip, normalisation
  and cutout fuse into a single pass), about four times faster than the same ops run one by
  one by TF; two CPU cores then stay well ahead of an accelerator.
- No shuffle buffer: each epoch permutes the whole in-memory split.
  config.cache=False only stops keeping decoded splits between calls (for memory); a stream
  still holds its shard in memory while it runs.
- Evaluation pads the last batch and carries a mask, and every process yields the same number
  of batches (pmap collectives need that), so each example is counted exactly once.
- Offline STL10: ``config.stl10_archive`` hands the official archive (or its extracted folder)
  to the real tfds STL10 builder through a download manager that never touches the network.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import shutil
import socket
import urllib.parse
from collections.abc import Iterator

import numpy as np

from senet_jax import stl10_format

CROPS = ("pad_crop", "random_resized_crop", "none")
_M32 = 0xFFFFFFFF


class DatasetUnavailableError(ValueError):
    """The dataset is neither prepared in config.data_dir nor obtainable without a download."""


class Stl10ArchiveError(ValueError):
    """config.stl10_archive is missing, corrupt or truncated."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    num_classes: int
    class_names: tuple
    num_train_examples: int
    num_eval_examples: int


@functools.cache
def _tf():
    """TensorFlow with accelerators hidden: the devices belong to JAX."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
        tf.config.set_visible_devices([], "TPU")
    except (RuntimeError, ValueError):
        pass  # already initialised, or no such device type
    return tf


def _tfds():
    _tf()
    import tensorflow_datasets as tfds

    return tfds


# ----------------------------------------------------------------------------- offline STL10


def _check_stl10_folder(folder: str) -> None:
    """Fails with the name of the first wrong file, before tfds reads anything."""

    def size(name):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise Stl10ArchiveError(
                f"config.stl10_archive: {path} is missing; the archive is incomplete, "
                "download stl10_binary.tar.gz again"
            )
        return os.path.getsize(path)

    for prefix in ("train", "test"):
        num_labels = size(f"{prefix}_y.bin")
        num_bytes = size(f"{prefix}_X.bin")
        if num_bytes != num_labels * stl10_format.IMAGE_BYTES:
            raise Stl10ArchiveError(
                f"config.stl10_archive: {os.path.join(folder, prefix + '_X.bin')} has {num_bytes} "
                f"bytes but {prefix}_y.bin lists {num_labels} labels (expected "
                f"{num_labels * stl10_format.IMAGE_BYTES} bytes, 27648 per image); the file is "
                "truncated or corrupt, download stl10_binary.tar.gz again"
            )
        with open(os.path.join(folder, f"{prefix}_y.bin"), "rb") as f:
            labels = np.frombuffer(f.read(), np.uint8)
        if labels.size and (labels.min() < 1 or labels.max() > stl10_format.NUM_CLASSES):
            raise Stl10ArchiveError(
                f"config.stl10_archive: {os.path.join(folder, prefix + '_y.bin')} holds labels "
                "outside 1..10; the file is corrupt, download stl10_binary.tar.gz again"
            )
    num_bytes = size("unlabeled_X.bin")
    if num_bytes % stl10_format.IMAGE_BYTES:
        raise Stl10ArchiveError(
            f"config.stl10_archive: {os.path.join(folder, 'unlabeled_X.bin')} has {num_bytes} bytes, "
            "not a multiple of 27648 (one 3x96x96 image); the file is truncated, download again"
        )
    with open(os.path.join(folder, "class_names.txt")) as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != stl10_format.NUM_CLASSES:
        raise Stl10ArchiveError(
            f"config.stl10_archive: {os.path.join(folder, 'class_names.txt')} lists {len(names)} "
            "class names, expected 10"
        )


def _resolve_stl10_archive(archive: str) -> tuple[str, bool]:
    """(path, is_packed): the .tar.gz, or the folder that holds stl10_binary/."""
    path = os.path.abspath(os.path.expanduser(str(archive)))
    if os.path.isfile(path):
        if not path.endswith((".tar.gz", ".tgz", ".tar")):
            raise Stl10ArchiveError(
                f"config.stl10_archive={archive!r} is a file but not a .tar.gz/.tar archive; give "
                "stl10_binary.tar.gz, or the folder that holds stl10_binary/"
            )
        return path, True
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "train_X.bin")):
            return os.path.dirname(path.rstrip(os.sep)), False  # stl10_binary/ itself
        if os.path.isdir(os.path.join(path, "stl10_binary")):
            return path, False
        raise Stl10ArchiveError(
            f"config.stl10_archive={archive!r} is a folder without stl10_binary/ or train_X.bin in it; "
            "give stl10_binary.tar.gz, the folder holding stl10_binary/, or stl10_binary/ itself"
        )
    raise Stl10ArchiveError(
        f"config.stl10_archive={archive!r} does not exist; give the path of stl10_binary.tar.gz "
        "or of its extracted stl10_binary/ folder"
    )


def _local_download_manager_cls():
    tfds = _tfds()

    class LocalStl10DownloadManager(tfds.download.DownloadManager):
        """Answers the STL10 builder's download_and_extract(URL) with a local folder."""

        def __init__(self, *, source: str, packed: bool, **kwargs):
            super().__init__(**kwargs)
            self._source = source
            self._packed = packed
            self.extracted_to = None

        def download(self, url_or_urls):
            raise DatasetUnavailableError(
                f"offline preparation from config.stl10_archive cannot download {url_or_urls}"
            )

        def download_and_extract(self, url_or_urls):
            if not isinstance(url_or_urls, str):
                raise DatasetUnavailableError(
                    "offline preparation from config.stl10_archive expects one STL10 archive, "
                    f"the builder asked for {url_or_urls}"
                )
            root = self._source
            if self._packed:
                try:
                    root = os.fspath(self.extract(self._source))
                except Exception as e:  # tarfile/zlib/OSError: any failure means a bad archive
                    raise Stl10ArchiveError(
                        f"config.stl10_archive: cannot extract {self._source} ({type(e).__name__}: "
                        f"{e}); the archive is truncated or corrupt, download it again"
                    ) from None
                self.extracted_to = root
                if not os.path.isdir(os.path.join(root, "stl10_binary")):
                    raise Stl10ArchiveError(
                        f"config.stl10_archive: {self._source} holds no stl10_binary/ folder"
                    )
            _check_stl10_folder(os.path.join(root, "stl10_binary"))
            return root

    return LocalStl10DownloadManager


def _prepare_stl10_offline(builder, archive: str) -> None:
    """Runs the real tfds STL10 builder on a local archive, with no network access."""
    tfds = _tfds()
    source, packed = _resolve_stl10_archive(archive)
    if not packed:
        _check_stl10_folder(os.path.join(source, "stl10_binary"))  # fail before tfds starts
    manager_cls = _local_download_manager_cls()
    managers = []

    def make_manager(download_dir, download_config):
        download_dir = os.fspath(
            download_dir or os.path.join(os.fspath(builder.data_dir_root), "downloads")
        )
        manager = manager_cls(
            source=source,
            packed=packed,
            download_dir=download_dir,
            extract_dir=download_config.extract_dir or os.path.join(download_dir, "extracted"),
            dataset_name=builder.name,
            force_extraction=True,
        )
        managers.append(manager)
        return manager

    # An instance attribute shadows the builder's method: only this builder object is affected.
    builder._make_download_manager = make_manager
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
    finally:
        del builder._make_download_manager
        for manager in managers:  # the prepared records are all we keep; drop the extracted copy
            if manager.extracted_to and os.path.isdir(manager.extracted_to):
                shutil.rmtree(manager.extracted_to, ignore_errors=True)


def _unavailable(config, reason: str) -> DatasetUnavailableError:
    where = config.data_dir or "the tfds default data dir"
    return DatasetUnavailableError(
        f"dataset {config.dataset!r} is not prepared in {where} and {reason}. Either set "
        "config.data_dir to a folder (local or gs://) holding the prepared dataset, or, for STL10, "
        "set config.stl10_archive to stl10_binary.tar.gz or its extracted stl10_binary/ folder."
    )


def _can_reach(urls, timeout: float = 3.0) -> bool:
    """One quick TCP connect to the first download host, so offline machines fail in seconds."""
    for url in urls:
        parts = urllib.parse.urlparse(url)
        if not parts.hostname:
            continue
        try:
            with socket.create_connection(
                (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)), timeout
            ):
                return True
        except OSError:
            return False
    return False


def _builder(config):
    tfds = _tfds()
    try:
        return tfds.builder(config.dataset, data_dir=config.data_dir)
    except Exception as e:  # tfds raises its own DatasetNotFoundError types
        raise ValueError(f"config.dataset={config.dataset!r} is not a tfds dataset ({e})") from None


def _prepared_builder(config):
    """The tfds builder for config.dataset, prepared (from the local archive when given)."""
    if config.get("synthetic_stl10") and not config.data_dir:
        raise ValueError(
            "config.synthetic_stl10 is set but config.data_dir is None: generated images would be "
            "prepared as 'stl10' in the default tfds folder and later stand in for the real STL10; "
            "set config.data_dir to a scratch folder (e.g. WORKDIR/tfds)"
        )
    builder = _builder(config)
    archive = config.get("stl10_archive")
    if not builder.is_prepared():
        if archive:
            if builder.name != "stl10":
                raise ValueError(
                    f"config.stl10_archive is set but config.dataset={config.dataset!r}; the archive "
                    "only prepares 'stl10': set config.dataset='stl10' or config.stl10_archive=None"
                )
            _prepare_stl10_offline(builder, archive)
        elif builder.name == "stl10":
            raise _unavailable(
                config, "config.stl10_archive is not set (downloading 2.5 GB is not attempted)"
            )
        else:
            urls = list(getattr(builder, "url_infos", None) or {})
            if urls and not _can_reach(urls):
                raise _unavailable(config, f"its download host ({urls[0]}) cannot be reached")
            try:
                builder.download_and_prepare()
            except Exception as e:
                raise _unavailable(
                    config, f"preparing it failed ({type(e).__name__}: {e})"
                ) from None
        builder = _builder(config)  # re-read the prepared dataset_info
    features = builder.info.features
    if (
        "image" not in features
        or "label" not in features
        or not hasattr(features["label"], "num_classes")
    ):
        raise ValueError(
            f"config.dataset={config.dataset!r} has no 'image' and class 'label' features; "
            "choose an image classification dataset"
        )
    return builder


def _num_examples(builder, split, field: str) -> int:
    try:
        return int(builder.info.splits[split].num_examples)
    except Exception as e:
        raise ValueError(
            f"config.{field}={split!r} is not a split of {builder.name} "
            f"(splits: {sorted(builder.info.splits)}; {e})"
        ) from None


def get_dataset_info(config) -> DatasetInfo:
    """Prepares the dataset if needed (offline from config.stl10_archive), then describes it."""
    builder = _prepared_builder(config)
    label = builder.info.features["label"]
    return DatasetInfo(
        num_classes=int(label.num_classes),
        class_names=tuple(label.names),
        num_train_examples=_num_examples(builder, config.train_split, "train_split"),
        num_eval_examples=_num_examples(builder, config.eval_split, "eval_split"),
    )


# ----------------------------------------------------------------------------- in-memory splits

_ARRAY_CACHE: dict = {}


def _process_layout(
    batch_size: int, process_index, process_count, local_device_count, field="batch_size"
):
    if process_count is None or process_index is None or local_device_count is None:
        import jax  # only here, never inside tf.data functions

        process_count = jax.process_count() if process_count is None else process_count
        process_index = jax.process_index() if process_index is None else process_index
        local_device_count = (
            jax.local_device_count() if local_device_count is None else local_device_count
        )
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} outside 0..{process_count - 1}")
    per_process = batch_size // process_count
    if batch_size % process_count or per_process % local_device_count:
        raise ValueError(
            f"config.{field}={batch_size} must be divisible by processes x local devices "
            f"({process_count} x {local_device_count}); make it a multiple of "
            f"{process_count * local_device_count}"
        )
    return process_index, process_count, local_device_count, per_process


def _shard_spec(split: str, process_index: int, process_count: int):
    if process_count == 1:
        return split
    return _tfds().even_splits(split, n=process_count)[process_index]


def _load_arrays(config, builder, split_spec) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, S, S, 3] images and int32 [n] labels of one (sharded) split, in file order."""
    size = int(config.image_size)
    key = (builder.name, str(builder.data_dir), str(split_spec), size, bool(config.cache))
    if key in _ARRAY_CACHE:
        return _ARRAY_CACHE[key]
    tf = _tf()
    channels = builder.info.features["image"].shape[-1]
    static_hw = tuple(builder.info.features["image"].shape[:2])

    @tf.autograph.experimental.do_not_convert
    def decode(example):
        image = example["image"]
        if channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        if static_hw != (size, size):
            image = tf.image.resize(image, (size, size), antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
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
    if config.cache:
        _ARRAY_CACHE[key] = arrays
    return arrays


# ----------------------------------------------------------------------------- augmentation


def _mix(tf, x):
    """A 32-bit integer mixer in int64 arithmetic (products stay below 2**63)."""
    for mult in (0x2C1B3C6D, 0x297A2D39):
        x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
        x = tf.bitwise.bitwise_and(x * mult, _M32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))


def _uniforms(tf, key, example_ids, count: int):
    """[len(example_ids), count] floats in [0, 1), a pure function of (key, example id, column)."""
    h = _mix(tf, tf.bitwise.bitwise_xor(tf.bitwise.bitwise_and(key, _M32), example_ids))
    cols = [_mix(tf, tf.bitwise.bitwise_xor(h, (j + 1) * 0x3B9ACA07 & _M32)) for j in range(count)]
    return tf.cast(tf.stack(cols, axis=1), tf.float32) * (1.0 / 2**32)


def _key(seed: int, *parts) -> int:
    h = np.uint64(seed & _M32)
    for p in parts:  # plain Python mixing of the static parts of the key
        h = np.uint64((int(h) * 0x9E3779B1 + int(p) + 0x7F4A7C15) & _M32)
        h = np.uint64(int(h) ^ (int(h) >> 13))
    return int(h)


def _bilinear_axis(tf, x, coords, axis: int):
    """Samples x along axis (1 rows or 2 columns) at per-example float coords [B, S], clamped."""
    top = tf.cast(x.shape[axis] - 1, tf.float32)
    coords = tf.clip_by_value(coords, 0.0, top)
    lo = tf.floor(coords)
    weight = coords - lo
    lo_i = tf.cast(lo, tf.int32)
    hi_i = tf.minimum(lo_i + 1, x.shape[axis] - 1)
    a = tf.gather(x, lo_i, axis=axis, batch_dims=1)
    b = tf.gather(x, hi_i, axis=axis, batch_dims=1)
    weight = weight[:, :, None, None] if axis == 1 else weight[:, None, :, None]
    return a + (b - a) * weight


def _augmenter(tf, config):
    """An XLA-compiled (uint8 images [B, S(+2 pad), S(+2 pad), 3], uniforms [B, 9]) -> float32 batch.

    Crop, flip, normalisation and cutout are index arithmetic plus gathers, which XLA fuses
    into one pass over the output; plain TF ran each as a separate, slower op (4x slower).
    For pad_crop the cached images are already padded.
    """
    size = int(config.image_size)
    crop, flip, cut = config.crop, bool(config.flip), int(config.cutout_size)
    pad = int(config.crop_padding) if crop == "pad_crop" else 0
    mean, scale = _normalisation(config)

    @tf.function(jit_compile=True, autograph=False)
    def augment(images, uniforms):
        grid = tf.range(size)
        gridf = tf.cast(grid, tf.float32)[None, :]
        mirrored = uniforms[:, 2:3] < 0.5
        if crop == "random_resized_crop":
            # Area fraction in [0.08, 1], aspect ratio log-uniform in [3/4, 4/3], clipped to the image.
            area = 0.08 + 0.92 * uniforms[:, 3:4]
            ratio = tf.exp(math.log(3 / 4) + math.log(16 / 9) * uniforms[:, 4:5])
            h = tf.minimum(tf.sqrt(area / ratio), 1.0)
            w = tf.minimum(tf.sqrt(area * ratio), 1.0)
            y0 = uniforms[:, 5:6] * (1.0 - h)
            x0 = uniforms[:, 6:7] * (1.0 - w)
            height, width = images.shape[1], images.shape[2]
            ys = (y0 + h * (gridf + 0.5) / size) * height - 0.5  # pixel centres, [B, S]
            xs = (x0 + w * (gridf + 0.5) / size) * width - 0.5
            if flip:
                xs = tf.where(mirrored, tf.reverse(xs, axis=[1]), xs)
            x = _bilinear_axis(tf, tf.cast(images, tf.float32), ys, 1)
            x = _bilinear_axis(tf, x, xs, 2)
        else:
            x = images
            cols = tf.broadcast_to(grid[None, :], [tf.shape(images)[0], size])
            if pad:
                offset = tf.cast(uniforms[:, 0:2] * (2 * pad + 1), tf.int32)
                x = tf.gather(x, offset[:, 0:1] + grid[None, :], axis=1, batch_dims=1)
                cols = offset[:, 1:2] + cols
            if flip:
                cols = tf.where(mirrored, tf.reverse(cols, axis=[1]), cols)
            if pad or flip:
                x = tf.gather(x, cols, axis=2, batch_dims=1)
            x = tf.cast(x, tf.float32)
        x = (x - mean) * scale
        if cut > 0:
            corner = (
                tf.cast(uniforms[:, 7:9] * size, tf.int32) - cut // 2
            )  # centre uniform over the image
            in_y = (grid[None, :] >= corner[:, 0:1]) & (grid[None, :] < corner[:, 0:1] + cut)
            in_x = (grid[None, :] >= corner[:, 1:2]) & (grid[None, :] < corner[:, 1:2] + cut)
            x = tf.where((in_y[:, :, None] & in_x[:, None, :])[..., None], 0.0, x)
        return x

    return augment


def _normaliser(tf, config):
    """XLA-compiled uint8 [B, S, S, 3] -> (x/255 - mean) / std, float32."""
    mean, scale = _normalisation(config)
    return tf.function(
        lambda x: (tf.cast(x, tf.float32) - mean) * scale, jit_compile=True, autograph=False
    )


def _normalisation(config):
    mean = np.asarray(config.mean, np.float32) * 255.0
    std = np.asarray(config.std, np.float32) * 255.0
    if mean.shape != (3,) or std.shape != (3,) or (std <= 0).any():
        raise ValueError(
            "config.mean and config.std must be 3 values each (std > 0), in [0, 1] units"
        )
    return mean, (1.0 / std).astype(np.float32)


# ----------------------------------------------------------------------------- public streams


def steps_per_epoch(config, info: DatasetInfo) -> int:
    """Whole global batches per epoch; the remainder is dropped (a new random subset each epoch)."""
    return info.num_train_examples // int(config.batch_size)


def _eval_batch_size(config) -> int:
    return int(config.get("eval_batch_size", None) or config.batch_size)


def num_eval_steps(config, info: DatasetInfo, process_count=None) -> int:
    """Batches every process yields in one evaluation pass (the largest shard, rounded up)."""
    if process_count is None:
        import jax

        process_count = jax.process_count()
    per_process = _eval_batch_size(config) // process_count
    largest_shard = -(-info.num_eval_examples // process_count)
    return -(-largest_shard // per_process)


def _check_crop(config):
    if config.crop not in CROPS:
        raise ValueError(f"config.crop={config.crop!r} is not one of {CROPS}")


def train_batches(
    config, *, start_step: int = 0, process_index=None, process_count=None, local_device_count=None
) -> Iterator[dict]:
    """Infinite training stream from global step start_step; see the module docstring."""
    tf = _tf()
    _check_crop(config)
    process_index, process_count, local_devices, per_process = _process_layout(
        int(config.batch_size), process_index, process_count, local_device_count
    )
    builder = _prepared_builder(config)
    info_steps = _num_examples(builder, config.train_split, "train_split") // int(config.batch_size)
    if info_steps < 1:
        raise ValueError(
            f"config.batch_size={config.batch_size} exceeds the {config.train_split!r} split; make it smaller"
        )
    # Every process holds the whole (small, cached) split and takes its slice of each global
    # batch, so the global batches, their order and their augmentation do not depend on the
    # number of processes: a 2-host run sees exactly the data of a 1-host run.
    images_np, labels_np = _load_arrays(config, builder, config.train_split)
    n = len(labels_np)
    global_batch = int(config.batch_size)
    spe = info_steps
    size = int(config.image_size)
    if config.crop == "pad_crop" and config.crop_padding > 0:
        pad = int(config.crop_padding)  # pad once here rather than every batch
        images_np = np.pad(images_np, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    images, labels = tf.constant(images_np), tf.constant(labels_np)
    augment = _augmenter(tf, config)
    seed = int(config.seed)
    order_seed = _key(seed, 1)
    aug_key = _key(seed, 2)
    first = process_index * per_process
    start_epoch, offset = divmod(int(start_step), spe)

    @tf.autograph.experimental.do_not_convert
    def epoch_index_batches(epoch):
        noise = tf.random.stateless_uniform(
            [n], seed=tf.stack([tf.constant(order_seed, tf.int64), epoch])
        )
        order = tf.argsort(noise, stable=True)[: spe * global_batch]
        order = tf.reshape(tf.cast(order, tf.int64), [spe, global_batch])[
            :, first : first + per_process
        ]
        return tf.data.Dataset.from_tensor_slices(order).map(
            tf.autograph.experimental.do_not_convert(lambda idx: (epoch, idx))
        )

    @tf.autograph.experimental.do_not_convert
    def make_batch(epoch, idx):
        key = _mix(
            tf,
            tf.bitwise.bitwise_xor(
                tf.constant(aug_key, tf.int64), tf.bitwise.bitwise_and(epoch, _M32)
            ),
        )
        rand = _uniforms(tf, key, idx, 9)
        x = augment(tf.gather(images, idx), rand)
        y = tf.gather(labels, idx)
        return (
            tf.reshape(x, [local_devices, per_process // local_devices, size, size, 3]),
            tf.reshape(y, [local_devices, per_process // local_devices]),
        )

    ds = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch_index_batches).skip(offset)
    ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    for x, y in ds.as_numpy_iterator():
        yield {"image": x, "label": y}


def eval_batches(
    config, *, split=None, process_index=None, process_count=None, local_device_count=None
) -> Iterator[dict]:
    """One pass over the split; padded examples carry mask=False; equal batch count per process."""
    tf = _tf()
    split = config.eval_split if split is None else split
    batch_size = _eval_batch_size(config)
    process_index, process_count, local_devices, per_process = _process_layout(
        batch_size, process_index, process_count, local_device_count
    )
    builder = _prepared_builder(config)
    total = _num_examples(builder, split, "eval_split")
    images_np, labels_np = _load_arrays(
        config, builder, _shard_spec(split, process_index, process_count)
    )
    n = len(labels_np)
    steps = -(-(-(-total // process_count)) // per_process)
    size = int(config.image_size)
    images, labels = tf.constant(images_np), tf.constant(labels_np)
    normalise = _normaliser(tf, config)

    @tf.autograph.experimental.do_not_convert
    def make_batch(step):
        idx = step * per_process + tf.range(per_process, dtype=tf.int64)
        mask = idx < n
        safe = tf.minimum(idx, n - 1)
        x = normalise(tf.gather(images, safe))
        y = tf.where(mask, tf.gather(labels, safe), 0)
        shape = [local_devices, per_process // local_devices]
        return tf.reshape(x, shape + [size, size, 3]), tf.reshape(y, shape), tf.reshape(mask, shape)

    ds = tf.data.Dataset.range(steps).map(
        make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    for x, y, m in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        yield {"image": x, "label": y, "mask": m}
