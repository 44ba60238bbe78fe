"""Where the images come from: a tfds builder, prepared once (offline from a local STL10
archive when `config.data.stl10_archive` is set), described by a DatasetInfo.

Offline STL10 hands the official archive (or its extracted folder) to the real tfds STL10
builder through a download manager that never touches the network, so the prepared
records are exactly what tfds would have written after a download.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import socket
import urllib.parse

import numpy as np

from senet_jax.data import stl10_format


class DatasetUnavailableError(ValueError):
    """The dataset is neither prepared in config.data.data_dir nor obtainable without a download."""


class Stl10ArchiveError(ValueError):
    """config.data.stl10_archive is missing, corrupt or truncated."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    num_classes: int
    class_names: tuple
    num_train_examples: int
    num_eval_examples: int


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
    if num_bytes % stl10_format.IMAGE_BYTES:
        raise Stl10ArchiveError(
            f"config.data.stl10_archive: {os.path.join(folder, 'unlabeled_X.bin')} has {num_bytes} "
            "bytes, "
            "not a multiple of 27648 (one 3x96x96 image); the file is truncated, download again"
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


def _prepare_stl10_offline(builder, archive: str) -> None:
    """Runs the real tfds STL10 builder on a local archive, with no network access."""
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
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
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


def _builder(data):
    tfds = load_tfds()
    try:
        return tfds.builder(data.dataset, data_dir=data.data_dir)
    except Exception as e:  # tfds raises its own DatasetNotFoundError types
        raise ValueError(
            f"config.data.dataset={data.dataset!r} is not a tfds dataset ({e})"
        ) from None


def prepared_builder(data):
    """The tfds builder for config.data.dataset, prepared (from the local archive when given)."""
    if data.get("synthetic_stl10") and not data.data_dir:
        raise ValueError(
            "config.data.synthetic_stl10 is set but config.data.data_dir is None: generated images "
            "would be "
            "prepared as 'stl10' in the default tfds folder and later stand in for the real STL10; "
            "set config.data.data_dir to a scratch folder (e.g. WORKDIR/tfds)"
        )
    builder = _builder(data)
    archive = data.get("stl10_archive")
    if not builder.is_prepared():
        if archive:
            if builder.name != "stl10":
                raise ValueError(
                    f"config.data.stl10_archive is set but config.data.dataset={data.dataset!r}; "
                    "the archive "
                    "only prepares 'stl10': set config.data.dataset='stl10' or "
                    "config.data.stl10_archive=None"
                )
            _prepare_stl10_offline(builder, archive)
        elif builder.name == "stl10":
            raise _unavailable(
                data, "config.data.stl10_archive is not set (downloading 2.5 GB is not attempted)"
            )
        else:
            urls = list(getattr(builder, "url_infos", None) or {})
            if urls and not _can_reach(urls):
                raise _unavailable(data, f"its download host ({urls[0]}) cannot be reached")
            try:
                builder.download_and_prepare()
            except Exception as e:
                raise _unavailable(data, f"preparing it failed ({type(e).__name__}: {e})") from None
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


def num_examples(builder, split, field: str) -> int:
    try:
        return int(builder.info.splits[split].num_examples)
    except Exception as e:
        raise ValueError(
            f"config.data.{field}={split!r} is not a split of {builder.name} "
            f"(splits: {sorted(builder.info.splits)}; {e})"
        ) from None


def get_dataset_info(data) -> DatasetInfo:
    """Prepares the dataset if needed (offline from data.stl10_archive), then describes it."""
    builder = prepared_builder(data)
    label = builder.info.features["label"]
    return DatasetInfo(
        num_classes=int(label.num_classes),
        class_names=tuple(label.names),
        num_train_examples=num_examples(builder, data.train_split, "train_split"),
        num_eval_examples=num_examples(builder, data.eval_split, "eval_split"),
    )


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
