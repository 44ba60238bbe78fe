"""Dataset sources: the real tfds STL10 builder prepared offline from a local archive."""

from __future__ import annotations

import os
import shutil
import tarfile
import time

import numpy as np
import pytest
from config_utils import configure
from conftest import STL10_TEST, STL10_TRAIN
from data_helpers import eval_batches, example_ids, make_config, plain, train_batches

from configs import stl10
from senet_jax.data import download, sources, statistics, stl10_format, streams


def test_info_split_sizes_and_class_names(stl10_prepared):
    info = sources.get_dataset_info(make_config(stl10_prepared).data)
    assert info == sources.DatasetInfo(
        num_classes=10,
        class_names=stl10_format.CLASS_NAMES,
        num_train_examples=STL10_TRAIN,
        num_eval_examples=STL10_TEST,
    )
    assert streams.steps_per_epoch(16, info) == 3
    assert streams.num_eval_steps(16, info.num_eval_examples, 1) == 3
    assert streams.num_eval_steps(16, info.num_eval_examples, 2) == 3


def test_missing_dataset_fails_fast_naming_both_ways_out(tmp_path):
    config = stl10.get_config()
    config.data.data_dir = str(tmp_path / "empty")
    t = time.perf_counter()
    with pytest.raises(sources.DatasetUnavailableError) as err:
        sources.get_dataset_info(config.data)
    assert time.perf_counter() - t < 5
    assert isinstance(err.value, ValueError)
    assert "config.data.data_dir" in str(err.value)
    assert "config.data.stl10_archive" in str(err.value)


def test_truncated_file_is_named(stl10_prepared, tmp_path):
    folder = tmp_path / "copy" / "stl10_binary"
    shutil.copytree(os.path.join(stl10_prepared.root, "stl10_binary"), folder)
    with open(folder / "test_X.bin", "r+b") as f:
        f.truncate(5 * 27648 + 100)
    config = stl10.get_config()
    config.data.data_dir = str(tmp_path / "tfds")
    config.data.stl10_archive = str(folder)  # stl10_binary/ itself
    with pytest.raises(sources.Stl10ArchiveError, match="test_X.bin"):
        sources.get_dataset_info(config.data)
    # Packed as .tar.gz the same file is named after extraction.
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="stl10_binary")
    config.data.stl10_archive = str(archive)
    with pytest.raises(sources.Stl10ArchiveError, match="test_X.bin"):
        sources.get_dataset_info(config.data)


