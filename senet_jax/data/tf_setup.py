"""TensorFlow and tfds as the input pipeline needs them: accelerators hidden, tfds quiet.

TensorFlow only feeds data here; the GPUs/TPUs belong to JAX, so TensorFlow must never claim
them (it would reserve GPU memory). tfds logs, through absl, notes meant for its own
developers ("Variant folder ... has no dataset_info.json" when it scans a data_dir, "Using
custom data configuration"); they are dropped below ERROR. What a user must know about the
data (not prepared, unreachable, a bad file) reaches them as our own one-line errors.
"""

from __future__ import annotations

import functools
import logging
import os


def _from_tfds(record: logging.LogRecord) -> bool:
    return f"{os.sep}tensorflow_datasets{os.sep}" in (record.pathname or "")


class _TfdsNotesFilter(logging.Filter):
    """Drops tfds's absl records below ERROR; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not _from_tfds(record)


def hide_accelerators(tf) -> None:
    """Keeps TensorFlow off the GPUs and TPUs: they belong to JAX."""
    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except (RuntimeError, ValueError):
            pass  # already initialised, or no such device type


@functools.cache
def load_tf():
    """TensorFlow with accelerators hidden (the first call decides, before TF starts)."""
    import tensorflow as tf

    hide_accelerators(tf)
    return tf


@functools.cache
def load_tfds():
    """tensorflow_datasets, after load_tf, with its log noise filtered (module doc)."""
    load_tf()
    import tensorflow_datasets as tfds

    logging.getLogger("absl").addFilter(_TfdsNotesFilter())
    return tfds
