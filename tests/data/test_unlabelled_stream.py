"""The unlabelled split streamed from its files (senet_jax/data/unlabelled_stream.py): the batch
contract, global indices covering the split once an epoch over two processes, the in-memory
path's views for the same image, exact resume, and which path a config chooses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from config_utils import configure
from data_helpers import make_config

from senet_jax.data import (
    batching,
    in_memory,
    iterators,
    sources,
    unlabelled,
    unlabelled_stream,
)
from senet_jax.data.tf_setup import load_tf

TRAIN, UNLABELLED, FILES = 20, 48, 4  # 12 unlabelled images a file, 24 a process of two
BATCH = 8  # global: 4 a process, 2 a device; 6 steps an epoch cover all 48 images
STEPS = 6
IMAGE_BYTES = 32 * 32 * 3
BETWEEN = (TRAIN * IMAGE_BYTES + UNLABELLED * IMAGE_BYTES) // 2  # caches train, streams the rest


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A small STL10-layout archive whose unlabelled split tfds prepares in FILES files."""
    from senet_jax.data import stl10_format, stl10_prepare
    from senet_jax.data.tf_setup import load_tfds

    root = str(tmp_path_factory.mktemp("unlabelled_stream_archive"))
    archive = stl10_format.write_stl10_archive(root, TRAIN, 8, num_unlabeled=UNLABELLED, seed=2)
    data_dir = str(tmp_path_factory.mktemp("tfds_unlabelled_stream"))
    builder = load_tfds().builder("stl10", data_dir=data_dir)
    stl10_prepare.prepare_offline(builder, archive, num_shards=FILES)
    return data_dir


def streamed(data_dir, **overrides):
    fields = {"unlabelled_split": "unlabelled", "max_cache_bytes": BETWEEN, **overrides}
    return make_config(type("F", (), {"data_dir": data_dir})(), **fields)


def take(config, steps, *, start_step=0, index=0, count=2, seed=3):
    batches = iterators.unlabelled_batches(
        config.data,
        batch_size=BATCH,
        seed=seed,
        start_step=start_step,
        process_index=index,
        process_count=count,
        local_devices=2,
    )
    return list(itertools.islice(batches, steps))


def test_batches_keep_the_contract_and_show_each_image_once_an_epoch(data_dir):
    config = streamed(data_dir)
    builder = sources.prepared_builder(config.data)
    assert unlabelled_stream.shard_examples(config.data, builder, 2) == (24, 24)
    runs = [take(config, 2 * STEPS, index=p) for p in (0, 1)]
    batch = runs[0][0]
    assert batch["weak"].shape == batch["strong"].shape == (2, 2, 32, 32, 3)
    assert batch["weak"].dtype == batch["strong"].dtype == np.float32
    assert batch["index"].shape == batch["label"].shape == (2, 2)
    assert batch["index"].dtype == batch["label"].dtype == np.int32
    assert (batch["label"] == -1).all()  # STL10's unlabelled images carry no label
    assert not np.array_equal(batch["weak"], batch["strong"])
    for epoch in (0, 1):
        steps = range(epoch * STEPS, (epoch + 1) * STEPS)
        shares = [np.concatenate([run[s]["index"].ravel() for s in steps]) for run in runs]
        assert not set(shares[0]) & set(shares[1])  # disjoint shares
        assert sorted(np.concatenate(shares)) == list(range(UNLABELLED))  # each image once
    first, second = (
        np.concatenate([b["index"].ravel() for b in runs[0][e::STEPS]]) for e in (0, 1)
    )
    assert not np.array_equal(first, second)  # a new order each epoch


