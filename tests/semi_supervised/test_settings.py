"""The semi-supervised config fields: the draft config passes; every bad value is one line
naming its field and a fix."""

from __future__ import annotations

import pytest

from configs import stl10, stl10_fixmatch
from senet_jax.semi_supervised import settings


def config_with(**fields):
    c = stl10_fixmatch.get_config()
    for dotted, value in fields.items():
        section, name = dotted.split("__")
        c[section][name] = value
    return c


def test_the_fixmatch_config_and_a_config_without_ssl_pass():
    assert settings.problem(stl10_fixmatch.get_config()) is None
    assert settings.problem(stl10.get_config()) is None
    for method in settings.METHODS:
        assert settings.problem(config_with(ssl__method=method)) is None
    for batch_norm in settings.BATCH_NORMS:
        assert settings.problem(config_with(ssl__batch_norm=batch_norm)) is None


@pytest.mark.parametrize(
    "fields,field,fix",
    [
        ({"ssl__method": "mixmatch"}, "ssl.method", "--config.ssl.method=fixmatch"),
        ({"ssl__threshold": 0.0}, "ssl.threshold", "--config.ssl.threshold=0.95"),
        ({"ssl__threshold": 1.5}, "ssl.threshold", "(0, 1]"),
        ({"ssl__unlabelled_ratio": 0}, "ssl.unlabelled_ratio", "--config.ssl.unlabelled_ratio=7"),
        ({"ssl__weight": -1.0}, "ssl.weight", ">= 0"),
        ({"ssl__ema_decay": 1.0}, "ssl.ema_decay", "[0, 1)"),
        ({"ssl__ema_decay": None}, "ssl.ema_decay", "got None"),
        ({"data__unlabelled_split": ""}, "data.unlabelled_split", "split name"),
        ({"data__labels_per_class": 0}, "data.labels_per_class", "positive integer"),
        ({"data__labelled_fold": 10}, "data.labelled_fold", "fold 0-9"),
        ({"data__strong_augment": "ctaugment"}, "data.strong_augment", "randaugment"),
        ({"ssl__batch_norm": "separate"}, "ssl.batch_norm", "--config.ssl.batch_norm=split"),
    ],
)
def test_a_bad_value_names_its_field_and_the_fix(fields, field, fix):
    found, message = settings.problem(config_with(**fields))
    assert found == field
    assert fix in message and "\n" not in message


@pytest.mark.parametrize(
    "fields,field,fix",
    [
        (
            {"data__dataset": "cifar10", "data__labelled_fold": 0, "data__unlabelled_split": None},
            "data.labelled_fold",
            "labels_per_class",
        ),
        ({"data__labelled_fold": 1, "data__labels_per_class": 40}, "data.labelled_fold", "unset"),
        ({"data__unlabelled_split": "rest"}, "data.unlabelled_split", "labels_per_class=N"),
        ({"data__unlabelled_split": None}, "ssl.method", "unlabelled_split=unlabelled"),
        (
            {"data__unlabelled_split": None, "data__dataset": "cifar10"},
            "ssl.method",
            "unlabelled_split=rest with --config.data.labels_per_class=N",
        ),
    ],
)
def test_fields_that_do_not_go_together(fields, field, fix):
    found, message = settings.problem(config_with(**fields))
    assert (found, fix in message) == (field, True), message


def test_the_labels_alone_need_no_unlabelled_source():
    config = config_with(ssl__method="none", data__unlabelled_split=None)
    assert settings.problem(config) is None


def test_step_options_come_from_the_config():
    options = settings.step_options(config_with(ssl__method="flexmatch", ssl__threshold=0.9))
    assert options == {
        "method": "flexmatch",
        "threshold": 0.9,
        "weight": 1.0,
        "ema_decay": 0.999,
        "label_smoothing": 0.0,
        "batch_norm": "joint",
    }
    assert settings.step_options(config_with(ssl__batch_norm="split"))["batch_norm"] == "split"
    del_field = config_with()
    del del_field.ssl["batch_norm"]  # a config file written before the field: FixMatch's
    assert settings.problem(del_field) is None
    assert settings.step_options(del_field)["batch_norm"] == "joint"
