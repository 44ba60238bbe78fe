"""Where the images come from: a tfds builder, prepared once, described by a DatasetInfo.

- tfds datasets are prepared by tfds into `config.data.data_dir`.
- STL10 is prepared from the official archive: `config.data.stl10_archive` when given, else
  downloaded from `config.data.stl10_url` (resumable, checksum-checked). The archive is
  handed to the real tfds STL10 builder through a download manager that never touches the
  network, so the prepared records are exactly what tfds writes after its own download.
- `config.data.dataset="folder:/path"`: the user's own train/<class>/ and test/<class>/
  images through tfds's ImageFolder.
- `config.data.mean`/`std` left unset are computed exactly from the training split once
  and stored beside the prepared data (senet_jax/data/statistics.py).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import socket
import threading
import urllib.parse

import numpy as np

from senet_jax.data import download, folder, statistics, stl10_format


class DatasetUnavailableError(ValueError):
    """The dataset is neither prepared in config.data.data_dir nor obtainable without a download."""


class Stl10ArchiveError(ValueError):
    """config.data.stl10_archive is missing, corrupt or truncated."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    num_classes: int
    class_names: tuple
    num_train_examples: int  # what training sees: the train split less the validation holdout
    num_eval_examples: int  # the test (eval) split
    num_validation_examples: int = 0
    streamed: bool = False  # read per process from files (data/streamed.py), not held in memory
    shard_examples: tuple = ()  # streamed: training examples of each process's files


@functools.cache
def load_tf():
    """TensorFlow with accelerators hidden: the devices belong to JAX."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
        tf.config.set_visible_devices([], "TPU")
    except (RuntimeError, ValueError):
        pass  # already initialised, or no such device type
    return tf


def load_tfds():
    load_tf()
    import tensorflow_datasets as tfds

    return tfds


def _check_stl10_folder(folder: str) -> None:
    """Fails with the name of the first wrong file, before tfds reads anything."""

    def size(name):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise Stl10ArchiveError(
                f"config.data.stl10_archive: {path} is missing; the archive is incomplete, "
                "download stl10_binary.tar.gz again"
            )
        return os.path.getsize(path)

    for prefix in ("train", "test"):
        num_labels = size(f"{prefix}_y.bin")
        num_bytes = size(f"{prefix}_X.bin")
        if num_bytes != num_labels * stl10_format.IMAGE_BYTES:
            raise Stl10ArchiveError(
                f"config.data.stl10_archive: {os.path.join(folder, prefix + '_X.bin')} has "
                f"{num_bytes} "
                f"bytes but {prefix}_y.bin lists {num_labels} labels (expected "
                f"{num_labels * stl10_format.IMAGE_BYTES} bytes, 27648 per image); the file is "
                "truncated or corrupt, download stl10_binary.tar.gz again"
            )
        with open(os.path.join(folder, f"{prefix}_y.bin"), "rb") as f:
            labels = np.frombuffer(f.read(), np.uint8)
        if labels.size and (labels.min() < 1 or labels.max() > stl10_format.NUM_CLASSES):
            raise Stl10ArchiveError(
                f"config.data.stl10_archive: {os.path.join(folder, prefix + '_y.bin')} holds "
                "labels "
                "outside 1..10; the file is corrupt, download stl10_binary.tar.gz again"
            )
    num_bytes = size("unlabeled_X.bin")
    if num_bytes % stl10_format.IMAGE_BYTES or num_bytes == 0:
        raise Stl10ArchiveError(
            f"config.data.stl10_archive: {os.path.join(folder, 'unlabeled_X.bin')} has "
            f"{num_bytes} bytes, not a positive multiple of 27648 (one 3x96x96 image; tfds "
            "prepares the unlabelled split too); the file is truncated, download again"
        )
    with open(os.path.join(folder, "class_names.txt")) as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != stl10_format.NUM_CLASSES:
        raise Stl10ArchiveError(
            f"config.data.stl10_archive: {os.path.join(folder, 'class_names.txt')} lists "
            f"{len(names)} "
            "class names, expected 10"
        )


def _resolve_stl10_archive(archive: str) -> tuple[str, bool]:
    """(path, is_packed): the .tar.gz, or the folder that holds stl10_binary/."""
    path = os.path.abspath(os.path.expanduser(str(archive)))
    if os.path.isfile(path):
        if not path.endswith((".tar.gz", ".tgz", ".tar")):
            raise Stl10ArchiveError(
                f"config.data.stl10_archive={archive!r} is a file but not a .tar.gz/.tar archive; "
                "give "
                "stl10_binary.tar.gz, or the folder that holds stl10_binary/"
            )
        return path, True
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "train_X.bin")):
            return os.path.dirname(path.rstrip(os.sep)), False  # stl10_binary/ itself
        if os.path.isdir(os.path.join(path, "stl10_binary")):
            return path, False
        raise Stl10ArchiveError(
            f"config.data.stl10_archive={archive!r} is a folder without stl10_binary/ or "
            "train_X.bin in it; "
            "give stl10_binary.tar.gz, the folder holding stl10_binary/, or stl10_binary/ itself"
        )
    raise Stl10ArchiveError(
        f"config.data.stl10_archive={archive!r} does not exist; give the path of "
        "stl10_binary.tar.gz "
        "or of its extracted stl10_binary/ folder"
    )


def _local_download_manager_cls():
    tfds = load_tfds()

    class LocalStl10DownloadManager(tfds.download.DownloadManager):
        """Answers the STL10 builder's download_and_extract(URL) with a local folder."""

        def __init__(self, *, source: str, packed: bool, **kwargs):
            super().__init__(**kwargs)
            self._source = source
            self._packed = packed
            self.extracted_to = None

        def download(self, url_or_urls):
            raise DatasetUnavailableError(
                f"offline preparation from config.data.stl10_archive cannot download {url_or_urls}"
            )

        def download_and_extract(self, url_or_urls):
            if not isinstance(url_or_urls, str):
                raise DatasetUnavailableError(
                    "offline preparation from config.data.stl10_archive expects one STL10 archive, "
                    f"the builder asked for {url_or_urls}"
                )
            root = self._source
            if self._packed:
                try:
                    root = os.fspath(self.extract(self._source))
                except Exception as e:  # tarfile/zlib/OSError: any failure means a bad archive
                    raise Stl10ArchiveError(
                        f"config.data.stl10_archive: cannot extract {self._source} "
                        f"({type(e).__name__}: "
                        f"{e}); the archive is truncated or corrupt, download it again"
                    ) from None
                self.extracted_to = root
                if not os.path.isdir(os.path.join(root, "stl10_binary")):
                    raise Stl10ArchiveError(
                        f"config.data.stl10_archive: {self._source} holds no stl10_binary/ folder"
                    )
            _check_stl10_folder(os.path.join(root, "stl10_binary"))
            return root

    return LocalStl10DownloadManager


