"""configs/cifar10.py: both budget presets and both families validate, the presets differ in
regularisation as the docstring says, and the ResNet variant is the CIFAR network."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from configs import cifar10
from senet_jax import config as config_lib
from senet_jax import models


@pytest.mark.parametrize("argument", ["full", "budget", "full,resnet", "budget,resnet"])
def test_every_preset_and_family_validates(argument, tmp_path):
    config = cifar10.get_config(argument)
    config_lib.validate(config, workdir=str(tmp_path / "w"))
    assert config.data.image_size == 32 and config.data.dataset == "cifar10"
    assert not (tmp_path / "w").exists()  # validation writes nothing


def test_the_budget_preset_drops_long_schedule_regularisation():
    full, budget = cifar10.get_config("full"), cifar10.get_config("budget")
    assert budget.num_epochs < full.num_epochs
    assert full.data.cutout_size > 0 and full.optim.label_smoothing > 0
    assert full.model.dropout_rate > 0
    assert budget.data.cutout_size == 0 and budget.optim.label_smoothing == 0
    assert budget.model.dropout_rate == 0
    assert budget.optim.warmup_epochs < full.optim.warmup_epochs


@pytest.mark.parametrize("name, expected", [("resnet18", 11_173_962), ("se_resnet18", 11_263_042)])
def test_resnet_family_is_the_cifar_network(name, expected):
    config = cifar10.get_config("full,resnet")
    options = dict(config.model)
    options.pop("name")
    model = models.create_model(name, num_classes=10, **options)
    x = jnp.zeros((1, 32, 32, 3))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    assert sum(v.size for v in jax.tree.leaves(variables["params"])) == expected
    logits = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
    assert logits.shape == (1, 10)


@pytest.mark.parametrize("argument", ["short", "budget,vgg"])
def test_unknown_argument_names_the_choices(argument):
    with pytest.raises(ValueError, match="budget") as error:
        cifar10.get_config(argument)
    assert "resnet" in str(error.value)
