"""tfds's notes for its own developers never reach the user's terminal; its errors do."""

from __future__ import annotations

import logging
import os

from senet_jax.data.tf_setup import load_tf, load_tfds


def test_accelerators_hidden_from_tensorflow():
    tf = load_tf()
    assert tf.config.get_visible_devices("GPU") == []


def test_tfds_variant_folder_note_is_dropped_but_errors_pass(tmp_path, caplog):
    tfds = load_tfds()
    os.makedirs(tmp_path / "stl10" / "1.0.0")  # an unfinished preparation: no dataset_info.json
    with caplog.at_level(logging.INFO):
        builder = tfds.builder("stl10", data_dir=str(tmp_path))
        assert not builder.is_prepared()
        from absl import logging as absl_logging

        absl_logging.error("a real tfds error")  # not from tfds' files: passes
    text = caplog.text
    assert "Variant folder" not in text and "dataset_info.json" not in text
    assert "a real tfds error" in text
