"""The input pipeline on a small STL10-layout archive prepared by the real tfds STL10 builder."""
from __future__ import annotations

import collections
import itertools
import os
import shutil
import tarfile
import time

import numpy as np
import pytest
from conftest import STL10_TEST, STL10_TRAIN

from configs import stl10
from senet_jax import input_pipeline, stl10_format


def make_config(fixture, **overrides):
    c = stl10.get_config()
    c.data_dir = fixture.data_dir
    c.image_size = 32
    c.crop_padding = 4
    c.cutout_size = 8
    c.batch_size = 16
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


def plain(fixture, **overrides):
    """No augmentation: each output image identifies its example."""
    return make_config(fixture, **{"crop": "none", "flip": False, "cutout_size": 0, **overrides})


def to_uint8(config, images):
    mean = np.asarray(config.mean) * 255
    std = np.asarray(config.std) * 255
    return np.rint(images * std + mean).astype(np.uint8)


def example_ids(config, batch, mask=None):
    """One hashable id (the exact pixels) per example, in order, masked ones dropped."""
    x = to_uint8(config, batch["image"]).reshape(-1, config.image_size, config.image_size, 3)
    keep = np.ones(len(x), bool) if mask is None else mask.reshape(-1)
    return [img.tobytes() for img, k in zip(x, keep) if k]


def test_info_split_sizes_and_class_names(stl10_prepared):
    info = input_pipeline.get_dataset_info(make_config(stl10_prepared))
    assert info == input_pipeline.DatasetInfo(
        num_classes=10,
        class_names=stl10_format.CLASS_NAMES,
        num_train_examples=STL10_TRAIN,
        num_eval_examples=STL10_TEST,
    )
    assert input_pipeline.steps_per_epoch(make_config(stl10_prepared, batch_size=16), info) == 3
    assert input_pipeline.num_eval_steps(make_config(stl10_prepared, batch_size=16), info, 1) == 3
    assert input_pipeline.num_eval_steps(make_config(stl10_prepared, batch_size=16), info, 2) == 3


@pytest.mark.parametrize("split", ["train", "test"])
def test_pixels_orientation_and_labels_round_trip(stl10_prepared, split):
    config = plain(stl10_prepared, image_size=96, batch_size=8)
    batches = list(
        input_pipeline.eval_batches(
            config, split=split, process_index=0, process_count=1, local_device_count=2
        )
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
            for b in input_pipeline.eval_batches(
                plain(stl10_prepared, batch_size=44),
                process_index=0,
                process_count=1,
                local_device_count=1,
            )
        )
    )
    assert sum(reference.values()) == STL10_TEST and max(reference.values()) == 1
    info = input_pipeline.get_dataset_info(config)
    seen = collections.Counter()
    for p in range(process_count):
        batches = list(
            input_pipeline.eval_batches(
                config,
                process_index=p,
                process_count=process_count,
                local_device_count=local_devices,
            )
        )
        assert len(batches) == input_pipeline.num_eval_steps(config, info, process_count)
        per_device = batch_size // process_count // local_devices
        for b in batches:
            assert b["image"].shape == (local_devices, per_device, 32, 32, 3)
            assert b["label"].shape == b["mask"].shape == (local_devices, per_device)
            assert b["mask"].dtype == bool
            seen.update(example_ids(config, b, b["mask"]))
    assert seen == reference


