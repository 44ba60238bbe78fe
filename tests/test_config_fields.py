"""A config's fields by dotted name, and the one-line hint for a name that is none of them."""

from __future__ import annotations

import re

import pytest

from configs import stl10
from senet_jax import config_fields


@pytest.mark.parametrize(
    "path,expected",
    [
        (
            "image_size",
            "config.image_size is now config.data.image_size.*--config.data.image_size=",
        ),
        ("se_reduction", "now config.model.se.reduction"),
        ("optimizer", "now config.optim.name"),
        ("learning_rate", "now config.optim.learning_rate"),
        ("num_epoch", "config.num_epoch is not a config field; did you mean config.num_epochs?"),
        ("model.se.gait", "did you mean config.model.se.gate?"),
    ],
)
def test_unknown_or_moved_field_names_the_real_one(path, expected):
    message = config_fields.unknown_field_message(stl10.get_config(), path)
    assert re.search(expected, message) and "\n" not in message


def test_every_field_is_known():
    config = stl10.get_config()
    for path in config_fields.field_paths(config):
        assert config_fields.unknown_field_message(config, path) is None
    assert "model.se.blocks" in config_fields.field_paths(config)


def test_field_types_give_a_placeholder_its_declared_type():
    types = config_fields.field_types(stl10.get_config())
    assert types["data.data_dir"] is str  # None until set: the type an override must have
    assert types["data.mean"] is tuple
    assert types["model.se.reduction"] is int and types["optim.learning_rate"] is float


def test_scalar_fields_are_what_hparams_can_show():
    config = stl10.get_config()
    config.data.data_dir = "/data/tfds"
    scalars = config_fields.scalar_fields(config)
    assert scalars["model.se.reduction"] == 16 and scalars["data.data_dir"] == "/data/tfds"
    assert scalars["data.flip"] is True
    assert "data.mean" not in scalars  # unset tuple placeholder
    assert "model.se" not in scalars  # sections are walked, not listed


def test_the_first_unknown_override_is_named():
    config = stl10.get_config()
    argv = ["--workdir=w", "--config.batch_size=8", "--config.num_epoch=3", "--config.x=1"]
    message = config_fields.unknown_override_message(config, argv)
    assert message.startswith("config.num_epoch is not a config field")
    assert config_fields.unknown_override_message(config, argv[:2]) is None
