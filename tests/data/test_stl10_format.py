"""The generated archive follows STL10's official binary layout and its images are learnable."""

from __future__ import annotations

import os
import tarfile

import numpy as np

from senet_jax.data import stl10_format


def test_pixel_layout_is_channel_planes_stored_column_major():
    image = np.zeros((1, 96, 96, 3), np.uint8)
    image[0, 5, 70, 2] = 200  # row 5, column 70, blue
    image[0, 90, 1, 0] = 17  # row 90, column 1, red
    data = stl10_format.encode_images(image)
    assert len(data) == 3 * 96 * 96
    flat = np.frombuffer(data, np.uint8)
    # channel plane, then column, then row (column-major within a plane)
    assert flat[2 * 9216 + 70 * 96 + 5] == 200
    assert flat[0 * 9216 + 1 * 96 + 90] == 17
    assert np.count_nonzero(flat) == 2


def test_archive_has_official_files_sizes_and_labels(tmp_path):
    archive = stl10_format.write_stl10_archive(str(tmp_path), 23, 11, num_unlabeled=3, seed=4)
    assert archive == os.path.join(str(tmp_path), "stl10_binary.tar.gz")
    with tarfile.open(archive) as tar:
        members = {m.name: m.size for m in tar.getmembers() if m.isfile()}
    assert members["stl10_binary/train_X.bin"] == 23 * 27648
    assert members["stl10_binary/train_y.bin"] == 23
    assert members["stl10_binary/test_X.bin"] == 11 * 27648
    assert members["stl10_binary/test_y.bin"] == 11
    assert members["stl10_binary/unlabeled_X.bin"] == 3 * 27648
    assert {"stl10_binary/class_names.txt", "stl10_binary/fold_indices.txt"} <= set(members)

    folder = tmp_path / "stl10_binary"
    labels = np.frombuffer((folder / "train_y.bin").read_bytes(), np.uint8)
    _, expected = stl10_format.make_split("train", 23, seed=4)
    np.testing.assert_array_equal(labels, expected + 1)  # stored 1..10
    assert labels.min() >= 1 and labels.max() <= 10
    assert (folder / "class_names.txt").read_text().split() == list(stl10_format.CLASS_NAMES)
    folds = (folder / "fold_indices.txt").read_text().splitlines()
    assert len(folds) == 10
    assert all(0 <= int(i) < 23 for line in folds for i in line.split())
    assert stl10_format.write_stl10_archive(str(tmp_path / "b"), 2, 2, pack=False) == str(
        tmp_path / "b"
    )


def test_marker_reveals_orientation():
    images, _ = stl10_format.make_images(4, seed=0)
    assert (images[:, 2:8, 4:40] == 255).all()
    assert not (images[:, 4:40, 2:8] == 255).all()


def test_classes_are_separable_at_32x32():
    """A nearest-class-mean classifier on 32x32 thumbnails beats chance on held-out images."""

    def thumbs(x):
        return x.reshape(len(x), 32, 3, 32, 3, 3).mean(axis=(2, 4)).reshape(len(x), -1)

    train_x, train_y = stl10_format.make_split("train", 200, seed=0)
    test_x, test_y = stl10_format.make_split("test", 100, seed=0)
    means = np.stack([thumbs(train_x[train_y == c]).mean(0) for c in range(10)])
    dists = ((thumbs(test_x)[:, None, :] - means[None]) ** 2).sum(-1)
    accuracy = (dists.argmin(1) == test_y).mean()
    assert accuracy > 0.8