def _prepare_stl10_offline(builder, archive: str, num_shards: int | None = None) -> None:
    """Runs the real tfds STL10 builder on a local archive, with no network access
    (`num_shards` files per split when given: tests of the streamed path need several)."""
    tfds = load_tfds()
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
            download_config=tfds.download.DownloadConfig(
                try_download_gcs=False, num_shards=num_shards
            )
        )
    finally:
        del builder._make_download_manager
        for manager in managers:  # the prepared records are all we keep; drop the extracted copy
            if manager.extracted_to and os.path.isdir(manager.extracted_to):
                shutil.rmtree(manager.extracted_to, ignore_errors=True)


def _unavailable(data, reason: str) -> DatasetUnavailableError:
    where = data.data_dir or "the tfds default data dir"
    return DatasetUnavailableError(
        f"dataset {data.dataset!r} is not prepared in {where} and {reason}. Either set "
        "config.data.data_dir to a folder (local or gs://) holding the prepared dataset, or, for "
        "STL10, "
        "set config.data.stl10_archive to stl10_binary.tar.gz or its extracted stl10_binary/ "
        "folder."
    )


def _can_reach(urls, timeout: float = 3.0) -> bool:
    """One quick TCP connect to the first download host, so offline machines fail in seconds.

    Run in a thread with a deadline: name resolution ignores socket timeouts and can hang for
    tens of seconds on a machine without DNS.
    """
    url = next((u for u in urls if urllib.parse.urlparse(u).hostname), None)
    if url is None:
        return False
    parts = urllib.parse.urlparse(url)
    address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    reached = []

    def connect():
        try:
            socket.create_connection(address, timeout).close()
            reached.append(True)
        except OSError:
            pass

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(reached)


def _builder(data):
    path = folder.parse_folder_dataset(data.dataset)
    if path is not None:
        return folder.image_folder_builder(path)
    tfds = load_tfds()
    try:
        return tfds.builder(data.dataset, data_dir=data.data_dir)
    except Exception as e:  # tfds raises its own DatasetNotFoundError types
        raise ValueError(
            f"config.data.dataset={data.dataset!r} is not a tfds dataset ({e})"
        ) from None


def prepared_builder(data):
    """The builder for config.data.dataset, prepared if it is not yet (see the module doc)."""
    if data.get("synthetic_stl10") and not data.data_dir:
        raise ValueError(
            "config.data.synthetic_stl10 is set but config.data.data_dir is None: generated "
            "images would be prepared as 'stl10' in the default tfds folder and later stand in "
            "for the real STL10; set config.data.data_dir to a scratch folder (e.g. WORKDIR/tfds)"
        )
    builder = _builder(data)
    if folder.parse_folder_dataset(data.dataset) is None and not builder.is_prepared():
        _prepare(builder, data)
        builder = _builder(data)  # re-read the prepared dataset_info
    features = builder.info.features
    if (
        "image" not in features
        or "label" not in features
        or not hasattr(features["label"], "num_classes")
    ):
        raise ValueError(
            f"config.data.dataset={data.dataset!r} has no 'image' and class 'label' features; "
            "choose an image classification dataset"
        )
    return builder


