"""Config validation: every bad field fails in seconds, with one line naming it and the fix.

Each rule lives here once and runs before any dataset preparation, compilation or write to
the workdir. The config has sections `model` (the model factory's keyword arguments),
`data`, `optim`, and top-level run settings (see configs/stl10.py).
"""

from __future__ import annotations

import json
import os
import tempfile

import jax

from senet_jax import remat, steps


class ConfigError(ValueError):
    """A config field has a value the job cannot run with."""


def _fail(field: str, message: str) -> None:
    raise ConfigError(f"config.{field}: {message}")


def _get(config, field: str):
    node = config
    for part in field.split("."):
        node = node[part]
    return node


def _check_choice(config, field: str, choices) -> None:
    value = _get(config, field)
    if value not in choices:
        ordered = sorted(map(str, choices))
        _fail(
            field,
            f"{value!r} is not known; use one of {', '.join(ordered)} "
            f"(e.g. --config.{field}={ordered[0]})",
        )


def _check_positive(config, field: str, kind=(int, float)) -> None:
    value = _get(config, field)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        noun = "integer" if kind is int else "number"
        _fail(field, f"must be a positive {noun}, got {value!r}")


def _check_fraction(config, field: str) -> None:
    value = _get(config, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        _fail(field, f"must be in [0, 1), got {value!r}")


def check_workdir(workdir: str | None) -> None:
    """The workdir (or the nearest folder that exists above it) must take a new file.

    A real write probe, not os.access: as root, os.access says yes to read-only mounts,
    and only a write finds a full disk or a read-only filesystem. The probe file is removed.
    """
    if not workdir:
        raise ConfigError("--workdir is empty: pass --workdir DIR, where results go")
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
    for section in ("model", "data", "optim"):
        if not hasattr(config.get(section), "items"):
            _fail(section, "is missing: this config predates config sections (see configs/)")
    _validate_run(config, device_count or jax.device_count())
    _validate_init_from(config)
    _validate_model(config)
    _validate_se(config)
    _validate_optim(config)
    _validate_data(config)
    _validate_semi_supervised(config)
    if workdir is not None:
        check_workdir(workdir)


def _validate_run(config, devices: int) -> None:
    for field in (
        "batch_size",
        "num_epochs",
        "log_every_steps",
        "checkpoint_every_steps",
        "keep_checkpoints",
    ):
        _check_positive(config, field, int)
    if config.get("total_steps") is not None:
        _check_positive(config, "total_steps", int)
    _check_positive(config, "eval_every_epochs")
    _check_choice(config, "rematerialize", remat.POLICIES)
    if config.get("microbatch_size") is not None:
        _check_positive(config, "microbatch_size", int)
    if config.rematerialize != "none" and config.ssl.method != "none":
        _fail(
            "rematerialize",
            f"{config.rematerialize!r} applies to the supervised step only; with "
            f"config.ssl.method={config.ssl.method!r} leave it at 'none'",
        )
    if config.batch_size % devices:
        fix = max(devices, config.batch_size // devices * devices)
        _fail(
            "batch_size",
            f"{config.batch_size} does not divide evenly over {devices} devices "
            f"({jax.process_count()} process(es)); use a multiple of {devices}, "
            f"e.g. --config.batch_size={fix}",
        )
    per_device, size = config.batch_size // devices, config.get("microbatch_size")
    if not steps.microbatch_count(per_device, size):
        parts = next(
            k for k in range(-(-per_device // size), per_device + 1) if per_device % k == 0
        )
        _fail(
            "microbatch_size",
            f"the {per_device} images each of {devices} device(s) takes do not split into "
            f"equal parts of at most {size}; use --config.microbatch_size={per_device // parts} "
            f"({parts} parts) or another batch_size",
        )


def _validate_init_from(config) -> None:
    """A model directory (python -m senet_jax.weights) or timm:NAME[.TAG] (fetched from the hub
    when training starts) of the configured network."""
    source = config.get("init_from")
    if not source:
        return
    if str(source).startswith("timm:"):
        _check_timm_init_from(config, str(source))
        return
    directory = source
    path = os.path.join(str(directory), "model.json")
    make = "python -m senet_jax.weights --timm NAME --out DIR, or init_from=timm:NAME"
    if not os.path.isfile(path):
        _fail("init_from", f"{directory} holds no model.json: not a model directory ({make})")
    try:
        with open(path) as f:
            name = json.load(f)["model"]["name"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        _fail("init_from", f"{path} is unreadable ({type(e).__name__}); write it again ({make})")
    if name != config.model.name:
        _fail(
            "init_from",
            f"{directory} holds {name} weights but config.model.name is "
            f"{config.model.name!r}; use --config.model.name={name} and its options",
        )


def _check_timm_init_from(config, source: str) -> None:
    """The weights are known, and config.model describes their network option by option."""
    from senet_jax import hub, weights

    try:
        full, _ = hub.resolve(source)
    except hub.HubError as e:
        _fail("init_from", str(e))
    name, options, _ = weights.timm_architecture(full)
    wanted = weights.model_config(name, options)
    if config.model.name != name:
        _fail("init_from", f"{full} is a {name}: set --config.model.name={name} and its options")
    network = weights.build_model(wanted, 1000)  # its defaults fill what options leave out
    configured = weights.build_model(config.model.to_dict(), 1000)  # so do the config's
    for key in ("stride_in_1x1", "stem_pool", "branch_relu", "relu6", "padding", "stem_strides"):
        value, have = getattr(network, key, None), getattr(configured, key, None)
        if value is not None and have != value:
            _fail(
                "init_from",
                f"{full} needs model.{key}={value!r}, the config has {have!r}; "
                f"set --config.model.{key}={value}",
            )
    ours = config.model.get("se") or {}
    for key, value in wanted["se"].items() if getattr(network, "se", None) else ():
        if key in ours and _plain(ours[key]) != _plain(value):
            _fail(
                "init_from",
                f"{full} needs model.se.{key}={value!r}, the config has {ours[key]!r}; "
                f"set --config.model.se.{key}={value}",
            )


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _validate_model(config) -> None:
    from senet_jax import models
    from senet_jax.models.ops.conv import CONV_IMPLEMENTATIONS, resolve_conv_implementation
    from senet_jax.models.ops.depthwise import FORMULATIONS

    _check_choice(config, "model.name", models.list_models())
    _check_choice(config, "model.depthwise_implementation", {"auto", *FORMULATIONS})
    _check_choice(config, "model.conv_implementation", {"auto", *CONV_IMPLEMENTATIONS})
    if config.model.conv_implementation == "onednn":
        try:  # CPU only, and its library must build here: say so before any work.
            resolve_conv_implementation("onednn")
        except ValueError as e:
            _fail("model.conv_implementation", str(e))
    _check_choice(config, "model.stem_strides", {1, 2})
    _check_positive(config, "model.width_multiplier")
    _check_fraction(config, "model.dropout_rate")


def _validate_se(config) -> None:
    from senet_jax import models
    from senet_jax.models.se import GATES, SQUEEZE_OPS, parse_blocks

    architecture = models.architecture(config.model.name)
    _validate_attention_kind(config)
    _check_positive(config, "model.se.reduction", int)
    _check_positive(config, "model.se.min_features", int)
    _check_choice(config, "model.se.squeeze", SQUEEZE_OPS)
    _check_choice(config, "model.se.gate", GATES)
    if "placement" in config.model.se:
        _check_choice(config, "model.se.placement", architecture.SE_PLACEMENTS)
    blocks = parse_blocks(config.model.se.blocks)
    unknown = [] if blocks == "all" else [b for b in blocks if b not in architecture.SE_BLOCKS]
    if unknown:
        valid = ", ".join(map(str, architecture.SE_BLOCKS))
        _fail(
            "model.se.blocks",
            f"{config.model.se.blocks!r} names no block of {config.model.name} "
            f"({', '.join(map(str, unknown))}); use all, or a comma-separated "
            f"list of {valid} (e.g. --config.model.se.blocks={architecture.SE_BLOCKS[-1]})",
        )
    _check_architecture_options(config)


def _validate_attention_kind(config) -> None:
    """config.model.se.kind and the options only some kinds take (configs before kinds
    lack these fields: SE applies)."""
    from senet_jax.models.attention.gather_excite import GATHERS, extent_error
    from senet_jax.models.se import KINDS, SEOptions, takes, unused_options

    se = config.model.se
    if "kind" not in se:
        return
    _check_choice(config, "model.se.kind", KINDS)
    if "gather" in se:
        _check_choice(config, "model.se.gather", GATHERS)
    if "extent" in se and extent_error(se.extent):
        _fail("model.se.extent", f"{extent_error(se.extent)} (e.g. --config.model.se.extent=4)")
    for field in unused_options(se):
        kinds = [k for k, kind in KINDS.items() if field in kind.options]
        _fail(
            f"model.se.{field}",
            f"{se[field]!r} has no effect with model.se.kind={se.kind!r} ({takes(se.kind)}); "
            f"leave it at {getattr(SEOptions, field)!r} or use kind {' or '.join(kinds)}",
        )


def _check_architecture_options(config) -> None:
    """What only the network itself knows (e.g. no SE on the 3x3 of a basic-block ResNet,
    its total stride): its own check, run on the module without building any parameters."""
    from senet_jax import models

    model = models.create_model(**config.model.to_dict(), num_classes=2)
    check = getattr(model, "check_options", None)
    try:
        if check is not None:
            check()
    except ValueError as e:
        option = str(e).split("=", 1)[0]
        field = f"model.{option}" if option in config.model else "model"
        field = "model.se.placement" if "placement" in str(e) else field
        _fail(field, f"{e} ({config.model.name})")
    stride = model.total_stride()
    if config.data.image_size < stride:
        _fail(
            "data.image_size",
            f"{config.data.image_size} is smaller than the network's total stride {stride} "
            f"(model.stem_strides={config.model.stem_strides}); "
            f"use --config.data.image_size={stride} or more",
        )


def _validate_optim(config) -> None:
    from senet_jax import optim

    _check_choice(config, "optim.name", optim.OPTIMIZERS)
    _check_choice(config, "optim.schedule", optim.SCHEDULES)
    _check_positive(config, "optim.learning_rate")
    _check_fraction(config, "optim.momentum")
    _check_fraction(config, "optim.label_smoothing")
    decay = config.optim.weight_decay
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or decay < 0:
        _fail("optim.weight_decay", f"must be >= 0, got {decay!r}")
    if "decay_epochs" in config.optim:
        _check_positive(config, "optim.decay_epochs")
        factor = config.optim.decay_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 1:
            _fail("optim.decay_factor", f"must be in (0, 1], got {factor!r} (e.g. 0.1)")
    warmup = config.optim.warmup_epochs
    if config.get("total_steps") is not None:  # in steps: checked once steps_per_epoch is known
        if not 0 <= warmup:
            _fail("optim.warmup_epochs", f"must be >= 0, got {warmup!r}")
    elif not 0 <= warmup < config.num_epochs:
        _fail(
            "optim.warmup_epochs",
            f"must be in [0, num_epochs={config.num_epochs}), got {warmup!r}",
        )


def _validate_data(config) -> None:
    from senet_jax.data import CROPS

    data = config.data
    _check_choice(config, "data.crop", CROPS)
    _check_positive(config, "data.image_size", int)
    _validate_fraction_of_side(config, "data.crop_padding", below=1.0)
    _validate_fraction_of_side(config, "data.cutout_size", below=0.5, inclusive=True)
    for field in ("mean", "std"):
        value = data[field]
        if value is not None and (len(value) != 3 or min(value) < 0):
            _fail(f"data.{field}", f"must hold 3 per-channel values in [0, 1] units, got {value!r}")
    if data.std is not None and min(data.std) <= 0:
        _fail("data.std", f"must be positive, got {tuple(data.std)!r}")
    if (data.mean is None) != (data.std is None):
        _fail("data.mean", "set data.mean and data.std together, or leave both unset (computed)")
    held_out = data.get("validation_examples", 0)
    if isinstance(held_out, bool) or not isinstance(held_out, int) or held_out < 0:
        _fail("data.validation_examples", f"must be a whole number >= 0, got {held_out!r}")
    _validate_stream(config)
    _validate_data_source(config)


def _validate_semi_supervised(config) -> None:
    """config.ssl and the labelled/unlabelled data fields (senet_jax/semi_supervised/settings.py);
    the unlabelled images are held in memory, so the streamed path does not train them yet."""
    from senet_jax.semi_supervised import settings

    found = settings.problem(config)
    if found is not None:
        _fail(*found)
    if config.get("ssl") is not None and config.ssl.method != "none" and config.data.stream:
        _fail(
            "data.stream",
            f"ssl.method={config.ssl.method!r} reads its unlabelled images from memory; the "
            "streamed path does not train them yet: set --config.data.stream=False",
        )


def _validate_stream(config) -> None:
    """The streamed input path's fields (configs before it lack them: defaults apply)."""
    data = config.data
    if "max_cache_bytes" in data:
        _check_positive(config, "data.max_cache_bytes")
    if "shuffle_buffer" in data:
        _check_positive(config, "data.shuffle_buffer", int)
    if "eval_crop" in data:
        crop = data.eval_crop
        if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0 < crop <= 1:
            _fail("data.eval_crop", f"must be in (0, 1], got {crop!r} (e.g. 0.875)")
    if "stream" in data and not isinstance(data.stream, bool):
        _fail("data.stream", f"must be True or False, got {data.stream!r}")


def _validate_fraction_of_side(config, field: str, *, below: float, inclusive=False) -> None:
    """Crop padding and cutout are fractions of the image side, so they scale with it."""
    value, size = _get(config, field), config.data.image_size
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and 0 <= value and (value <= below if inclusive else value < below):
        return
    bounds = f"[0, {below:g}{']' if inclusive else ')'}"
    hint, example = "", below / 2
    if number and value >= 1:  # a length in pixels, as configs before fractions had it
        hint, example = f" ({value:g} px of {size} is {value / size:.4g})", value / size
    _fail(
        field,
        f"is a fraction of the image side in {bounds}, got {value!r}{hint}; "
        f"e.g. --config.{field}={example:.4g}",
    )


def _validate_data_source(config) -> None:
    data = config.data
    if data.synthetic_stl10 is not None:
        sizes = tuple(data.synthetic_stl10)
        if len(sizes) not in (2, 3) or min(sizes) <= 0:
            _fail(
                "data.synthetic_stl10",
                "must be (train_examples, test_examples[, unlabelled_examples]), all positive, "
                f"got {sizes!r}",
            )
        if sizes[0] < config.batch_size:
            _fail(
                "data.synthetic_stl10",
                f"{sizes[0]} training examples make no batch of batch_size={config.batch_size}",
            )
    import tensorflow_datasets as tfds

    from senet_jax.data import folder

    if folder.parse_folder_dataset(data.dataset) is not None:
        pass  # its folder is checked when the dataset is read, naming each problem
    elif data.dataset not in tfds.list_builders(with_community_datasets=False):
        _fail(
            "data.dataset",
            f"{data.dataset!r} is not a tensorflow_datasets builder; use e.g. "
            "--config.data.dataset=stl10 (tfds.list_builders() lists them), or "
            "folder:/path for your own images",
        )
    archive = data.stl10_archive
    if archive and data.dataset != "stl10":
        _fail(
            "data.stl10_archive",
            f"is only for dataset='stl10', not {data.dataset!r}; unset it or set "
            "--config.data.dataset=stl10",
        )
    local = archive and not str(archive).startswith("gs://")
    if local and data.synthetic_stl10 is None and not os.path.exists(archive):
        _fail(
            "data.stl10_archive",
            f"{archive} does not exist; give the path of stl10_binary.tar.gz "
            "or of the folder holding stl10_binary/",
        )
