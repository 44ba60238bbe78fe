"""The streamed input path (senet_jax/data/file_stream.py) on a small STL10 archive prepared in
several files: sharding, exact resume by step, evaluation coverage and its one-line refusals."""

from __future__ import annotations

import itertools
import os
import shutil

import numpy as np
import pytest
from conftest import STL10_SHARDS, STL10_TEST, STL10_TRAIN
from data_helpers import make_config

from senet_jax import config as config_lib
from senet_jax.data import batching, file_stream, iterators, sources
from senet_jax.data.tf_setup import load_tf


def streamed_config(data_dir, **overrides):
    fields = {"crop": "random_resized_crop", "cutout_size": 0, "max_cache_bytes": 1}
    config = make_config(type("F", (), {"data_dir": data_dir})(), **fields)
    for name, value in overrides.items():
        config.data[name] = value
    return config


def _records(builder, files):
    return list(load_tf().data.TFRecordDataset(files).as_numpy_iterator())


def test_process_shards_are_disjoint_and_cover_the_split(stl10_sharded):
    builder = sources.prepared_builder(streamed_config(stl10_sharded).data)
    everything = _records(builder, file_stream.split_files(builder, "train")[0])
    assert len(everything) == STL10_TRAIN
    shards = [file_stream.shard(builder, "train", i, 2) for i in range(2)]
    records = [_records(builder, files) for files, _ in shards]
    assert [len(r) for r in records] == [n for _, n in shards]
    assert not set(records[0]) & set(records[1])
    assert sorted(records[0] + records[1]) == sorted(everything)


def test_selected_by_max_cache_bytes_and_refuses_a_holdout(stl10_sharded):
    config = streamed_config(stl10_sharded, max_cache_bytes=16 * 2**30)
    assert not sources.get_dataset_info(config.data).streamed
    config.data.max_cache_bytes = 1
    info = sources.get_dataset_info(config.data)
    assert info.streamed and sum(info.shard_examples) == STL10_TRAIN
    config.data.validation_examples = 10
    with pytest.raises(file_stream.StreamError, match="validation_examples=10.*keeps no holdout"):
        sources.get_dataset_info(config.data)


def _take(config, steps, start_step=0, index=0, count=2):
    batches = iterators.train_batches(
        config.data,
        batch_size=config.batch_size,
        seed=config.seed,
        start_step=start_step,
        process_index=index,
        process_count=count,
        local_devices=2,
    )
    return list(itertools.islice(batches, steps))


def test_batches_are_a_function_of_seed_and_step(stl10_sharded):
    config = streamed_config(stl10_sharded, shuffle_buffer=7)
    shards = file_stream.shard_examples(sources.prepared_builder(config.data), "train", 2)
    per_epoch = batching.streamed_epoch_steps(
        config.batch_size, shards
    )  # 8 examples a process-step
    assert per_epoch == min(shards) // 8 >= 2
    run = _take(config, 3 * per_epoch)
    assert run[0]["image"].shape == (2, 4, 32, 32, 3) and run[0]["label"].shape == (2, 4)
    for start in (1, per_epoch, per_epoch + 1):
        resumed = _take(config, 3 * per_epoch - start, start_step=start)
        for a, b in zip(run[start:], resumed):
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_array_equal(a["label"], b["label"])
    # epochs differ (a new order), and another seed gives other batches
    assert not np.array_equal(run[0]["image"], run[per_epoch]["image"])
    config.seed = 1
    assert not np.array_equal(run[0]["image"], _take(config, 1)[0]["image"])


def test_evaluation_sees_every_example_once_over_processes(stl10_sharded):
    config = streamed_config(stl10_sharded, batch_size=16)
    seen = []
    counts = set()
    for index in range(2):
        batches = list(
            iterators.eval_batches(
                config.data,
                batch_size=16,
                process_index=index,
                process_count=2,
                local_devices=2,
            )
        )
        counts.add(len(batches))
        for b in batches:
            mask = b["mask"].reshape(-1)
            seen += [x.tobytes() for x in b["image"].reshape(-1, 32, 32, 3)[mask]]
    assert len(counts) == 1  # the same number of batches on every process
    assert len(seen) == STL10_TEST == len(set(seen))


def test_fewer_files_than_processes_is_one_line(stl10_sharded):
    builder = sources.prepared_builder(streamed_config(stl10_sharded).data)
    count = STL10_SHARDS + 1
    with pytest.raises(
        file_stream.StreamError, match=f"{STL10_SHARDS} file.*{count} processes"
    ) as e:
        file_stream.shard(builder, "train", 0, count)
    assert "\n" not in str(e.value)


def test_a_file_missing_on_this_host_is_one_line(stl10_sharded, tmp_path):
    copy = str(tmp_path / "tfds")
    shutil.copytree(stl10_sharded, copy)
    config = streamed_config(copy)
    builder = sources.prepared_builder(config.data)
    files, _ = file_stream.shard(builder, "train", 1, 2)
    os.remove(files[0])
    with pytest.raises(file_stream.StreamError, match="process 1: 1 of its .* missing") as e:
        _take(config, 1, index=1)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("max_cache_bytes", 0, "data.max_cache_bytes: must be a positive number"),
        ("max_cache_bytes", -5, "data.max_cache_bytes: must be a positive number"),
        ("shuffle_buffer", 0, "data.shuffle_buffer: must be a positive integer"),
        ("eval_crop", 1.5, r"data.eval_crop: must be in \(0, 1\]"),
    ],
)
def test_bad_stream_fields_are_one_line(field, value, message):
    from configs import stl10

    config = stl10.get_config()
    config.data[field] = value
    with pytest.raises(config_lib.ConfigError, match=message) as e:
        config_lib.validate(config, device_count=1)
    assert "\n" not in str(e.value)
