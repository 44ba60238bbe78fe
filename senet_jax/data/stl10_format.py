"""Small archives in STL10's official binary layout, for tests, smoke runs and benchmarks.

The layout (http://ai.stanford.edu/~acoates/stl10/): ``stl10_binary/{train,test}_X.bin`` hold
uint8 images as N x 3 x 96 x 96 with each channel plane stored column-major, ``*_y.bin`` one
uint8 label 1..10 per image, ``unlabeled_X.bin`` images only, ``class_names.txt`` one name per
line and ``fold_indices.txt`` ten lines of zero-based train indices. Writing that exact layout lets
the real tfds STL10 builder prepare the data, so tests exercise the same path as the real job.
"""

from __future__ import annotations

import os
import tarfile

import numpy as np

IMAGE_SIZE = 96
IMAGE_BYTES = 3 * IMAGE_SIZE * IMAGE_SIZE
CLASS_NAMES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
NUM_CLASSES = len(CLASS_NAMES)

# One well-separated RGB colour per class: the signal a tiny network picks up first.
_PALETTE = np.array(
    [
        [220, 40, 40],
        [40, 200, 40],
        [40, 60, 220],
        [230, 210, 40],
        [200, 50, 200],
        [40, 200, 210],
        [240, 140, 30],
        [120, 60, 20],
        [150, 150, 150],
        [20, 20, 20],
    ],
    dtype=np.int32,
)


def make_images(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images, uint8 [num, 96, 96, 3] (rows, columns, RGB), and labels 0..9.

    Each class has its own colour and stripe period/direction, plus per-pixel noise, so a
    small network trained a few hundred steps at 32x32 beats chance clearly. A bright bar
    across the top-left (wide, not tall) makes any transposition or flip of the layout visible.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num) % NUM_CLASSES).astype(np.int64)
    rows = np.arange(IMAGE_SIZE)[:, None]
    cols = np.arange(IMAGE_SIZE)[None, :]
    images = np.empty((num, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for i, label in enumerate(labels):
        period = 8 + 4 * (label % 5)
        coord = rows if label < 5 else cols
        stripes = ((coord + rng.integers(period)) // (period // 2)) % 2  # [96,1] or [1,96]
        shade = np.where(np.broadcast_to(stripes, (IMAGE_SIZE, IMAGE_SIZE)), 1.0, 0.6)
        img = _PALETTE[label][None, None, :] * shade[:, :, None]
        img = img + rng.normal(0.0, 18.0, size=img.shape)
        img[2:8, 4:40, :] = 255  # the orientation marker
        images[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return images, labels


_SPLIT_SEED_OFFSET = {"train": 0, "test": 1, "unlabeled": 2}


def make_split(split: str, num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels write_stl10_archive(seed=seed) writes for a split."""
    return make_images(num, seed=3 * seed + _SPLIT_SEED_OFFSET[split])


def encode_images(images: np.ndarray) -> bytes:
    """uint8 [N, 96, 96, 3] (rows, columns, channels) -> STL10 bytes (N x 3 x 96 x 96,
    column-major)."""
    images = np.asarray(images, np.uint8)
    if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"images must be uint8 [N, 96, 96, 3]; got shape {images.shape}")
    # Per image: channel-major, and within a channel the column index varies slowest.
    return np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes()


def write_split(folder: str, prefix: str, images: np.ndarray, labels: np.ndarray | None) -> None:
    """Writes ``<prefix>_X.bin`` (and ``<prefix>_y.bin`` with labels 0..9 stored as 1..10)."""
    with open(os.path.join(folder, f"{prefix}_X.bin"), "wb") as f:
        f.write(encode_images(images))
    if labels is not None:
        labels = np.asarray(labels)
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= NUM_CLASSES:
            raise ValueError("labels must lie in 0..9")
        with open(os.path.join(folder, f"{prefix}_y.bin"), "wb") as f:
            f.write((labels + 1).astype(np.uint8).tobytes())


def write_stl10_archive(
    root: str,
    num_train: int,
    num_test: int,
    *,
    num_unlabeled: int = 8,
    seed: int = 0,
    pack: bool = True,
) -> str:
    """Writes root/stl10_binary/ with generated, learnable images in the official layout.

    Returns root/stl10_binary.tar.gz when pack (the file users download), else root, the
    folder holding stl10_binary/ (what torchvision leaves behind). Both are valid values of
    config.stl10_archive. Train, test and unlabelled images come from distinct seeds.
    """
    if min(num_train, num_test) < 1 or num_unlabeled < 0:
        raise ValueError(
            "write_stl10_archive: num_train and num_test must be >= 1, num_unlabeled >= 0"
        )
    folder = os.path.join(root, "stl10_binary")
    os.makedirs(folder, exist_ok=True)
    train_x, train_y = make_split("train", num_train, seed)
    test_x, test_y = make_split("test", num_test, seed)
    unlabeled_x, _ = make_split("unlabeled", num_unlabeled, seed)
    write_split(folder, "train", train_x, train_y)
    write_split(folder, "test", test_x, test_y)
    write_split(folder, "unlabeled", unlabeled_x, None)
    with open(os.path.join(folder, "class_names.txt"), "w") as f:
        f.write("".join(name + "\n" for name in CLASS_NAMES))
    # Ten folds of train indices, each a fixed random subset, like the official file.
    fold_rng = np.random.default_rng(seed + 1000)
    fold_size = max(1, num_train // 5)
    with open(os.path.join(folder, "fold_indices.txt"), "w") as f:
        for _ in range(10):
            fold = np.sort(
                fold_rng.choice(num_train, size=min(fold_size, num_train), replace=False)
            )
            f.write(" ".join(str(i) for i in fold) + " \n")
    if not pack:
        return root
    archive = os.path.join(root, "stl10_binary.tar.gz")
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(folder, arcname="stl10_binary")
    return archive