def test_two_processes_get_disjoint_train_shards_covering_the_split(stl10_prepared):
    """Per epoch the two processes' shards are disjoint and cover the epoch's global batches,
    and together they are exactly the 1-process stream (the same global batches, augmentation included)."""
    config = make_config(stl10_prepared, batch_size=12)  # 60 = 5 steps of 12: nothing dropped
    single = list(
        itertools.islice(
            input_pipeline.train_batches(
                config, process_index=0, process_count=1, local_device_count=2
            ),
            10,
        )
    )
    halves = [
        list(
            itertools.islice(
                input_pipeline.train_batches(
                    config, process_index=p, process_count=2, local_device_count=2
                ),
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
            stream = input_pipeline.train_batches(
                plain_config,
                start_step=5 * epoch,
                process_index=p,
                process_count=2,
                local_device_count=2,
            )
            seen.append(
                [i for b in itertools.islice(stream, 5) for i in example_ids(plain_config, b)]
            )
        assert not set(seen[0]) & set(seen[1])
        assert len(set(seen[0])) == len(seen[0]) == STL10_TRAIN // 2
        assert len(set(seen[0]) | set(seen[1])) == STL10_TRAIN


def take(config, n, start_step=0, local_devices=2):
    stream = input_pipeline.train_batches(
        config,
        start_step=start_step,
        process_index=0,
        process_count=1,
        local_device_count=local_devices,
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
    cut = take(plain(stl10_prepared, cutout_size=8), 1)[0]
    np.testing.assert_array_equal(base["label"], cut["label"])
    zero = np.all(cut["image"] == 0.0, axis=-1).reshape(16, 32, 32)
    for z in zero:
        rows, cols = np.nonzero(z)
        assert 16 <= len(rows) <= 64  # an 8x8 square, partly outside the image at worst
        assert rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8
    augmented = take(make_config(stl10_prepared), 1)[0]
    assert not np.allclose(augmented["image"], base["image"])
    assert np.abs(base["image"].mean()) < 3  # normalised values, not raw pixels


def test_missing_dataset_fails_fast_naming_both_ways_out(tmp_path):
    config = stl10.get_config()
    config.data_dir = str(tmp_path / "empty")
    t = time.perf_counter()
    with pytest.raises(input_pipeline.DatasetUnavailableError) as err:
        input_pipeline.get_dataset_info(config)
    assert time.perf_counter() - t < 5
    assert isinstance(err.value, ValueError)
    assert "config.data_dir" in str(err.value) and "config.stl10_archive" in str(err.value)


def test_truncated_file_is_named(stl10_prepared, tmp_path):
    folder = tmp_path / "copy" / "stl10_binary"
    shutil.copytree(os.path.join(stl10_prepared.root, "stl10_binary"), folder)
    with open(folder / "test_X.bin", "r+b") as f:
        f.truncate(5 * 27648 + 100)
    config = stl10.get_config()
    config.data_dir = str(tmp_path / "tfds")
    config.stl10_archive = str(folder)  # stl10_binary/ itself
    with pytest.raises(input_pipeline.Stl10ArchiveError, match="test_X.bin"):
        input_pipeline.get_dataset_info(config)
    # Packed as .tar.gz the same file is named after extraction.
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="stl10_binary")
    config.stl10_archive = str(archive)
    with pytest.raises(input_pipeline.Stl10ArchiveError, match="test_X.bin"):
        input_pipeline.get_dataset_info(config)


def test_truncated_archive_is_named(stl10_prepared, tmp_path):
    data = open(stl10_prepared.archive, "rb").read()
    bad = tmp_path / "stl10_binary.tar.gz"
    bad.write_bytes(data[: len(data) // 2])
    config = stl10.get_config()
    config.data_dir = str(tmp_path / "tfds")
    config.stl10_archive = str(bad)
    with pytest.raises(input_pipeline.Stl10ArchiveError, match="stl10_binary.tar.gz"):
        input_pipeline.get_dataset_info(config)


def test_archive_path_forms(stl10_prepared, tmp_path):
    root = stl10_prepared.root
    resolve = input_pipeline._resolve_stl10_archive
    assert resolve(stl10_prepared.archive) == (stl10_prepared.archive, True)
    assert resolve(root) == (root, False)
    assert resolve(os.path.join(root, "stl10_binary") + "/") == (root, False)
    with pytest.raises(input_pipeline.Stl10ArchiveError, match="config.stl10_archive"):
        resolve(str(tmp_path / "nowhere"))


def test_bad_config_values_name_the_field(stl10_prepared):
    with pytest.raises(ValueError, match="config.batch_size"):
        next(
            input_pipeline.train_batches(
                make_config(stl10_prepared, batch_size=12),
                process_index=0,
                process_count=1,
                local_device_count=8,
            )
        )
    with pytest.raises(ValueError, match="config.crop"):
        next(
            input_pipeline.train_batches(
                make_config(stl10_prepared, crop="zoom"),
                process_index=0,
                process_count=1,
                local_device_count=1,
            )
        )
    with pytest.raises(ValueError, match="config.data_dir"):  # never shadow the real STL10
        input_pipeline.get_dataset_info(
            make_config(stl10_prepared, data_dir=None, synthetic_stl10=(60, 44))
        )
    with pytest.raises(ValueError, match="config.train_split"):
        input_pipeline.get_dataset_info(make_config(stl10_prepared, train_split="validation"))


def test_pad_crop_and_flip_give_exact_shifted_windows(stl10_prepared):
    """Each augmented image is a window of the zero-padded original, mirrored or not, pixel-exact."""
    originals = np.concatenate(
        [
            to_uint8(plain(stl10_prepared), b["image"]).reshape(-1, 32, 32, 3)
            for b in input_pipeline.eval_batches(
                plain(stl10_prepared, batch_size=60),
                split="train",
                process_index=0,
                process_count=1,
                local_device_count=1,
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
    pixels = batch["image"] * (np.asarray(config.std) * 255) + np.asarray(config.mean) * 255
    assert (
        pixels.min() > -0.01 and pixels.max() < 255.01
    )  # interpolation stays within the pixel range
    plain_batch = take(plain(stl10_prepared), 1)[0]
    np.testing.assert_array_equal(batch["label"], plain_batch["label"])
    assert not np.allclose(batch["image"], plain_batch["image"], atol=0.05)
