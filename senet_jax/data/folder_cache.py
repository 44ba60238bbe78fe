"""An image folder's splits decoded once, at the training resolution, and kept on disk.

Why: tfds's ImageFolder reads the files in place and keeps nothing, so every run would decode
every JPEG again (CIFAR-10's 60,000 files take longer to decode than a short run takes to
train). The uint8 [N, S, S, 3] images and labels of a split, exactly as the in-memory path
holds them, are written once to DATA_DIR/senet_jax_folder/<folder>/ (DATA_DIR is
config.data.data_dir or the tfds default) and read back in a second. A fingerprint of the
split's file names, sizes and modification times is stored with them: a changed folder is
decoded again, never read stale. The image folder itself is never written to.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np

from senet_jax.data import folder

log = logging.getLogger("senet_jax")


def location(path: str, data_dir: str | None) -> str:
    """The folder that holds what senet_jax derives from the image folder at `path`."""
    root = data_dir or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
    tag = "".join(c if c.isalnum() else "_" for c in path.strip("/"))
    return os.path.join(root, "senet_jax_folder", tag)


def fingerprint(path: str, split: str) -> str:
    """sha256 of the split's image files: relative name, size and modification time of each."""
    digest = hashlib.sha256()
    split_dir = os.path.join(path, split)
    for file in folder.split_images(split_dir):
        stat = os.stat(file)
        digest.update(
            f"{os.path.relpath(file, path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()


def _read(file: str, expected: str):
    try:
        with np.load(file) as stored:
            if str(stored["fingerprint"]) != expected:
                log.info("%s is out of date (the image folder changed); decoding again", file)
                return None
            return stored["images"], stored["labels"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as e:
        log.warning("ignoring unreadable image cache %s (%s); decoding again", file, e)
        return None


def _write(file: str, images: np.ndarray, labels: np.ndarray, fingerprint_: str) -> None:
    """Aside, then renamed: a killed run never leaves half a cache, concurrent writers agree."""
    os.makedirs(os.path.dirname(file), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(file), suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=images, labels=labels, fingerprint=np.array(fingerprint_))
        os.replace(tmp, file)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def cached_split(
    path: str, split: str, size: int, data_dir: str | None, decode: Callable[[], tuple]
) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of `split` at `size` px: from the cache, or `decode()` and then cached."""
    file = os.path.join(location(path, data_dir), f"{split}_{int(size)}px.npz")
    expected = fingerprint(path, split)
    stored = _read(file, expected)
    if stored is not None:
        return stored
    log.info("decoding %s/%s once at %d px (cached in %s)", path, split, size, file)
    start = time.perf_counter()
    images, labels = decode()
    _write(file, images, labels, expected)
    log.info(
        "%d images of %s/%s decoded in %.1f s",
        len(labels),
        path,
        split,
        time.perf_counter() - start,
    )
    return images, labels
