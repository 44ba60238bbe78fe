"""Dataset sources: the real tfds STL10 builder prepared offline from a local archive."""

from __future__ import annotations

import os
import shutil
import tarfile
import time

import pytest
from conftest import STL10_TEST, STL10_TRAIN
from data_helpers import make_config, train_batches

from configs import stl10
from senet_jax.data import sources, stl10_format, streams


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
