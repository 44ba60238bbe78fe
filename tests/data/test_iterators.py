"""Train and eval streams on a small STL10-layout archive prepared by the real tfds builder."""

from __future__ import annotations

import collections
import itertools
import time

import numpy as np
import pytest
from conftest import STL10_TEST, STL10_TRAIN
from data_helpers import eval_batches, example_ids, make_config, plain, to_uint8, train_batches

from senet_jax.data import batching, sources


@pytest.mark.parametrize("split", ["train", "test"])
def test_pixels_orientation_and_labels_round_trip(stl10_prepared, split):
    config = plain(stl10_prepared, image_size=96, batch_size=8)
    batches = list(
        eval_batches(config, split=split, process_index=0, process_count=1, local_devices=2)
    )
    assert batches[0]["image"].shape == (2, 4, 96, 96, 3)
    assert batches[0]["image"].dtype == np.float32 and batches[0]["label"].dtype == np.int32
    images = np.concatenate(
        [
            to_uint8(config, b["image"]).reshape(-1, 96, 96, 3)[b["mask"].reshape(-1)]
            for b in batches
        ]
    )
    labels = np.concatenate([b["label"].reshape(-1)[b["mask"].reshape(-1)] for b in batches])
    expected_x = stl10_prepared.train_images if split == "train" else stl10_prepared.test_images
    expected_y = stl10_prepared.train_labels if split == "train" else stl10_prepared.test_labels
    assert len(images) == len(expected_x)
    assert labels.min() == 0 and labels.max() == 9
    # tfds stores examples in its own order: match by exact pixels, then labels must agree.
    where = {img.tobytes(): i for i, img in enumerate(expected_x)}
    found = [where.get(img.tobytes()) for img in images]
    assert None not in found, "some image came back with different pixels (orientation or values)"
    assert sorted(found) == list(range(len(expected_x)))
    np.testing.assert_array_equal(labels, expected_y[found])
    assert (images[:, 2:8, 4:40] == 255).all()  # the marker is still a wide bar at the top-left


@pytest.mark.parametrize(
    "batch_size,process_count,local_devices",
    [
        (4, 1, 1),  # divides 44
        (16, 1, 8),  # does not divide 44; 8 devices of 2
        (8, 1, 8),  # 8 devices of 1
        (16, 2, 8),  # 2 processes x 8 devices, 22 examples each, padded
        (6, 2, 1),  # 2 processes, odd per-process batch
        (12, 3, 2),  # 3 processes with unequal shards (15, 15, 14)
    ],
)
def test_eval_sees_every_example_exactly_once(
    stl10_prepared, batch_size, process_count, local_devices
):
    config = plain(stl10_prepared, batch_size=batch_size)
    reference = collections.Counter(
        itertools.chain.from_iterable(
            example_ids(config, b, b["mask"])
            for b in eval_batches(
                plain(stl10_prepared, batch_size=44),
                process_index=0,
                process_count=1,
                local_devices=1,
            )
        )
    )
    assert sum(reference.values()) == STL10_TEST and max(reference.values()) == 1
    info = sources.get_dataset_info(config.data)
    seen = collections.Counter()
    for p in range(process_count):
        batches = list(
            eval_batches(
                config,
                process_index=p,
                process_count=process_count,
                local_devices=local_devices,
            )
        )
        assert len(batches) == batching.num_eval_steps(
            config.batch_size, info.num_eval_examples, process_count
        )
        per_device = batch_size // process_count // local_devices
        for b in batches:
            assert b["image"].shape == (local_devices, per_device, 32, 32, 3)
            assert b["label"].shape == b["mask"].shape == (local_devices, per_device)
            assert b["mask"].dtype == bool
            seen.update(example_ids(config, b, b["mask"]))
    assert seen == reference


def test_two_processes_get_disjoint_train_shards_covering_the_split(stl10_prepared):
    """Per epoch the two processes' shards are disjoint and cover the epoch's global batches,
    and together they are exactly the 1-process stream (the same global batches, augmentation
    included)."""
    config = make_config(stl10_prepared, batch_size=12)  # 60 = 5 steps of 12: nothing dropped
    single = list(
        itertools.islice(
            train_batches(config, process_index=0, process_count=1, local_devices=2),
            10,
        )
    )
    halves = [
        list(
            itertools.islice(
                train_batches(config, process_index=p, process_count=2, local_devices=2),
                10,
            )
        )
        for p in range(2)
    ]
    for step, whole in enumerate(single):
        assert halves[0][step]["image"].shape == (2, 3, 32, 32, 3)
        for key in ("image", "label"):
            joined = np.concatenate(
                [h[step][key].reshape(-1, *h[step][key].shape[2:]) for h in halves]
            )
            np.testing.assert_array_equal(joined, whole[key].reshape(-1, *whole[key].shape[2:]))
    plain_config = plain(stl10_prepared, batch_size=12)
    for epoch in range(2):
        seen = []
        for p in range(2):
            stream = train_batches(
                plain_config,
                start_step=5 * epoch,
                process_index=p,
                process_count=2,
                local_devices=2,
            )
            seen.append(
                [i for b in itertools.islice(stream, 5) for i in example_ids(plain_config, b)]
            )
        assert not set(seen[0]) & set(seen[1])
        assert len(set(seen[0])) == len(seen[0]) == STL10_TRAIN // 2
        assert len(set(seen[0]) | set(seen[1])) == STL10_TRAIN


