"""Shared by the data tests: configs on the prepared fixture archive, and stream shortcuts."""

from __future__ import annotations

import numpy as np
from config_utils import configure

from configs import stl10
from senet_jax.data import iterators


def make_config(fixture, **overrides):
    c = stl10.get_config()
    c.data.data_dir = fixture.data_dir
    # 4 px pad and an 8 px cutout at 32 px; fixed statistics, so pixels round-trip exactly.
    configure(c, image_size=32, crop_padding=0.125, cutout_size=0.25, batch_size=16)
    configure(c, mean=(0.4467, 0.4398, 0.4066), std=(0.2603, 0.2566, 0.2713))
    configure(c, validation_examples=0)
    return configure(c, **overrides)


def plain(fixture, **overrides):
    """No augmentation: each output image identifies its example."""
    return make_config(fixture, **{"crop": "none", "flip": False, "cutout_size": 0, **overrides})


def to_uint8(config, images):
    mean = np.asarray(config.data.mean) * 255
    std = np.asarray(config.data.std) * 255
    return np.rint(images * std + mean).astype(np.uint8)


def example_ids(config, batch, mask=None):
    """One hashable id (the exact pixels) per example, in order, masked ones dropped."""
    size = config.data.image_size
    x = to_uint8(config, batch["image"]).reshape(-1, size, size, 3)
    keep = np.ones(len(x), bool) if mask is None else mask.reshape(-1)
    return [img.tobytes() for img, k in zip(x, keep) if k]


def train_batches(config, **layout):
    """The training stream of a whole config (its data section, batch size and seed)."""
    return iterators.train_batches(
        config.data, batch_size=config.batch_size, seed=config.seed, **layout
    )


def eval_batches(config, **layout):
    return iterators.eval_batches(config.data, batch_size=config.batch_size, **layout)
