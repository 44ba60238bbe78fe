"""The unlabelled stream: weak and strong views that are a pure function of (seed, step), the
same whatever the process count, and the "rest" of a labelled subset."""

from __future__ import annotations

import itertools

import numpy as np
from data_helpers import make_config

from senet_jax.data import in_memory, sources, unlabelled
from senet_jax.data.iterators import unlabelled_batches


def take(config, n, **kwargs):
    stream = unlabelled_batches(config.data, batch_size=4, seed=3, **kwargs)
    return list(itertools.islice(stream, n))


def test_views_are_keyed_by_seed_and_step_and_resume_exactly(stl10_prepared):
    config = make_config(stl10_prepared, unlabelled_split="unlabelled")
    first = take(config, 3, local_devices=1, process_index=0, process_count=1)
    again = take(config, 3, local_devices=1, process_index=0, process_count=1)
    resumed = take(config, 1, start_step=2, local_devices=1, process_index=0, process_count=1)
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    for key in first[2]:
        np.testing.assert_array_equal(first[2][key], resumed[0][key])
    batch = first[0]
    assert batch["weak"].shape == batch["strong"].shape == (1, 4, 32, 32, 3)
    assert not np.array_equal(batch["weak"], batch["strong"])
    assert (batch["label"] == -1).all()  # STL10's unlabelled images carry no label
    assert len(set(batch["index"].ravel())) == 4


def test_two_processes_take_the_halves_of_the_same_global_batch(stl10_prepared):
    config = make_config(stl10_prepared, unlabelled_split="unlabelled")
    whole = take(config, 2, local_devices=1, process_index=0, process_count=1)
    halves = [take(config, 2, local_devices=1, process_index=p, process_count=2) for p in (0, 1)]
    for step in range(2):
        for key in ("weak", "strong", "index"):
            joined = np.concatenate([halves[0][step][key], halves[1][step][key]], axis=1)
            np.testing.assert_array_equal(joined, whole[step][key])


def test_rest_is_the_training_images_a_labelled_subset_leaves_out(stl10_prepared):
    config = make_config(stl10_prepared, labels_per_class=2, unlabelled_split="rest")
    builder = sources.prepared_builder(config.data)
    (_, labels), (labelled, rest, held_out) = in_memory.training_partition(config.data, builder)
    assert np.bincount(labels[labelled], minlength=10).tolist() == [2] * 10
    assert len(np.intersect1d(labelled, rest)) == 0 and len(held_out) == 0
    assert len(labelled) + len(rest) == len(labels)
    images, rest_labels = unlabelled.unlabelled_arrays(config.data, builder)
    np.testing.assert_array_equal(rest_labels, labels[rest])
    assert unlabelled.num_unlabelled(config.data, builder) == len(images) == len(rest)