def test_an_image_gets_the_in_memory_paths_views_for_its_epoch(data_dir):
    config = streamed(data_dir)
    builder = sources.prepared_builder(config.data)
    images, _ = unlabelled.unlabelled_arrays(config.data, builder)  # in file order
    padded = in_memory.pad_for_crop(config.data, images)
    tf = load_tf()
    views = unlabelled.view_maker(tf, config.data, 3, iterators.statistics(config.data))
    run = take(config, STEPS + 1, index=1)
    for step in (0, STEPS):
        idx = run[step]["index"].ravel().astype(np.int64)
        epoch = tf.constant(step // STEPS, tf.int64)
        weak, strong = views(epoch, tf.constant(idx), tf.constant(padded[idx]))
        np.testing.assert_array_equal(run[step]["weak"].reshape(weak.shape), weak.numpy())
        np.testing.assert_array_equal(run[step]["strong"].reshape(strong.shape), strong.numpy())


def test_a_resumed_stream_is_the_uninterrupted_one_and_a_function_of_seed_and_step(data_dir):
    config = streamed(data_dir, shuffle_buffer=5)
    run = take(config, 2 * STEPS + 2)
    for start in (1, STEPS, STEPS + 1):
        resumed = take(config, 2 * STEPS + 2 - start, start_step=start)
        for a, b in zip(run[start:], resumed, strict=True):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])
    again = take(config, 2)
    for a, b in zip(run, again):
        np.testing.assert_array_equal(a["strong"], b["strong"])
    other = take(config, 1, seed=4)[0]
    assert not np.array_equal(run[0]["index"], other["index"])


def test_max_cache_bytes_and_data_stream_choose_the_path(data_dir, monkeypatch):
    config = streamed(data_dir, max_cache_bytes=10 * UNLABELLED * IMAGE_BYTES)
    info = sources.get_dataset_info(config.data)
    assert not info.unlabelled_streamed and info.num_unlabelled_examples == UNLABELLED
    config.data.max_cache_bytes = BETWEEN
    info = sources.get_dataset_info(config.data)
    assert info.unlabelled_streamed and not info.streamed
    assert info.num_unlabelled_examples == sum(info.unlabelled_shard_examples) == UNLABELLED
    identity = iterators.iterator_identity(config.data, info)
    assert identity["unlabelled_streamed"] and identity["unlabelled_processes"] == 1
    builder = sources.prepared_builder(config.data)
    config.data.max_cache_bytes = None
    assert not unlabelled_stream.is_streamed(config.data, builder)
    config.data.stream = True
    assert unlabelled_stream.is_streamed(config.data, builder)

    monkeypatch.setattr(unlabelled, "unlabelled_batches", lambda *a, **k: "in memory")
    monkeypatch.setattr(unlabelled_stream, "unlabelled_batches", lambda *a, **k: "streamed")
    stats = {"process_index": 0, "process_count": 1, "local_devices": 1}
    assert iterators.unlabelled_batches(config.data, batch_size=4, seed=0, **stats) == "streamed"
    config.data.stream = False
    assert iterators.unlabelled_batches(config.data, batch_size=4, seed=0, **stats) == "in memory"


def test_the_steps_an_epoch_follow_the_smallest_share(data_dir, monkeypatch):
    import jax

    from senet_jax import config as config_lib
    from senet_jax import trainer

    config = streamed(data_dir, batch_size=6)
    configure(config, **{"ssl.method": "fixmatch", "ssl.unlabelled_ratio": 1})
    monkeypatch.setattr(jax, "process_count", lambda: 3)
    info = trainer._dataset_info(config)
    assert info.unlabelled_shard_examples == (24, 12, 12)  # files 0 and 3 to process 0
    assert info.num_unlabelled_examples == UNLABELLED  # FlexMatch's record covers the split
    assert trainer._steps_per_epoch(config, info) == 12 // 2 < UNLABELLED // 6
    assert batching.unlabelled_steps_per_epoch(6, info) == 12 // 2
    config.ssl.unlabelled_ratio = 8  # 16 images a process a step, over the smallest share
    with pytest.raises(config_lib.ConfigError, match="3 processes' shares .the smallest 12.") as e:
        trainer._dataset_info(config)
    assert "\n" not in str(e.value)


def test_rest_over_the_cap_is_one_line_naming_the_field(data_dir):
    config = streamed(data_dir, labels_per_class=1, unlabelled_split="rest", max_cache_bytes=1)
    builder = sources.prepared_builder(config.data)
    assert not unlabelled_stream.is_streamed(config.data, builder)
    with pytest.raises(ValueError, match="config.data.max_cache_bytes=1.*named tfds split") as e:
        unlabelled.num_unlabelled(config.data, builder)
    assert "\n" not in str(e.value)


def test_a_batch_over_a_process_share_is_one_line(data_dir):
    config = streamed(data_dir)
    with pytest.raises(ValueError, match="config.ssl.unlabelled_ratio x config.batch_size") as e:
        next(
            iterators.unlabelled_batches(
                config.data,
                batch_size=64,
                seed=0,
                process_index=0,
                process_count=2,
                local_devices=1,
            )
        )
    assert "\n" not in str(e.value)
