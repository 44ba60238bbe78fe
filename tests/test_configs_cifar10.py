"""configs/cifar10.py: every preset and both families validate, the presets differ in
regularisation as the docstring says, the ResNet variant is the CIFAR network, and the fixmatch
preset's sweep gives its labels-alone baseline the same steps and labelled batches."""

from __future__ import annotations

import shlex

import jax
import jax.numpy as jnp
import pytest

from configs import cifar10
from senet_jax import config as config_lib
from senet_jax import models


@pytest.mark.parametrize(
    "argument", ["full", "budget", "fixmatch", "full,resnet", "budget,resnet", "fixmatch,resnet"]
)
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


def test_the_fixmatch_preset_has_fixmatch_settings_and_a_step_budget():
    config = cifar10.get_config("fixmatch")
    assert config.ssl.method == "fixmatch" and config.data.unlabelled_split == "rest"
    assert config.data.labels_per_class * 10 == 4_000
    assert (config.ssl.threshold, config.ssl.unlabelled_ratio, config.ssl.weight) == (0.95, 7, 1)
    assert config.ssl.ema_decay == 0.999 and config.data.strong_augment == "randaugment"
    assert config.optim.learning_rate == 0.03 and config.optim.warmup_epochs == 0
    assert config.batch_size == 64 and config.total_steps == cifar10.FIXMATCH_STEPS > 0
    assert config.data.cutout_size == 0.5  # the strong view's alone
    assert config.optim.label_smoothing == 0 and config.model.dropout_rate == 0


def _planned_configs(capsys, tmp_path) -> dict[str, list]:
    """ssl.method -> the configs of the runs the README's sweep command plans, with each
    command's --config.FIELD=VALUE flags applied to the preset."""
    from config_utils import configure

    from senet_jax import sweep

    code = sweep.main(
        [
            "--config", "configs/cifar10.py:fixmatch",
            "--set", "ssl.method=none,fixmatch",
            "--seeds", "0,1,2",
            "--baseline", "ssl.method=none",
            "--workdir", str(tmp_path / "sweep"),
            "--print-commands",
            "--", "--config.data.dataset=folder:/nowhere/cifar10",
        ]
    )  # fmt: skip
    assert code == 0
    planned: dict[str, list] = {}
    for line in capsys.readouterr().out.splitlines():
        words = shlex.split(line)
        assert words[words.index("--config") + 1] == "configs/cifar10.py:fixmatch"
        flags = [a for a in words if a.startswith("--config.")]
        fields = dict(flag[len("--config.") :].split("=", 1) for flag in flags)
        fields["seed"] = int(fields["seed"])
        config = configure(cifar10.get_config("fixmatch"), **fields)
        planned.setdefault(config.ssl.method, []).append(config)
    assert not (tmp_path / "sweep").exists()  # planned, nothing run
    return planned


def test_the_sweep_gives_the_labels_alone_baseline_the_same_steps_and_labelled_batches(
    capsys, tmp_path
):
    from senet_jax import trainer

    planned = _planned_configs(capsys, tmp_path)
    assert sorted(planned) == ["fixmatch", "none"]
    for fixmatch, alone in zip(planned["fixmatch"], planned["none"], strict=True):
        config_lib.validate(alone, device_count=8)  # unlabelled_split is allowed, unused
        assert alone.seed == fixmatch.seed
        assert alone.total_steps == fixmatch.total_steps == cifar10.FIXMATCH_STEPS
        assert alone.batch_size == fixmatch.batch_size == 64
        # The labelled stream is a function of these alone: the same batches, step by step.
        assert trainer.labelled_data(alone).to_dict() == trainer.labelled_data(fixmatch).to_dict()
        assert trainer.labelled_data(alone).cutout_size == 0  # cutout is the strong view's
    assert [c.seed for c in planned["none"]] == [0, 1, 2]
