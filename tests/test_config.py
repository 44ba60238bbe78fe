"""Bad input fails fast, in one line naming the field and the fix; the workdir stays as it was."""

from __future__ import annotations

import hashlib
import importlib
import os
import tarfile

import pytest
from config_utils import configure

from configs import smoke, stl10
from senet_jax import checkpointing, steps, trainer
from senet_jax import config as config_lib
from senet_jax.data import DatasetUnavailableError, Stl10ArchiveError, stl10_format


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
    ({"model.name": "se_mobilenet_v9"}, "model.name", "use one of"),
    ({"data.dataset": "stl11"}, "data.dataset", "--config.data.dataset=stl10"),
    ({"optim.name": "sgdd"}, "optim.name", "--config.optim.name="),
    ({"optim.schedule": "cosine"}, "optim.schedule", "--config.optim.schedule="),
    (
        {"model.depthwise_implementation": "im2row"},
        "model.depthwise_implementation",
        "--config.model.depthwise_implementation=",
    ),
    (
        {"model.conv_implementation": "winograd"},
        "model.conv_implementation",
        "--config.model.conv_implementation=",
    ),
    ({"model.se.squeeze": "median"}, "model.se.squeeze", "--config.model.se.squeeze=avg"),
    ({"model.se.gate": "softmax"}, "model.se.gate", "--config.model.se.gate="),
    ({"model.se.reduction": 0}, "model.se.reduction", "positive integer"),
    ({"model.se.min_features": -1}, "model.se.min_features", "positive integer"),
    ({"model.se.blocks": "0,14"}, "model.se.blocks", "0, 14.*--config.model.se.blocks=13"),
    ({"model.se.blocks": "last"}, "model.se.blocks", "names no block"),
    ({"model.se.kind": "sk"}, "model.se.kind", "--config.model.se.kind=cbam"),
    (
        {"model.se.kind": "eca", "model.se.reduction": 8},
        "model.se.reduction",
        "8 has no effect with model.se.kind='eca' .it takes gate.; leave it at 16 or use kind se",
    ),
    ({"model.se.kind": "ese", "model.se.gate": "tanh"}, "model.se.gate", "it takes no options"),
    ({"model.se.kind": "ge", "model.se.extent": 3}, "model.se.extent", "power of two"),
    ({"model.se.kind": "ge", "model.se.gather": "max"}, "model.se.gather", "use one of conv"),
    ({"data.crop": "zoom"}, "data.crop", "--config.data.crop="),
    (
        {"data.crop_padding": 12},
        "data.crop_padding",
        r"fraction of the image side.*12 px of 96 is 0\.125.*--config\.data\.crop_padding=0\.125",
    ),
    ({"data.crop_padding": 1.0}, "data.crop_padding", r"\[0, 1\).*1 px of 96 is 0\.01042"),
    ({"data.cutout_size": 0.6}, "data.cutout_size", r"\[0, 0.5\].*--config.data.cutout_size="),
    ({"data.cutout_size": 32}, "data.cutout_size", r"32 px of 96 is 0\.3333"),
    ({"data.mean": (0.5, 0.5, 0.5)}, "data.mean", "set data.mean and data.std together"),
    ({"data.mean": (0.5, 0.5), "data.std": (1.0, 1.0)}, "data.mean", "3 per-channel values"),
    ({"data.mean": (0.5,) * 3, "data.std": (0.2, 0.0, 0.2)}, "data.std", "must be positive"),
    ({"data.validation_examples": -1}, "data.validation_examples", ">= 0"),
    ({"batch_size": 100}, "batch_size", "multiple of 8"),
    ({"batch_size": 0}, "batch_size", "positive integer"),
    ({"batch_size": -16}, "batch_size", "positive integer"),
    ({"num_epochs": 0}, "num_epochs", "positive integer"),
    ({"microbatch_size": 0}, "microbatch_size", "positive integer"),
    ({"microbatch_size": 6}, "microbatch_size", r"16 images each of 8 .*=4 \(4 parts\)"),
    ({"total_steps": 0}, "total_steps", "positive integer, got 0"),
    ({"total_steps": -40}, "total_steps", "positive integer"),
    ({"total_steps": 100, "optim.warmup_epochs": -1}, "optim.warmup_epochs", ">= 0"),
    ({"optim.learning_rate": 0.0}, "optim.learning_rate", "positive number"),
    ({"optim.learning_rate": -0.1}, "optim.learning_rate", "positive number"),
    ({"optim.weight_decay": -1e-4}, "optim.weight_decay", ">= 0"),
    ({"optim.momentum": 1.0}, "optim.momentum", r"\[0, 1\)"),
    ({"optim.label_smoothing": 1.0}, "optim.label_smoothing", r"\[0, 1\)"),
    ({"optim.label_smoothing": -0.1}, "optim.label_smoothing", r"\[0, 1\)"),
    ({"model.dropout_rate": 1.0}, "model.dropout_rate", r"\[0, 1\)"),
    (
        {"data.image_size": 8, "model.stem_strides": 1, "data.cutout_size": 0},
        "data.image_size",
        "total stride 16.*--config.data.image_size=16",
    ),
    (
        {"data.image_size": 24, "model.stem_strides": 2, "data.cutout_size": 0},
        "data.image_size",
        "total stride 32.*--config.data.image_size=32",
    ),
]