def take(config, n, start_step=0, local_devices=2):
    stream = train_batches(
        config,
        start_step=start_step,
        process_index=0,
        process_count=1,
        local_devices=local_devices,
    )
    return list(itertools.islice(stream, n))


@pytest.mark.parametrize("crop", ["pad_crop", "random_resized_crop"])
def test_same_seed_same_stream_and_start_step_equals_skipping(stl10_prepared, crop):
    config = make_config(stl10_prepared, crop=crop)  # flip, cutout and the crop all random
    full = take(config, 9)  # 3 epochs of 3 steps
    again = take(config, 9)
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    other = take(make_config(stl10_prepared, crop=crop, seed=1), 1)[0]
    assert not np.array_equal(other["image"], full[0]["image"])
    # Epochs are reshuffled and re-augmented.
    assert not np.array_equal(full[0]["image"], full[3]["image"])
    for start in (1, 3, 5):  # inside epoch 0, exactly at an epoch boundary, across one
        resumed = take(config, 3, start_step=start)
        for a, b in zip(resumed, full[start : start + 3]):
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_array_equal(a["label"], b["label"])


def test_start_step_far_ahead_is_cheap(stl10_prepared):
    config = make_config(stl10_prepared)
    t = time.perf_counter()
    far = take(config, 1, start_step=3 * 100_000 + 2)[0]  # epoch 100,000
    assert time.perf_counter() - t < 10
    assert far["image"].shape == (2, 8, 32, 32, 3)


def test_augmentation_changes_images_and_cutout_blanks_a_square(stl10_prepared):
    base = take(plain(stl10_prepared), 1)[0]
    cut = take(plain(stl10_prepared, cutout_size=0.25), 1)[0]  # 8 px of 32
    np.testing.assert_array_equal(base["label"], cut["label"])
    zero = np.all(cut["image"] == 0.0, axis=-1).reshape(16, 32, 32)
    for z in zero:
        rows, cols = np.nonzero(z)
        assert 16 <= len(rows) <= 64  # an 8x8 square, partly outside the image at worst
        assert rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8
    augmented = take(make_config(stl10_prepared), 1)[0]
    assert not np.allclose(augmented["image"], base["image"])
    assert np.abs(base["image"].mean()) < 3  # normalised values, not raw pixels


def test_pad_crop_and_flip_give_exact_shifted_windows(stl10_prepared):
    """Each augmented image is a window of the zero-padded original, mirrored or not, exactly."""
    originals = np.concatenate(
        [
            to_uint8(plain(stl10_prepared), b["image"]).reshape(-1, 32, 32, 3)
            for b in eval_batches(
                plain(stl10_prepared, batch_size=60),
                split="train",
                process_index=0,
                process_count=1,
                local_devices=1,
            )
        ]
    )
    padded = np.pad(originals, [(0, 0), (4, 4), (4, 4), (0, 0)])
    windows = np.lib.stride_tricks.sliding_window_view(
        padded, (32, 32), axis=(1, 2)
    )  # [60,9,9,3,32,32]
    config = make_config(stl10_prepared, cutout_size=0)
    flips = set()
    for batch in take(config, 2):
        for image in to_uint8(config, batch["image"]).reshape(-1, 32, 32, 3)[:6]:
            found = []
            for mirrored, candidate in ((False, image), (True, image[:, ::-1])):
                hits = np.all(
                    windows == candidate.transpose(2, 0, 1)[None, None, None], axis=(3, 4, 5)
                )
                if hits.any():
                    found.append(mirrored)
            assert found, "an augmented image is not a shifted window of any original"
            flips.update(found)
    assert flips == {False, True}


def test_random_resized_crop_output(stl10_prepared):
    config = make_config(stl10_prepared, crop="random_resized_crop", cutout_size=0)
    batch = take(config, 1)[0]
    assert batch["image"].shape == (2, 8, 32, 32, 3)
    pixels = (
        batch["image"] * (np.asarray(config.data.std) * 255) + np.asarray(config.data.mean) * 255
    )
    assert (
        pixels.min() > -0.01 and pixels.max() < 255.01
    )  # interpolation stays within the pixel range
    plain_batch = take(plain(stl10_prepared), 1)[0]
    np.testing.assert_array_equal(batch["label"], plain_batch["label"])
    assert not np.allclose(batch["image"], plain_batch["image"], atol=0.05)


def test_crop_padding_and_cutout_keep_their_proportion_of_the_image(stl10_prepared):
    """Only image_size changes: the same fractions give a twice-as-large square at 64 px."""
    for size, side in ((32, 8), (64, 16)):
        config = plain(stl10_prepared, image_size=size, cutout_size=0.25, batch_size=8)
        batch = take(config, 1, local_devices=1)[0]
        zero = np.all(batch["image"] == 0.0, axis=-1).reshape(8, size, size)
        for z in zero:
            rows, cols = np.nonzero(z)
            assert rows.max() - rows.min() < side and cols.max() - cols.min() < side
        assert max(np.ptp(np.nonzero(z)[0]) + 1 for z in zero) == side  # some square is whole
