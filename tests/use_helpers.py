"""Shared by the tests of the commands that use a trained run."""

from __future__ import annotations

import os

import numpy as np


def raw_split(config, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The split's images as tfds decodes them (96x96 uint8, before any resize), file order."""
    from senet_jax.data import sources
    from senet_jax.data.tf_setup import load_tfds

    tfds = load_tfds()
    builder = sources.prepared_builder(config.data)
    examples = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
    return np.stack([e["image"] for e in examples]), np.array([e["label"] for e in examples])


def eval_path_logits(trained, split: str = "test") -> np.ndarray:
    """Logits of every image of the split through the evaluation pipeline (split_batches)."""
    from senet_jax import inference

    batches = list(inference.split_batches(trained.config, split, 16))
    images = np.concatenate([b["image"][b["mask"]] for b in batches])
    return trained.apply_normalised(images)[0]


def snapshot(workdir: str, skip: str) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under workdir outside the `skip` folder."""
    files = {}
    for root, dirs, names in os.walk(workdir):
        dirs[:] = [d for d in dirs if os.path.join(root, d) != os.path.join(workdir, skip)]
        for name in names:
            st = os.stat(os.path.join(root, name))
            files[os.path.relpath(os.path.join(root, name), workdir)] = (st.st_size, st.st_mtime_ns)
    return files