def _prepare(builder, data) -> None:
    archive = data.get("stl10_archive")
    if archive:
        if builder.name != "stl10":
            raise ValueError(
                f"config.data.stl10_archive is set but config.data.dataset={data.dataset!r}; "
                "the archive only prepares 'stl10': set config.data.dataset='stl10' or "
                "config.data.stl10_archive=None"
            )
        _prepare_stl10_offline(builder, archive)
    elif builder.name == "stl10":
        _download_and_prepare_stl10(builder, data)
    else:
        urls = list(getattr(builder, "url_infos", None) or {})
        if urls and not _can_reach(urls):
            raise _unavailable(data, f"its download host ({urls[0]}) cannot be reached")
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise _unavailable(data, f"preparing it failed ({type(e).__name__}: {e})") from None


def _download_and_prepare_stl10(builder, data) -> None:
    """Fetches the official archive (resumable, checksum-checked), then prepares from it.

    The archive goes to DATA_DIR/downloads/ and is removed once the dataset is prepared;
    an interrupted download resumes from its .partial file on the next run.
    """
    url = data.get("stl10_url") or download.STL10_URL
    if not _can_reach([url]):
        raise _unavailable(data, f"the STL10 download host ({url}) cannot be reached")
    root = os.fspath(builder.data_dir_root)
    archive = os.path.join(root, "downloads", "stl10_binary.tar.gz")
    download.download(url, archive, sha256=data.get("stl10_sha256"))
    _prepare_stl10_offline(builder, archive)
    os.remove(archive)


def num_examples(builder, split, field: str) -> int:
    try:
        return int(builder.info.splits[split].num_examples)
    except Exception as e:
        raise ValueError(
            f"config.data.{field}={split!r} is not a split of {builder.name} "
            f"(splits: {sorted(builder.info.splits)}; {e})"
        ) from None


def get_dataset_info(data) -> DatasetInfo:
    """Prepares the dataset if needed, then describes it (training excludes the holdout)."""
    builder = prepared_builder(data)
    label = builder.info.features["label"]
    train = num_examples(builder, data.train_split, "train_split")
    held_out = int(data.get("validation_examples") or 0)
    if held_out >= train:
        raise ValueError(
            f"config.data.validation_examples={held_out} leaves nothing of the {train} examples "
            f"of {data.train_split!r} to train on; use fewer (e.g. {train // 10})"
        )
    return DatasetInfo(
        num_classes=int(label.num_classes),
        class_names=tuple(label.names),
        num_train_examples=train - held_out,
        num_eval_examples=num_examples(builder, data.eval_split, "eval_split"),
        num_validation_examples=held_out,
        **_stream_layout(data, builder),
    )


def _stream_layout(data, builder) -> dict:
    """DatasetInfo's streamed fields: whether the split streams, and each process's share."""
    from senet_jax.data import streamed

    if not streamed.is_streamed(data, builder):
        return {}
    import jax

    streamed.check_supported(data)
    examples = streamed.shard_examples(builder, data.train_split, jax.process_count())
    return {"streamed": True, "shard_examples": examples}


def channel_statistics(data, images_of_split) -> tuple[tuple, tuple]:
    """(mean, std): config.data.mean/std when set, else exact over the training split, computed
    once from `images_of_split()` (uint8 images) and cached beside the prepared data."""
    if data.mean is not None and data.std is not None:
        return tuple(data.mean), tuple(data.std)
    builder = prepared_builder(data)
    examples = num_examples(builder, data.train_split, "train_split")
    return statistics.cached_statistics(
        _statistics_path(builder, data),
        lambda: statistics.channel_statistics(images_of_split(), return_examples=True),
        examples=examples,
    )


def _statistics_path(builder, data) -> str:
    """Beside the prepared tfds data; for an image folder (never written to), under data_dir."""
    split = str(data.train_split).replace("/", "_")
    name = f"senet_jax_statistics_{split}.json"
    path = folder.parse_folder_dataset(data.dataset)
    if path is None:
        return os.path.join(os.fspath(builder.data_dir), name)
    root = data.data_dir or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
    tag = "".join(c if c.isalnum() else "_" for c in path.strip("/"))
    return os.path.join(root, "senet_jax_folder_statistics", tag, name)


def with_synthetic_stl10(data, workdir: str, *, seed: int, write: bool):
    """For smoke runs: `data` pointed at a generated STL10-layout archive in the workdir.

    The archive is written only where `write` (process 0), aside and then renamed, so a run
    killed mid-write never leaves a truncated archive; it is prepared into WORKDIR/tfds
    unless data_dir is set. Returns a new data config; `data` is not changed.
    """
    import ml_collections

    data = ml_collections.ConfigDict(data.to_dict())
    root = os.path.join(workdir, "synthetic_stl10")
    archive = os.path.join(root, "stl10_binary.tar.gz")
    if write and not os.path.exists(archive):
        num_train, num_test = data.synthetic_stl10
        scratch = root + ".partial"
        shutil.rmtree(scratch, ignore_errors=True)
        written = stl10_format.write_stl10_archive(scratch, num_train, num_test, seed=seed)
        os.makedirs(root, exist_ok=True)
        os.replace(written, archive)
        shutil.rmtree(scratch, ignore_errors=True)
    data.stl10_archive = archive
    data.data_dir = data.data_dir or os.path.join(workdir, "tfds")
    return data
