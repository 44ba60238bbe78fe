"""senet_jax.load: checkpoint choice, errors, and the evaluation preprocessing."""

from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import pytest
from use_helpers import eval_path_logits, raw_split

import senet_jax
from senet_jax import checkpointing, inference


@pytest.fixture(scope="module")
def trained(trained_run):
    return senet_jax.load(trained_run)


def test_load_picks_best_latest_or_a_step(trained_run, trained):
    config, names = inference.read_run(trained_run)
    manager = checkpointing.CheckpointManager(trained_run, config, read_only=True)
    assert trained.step == manager.best_step() and len(names) == 10
    assert senet_jax.load(trained_run, "latest").step == 16
    assert senet_jax.load(trained_run, 14).step == 14
    kept = ", ".join(map(str, manager.all_steps()))  # the latest two and the best on validation
    with pytest.raises(inference.LoadError, match=f"no checkpoint 7; it has {kept}$"):
        senet_jax.load(trained_run, 7)


def test_best_falls_back_to_latest_with_a_log_line(trained_run, monkeypatch, caplog):
    monkeypatch.setattr(checkpointing.CheckpointManager, "best_step", lambda self: None)
    with caplog.at_level(logging.WARNING, logger="senet_jax"):
        assert senet_jax.load(trained_run).step == 16
    assert f"recorded {checkpointing.BEST_METRIC}: using the latest, step 16" in caplog.text


def _copy_run(trained_run, target, *, checkpoints=True, edit=None):
    os.makedirs(target)
    with open(os.path.join(trained_run, "config.json")) as f:
        record = json.load(f)
    if edit:
        edit(record)
    with open(os.path.join(target, "config.json"), "w") as f:
        json.dump(record, f)
    if checkpoints:
        shutil.copytree(
            os.path.join(trained_run, "checkpoints"), os.path.join(target, "checkpoints")
        )
    return str(target)


def test_load_errors_are_one_line_value_errors(trained_run, tmp_path):
    with pytest.raises(inference.LoadError, match="holds no config.json"):
        senet_jax.load(str(tmp_path))
    bare = _copy_run(trained_run, tmp_path / "bare", checkpoints=False)
    with pytest.raises(inference.LoadError, match="holds no checkpoint"):
        senet_jax.load(bare)
    fewer = _copy_run(
        trained_run, tmp_path / "five", edit=lambda r: r.update(class_names=r["class_names"][:5])
    )
    with pytest.raises(checkpointing.IncompatibleCheckpointError, match="num_classes"):
        senet_jax.load(fewer)
    wider = _copy_run(
        trained_run,
        tmp_path / "wider",
        edit=lambda r: r["config"]["model"].update(width_multiplier=0.5),
    )
    with pytest.raises(checkpointing.IncompatibleCheckpointError, match="width_multiplier"):
        senet_jax.load(wider)
    with pytest.raises(inference.LoadError, match="use best, latest or a step number"):
        senet_jax.load(trained_run, "newest")


def test_predict_and_features_equal_the_eval_pipeline(trained):
    images, _ = raw_split(trained.config)  # 96x96: predict resizes as the eval decode does
    logits = trained.logits(list(images))
    np.testing.assert_array_equal(logits, eval_path_logits(trained))
    probabilities = trained.predict(images)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(probabilities.argmax(-1), logits.argmax(-1))
    features = trained.features(images)
    kernel = trained.variables["params"]["classifier"]["kernel"]
    bias = trained.variables["params"]["classifier"]["bias"]
    assert features.shape == (len(images), kernel.shape[0])
    np.testing.assert_allclose(features @ kernel + bias, logits, rtol=1e-4, atol=1e-4)


def test_predict_takes_one_image_a_batch_or_images_of_any_size(trained):
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)
    assert trained.predict(one).shape == (1, 10)
    assert trained.predict(np.stack([one, one])).shape == (2, 10)
    gray = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    assert trained.predict([one, gray, one[:20]]).shape == (3, 10)
    with pytest.raises(ValueError, match="uint8"):
        trained.predict(one.astype(np.float32))