def test_truncated_archive_is_named(stl10_prepared, tmp_path):
    data = open(stl10_prepared.archive, "rb").read()
    bad = tmp_path / "stl10_binary.tar.gz"
    bad.write_bytes(data[: len(data) // 2])
    config = stl10.get_config()
    config.data.data_dir = str(tmp_path / "tfds")
    config.data.stl10_archive = str(bad)
    with pytest.raises(sources.Stl10ArchiveError, match="stl10_binary.tar.gz"):
        sources.get_dataset_info(config.data)


def test_archive_path_forms(stl10_prepared, tmp_path):
    root = stl10_prepared.root
    resolve = sources._resolve_stl10_archive
    assert resolve(stl10_prepared.archive) == (stl10_prepared.archive, True)
    assert resolve(root) == (root, False)
    assert resolve(os.path.join(root, "stl10_binary") + "/") == (root, False)
    with pytest.raises(sources.Stl10ArchiveError, match="config.data.stl10_archive"):
        resolve(str(tmp_path / "nowhere"))


def test_bad_config_values_name_the_field(stl10_prepared):
    with pytest.raises(ValueError, match=r"config\.batch_size"):
        next(
            train_batches(
                make_config(stl10_prepared, batch_size=12),
                process_index=0,
                process_count=1,
                local_devices=8,
            )
        )
    with pytest.raises(ValueError, match=r"config\.data\.data_dir"):  # never shadow real STL10
        sources.get_dataset_info(
            make_config(stl10_prepared, data_dir=None, synthetic_stl10=(60, 44)).data
        )
    with pytest.raises(ValueError, match=r"config\.data\.train_split"):
        sources.get_dataset_info(make_config(stl10_prepared, train_split="validation").data)


# -- STL10 fetched from config.data.stl10_url (a local mirror here) ----------------------------


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
    with pytest.raises(sources.DatasetUnavailableError) as e:
        sources.get_dataset_info(config.data)
    assert time.perf_counter() - start < 10
    assert url in str(e.value) and "config.data.stl10_archive" in str(e.value)
    assert "config.data.data_dir" in str(e.value)


# -- statistics, validation holdout, image folders --------------------------------------------


def test_unset_mean_and_std_are_computed_exactly_once_and_cached(stl10_prepared, monkeypatch):
    config = make_config(stl10_prepared, mean=None, std=None)
    mean, std = streams.statistics(config.data)
    pixels = stl10_prepared.train_images.reshape(-1, 3).astype(np.float64) / 255
    np.testing.assert_allclose(mean, pixels.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(0), rtol=1e-12)

    def never(*args, **kwargs):
        raise AssertionError("recomputed instead of read from the cache")

    monkeypatch.setattr(statistics, "channel_statistics", never)
    assert streams.statistics(config.data) == (tuple(mean), tuple(std))


def test_validation_holdout_is_stratified_fixed_and_apart_from_training(stl10_prepared):
    labels = stl10_prepared.train_labels
    held = streams.validation_indices(labels, 20)
    assert len(held) == len(set(held)) == 20
    assert np.bincount(labels[held], minlength=10).tolist() == [2] * 10
    np.testing.assert_array_equal(held, streams.validation_indices(labels, 20))  # fixed
    config = plain(stl10_prepared, validation_examples=20, batch_size=8)
    info = sources.get_dataset_info(config.data)
    assert (info.num_train_examples, info.num_validation_examples) == (STL10_TRAIN - 20, 20)
    trained = {i for b in take_n(config, 5) for i in example_ids(config, b)}  # one epoch
    validated = [
        i
        for p in range(3)
        for b in eval_batches(
            plain(stl10_prepared, validation_examples=20, batch_size=6),
            split="validation",
            process_index=p,
            process_count=3,
            local_devices=1,
        )
        for i in example_ids(config, b, b["mask"])
    ]
    assert len(validated) == len(set(validated)) == 20  # every example once over 3 hosts
    assert not trained & set(validated) and len(trained) == STL10_TRAIN - 20


def take_n(config, n):
    stream = train_batches(config, process_index=0, process_count=1, local_devices=1)
    return [next(stream) for _ in range(n)]


def test_image_folder_dataset_runs_through_the_same_pipeline(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 3)):
        for name, colour in (("cats", 0), ("dogs", 2)):
            os.makedirs(tmp_path / "pets" / split / name)
            for i in range(count):
                pixels = rng.integers(0, 60, (40 + i, 36, 3), dtype=np.uint8)
                pixels[..., colour] += 180
                Image.fromarray(pixels).save(tmp_path / "pets" / split / name / f"{i}.png")
    config = stl10.get_config()
    dataset = f"folder:{tmp_path / 'pets'}"
    configure(config, dataset=dataset, image_size=32, validation_examples=2, batch_size=4)
    configure(config, data_dir=str(tmp_path / "tfds"))
    info = sources.get_dataset_info(config.data)
    assert info.class_names == ("cats", "dogs") and info.num_train_examples == 10
    batch = next(train_batches(config, process_index=0, process_count=1, local_devices=1))
    assert batch["image"].shape == (1, 4, 32, 32, 3)
    seen = [
        int(m)
        for p in range(2)
        for b in eval_batches(config, process_index=p, process_count=2, local_devices=1)
        for m in b["mask"].reshape(-1)
    ]
    assert sum(seen) == 6
    assert os.path.exists(
        sources._statistics_path(sources.prepared_builder(config.data), config.data)
    )
