"""folder: datasets: a good folder builds through tfds ImageFolder; each bad one is one line."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from senet_jax.data import folder

CLASSES = ("cat", "dog", "owl")
COUNTS = {"train": 4, "test": 2}  # per class


def _save(path, rng, size=32, mode="RGB"):
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> str:
    """train/ and test/ with three classes; JPEG and PNG, RGB, RGBA and grayscale, two sizes."""
    root = tmp_path_factory.mktemp("folder") / "pets"
    rng = np.random.default_rng(0)
    for split, count in COUNTS.items():
        for c in CLASSES:
            os.makedirs(root / split / c)
            for i in range(count):
                ext = (".jpg", ".png", ".JPEG", ".png")[i % 4]
                mode = ("RGB", "RGB", "L", "RGBA")[i % 4]
                _save(root / split / c / f"{i}{ext}", rng, size=24 + 8 * (i % 2), mode=mode)
    return str(root)


@pytest.fixture
def copy(good, tmp_path) -> str:
    path = str(tmp_path / "copy")
    shutil.copytree(good, path)
    return path


def error(path, **kwargs) -> str:
    with pytest.raises(folder.FolderDatasetError) as e:
        folder.check_image_folder(path, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"config.data.dataset='folder:{path}'")
    return msg


def test_parse_folder_dataset(tmp_path, monkeypatch):
    assert folder.parse_folder_dataset("stl10") is None
    assert folder.parse_folder_dataset(None) is None
    assert folder.parse_folder_dataset("folder:/data/pets") == "/data/pets"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert folder.parse_folder_dataset("folder:~/pets/") == str(tmp_path / "pets")
    with pytest.raises(folder.FolderDatasetError, match="names no folder"):
        folder.parse_folder_dataset("folder: ")


def test_good_folder_builds_and_reads(good):
    folder.check_image_folder(good)
    builder = folder.image_folder_builder(good)
    label = builder.info.features["label"]
    assert tuple(label.names) == CLASSES
    for split, count in COUNTS.items():
        assert builder.info.splits[split].num_examples == count * len(CLASSES)
        seen = 0
        for ex in builder.as_dataset(split=split).as_numpy_iterator():
            image, filename = ex["image"], ex["image/filename"].decode()
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            assert image.shape[0] in (24, 32)
            assert label.int2str(ex["label"]) == os.path.basename(os.path.dirname(filename))
            seen += 1
        assert seen == count * len(CLASSES)
    assert sorted(os.listdir(good)) == ["test", "train"]  # the builder wrote nothing there


def test_missing_path_and_file(tmp_path):
    assert "does not exist" in error(str(tmp_path / "nowhere"))
    (tmp_path / "f").write_text("x")
    assert "is a file, not a folder" in error(str(tmp_path / "f"))


def test_missing_split(copy):
    shutil.rmtree(os.path.join(copy, "test"))
    assert "no test/ folder" in error(copy)


def test_split_without_images(copy):
    for c in CLASSES:
        shutil.rmtree(os.path.join(copy, "train", c))
    assert f"{copy}/train holds no images" in error(copy)


def test_empty_class_folder(copy):
    os.makedirs(os.path.join(copy, "test", "eel"))
    assert f"{copy}/test/eel hold no" in error(copy)


def test_hidden_folder_would_be_a_class(copy):
    os.makedirs(os.path.join(copy, "train", ".ipynb_checkpoints"))
    assert "train/.ipynb_checkpoints hold no" in error(copy)


def test_single_class(copy):
    for c in CLASSES[1:]:
        shutil.rmtree(os.path.join(copy, "train", c))
        shutil.rmtree(os.path.join(copy, "test", c))
    msg = error(copy)
    assert "single class folder ('cat')" in msg and "at least 2 classes" in msg


def test_classes_differ(copy):
    os.rename(os.path.join(copy, "test", "owl"), os.path.join(copy, "test", "bat"))
    msg = error(copy)
    assert "only in train: ['owl']; only in test: ['bat']" in msg


def test_loose_images(copy):
    shutil.copy(os.path.join(copy, "train", "cat", "0.jpg"), os.path.join(copy, "train", "x.jpg"))
    assert "outside class folders (e.g. x.jpg)" in error(copy)


def test_not_an_image_and_empty_file_are_named(copy):
    bad = os.path.join(copy, "train", "dog", "notes.png")
    with open(bad, "w") as f:
        f.write("not a picture")
    open(os.path.join(copy, "test", "owl", "empty.jpg"), "w").close()
    msg = error(copy, decode=False)  # the header check runs even without decoding
    assert "2 image file(s) are not images" in msg
    assert f"{bad} (not a JPEG or PNG" in msg and "empty.jpg (empty file)" in msg


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_image_is_named(copy, ext, tmp_path):
    src = os.path.join(copy, "train", "owl", "1.png")  # 32x32 noise
    bad = os.path.join(copy, "train", "owl", f"cut{ext}")
    if ext == ".jpg":
        with Image.open(src) as im:
            im.convert("RGB").save(bad, quality=95)
    else:
        shutil.copy(src, bad)
    with open(bad, "rb") as f:
        data = f.read()
    with open(bad, "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    folder.check_image_folder(copy, decode=False)  # its header is fine
    msg = error(copy)
    assert f"1 image file(s) cannot be decoded: {bad} (" in msg


def test_many_bad_files_are_counted(copy):
    for i in range(7):
        with open(os.path.join(copy, "train", "cat", f"bad{i}.jpg"), "w") as f:
            f.write("x")
    msg = error(copy, decode=False)
    assert msg.count("/bad") == 5 and "and 2 more" in msg
