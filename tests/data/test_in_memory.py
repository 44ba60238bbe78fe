"""In-memory iterators: the validation holdout is stratified, fixed and apart from training."""

from __future__ import annotations

import numpy as np
from conftest import STL10_TRAIN
from data_helpers import eval_batches, example_ids, plain, train_batches

from senet_jax.data import in_memory, sources


def test_validation_holdout_is_stratified_fixed_and_apart_from_training(stl10_prepared):
    labels = stl10_prepared.train_labels
    held = in_memory.validation_indices(labels, 20)
    assert len(held) == len(set(held)) == 20
    assert np.bincount(labels[held], minlength=10).tolist() == [2] * 10
    np.testing.assert_array_equal(held, in_memory.validation_indices(labels, 20))  # fixed
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
