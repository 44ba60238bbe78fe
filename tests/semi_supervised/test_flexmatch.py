"""FlexMatch's per-class thresholds and its prediction record, against hand-worked examples."""

from __future__ import annotations

import functools

import jax
import numpy as np

from senet_jax.semi_supervised import flexmatch


def test_thresholds_while_most_images_are_unused():
    # status (3, 1, 1); 5 unused > max status 3, so beta = status / 5 = (0.6, 0.2, 0.2);
    # M(x) = x / (2 - x) -> (0.6/1.4, 0.2/1.8, 0.2/1.8); times tau 0.95.
    record = np.array([0, 0, 0, 1, -1, -1, -1, -1, -1, 2], np.int32)
    thresholds = flexmatch.class_thresholds(record, 3, 0.95)
    np.testing.assert_allclose(thresholds, [0.95 * 3 / 7, 0.95 / 9, 0.95 / 9], rtol=1e-6)


def test_thresholds_once_a_class_leads_the_unused():
    # status (4, 2, 1), 1 unused: beta = status / 4 = (1, 1/2, 1/4) -> M = (1, 1/3, 1/7).
    record = np.array([0, 0, 0, 0, 1, 1, 2, -1], np.int32)
    thresholds = flexmatch.class_thresholds(record, 4, 0.9)
    np.testing.assert_allclose(thresholds, [0.9, 0.3, 0.9 / 7, 0.0], rtol=1e-6)


def test_a_fresh_record_lets_every_pseudo_label_through():
    record = flexmatch.empty_record(6)
    np.testing.assert_array_equal(record, [-1] * 6)
    np.testing.assert_array_equal(flexmatch.class_thresholds(record, 3, 0.95), [0, 0, 0])


def test_only_confident_predictions_are_recorded():
    record = np.array([-1, 2, 1, -1], np.int32)
    new = flexmatch.record_predictions(
        record,
        indices=np.array([0, 1, 3]),
        labels=np.array([1, 0, 2], np.int32),
        confidence=np.array([0.96, 0.5, 0.95], np.float32),
        tau=0.95,
    )
    np.testing.assert_array_equal(new, [1, 2, 1, 2])


def test_every_device_records_the_whole_global_batch():
    assert jax.local_device_count() == 8
    rng = np.random.default_rng(0)
    indices = rng.permutation(40)[:16].astype(np.int32)
    labels = rng.integers(0, 5, 16).astype(np.int32)
    confidence = rng.uniform(0.8, 1.0, 16).astype(np.float32)
    record = np.full(40, -1, np.int32)
    expected = flexmatch.record_predictions(record, indices, labels, confidence, 0.9)
    recorded = jax.pmap(
        functools.partial(flexmatch.record_predictions, tau=0.9, axis_name="batch"),
        axis_name="batch",
        in_axes=(None, 0, 0, 0),
    )(record, *(x.reshape(8, 2) for x in (indices, labels, confidence)))
    for device_record in np.asarray(recorded):
        np.testing.assert_array_equal(device_record, expected)
    assert (np.asarray(expected) >= 0).sum() == (confidence >= 0.9).sum()
