"""An image folder's splits are decoded once, cached on disk, re-decoded when the folder
changes, and a file TensorFlow cannot decode is named in one line."""

from __future__ import annotations

import os

import numpy as np
import pytest
from config_utils import configure
from PIL import Image

from configs import stl10
from senet_jax.data import folder, folder_cache, in_memory, iterators, sources


def _folder(root, rng):
    for split, count in (("train", 5), ("test", 2)):
        for name in ("ants", "bees"):
            os.makedirs(root / split / name)
            for i in range(count):
                pixels = rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.jpg")
    return root


def _config(tmp_path, path):
    config = stl10.get_config()
    configure(config, dataset=f"folder:{path}", image_size=16, validation_examples=0)
    return configure(config, batch_size=2, data_dir=str(tmp_path / "tfds"), cache=False)


def test_split_is_decoded_once_then_read_from_disk_until_the_folder_changes(tmp_path, monkeypatch):
    path = _folder(tmp_path / "insects", np.random.default_rng(0))
    config = _config(tmp_path, path)
    builder = sources.prepared_builder(config.data)
    images, labels = in_memory.split_arrays(config.data, builder, "train")
    assert images.shape == (10, 16, 16, 3) and images.dtype == np.uint8
    assert sorted(labels.tolist()) == [0] * 5 + [1] * 5
    cached = os.path.join(folder_cache.location(str(path), config.data.data_dir), "train_16px.npz")
    assert os.path.exists(cached)
    assert sorted(os.listdir(path)) == ["test", "train"]  # nothing written into the folder

    decoded = []
    real = in_memory._decode_split
    monkeypatch.setattr(
        in_memory, "_decode_split", lambda *a, **k: decoded.append(1) or real(*a, **k)
    )
    again = in_memory.split_arrays(config.data, builder, "train")
    np.testing.assert_array_equal(again[0], images)
    np.testing.assert_array_equal(again[1], labels)
    assert decoded == []  # read back, not decoded

    pixels = np.zeros((20, 24, 3), np.uint8)
    Image.fromarray(pixels).save(path / "train" / "ants" / "0.jpg")  # same name, new content
    os.utime(path / "train" / "ants" / "0.jpg", ns=(1, 1))
    changed, _ = in_memory.split_arrays(config.data, builder, "train")
    assert decoded == [1]
    assert not np.array_equal(changed, images)


def test_an_undecodable_file_is_named_when_the_split_is_decoded(tmp_path):
    path = _folder(tmp_path / "insects", np.random.default_rng(1))
    bad = path / "train" / "bees" / "3.jpg"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # a JPEG header, then nothing
    config = _config(tmp_path, path)
    sources.get_dataset_info(config.data)  # the layout and headers are fine
    with pytest.raises(folder.FolderDatasetError, match=f"cannot be decoded: {bad} ") as e:
        iterators.statistics(configure(config, mean=None, std=None).data)
    assert "\n" not in str(e.value)
