"""Config validation: every bad field fails in seconds, with one line naming it and the fix.

Runs before any dataset preparation, compilation or write to the workdir.
"""
from __future__ import annotations

import os
import tempfile

import jax


class ConfigError(ValueError):
    """A config field has a value the job cannot run with."""


def _fail(field: str, message: str) -> None:
    raise ConfigError(f"config.{field}: {message}")


def _check_choice(config, field: str, choices) -> None:
    value = config.get(field)
    if value not in choices:
        _fail(
            field,
            f"{value!r} is not known; use one of {', '.join(map(str, sorted(choices)))} "
            f"(e.g. --config.{field}={sorted(choices)[0]})",
        )


def _check_positive(config, field: str, kind=(int, float)) -> None:
    value = config.get(field)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        _fail(field, f"must be a positive {'integer' if kind is int else 'number'}, got {value!r}")


def check_workdir(workdir: str | None) -> None:
    """The workdir (or the nearest folder that exists above it) must take a new file.

    A real write probe, not os.access: as root, os.access says yes to read-only mounts,
    and only a write finds a full disk or a read-only filesystem. The probe file is removed.
    """
    if not workdir:
        raise ConfigError(
            "--workdir is empty: pass --workdir DIR, where checkpoints and results go"
        )
    if workdir.startswith("gs://"):
        return
    path = os.path.abspath(workdir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise ConfigError(
            f"--workdir {workdir}: {path} is a file, not a folder; choose another --workdir"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".senet_jax_write_probe_", dir=path)
    except OSError as e:
        raise ConfigError(
            f"--workdir {workdir}: cannot create files in {path} ({e.strerror or e}); "
            f"choose a writable --workdir or fix its permissions"
        ) from None
    os.close(fd)
    os.remove(probe)


def validate(config, *, workdir: str | None = None, device_count: int | None = None) -> None:
    """Raises ConfigError for the first invalid field; returns None when the config can run."""
    from senet_jax import trainer  # the registries live with the code that uses them
    from senet_jax.input_pipeline import CROPS
    from senet_jax.models import list_models
    from senet_jax.models.mobilenet_v1 import total_stride
    from senet_jax.models.ops.conv import CONV_IMPLEMENTATIONS
    from senet_jax.models.ops.depthwise import FORMULATIONS

    _check_choice(config, "model", list_models())
    _check_choice(config, "optimizer", trainer.OPTIMIZERS)
    _check_choice(config, "schedule", trainer.SCHEDULES)
    _check_choice(config, "crop", CROPS)
    _check_choice(config, "depthwise_implementation", {"auto", *FORMULATIONS})
    if "conv_implementation" in config:  # configs written before the field existed mean "auto"
        _check_choice(config, "conv_implementation", {"auto", *CONV_IMPLEMENTATIONS})
    _check_choice(config, "stem_strides", {1, 2})
    for field in (
        "batch_size",
        "num_epochs",
        "log_every_steps",
        "checkpoint_every_steps",
        "keep_checkpoints",
        "image_size",
        "se_reduction",
    ):
        _check_positive(config, field, int)
    for field in ("learning_rate", "width_multiplier", "eval_every_epochs"):
        _check_positive(config, field)
    if not isinstance(config.weight_decay, (int, float)) or config.weight_decay < 0:
        _fail("weight_decay", f"must be >= 0, got {config.weight_decay!r}")
    if not isinstance(config.label_smoothing, (int, float)) or not 0 <= config.label_smoothing < 1:
        _fail("label_smoothing", f"must be in [0, 1), got {config.label_smoothing!r}")
    if not 0 <= config.dropout_rate < 1:
        _fail("dropout_rate", f"must be in [0, 1), got {config.dropout_rate!r}")
    if config.warmup_epochs < 0 or config.warmup_epochs >= config.num_epochs:
        _fail(
            "warmup_epochs",
            f"must be in [0, num_epochs={config.num_epochs}), got {config.warmup_epochs!r}",
        )
    stride = total_stride(config.stem_strides)
    if config.image_size < stride:
        _fail(
            "image_size",
            f"{config.image_size} is smaller than the network's total stride {stride} "
            f"(stem_strides={config.stem_strides}); use --config.image_size={stride} or more",
        )
    if config.crop == "pad_crop" and config.crop_padding < 0:
        _fail("crop_padding", f"must be >= 0, got {config.crop_padding!r}")
    if not 0 <= config.cutout_size <= config.image_size:
        _fail(
            "cutout_size",
            f"must be in [0, image_size={config.image_size}], got {config.cutout_size!r}",
        )
    if len(config.mean) != 3 or len(config.std) != 3 or min(config.std) <= 0:
        _fail("mean", "mean and std must each hold 3 per-channel values, std all positive")
    devices = device_count or jax.device_count()
    if config.batch_size % devices:
        _fail(
            "batch_size",
            f"{config.batch_size} does not divide evenly over {devices} devices "
            f"({jax.process_count()} process(es)); use a multiple of {devices}, "
            f"e.g. --config.batch_size={max(devices, config.batch_size // devices * devices)}",
        )
    if config.get("synthetic_stl10") is not None:
        sizes = tuple(config.synthetic_stl10)
        if len(sizes) != 2 or min(sizes) <= 0:
            _fail(
                "synthetic_stl10",
                f"must be (train_examples, test_examples), both positive, got {sizes!r}",
            )
        if sizes[0] < config.batch_size:
            _fail(
                "synthetic_stl10",
                f"{sizes[0]} training examples make no batch of batch_size={config.batch_size}",
            )
    import tensorflow_datasets as tfds

    if config.dataset not in tfds.list_builders(with_community_datasets=False):
        _fail(
            "dataset",
            f"{config.dataset!r} is not a tensorflow_datasets builder; use e.g. --config.dataset=stl10 "
            f"(tfds.list_builders() lists them)",
        )
    if config.stl10_archive and config.dataset != "stl10":
        _fail(
            "stl10_archive",
            f"is only for dataset='stl10', not {config.dataset!r}; unset it or set --config.dataset=stl10",
        )
    if (
        config.stl10_archive
        and not config.get("synthetic_stl10")
        and not str(config.stl10_archive).startswith("gs://")
        and not os.path.exists(config.stl10_archive)
    ):
        _fail(
            "stl10_archive",
            f"{config.stl10_archive} does not exist; give the path of stl10_binary.tar.gz "
            f"or of the folder holding stl10_binary/",
        )
    if workdir is not None:
        check_workdir(workdir)
