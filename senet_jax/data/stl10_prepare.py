"""STL10 prepared from its official archive by the real tfds STL10 builder.

The archive is `config.data.stl10_archive` when given, else downloaded from
`config.data.stl10_url` (resumable, checksum-checked). It reaches the builder through a
download manager that never touches the network, so the prepared records are exactly what
tfds writes after its own download. Each bad file is one line naming it, before tfds starts.
Smoke runs generate an archive in STL10's layout (`with_synthetic_stl10`).
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from senet_jax.data import download, stl10_format
from senet_jax.data.availability import DatasetUnavailableError, can_reach, unavailable
from senet_jax.data.tf_setup import load_tfds


class Stl10ArchiveError(ValueError):
    """config.data.stl10_archive is missing, corrupt or truncated."""


def check_folder(folder: str) -> None:
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


def resolve_archive(archive: str) -> tuple[str, bool]:
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


def _local_download_manager_cls(builder):
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
            check_folder(os.path.join(root, "stl10_binary"))
            keep_fold_file(os.path.join(root, "stl10_binary"), builder)
            return root

    return LocalStl10DownloadManager


def fold_file(builder) -> str:
    """Where STL10's fold_indices.txt is kept once prepared (the archive itself is not kept)."""
    return os.path.join(os.fspath(builder.data_dir_root), "stl10_fold_indices.txt")


def keep_fold_file(folder: str, builder) -> None:
    """Copies the archive's fold_indices.txt beside the prepared data (data.labelled_fold)."""
    source = os.path.join(folder, "fold_indices.txt")
    if os.path.isfile(source):
        os.makedirs(os.path.dirname(fold_file(builder)), exist_ok=True)
        shutil.copyfile(source, fold_file(builder))


def prepare_offline(builder, archive: str, num_shards: int | None = None) -> None:
    """Runs the real tfds STL10 builder on a local archive, with no network access
    (`num_shards` files per split when given: tests of the streamed path need several)."""
    tfds = load_tfds()
    source, packed = resolve_archive(archive)
    if not packed:
        check_folder(os.path.join(source, "stl10_binary"))  # fail before tfds starts
    manager_cls = _local_download_manager_cls(builder)
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


def download_and_prepare(builder, data) -> None:
    """Fetches the official archive (resumable, checksum-checked), then prepares from it.

    The archive goes to DATA_DIR/downloads/ and is removed once the dataset is prepared;
    an interrupted download resumes from its .partial file on the next run.
    """
    url = data.stl10_url
    if not can_reach([url]):
        raise unavailable(data, f"the STL10 download host ({url}) cannot be reached")
    root = os.fspath(builder.data_dir_root)
    archive = os.path.join(root, "downloads", "stl10_binary.tar.gz")
    download.download(url, archive, sha256=data.stl10_sha256)
    prepare_offline(builder, archive)
    os.remove(archive)


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
        num_train, num_test, *unlabelled = data.synthetic_stl10
        scratch = root + ".partial"
        shutil.rmtree(scratch, ignore_errors=True)
        written = stl10_format.write_stl10_archive(
            scratch, num_train, num_test, num_unlabeled=(unlabelled or [8])[0], seed=seed
        )
        os.makedirs(root, exist_ok=True)
        os.replace(written, archive)
        shutil.rmtree(scratch, ignore_errors=True)
    data.stl10_archive = archive
    data.data_dir = data.data_dir or os.path.join(workdir, "tfds")
    return data
