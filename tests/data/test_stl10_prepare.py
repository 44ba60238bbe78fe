"""STL10 prepared by the real tfds builder from a local archive or a (local) download mirror:
each bad file is one line naming it, nothing half-prepared is left."""

from __future__ import annotations

import os
import shutil
import tarfile
import time

import pytest
from config_utils import configure
from conftest import STL10_TEST, STL10_TRAIN

from configs import stl10
from senet_jax.data import download, sources, stl10_prepare
from senet_jax.data.availability import DatasetUnavailableError


def test_truncated_file_is_named(stl10_prepared, tmp_path):
    folder = tmp_path / "copy" / "stl10_binary"
    shutil.copytree(os.path.join(stl10_prepared.root, "stl10_binary"), folder)
    with open(folder / "test_X.bin", "r+b") as f:
        f.truncate(5 * 27648 + 100)
    config = stl10.get_config()
    config.data.data_dir = str(tmp_path / "tfds")
    config.data.stl10_archive = str(folder)  # stl10_binary/ itself
    with pytest.raises(stl10_prepare.Stl10ArchiveError, match="test_X.bin"):
        sources.get_dataset_info(config.data)
    # Packed as .tar.gz the same file is named after extraction.
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="stl10_binary")
    config.data.stl10_archive = str(archive)
    with pytest.raises(stl10_prepare.Stl10ArchiveError, match="test_X.bin"):
        sources.get_dataset_info(config.data)


def test_truncated_archive_is_named(stl10_prepared, tmp_path):
    data = open(stl10_prepared.archive, "rb").read()
    bad = tmp_path / "stl10_binary.tar.gz"
    bad.write_bytes(data[: len(data) // 2])
    config = stl10.get_config()
    config.data.data_dir = str(tmp_path / "tfds")
    config.data.stl10_archive = str(bad)
    with pytest.raises(stl10_prepare.Stl10ArchiveError, match="stl10_binary.tar.gz"):
        sources.get_dataset_info(config.data)


def test_archive_path_forms(stl10_prepared, tmp_path):
    root = stl10_prepared.root
    resolve = stl10_prepare.resolve_archive
    assert resolve(stl10_prepared.archive) == (stl10_prepared.archive, True)
    assert resolve(root) == (root, False)
    assert resolve(os.path.join(root, "stl10_binary") + "/") == (root, False)
    with pytest.raises(stl10_prepare.Stl10ArchiveError, match="config.data.stl10_archive"):
        resolve(str(tmp_path / "nowhere"))


# -- STL10 fetched from config.data.stl10_url (a local mirror here) -------------------------------


@pytest.fixture
def mirror(stl10_prepared):
    from archive_server import Server

    with open(stl10_prepared.archive, "rb") as f:
        server = Server(f.read())
    yield server
    server.close()


def _download_config(tmp_path, url, sha256):
    config = stl10.get_config()
    config.data.data_dir = str(tmp_path / "tfds")
    config.data.validation_examples = 0
    return configure(config, stl10_url=url, stl10_sha256=sha256)


def _sha256(path):
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_stl10_downloads_resumes_and_prepares(stl10_prepared, mirror, tmp_path):
    mirror.drop_at = 4000  # the connection drops once, part-way
    config = _download_config(tmp_path, mirror.url, _sha256(stl10_prepared.archive))
    info = sources.get_dataset_info(config.data)
    assert (info.num_train_examples, info.num_eval_examples) == (STL10_TRAIN, STL10_TEST)
    assert any(r and r.startswith("bytes=4000-") for r in mirror.ranges)  # resumed, not restarted
    downloads = tmp_path / "tfds" / "downloads"
    assert not os.path.exists(downloads / "stl10_binary.tar.gz")  # removed once prepared
    assert not [n for n in os.listdir(downloads) if n.endswith(".partial")]


def test_stl10_download_with_a_wrong_checksum_prepares_nothing(mirror, tmp_path):
    config = _download_config(tmp_path, mirror.url, "0" * 64)
    with pytest.raises(download.DownloadError, match=r"config\.data\.stl10_sha256") as e:
        sources.get_dataset_info(config.data)
    assert "\n" not in str(e.value)
    assert not os.path.exists(tmp_path / "tfds" / "stl10" / "1.0.0" / "dataset_info.json")
    assert not sources._builder(config.data).is_prepared()


def test_stl10_download_404_is_one_line(mirror, tmp_path):
    config = _download_config(
        tmp_path, mirror.url.replace("stl10_binary.tar.gz", "missing.tar.gz"), None
    )
    with pytest.raises(download.DownloadError, match="404") as e:
        sources.get_dataset_info(config.data)
    assert "\n" not in str(e.value)


def test_offline_stl10_fails_in_seconds_naming_both_ways_out(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/stl10_binary.tar.gz"
    config = _download_config(tmp_path, url, None)
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as e:
        sources.get_dataset_info(config.data)
    assert time.perf_counter() - start < 10
    assert url in str(e.value) and "config.data.stl10_archive" in str(e.value)
    assert "config.data.data_dir" in str(e.value)