@pytest.mark.parametrize(
    "overrides,field,fix", BAD_FIELDS, ids=[f"{b[1]}={list(b[0].values())[0]}" for b in BAD_FIELDS]
)
def test_bad_field_is_named_with_the_fix(overrides, field, fix):
    config = configure(stl10.get_config(), **overrides)
    with pytest.raises(config_lib.ConfigError, match=rf"^config\.{field}: .*{fix}") as e:
        config_lib.validate(config, device_count=8)
    assert "\n" not in str(e.value)


def test_total_steps_replaces_num_epochs_in_the_warmup_check():
    """Warmup is checked against num_epochs, or with total_steps once steps_per_epoch is known
    (trainer: after the dataset is described)."""
    config = configure(stl10.get_config(), num_epochs=2, warmup_epochs=5)
    with pytest.raises(config_lib.ConfigError, match=r"^config\.optim\.warmup_epochs: .*2"):
        config_lib.validate(config, device_count=8)
    config_lib.validate(configure(config, total_steps=1_000), device_count=8)
    with pytest.raises(
        config_lib.ConfigError,
        match=r"^config\.optim\.warmup_epochs: 5 epochs of 39 steps are 195 steps, not fewer "
        r"than total_steps=100; .*--config\.optim\.warmup_epochs=0",
    ) as e:
        trainer.check_warmup(configure(config, total_steps=100), steps_per_epoch=39)
    assert "\n" not in str(e.value)
    trainer.check_warmup(configure(config, total_steps=196), steps_per_epoch=39)


@pytest.mark.parametrize(
    "blocks,expected", [("all", "all"), ("12,13", (12, 13)), ("(4,5)", (4, 5))]
)
def test_se_blocks_from_the_command_line(blocks, expected):
    from senet_jax.models.se import parse_blocks

    config = configure(stl10.get_config(), **{"model.se.blocks": blocks})
    config_lib.validate(config, device_count=8)
    assert parse_blocks(blocks) == expected


def test_defaults_and_smoke_config_are_valid(tmp_path):
    config_lib.validate(stl10.get_config(), workdir=str(tmp_path / "new"), device_count=8)
    config_lib.validate(smoke.get_config(), workdir=str(tmp_path), device_count=8)
    assert os.listdir(tmp_path) == []  # the write probe cleans up after itself


@pytest.mark.parametrize(
    "name", ["stl10_se_resnet", "stl10_finetune", "imagenet_se_resnet50", "imagenet_resnet50"]
)
def test_residual_network_configs_are_valid(name):
    config = importlib.import_module(f"configs.{name}").get_config()
    config_lib.validate(config, device_count=8)
    assert "resnet" in config.model.name


@pytest.mark.parametrize("kind", ["se", "eca", "cbam", "ge", "ese"])
def test_every_attention_kind_validates_on_both_families(kind):
    from configs import stl10_se_resnet

    for base in (stl10.get_config(), stl10_se_resnet.get_config()):
        config_lib.validate(configure(base, **{"model.se.kind": kind}), device_count=8)


def test_cifar_stem_is_validated_with_its_total_stride():
    from configs import stl10_se_resnet

    cifar = {"model.stem": "cifar", "data.image_size": 8, "data.cutout_size": 0}
    config_lib.validate(configure(stl10_se_resnet.get_config(), **cifar), device_count=8)
    with pytest.raises(config_lib.ConfigError, match="total stride 8"):
        config_lib.validate(
            configure(stl10_se_resnet.get_config(), **{**cifar, "data.image_size": 4}),
            device_count=8,
        )
    with pytest.raises(config_lib.ConfigError, match=r"^config\.model\.stem: stem='3x3'"):
        config_lib.validate(
            configure(stl10_se_resnet.get_config(), **{"model.stem": "3x3"}), device_count=8
        )


