"""Dataset sources: builders prepared once and described, their statistics, image folders."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from config_utils import configure
from conftest import STL10_TEST, STL10_TRAIN
from data_helpers import eval_batches, make_config, train_batches

from configs import stl10
from senet_jax.data import batching, iterators, sources, statistics, stl10_format
from senet_jax.data.availability import DatasetUnavailableError
from senet_jax.data.dataset_info import DatasetInfo


def test_info_split_sizes_and_class_names(stl10_prepared):
    info = sources.get_dataset_info(make_config(stl10_prepared).data)
    assert info == DatasetInfo(
        num_classes=10,
        class_names=stl10_format.CLASS_NAMES,
        num_train_examples=STL10_TRAIN,
        num_eval_examples=STL10_TEST,
    )
    assert batching.steps_per_epoch(16, info) == 3
    assert batching.num_eval_steps(16, info.num_eval_examples, 1) == 3
    assert batching.num_eval_steps(16, info.num_eval_examples, 2) == 3


def test_missing_dataset_fails_fast_naming_both_ways_out(tmp_path):
    config = stl10.get_config()
    config.data.data_dir = str(tmp_path / "empty")
    t = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as err:
        sources.get_dataset_info(config.data)
    assert time.perf_counter() - t < 5
    assert isinstance(err.value, ValueError)
    assert "config.data.data_dir" in str(err.value)
    assert "config.data.stl10_archive" in str(err.value)


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


# -- statistics and image folders --------------------------------------------


def test_unset_mean_and_std_are_computed_exactly_once_and_cached(stl10_prepared, monkeypatch):
    config = make_config(stl10_prepared, mean=None, std=None)
    mean, std = iterators.statistics(config.data)
    pixels = stl10_prepared.train_images.reshape(-1, 3).astype(np.float64) / 255
    np.testing.assert_allclose(mean, pixels.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(0), rtol=1e-12)

    def never(*args, **kwargs):
        raise AssertionError("recomputed instead of read from the cache")

    monkeypatch.setattr(statistics, "channel_statistics", never)
    assert iterators.statistics(config.data) == (tuple(mean), tuple(std))


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
