"""Users' own images as a dataset: ``config.data.dataset = "folder:/path"``.

Layout: ``/path/train/<class>/*.{jpg,jpeg,png}`` and ``/path/test/<class>/*`` (the same
classes in both). tfds's own ``ImageFolder`` builder reads it (labels are the sorted class
folder names), so the rest of the pipeline sees an ordinary tfds builder.

Why the up-front check: tfds lists files lazily and decodes them inside tf.data, where a
missing split, a one-class folder or a single corrupt file surfaces as an opaque error mid-run
(or, worse, trains quietly on a wrong label set). ``check_image_folder`` turns each of those
into one line naming the folder or file and the fix, before anything is built. The layout and
the first bytes of every file are checked up front (60,000 files: about a second); decoding
every file with TensorFlow's decoder (the one tfds uses) costs about 0.2 ms per small image,
so the training path decodes each file once, while caching it (data/folder_cache.py), and
only when that fails runs ``check_decodes`` to name the files TensorFlow cannot decode.
"""

from __future__ import annotations

import os
import re

from senet_jax.data.tf_setup import load_tf, load_tfds

PREFIX = "folder:"
SPLITS = ("train", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # exactly what tfds ImageFolder lists
_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
_LISTED = 5  # bad files named in one message


class FolderDatasetError(ValueError):
    """The image folder given by config.data.dataset='folder:...' cannot be used as is."""


def parse_folder_dataset(name) -> str | None:
    """The absolute folder of a 'folder:/path' dataset name; None for any other dataset."""
    if not isinstance(name, str) or not name.startswith(PREFIX):
        return None
    path = name[len(PREFIX) :].strip()
    if not path:
        raise FolderDatasetError(
            f"config.data.dataset={name!r} names no folder; write 'folder:/path' where /path "
            "holds train/<class>/ and test/<class>/ image folders"
        )
    return os.path.abspath(os.path.expanduser(path))


def _where(path: str) -> str:
    return f"config.data.dataset='{PREFIX}{path}'"


def _subfolders(path: str) -> list[str]:
    # Hidden folders too (.ipynb_checkpoints): tfds makes every folder a class, so must we.
    return sorted(e.name for e in os.scandir(path) if e.is_dir())


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _images(path: str) -> list[str]:
    return sorted(
        os.path.join(path, e.name) for e in os.scandir(path) if e.is_file() and _is_image(e.name)
    )


def split_images(split_dir: str) -> list[str]:
    """Every image file of a split folder, class by class, in sorted order."""
    return [f for c in _subfolders(split_dir) for f in _images(os.path.join(split_dir, c))]


def _header_problem(file: str) -> str | None:
    """Why file is not a JPEG/PNG judging by its first bytes (cheap: one 8-byte read)."""
    try:
        with open(file, "rb") as f:
            head = f.read(8)
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    if not head:
        return "empty file"
    if not any(head.startswith(magic) for magic in _MAGIC):
        return f"not a JPEG or PNG, starts with {head[:4].hex(' ')}"
    return None


def _decode_problem(tf, file: str) -> str | None:
    """Why TensorFlow cannot decode file, as tfds will when the split is read."""
    try:
        tf.image.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
    except (tf.errors.OpError, ValueError) as e:
        message = re.sub(r"\{\{[^}]*\}\}|\[Op:\w+\]", "", getattr(e, "message", None) or str(e))
        message = " ".join(message.split()).removesuffix(" name:")  # one line
        return message[:120] if message else type(e).__name__
    return None


def _fail_on(bad: list[tuple[str, str]], path: str, what: str) -> None:
    if not bad:
        return
    named = "; ".join(f"{file} ({why})" for file, why in bad[:_LISTED])
    more = f"; and {len(bad) - _LISTED} more" if len(bad) > _LISTED else ""
    raise FolderDatasetError(
        f"{_where(path)}: {len(bad)} image file(s) {what}: {named}{more}; delete or replace them"
    )


def _check_root(path: str) -> None:
    """The dataset path itself exists and is a folder: the first thing a typo breaks."""
    where = _where(path)
    if not os.path.exists(path):
        raise FolderDatasetError(
            f"{where}: {path} does not exist; give a folder holding train/<class>/ and "
            "test/<class>/ image folders"
        )
    if not os.path.isdir(path):
        raise FolderDatasetError(
            f"{where}: {path} is a file, not a folder; give a folder holding train/<class>/ and "
            "test/<class>/ image folders"
        )


def _check_split(path: str, split: str) -> tuple[list[str], list[str]]:
    """The class names and image files of one split folder, after its layout checks.

    Kept apart from check_image_folder so each split's rules (folder present, no loose
    images, images in every class, at least 2 classes) read as one unit.
    """
    where = _where(path)
    split_dir = os.path.join(path, split)
    if not os.path.isdir(split_dir):
        found = _subfolders(path)
        raise FolderDatasetError(
            f"{where}: no {split}/ folder in {path} (found: {found or 'no folders'}); the "
            f"layout is {path}/train/<class>/*.jpg and {path}/test/<class>/*.jpg"
        )
    loose = [name for name in sorted(os.listdir(split_dir)) if _is_image(name)]
    if loose:
        raise FolderDatasetError(
            f"{where}: {split_dir} holds {len(loose)} image(s) outside class folders (e.g. "
            f"{loose[0]}); move each into {split}/<class>/, the folder name is its label"
        )
    classes = _subfolders(split_dir)
    per_class = {c: _images(os.path.join(split_dir, c)) for c in classes}
    if not any(per_class.values()):
        raise FolderDatasetError(
            f"{where}: {split_dir} holds no images ({'/'.join(IMAGE_EXTENSIONS)} files in "
            f"class folders, e.g. {split}/cat/1.jpg)"
        )
    empty = [c for c, images in per_class.items() if not images]
    if empty:
        raise FolderDatasetError(
            f"{where}: class folder(s) {', '.join(os.path.join(split_dir, c) for c in empty)} "
            f"hold no {'/'.join(IMAGE_EXTENSIONS)} images; add images or remove the folder"
        )
    if len(classes) < 2:
        raise FolderDatasetError(
            f"{where}: {split_dir} has a single class folder ({classes[0]!r}); at least "
            "2 classes are needed, one sub-folder per class"
        )
    return classes, [f for images in per_class.values() for f in images]


def check_image_folder(path: str, *, decode: bool = True) -> None:
    """Raises FolderDatasetError (one line) unless path is a usable train/test image folder.

    Checks the layout (both splits, at least 2 classes, the same classes in both, images in
    every class folder and none loose in a split folder), the first bytes of every image, and
    with decode (default) that TensorFlow decodes every image.
    """
    _check_root(path)
    classes = {}
    files = []
    for split in SPLITS:
        classes[split], split_files = _check_split(path, split)
        files.extend(split_files)
    if classes["train"] != classes["test"]:
        only_train = sorted(set(classes["train"]) - set(classes["test"]))
        only_test = sorted(set(classes["test"]) - set(classes["train"]))
        raise FolderDatasetError(
            f"{_where(path)}: the classes differ between train/ and test/ (only in train: "
            f"{only_train or 'none'}; only in test: {only_test or 'none'}); every class needs a "
            "folder in both"
        )
    _fail_on([(f, why) for f in files if (why := _header_problem(f))], path, "are not images")
    if decode:
        check_decodes(path)


def check_decodes(path: str) -> None:
    """Raises FolderDatasetError naming every image TensorFlow cannot decode (slow: each file)."""
    tf = load_tf()
    files = [f for split in SPLITS for f in split_images(os.path.join(path, split))]
    bad = [(f, why) for f in files if (why := _decode_problem(tf, f))]
    _fail_on(bad, path, "cannot be decoded")


def image_folder_builder(path: str, *, check: bool = True, decode: bool = False):
    """The tfds ImageFolder builder of path (checked first), images decoded as uint8 RGB.

    `decode` also decodes every file up front (see the module doc for why it is off).
    shape (None, None, 3) makes tfds decode grayscale and RGBA files to 3 channels, so a
    folder mixing them still yields one image format. The builder reads the files in place:
    it needs no download_and_prepare and writes nothing.
    """
    if check:
        check_image_folder(path, decode=decode)
    tf, tfds = load_tf(), load_tfds()
    return tfds.folder_dataset.ImageFolder(path, shape=(None, None, 3), dtype=tf.uint8)
