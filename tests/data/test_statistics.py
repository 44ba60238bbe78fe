"""channel_statistics is exact (vs numpy in float64) and cached_statistics computes only once."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from senet_jax.data import statistics as st


def numpy_reference(images: list[np.ndarray]):
    pixels = np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float64) / 255
    return pixels.mean(axis=0), pixels.std(axis=0)


def test_batches_match_numpy():
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (b, 7, 5, 3), dtype=np.uint8) for b in (4, 1, 3)]
    mean, std, n = st.channel_statistics(iter(batches), return_examples=True)
    ref_mean, ref_std = numpy_reference(batches)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-13)
    np.testing.assert_allclose(std, ref_std, rtol=1e-13)
    assert n == 8


def test_images_of_different_sizes_and_batches_mixed():
    rng = np.random.default_rng(1)
    items = [
        rng.integers(0, 256, (9, 4, 3), dtype=np.uint8),
        rng.integers(100, 200, (2, 3, 3), dtype=np.uint8),
        rng.integers(0, 50, (2, 6, 6, 3), dtype=np.uint8),
        np.zeros((0, 6, 6, 3), np.uint8),  # an empty batch adds nothing
    ]
    mean, std = st.channel_statistics(items)
    ref_mean, ref_std = numpy_reference(items)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-13)
    np.testing.assert_allclose(std, ref_std, rtol=1e-13)


def test_channels_are_kept_apart():
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0] = 255
    image[0, :, 2] = 255  # half the blue pixels
    mean, std = st.channel_statistics([image])
    assert mean == (1.0, 0.0, 0.5) and std == (0.0, 0.0, 0.5)


@pytest.mark.parametrize("value, expected_mean", [(0, 0.0), (255, 1.0), (51, 0.2)])
def test_constant_images(value, expected_mean):
    batch = np.full((3, 4, 4, 3), value, np.uint8)
    mean, std = st.channel_statistics([batch, batch[0]])
    assert mean == (expected_mean,) * 3 and std == (0.0,) * 3  # exact, not just close


def test_order_does_not_matter_bit_for_bit():
    rng = np.random.default_rng(2)
    batches = [rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8) for _ in range(4)]
    assert st.channel_statistics(batches) == st.channel_statistics(batches[::-1])
    assert st.channel_statistics(batches) == st.channel_statistics([np.concatenate(batches)])


def test_empty_split_is_one_line():
    for empty in ([], [np.zeros((0, 4, 4, 3), np.uint8)], [np.zeros((0, 0, 3), np.uint8)]):
        with pytest.raises(ValueError, match=r"^config\.data\.mean/std: .*empty split.*by hand$"):
            st.channel_statistics(empty)


def test_wrong_inputs():
    with pytest.raises(ValueError, match="uint8"):
        st.channel_statistics([np.zeros((2, 2, 3), np.float32)])
    with pytest.raises(ValueError, match="shape"):
        st.channel_statistics([np.zeros((2, 2, 4), np.uint8)])


def test_cache_is_written_and_reused(tmp_path):
    path = str(tmp_path / "prepared" / "channel_statistics.json")
    batch = np.random.default_rng(3).integers(0, 256, (6, 5, 5, 3), dtype=np.uint8)
    calls = []

    def compute():
        calls.append(1)
        return st.channel_statistics([batch], return_examples=True)

    first = st.cached_statistics(path, compute)
    assert first == st.channel_statistics([batch])
    with open(path) as f:
        assert json.load(f) == {"mean": list(first[0]), "std": list(first[1]), "examples": 6}
    assert st.cached_statistics(path, compute) == first  # floats round-trip through JSON
    assert st.cached_statistics(path, compute, examples=6) == first
    assert len(calls) == 1
    assert os.listdir(tmp_path / "prepared") == ["channel_statistics.json"]  # no temp files


def test_stale_or_corrupt_cache_is_recomputed(tmp_path):
    path = str(tmp_path / "stats.json")
    calls = []

    def compute():
        calls.append(1)
        return (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), 10

    st.cached_statistics(path, compute)
    st.cached_statistics(path, compute, examples=11)  # the split grew
    assert len(calls) == 2
    with open(path, "w") as f:
        f.write('{"mean": [0.1, ')  # cut short by hand; our own writes are atomic
    assert st.cached_statistics(path, compute) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    assert len(calls) == 3


def test_failed_compute_leaves_no_file(tmp_path):
    path = str(tmp_path / "stats.json")

    def compute():
        return st.channel_statistics([], return_examples=True)

    with pytest.raises(ValueError, match="empty split"):
        st.cached_statistics(path, compute)
    assert os.listdir(tmp_path) == []