@pytest.mark.parametrize(
    "overrides,fix",
    [
        ({"model.se.placement": "inside"}, "config.model.se.placement: 'inside' is not known"),
        ({"model.se.blocks": "conv6_x"}, "names no block of se_resnet18.*conv5_x"),
        (
            {"model.se.placement": "conv3x3"},
            r"config\.model\.se\.placement: SE placement 'conv3x3' is not available in this "
            r"basic-block network.*\(se_resnet18\)",
        ),
    ],
)
def test_residual_network_se_options_are_checked(overrides, fix):
    from configs import stl10_se_resnet

    with pytest.raises(config_lib.ConfigError, match=fix):
        config_lib.validate(configure(stl10_se_resnet.get_config(), **overrides), device_count=8)


def test_init_from_must_be_a_model_directory_of_the_configured_network(tmp_path):
    config = stl10.get_config()
    config.init_from = str(tmp_path)
    with pytest.raises(config_lib.ConfigError, match=r"config\.init_from: .* holds no model\.json"):
        config_lib.validate(config, device_count=8)
    (tmp_path / "model.json").write_text('{"model": {"name": "se_resnet50"}}')
    with pytest.raises(config_lib.ConfigError, match="holds se_resnet50 weights.*model.name=se_"):
        config_lib.validate(config, device_count=8)


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
    config.data.data_dir = str(tmp_path / "empty_tfds")  # nothing prepared here
    return configure(config, **overrides)


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


@pytest.fixture
def no_model_building(monkeypatch):
    """Building the train state is where a run's expensive work starts: a refusal must come
    before it."""

    def expensive(*args, **kwargs):
        raise AssertionError("the train state was built before the refusal")

    monkeypatch.setattr(steps, "create_train_state", expensive)


def test_missing_dataset_names_data_dir_and_archive_option_and_creates_no_workdir(
    tmp_path, no_model_building
):
    workdir = str(tmp_path / "new_run")
    with pytest.raises(DatasetUnavailableError) as e:
        trainer.train_and_evaluate(offline_stl10_config(tmp_path), workdir)
    message = str(e.value)
    assert str(tmp_path / "empty_tfds") in message and "config.data.data_dir" in message
    assert "config.data.stl10_archive" in message and "\n" not in message
    assert not os.path.exists(workdir)


@pytest.mark.parametrize(
    "damage,bad_file", [("truncated", "stl10_binary.tar.gz"), ("short_member", "train_X.bin")]
)
def test_corrupt_archive_names_the_file_and_leaves_the_workdir(tmp_path, damage, bad_file):
    workdir = _existing_workdir(tmp_path)
    before = tree_hash(workdir)
    config = offline_stl10_config(tmp_path, stl10_archive=_archive(tmp_path, damage))
    with pytest.raises(
        Stl10ArchiveError, match=rf"config\.data\.stl10_archive: .*{bad_file}.*(download|again)"
    ):
        trainer.train_and_evaluate(config, workdir)
    assert tree_hash(workdir) == before


def test_incompatible_checkpoint_is_refused_before_the_dataset_is_touched(
    tmp_path, no_model_building
):
    """The dataset here is unavailable: reaching it would raise DatasetUnavailableError instead."""
    from test_checkpointing import make_state

    workdir = _existing_workdir(tmp_path)
    saved = offline_stl10_config(tmp_path)
    manager = checkpointing.CheckpointManager(workdir, saved, num_classes=10)
    manager.save(3, make_state(3))
    manager.wait_until_finished()
    manager.close()
    before = tree_hash(workdir)
    with pytest.raises(
        checkpointing.IncompatibleCheckpointError,
        match=r"model\.width_multiplier=1\.0 but the config has config\.model\.width_multiplier"
        r"=0\.5.*--config\.model\.width_multiplier=1\.0.*nothing was deleted",
    ):
        trainer.train_and_evaluate(offline_stl10_config(tmp_path, width_multiplier=0.5), workdir)
    assert tree_hash(workdir) == before


def test_bad_config_fails_before_the_workdir_is_created(tmp_path, no_model_building):
    workdir = str(tmp_path / "new_run")
    with pytest.raises(config_lib.ConfigError, match=r"config\.optim\.label_smoothing"):
        trainer.train_and_evaluate(offline_stl10_config(tmp_path, label_smoothing=1.5), workdir)
    assert not os.path.exists(workdir) and not os.path.exists(tmp_path / "empty_tfds")
