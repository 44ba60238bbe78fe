"""Bad input fails fast, in one line naming the field and the fix, and leaves the workdir as it was."""
from __future__ import annotations

import hashlib
import os
import tarfile
import time

import pytest

from configs import smoke, stl10
from senet_jax import checkpointing, stl10_format, trainer
from senet_jax import config as config_lib
from senet_jax.input_pipeline import DatasetUnavailableError, Stl10ArchiveError


def tree_hash(root) -> dict:
    """Path -> sha256 of every file under root (empty when root does not exist)."""
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


BAD_FIELDS = [
    ({"model": "se_mobilenet_v9"}, "model", "use one of"),
    ({"dataset": "stl11"}, "dataset", "--config.dataset=stl10"),
    ({"optimizer": "sgdd"}, "optimizer", "--config.optimizer="),
    ({"schedule": "cosine"}, "schedule", "--config.schedule="),
    (
        {"depthwise_implementation": "im2row"},
        "depthwise_implementation",
        "--config.depthwise_implementation=",
    ),
    ({"conv_implementation": "winograd"}, "conv_implementation", "--config.conv_implementation="),
    ({"batch_size": 100}, "batch_size", "multiple of 8"),
    ({"batch_size": 0}, "batch_size", "positive integer"),
    ({"batch_size": -16}, "batch_size", "positive integer"),
    ({"num_epochs": 0}, "num_epochs", "positive integer"),
    ({"learning_rate": 0.0}, "learning_rate", "positive number"),
    ({"learning_rate": -0.1}, "learning_rate", "positive number"),
    ({"weight_decay": -1e-4}, "weight_decay", ">= 0"),
    ({"label_smoothing": 1.0}, "label_smoothing", r"\[0, 1\)"),
    ({"label_smoothing": -0.1}, "label_smoothing", r"\[0, 1\)"),
    (
        {"image_size": 8, "stem_strides": 1, "cutout_size": 0},
        "image_size",
        "total stride 16.*--config.image_size=16",
    ),
    (
        {"image_size": 24, "stem_strides": 2, "cutout_size": 0},
        "image_size",
        "total stride 32.*--config.image_size=32",
    ),
]


@pytest.mark.parametrize(
    "overrides,field,fix", BAD_FIELDS, ids=[f"{b[1]}={list(b[0].values())[0]}" for b in BAD_FIELDS]
)
def test_bad_field_is_named_with_the_fix(overrides, field, fix):
    config = stl10.get_config()
    config.update(overrides)
    with pytest.raises(config_lib.ConfigError, match=rf"^config\.{field}: .*{fix}") as e:
        config_lib.validate(config, device_count=8)
    assert "\n" not in str(e.value)


def test_config_without_conv_implementation_still_validates():
    # Config files written before the field existed keep working ("auto").
    config = stl10.get_config()
    del config["conv_implementation"]
    config_lib.validate(config, device_count=8)
    assert trainer.create_model(config, 10).conv_implementation == "auto"


def test_defaults_and_smoke_config_are_valid(tmp_path):
    config_lib.validate(stl10.get_config(), workdir=str(tmp_path / "new"), device_count=8)
    config_lib.validate(smoke.get_config(), workdir=str(tmp_path), device_count=8)
    assert os.listdir(tmp_path) == []  # the write probe cleans up after itself


@pytest.mark.parametrize("where", ["under_a_file", "proc", "sys"])
def test_unwritable_workdir_is_refused(tmp_path, where):
    """Real write attempts: as root os.access says yes to all three."""
    if where == "under_a_file":
        (tmp_path / "a_file").write_text("x")
        workdir, expect = str(tmp_path / "a_file" / "run"), "is a file, not a folder"
    else:
        workdir, expect = f"/{where}/senet_jax_run", "cannot create files in"
    with pytest.raises(config_lib.ConfigError, match=rf"--workdir {workdir}: .*{expect}.*choose"):
        config_lib.validate(stl10.get_config(), workdir=workdir, device_count=8)
    assert not os.path.exists(workdir)


# -- through trainer.train_and_evaluate: the early checks run before any dataset work or compilation


def offline_stl10_config(tmp_path, **overrides):
    config = stl10.get_config()
    config.data_dir = str(tmp_path / "empty_tfds")  # nothing prepared here
    config.update(overrides)
    return config


def _existing_workdir(tmp_path):
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("earlier results")
    return str(workdir)


def _archive(tmp_path, damage):
    path = stl10_format.write_stl10_archive(str(tmp_path / "archive"), 4, 4)
    if damage == "truncated":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    else:  # a complete archive whose train_X.bin lost its last image
        folder = str(tmp_path / "archive" / "stl10_binary")
        with open(os.path.join(folder, "train_X.bin"), "r+b") as f:
            f.truncate(3 * stl10_format.IMAGE_BYTES)
        os.remove(path)
        with tarfile.open(path, "w:gz") as tar:
            tar.add(folder, arcname="stl10_binary")
    return path


def test_missing_dataset_names_data_dir_and_archive_option_and_creates_no_workdir(tmp_path):
    workdir = str(tmp_path / "new_run")
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as e:
        trainer.train_and_evaluate(offline_stl10_config(tmp_path), workdir)
    assert time.perf_counter() - start < 10
    message = str(e.value)
    assert str(tmp_path / "empty_tfds") in message and "config.data_dir" in message
    assert "config.stl10_archive" in message and "\n" not in message
    assert not os.path.exists(workdir)


@pytest.mark.parametrize(
    "damage,bad_file", [("truncated", "stl10_binary.tar.gz"), ("short_member", "train_X.bin")]
)
def test_corrupt_archive_names_the_file_and_leaves_the_workdir(tmp_path, damage, bad_file):
    workdir = _existing_workdir(tmp_path)
    before = tree_hash(workdir)
    config = offline_stl10_config(tmp_path, stl10_archive=_archive(tmp_path, damage))
    with pytest.raises(
        Stl10ArchiveError, match=rf"config\.stl10_archive: .*{bad_file}.*(download|again)"
    ):
        trainer.train_and_evaluate(config, workdir)
    assert tree_hash(workdir) == before


def test_incompatible_checkpoint_is_refused_before_the_dataset_is_touched(tmp_path):
    """The dataset here is unavailable: reaching it would raise DatasetUnavailableError instead."""
    from test_checkpointing import make_state

    workdir = _existing_workdir(tmp_path)
    saved = offline_stl10_config(tmp_path)
    manager = checkpointing.CheckpointManager(workdir, saved, num_classes=10)
    manager.save(3, make_state(3))
    manager.wait_until_finished()
    manager.close()
    before = tree_hash(workdir)
    start = time.perf_counter()
    with pytest.raises(
        checkpointing.IncompatibleCheckpointError,
        match=r"width_multiplier=1\.0 but the config has width_multiplier=0\.5.*"
        r"--config\.width_multiplier=1\.0.*nothing was deleted",
    ):
        trainer.train_and_evaluate(offline_stl10_config(tmp_path, width_multiplier=0.5), workdir)
    assert time.perf_counter() - start < 10
    assert tree_hash(workdir) == before


def test_bad_config_fails_before_the_workdir_is_created(tmp_path):
    workdir = str(tmp_path / "new_run")
    start = time.perf_counter()
    with pytest.raises(config_lib.ConfigError, match="config.label_smoothing"):
        trainer.train_and_evaluate(offline_stl10_config(tmp_path, label_smoothing=1.5), workdir)
    assert time.perf_counter() - start < 5
    assert not os.path.exists(workdir) and not os.path.exists(tmp_path / "empty_tfds")
