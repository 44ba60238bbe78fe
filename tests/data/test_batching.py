"""Batch layout over processes and devices, and the step counts both input paths share."""

from __future__ import annotations

import pytest

from senet_jax.data import batching
from senet_jax.data.dataset_info import DatasetInfo


def test_layout_names_its_fields():
    layout = batching.process_layout(48, process_index=1, process_count=3, local_devices=2)
    assert layout == batching.ProcessLayout(
        process_index=1, process_count=3, local_devices=2, per_process=16
    )
    assert layout.per_process == 16 and layout.local_devices == 2


@pytest.mark.parametrize("index, count, devices", [(0, 3, 1), (0, 2, 5), (2, 2, 1)])
def test_a_layout_that_does_not_divide_is_one_line(index, count, devices):
    with pytest.raises(ValueError, match="process_index|config.batch_size") as e:
        batching.process_layout(16, process_index=index, process_count=count, local_devices=devices)
    assert "\n" not in str(e.value)


def test_steps_per_epoch_in_memory_and_streamed():
    info = DatasetInfo(
        num_classes=2, class_names=("a", "b"), num_train_examples=100, num_eval_examples=10
    )
    assert batching.steps_per_epoch(16, info) == 6
    streamed = DatasetInfo(
        num_classes=2,
        class_names=("a", "b"),
        num_train_examples=100,
        num_eval_examples=10,
        streamed=True,
        shard_examples=(60, 40),
    )
    assert batching.steps_per_epoch(16, streamed) == 5  # the smaller shard: 40 // 8


def test_eval_steps_cover_the_largest_shard():
    assert batching.num_eval_steps(16, 33, 1) == 3
    assert batching.num_eval_steps(16, 33, 2) == 3  # shards of 17 and 16, 8 a batch
    assert batching.num_eval_steps(16, 16, 2) == 1
