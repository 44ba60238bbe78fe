"""Pretrained weights: timm state_dicts to Flax variables, and a model directory to keep them.

    python -m senet_jax.weights --timm seresnet50.a1_in1k --out DIR     # from the hub
    python -m senet_jax.weights --timm seresnet50 --checkpoint seresnet50.safetensors --out DIR

`from_timm(name, state_dict)` needs only numpy arrays. Neither torch nor timm is imported
for hub downloads or .safetensors files (preprocessing facts and class names are package
data, see hub.py); torch (the `convert` extra) reads .pth files only, which includes timm's
`legacy_*` weights (kept as .pth at a release address, not on the hub).

A model directory (what `load_pretrained(DIR)` and `config.init_from=DIR` read):

    DIR/model.json     format, version, model (a config.model-style dict: name, options, se),
                       num_classes, class_names (or null), preprocessing (input_size,
                       resize_size, crop_size, crop_pct, mean, std, interpolation), source, params
    DIR/variables/     {"params", "batch_stats"} saved by orbax's StandardCheckpointer
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from senet_jax import hub
from senet_jax.models import create_model
from senet_jax.models.se import SEOptions

log = logging.getLogger("senet_jax")

FORMAT = "senet_jax.model_dir"
VERSION = 1
# Not weights: PyTorch's BatchNorm step counters.
_IGNORED = re.compile(r"(^|\.)num_batches_tracked$")
_DEPTHS = "18|34|50|101|152"
# timm's PyTorch-style ResNets: stride on the 3x3, max-pool padded by one pixel, and SE
# widths rounded up to multiples of 8 (min_features=8 gives the same widths).
_TIMM = {"stride_in_1x1": False, "stem_pool": "pad"}
# (pattern, registry name template, options, state_dict style)
_FAMILIES: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    (rf"resnet({_DEPTHS})", "resnet{0}", _TIMM, "timm"),
    (rf"seresnet({_DEPTHS})", "se_resnet{0}", {**_TIMM, "se": {"min_features": 8}}, "timm"),
    (r"resnext(50|101)_32x4d", "resnext{0}_32x4d", _TIMM, "timm"),
    (
        r"seresnext(50|101)_32x4d",
        "se_resnext{0}_32x4d",
        {**_TIMM, "se": {"min_features": 8}},
        "timm",
    ),
    (r"legacy_seresnet(18|34)", "se_resnet{0}", {"branch_relu": True}, "legacy"),
    (r"legacy_seresnet(50|101|152)", "se_resnet{0}", {}, "legacy"),
    (r"legacy_seresnext(26|50|101)_32x4d", "se_resnext{0}_32x4d", {}, "legacy"),
    (r"legacy_senet154", "senet154", {}, "legacy"),
    (r"mobilenetv1_100", "mobilenet_v1", {"relu6": True}, "mobilenet"),
)
SUPPORTED = (
    "resnet18/34/50/101/152, seresnet18/34/50/101/152, resnext50_32x4d, resnext101_32x4d, "
    "seresnext50_32x4d, seresnext101_32x4d, legacy_seresnet18/34/50/101/152, "
    "legacy_seresnext26/50/101_32x4d, legacy_senet154, mobilenetv1_100"
)


def timm_architecture(name: str) -> tuple[str, dict[str, Any], str]:
    """(registry name, model options, state_dict style) for a timm model name."""
    name = name.split(".")[0]  # a pretrained tag such as ".a1_in1k" does not change the network
    for pattern, template, options, style in _FAMILIES:
        m = re.fullmatch(pattern, name)
        if m:
            return template.format(*m.groups()), dict(options), style
    raise ValueError(f"timm model {name!r} is not supported: use one of {SUPPORTED}")


def model_config(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """A config.model-style dict: the shared keys, `se` in full, and the architecture options."""
    options = dict(options)
    se = dataclasses.asdict(SEOptions.create(options.pop("se", None)))
    if not isinstance(se["blocks"], str):
        se["blocks"] = list(se["blocks"])
    return {
        "name": name,
        "width_multiplier": 1.0,
        "stem_strides": 2,
        "dropout_rate": 0.0,
        "depthwise_implementation": "auto",
        "conv_implementation": "auto",
        "se": se,
        **options,
    }


def build_model(config: Mapping[str, Any], num_classes: int, **overrides):
    """The model a config.model-style dict describes."""
    options = {k: v for k, v in config.items() if k != "name"}
    options.update(overrides)
    return create_model(config["name"], num_classes=num_classes, **options)


def _timm_module(path: tuple[str, ...], style: str) -> str:
    """The timm module name that holds the Flax module at `path`."""
    top, rest = path[0], list(path[1:])
    if style == "mobilenet":
        if top == "stem":
            return "conv_stem"
        if top == "stem_bn":
            return "bn1"
        if top == "classifier":
            return "classifier"
        index = int(top[len("block") :]) - 1
        stage_starts = (0, 1, 3, 5, 11)  # timm groups the 13 blocks 1, 2, 2, 6, 2
        stage = max(i for i, s in enumerate(stage_starts) if s <= index)
        names = {"depthwise": "conv_dw", "depthwise_bn": "bn1", "pointwise": "conv_pw"}
        return f"blocks.{stage}.{index - stage_starts[stage]}.{names.get(rest[0], 'bn2')}"
    legacy = style == "legacy"
    if top == "classifier":
        return "last_linear" if legacy else "fc"
    if top.startswith("stem_"):
        return ("layer0." if legacy else "") + top[len("stem_") :]
    stage, unit = top[len("conv") :].split("_")
    prefix = f"layer{int(stage) - 1}.{int(unit) - 1}"
    if rest[0] == "se":
        fc = {"reduce": "fc1", "expand": "fc2"}[rest[1]]
        return f"{prefix}.{'se_module' if legacy else 'se'}.{fc}"
    if rest[0].startswith("downsample"):
        return f"{prefix}.downsample.{0 if rest[0] == 'downsample_conv' else 1}"
    return f"{prefix}.{rest[0]}"


_LEAF = {"kernel": "weight", "bias": "bias", "scale": "weight", "mean": "running_mean"}
_LEAF["var"] = "running_var"


def _to_flax(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A PyTorch tensor in the layout of the Flax leaf it becomes (same shape when it fits)."""
    a = np.asarray(array)
    if a.ndim == 4 and len(shape) == 4:  # conv (O, I/g, kh, kw) -> (kh, kw, I/g, O)
        return a.transpose(2, 3, 1, 0)
    if a.ndim == 4 and len(shape) == 2:  # SE's 1x1 conv -> Dense (I, O)
        return a.reshape(a.shape[:2]).T
    if a.ndim == 2:  # Linear (O, I) -> Dense (I, O)
        return a.T
    return a


def _first(items, n=4) -> str:
    items = sorted(items)
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def from_timm(name: str, state_dict: Mapping[str, Any]):
    """(model, variables) with timm model `name`'s weights; state_dict maps timm names to arrays.

    `model.apply(variables, images_nhwc, train=False)` gives the logits timm gives in eval
    mode. A state_dict of another architecture raises one ValueError line naming the
    missing, extra and mis-shaped tensors.
    """
    registry_name, options, style = timm_architecture(name)
    classifier = {"timm": "fc.weight", "legacy": "last_linear.weight"}.get(
        style, "classifier.weight"
    )
    num_classes = int(np.shape(state_dict[classifier])[0]) if classifier in state_dict else 1000
    model = build_model(model_config(registry_name, options), num_classes)
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(
        {"params": shapes["params"], "batch_stats": shapes["batch_stats"]}
    )
    used, missing, misshaped, values = set(), [], [], []
    for path, leaf in leaves:
        keys = tuple(p.key for p in path)
        key = f"{_timm_module(keys[1:-1] + (keys[-1],), style)}.{_LEAF[keys[-1]]}"
        if key not in state_dict:
            missing.append(key)
            values.append(None)
            continue
        used.add(key)
        value = _to_flax(state_dict[key], leaf.shape)
        if value.shape != leaf.shape:
            misshaped.append(f"{key} {tuple(np.shape(state_dict[key]))}")
            values.append(None)
            continue
        values.append(jnp.asarray(value, leaf.dtype))
    extra = [k for k in state_dict if k not in used and not _IGNORED.search(k)]
    if missing or extra or misshaped:
        parts = [
            f"{label} {len(items)}: {_first(items)}"
            for label, items in (("missing", missing), ("extra", extra), ("mis-shaped", misshaped))
            if items
        ]
        raise ValueError(
            f"state_dict is not timm {name!r} ({registry_name}, {num_classes} classes): "
            + "; ".join(parts)
        )
    return model, jax.tree_util.tree_unflatten(treedef, values)


def _abstract_variables(model):
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    return {"params": shapes["params"], "batch_stats": shapes["batch_stats"]}


def save_pretrained(directory: str, config: Mapping[str, Any], variables, info: Mapping[str, Any]):
    """Writes a model directory: model.json (config as "model", plus `info`) and variables/."""
    import orbax.checkpoint as ocp

    directory = os.path.abspath(directory)
    if os.path.exists(directory) and os.listdir(directory):
        raise ValueError(f"{directory} exists and is not empty: choose a new output directory")
    os.makedirs(directory, exist_ok=True)
    variables = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(directory, "variables"), variables)
    checkpointer.wait_until_finished()
    count = sum(int(np.prod(np.shape(p))) for p in jax.tree.leaves(variables["params"]))
    meta = {"format": FORMAT, "version": VERSION, "model": dict(config), **info, "params": count}
    tmp = os.path.join(directory, "model.json.tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, os.path.join(directory, "model.json"))


def load_pretrained(directory: str, **model_overrides):
    """(model, variables, info) from a model directory; info is model.json as a dict.

    model_overrides (e.g. dtype, bn_axis_name, conv_implementation) change how the model
    runs, not its parameters.
    """
    import orbax.checkpoint as ocp

    directory = os.path.abspath(directory)
    meta_path = os.path.join(directory, "model.json")
    hint = "write one with: python -m senet_jax.weights --timm NAME --checkpoint FILE --out DIR"
    if not os.path.isfile(meta_path) or not os.path.isdir(os.path.join(directory, "variables")):
        raise ValueError(
            f"{directory} is not a senet_jax model directory (needs model.json and variables/); "
            + hint
        )
    with open(meta_path) as f:
        try:
            info = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta_path} is not valid JSON ({e}); {hint}") from None
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise ValueError(f"{meta_path} is not a {FORMAT} version {VERSION} file; {hint}")
    model = build_model(info["model"], info["num_classes"], **model_overrides)
    target = _abstract_variables(model)
    variables = ocp.StandardCheckpointer().restore(os.path.join(directory, "variables"), target)
    return model, variables, info


# ---- the conversion command (torch/timm imported here only) ----


def allow_torch_beside_tensorflow() -> None:
    """Call before importing torch or timm: lets them load in a process that runs TensorFlow.

    torch probes for triton on import (timm's torchvision triggers it), and triton's
    compiler library crashes the process (SIGSEGV) when TensorFlow is already loaded:
    torch 2.14.1 with tensorflow-cpu 2.21, e.g. a notebook that read data, then converts
    weights. Conversion never compiles, so triton is marked absent and torch runs without it.
    """
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        sys.modules["triton"] = None  # `import triton` now raises ImportError


def read_checkpoint(path: str) -> dict[str, np.ndarray]:
    """A timm state_dict from .safetensors (no torch needed) or .pth/.pt/.bin (torch.load)."""
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return load_file(path)
    allow_torch_beside_tensorflow()
    try:
        import torch
    except ImportError:
        raise ValueError(
            f"checkpoint {path}: .pth files need torch (pip install 'senet-jax[convert]'); "
            ".safetensors files and --timm NAME without --checkpoint do not"
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is one error line
        raise ValueError(f"checkpoint {path} cannot be read by torch.load: {e}") from None
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict")
    out = {}
    for k, v in obj.items():
        if hasattr(v, "detach"):
            out[k.removeprefix("module.")] = v.detach().float().numpy()
    return out


def timm_preprocessing(name: str) -> dict[str, Any]:
    """The evaluation preprocessing timm records for `name`'s weights (no tag: its default)."""
    try:
        _, facts = hub.resolve(name)
    except hub.HubError:  # an architecture timm has no weights for: its untrained config
        facts = hub.table()["untrained"][name.split(".")[0]]
    return hub.preprocessing(facts)


def check_new_directory(out: str) -> None:
    """--out must be new or empty: checked before any download or conversion."""
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ValueError(f"{os.path.abspath(out)} exists and is not empty: choose a new --out")


def convert(timm_name: str, checkpoint: str | None, out: str) -> dict[str, Any]:
    """Checkpoint file (or, with none, timm's weights from the hub) -> model directory;
    returns model.json's contents."""
    registry_name, options, _ = timm_architecture(timm_name)
    check_new_directory(out)
    if checkpoint is None:
        timm_name, facts = hub.resolve(timm_name)
        checkpoint = hub.download(timm_name)
        where = "hf_hub_id" if "hf_hub_id" in facts else "url"
        source = {"timm": timm_name, where: facts[where]}
    else:
        source = {"timm": timm_name, "checkpoint": os.path.basename(checkpoint)}
    model, variables = from_timm(timm_name, read_checkpoint(checkpoint))
    num_classes = model.num_classes
    info = {
        "num_classes": num_classes,
        "class_names": hub.imagenet_class_names() if num_classes == 1000 else None,
        "preprocessing": timm_preprocessing(timm_name),
        "source": source,
    }
    save_pretrained(out, model_config(registry_name, options), variables, info)
    with open(os.path.join(out, "model.json")) as f:
        return json.load(f)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m senet_jax.weights",
        description="Write a senet_jax model directory from timm weights: a file, or by name "
        "from the Hugging Face hub.",
    )
    p.add_argument("--timm", required=True, help=f"timm model name[.tag]: {SUPPORTED}")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="the timm weights: .safetensors or .pth (default: download NAME from the hub)",
    )
    p.add_argument("--out", required=True, help="the model directory to write (new or empty)")
    a = p.parse_args(argv)
    try:
        meta = convert(a.timm, a.checkpoint, a.out)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {a.out}: {meta['model']['name']}, {meta['params']:,} parameters")
    return 0


class InitFromError(ValueError):
    """config.init_from names no model directory, or one whose network does not fit."""


def initialise_from(state, directory: str, num_classes: int):
    """`state` with the parameters and BatchNorm statistics of a model directory (fine-tuning).

    Every tensor must fit the configured model, except the classifier when the class count
    differs: it keeps its fresh initialisation (said in one log line). The optimizer state
    is created afresh for the loaded parameters.
    """
    try:
        _, variables, info = load_pretrained(directory)
    except ValueError as e:
        raise InitFromError(f"config.init_from: {e}") from None
    params = _graft(state.params, variables["params"], directory)
    stats = _graft(state.batch_stats, variables.get("batch_stats", {}), directory)
    if info.get("num_classes") != num_classes:
        log.info(
            "init_from %s: new classifier head for %d classes (the weights have %s)",
            directory,
            num_classes,
            info.get("num_classes"),
        )
    log.info("init_from: starting from the weights in %s (%s)", directory, info.get("source"))
    return state.replace(params=params, batch_stats=stats, opt_state=state.tx.init(params))


def init_from_directory(init_from: str, workdir: str, *, is_main: bool) -> str:
    """The model directory config.init_from names: itself, or for "timm:NAME[.TAG]"
    WORKDIR/pretrained/NAME.TAG, downloaded and converted by the main process when absent
    (the others wait for it, then read it)."""
    if not str(init_from).startswith(hub.PREFIX):
        return init_from
    try:
        full = hub.resolve(init_from)[0]
    except hub.HubError as e:
        raise InitFromError(f"config.init_from: {e}") from None
    directory = os.path.join(os.path.abspath(workdir), "pretrained", full)
    if not is_main or os.path.isfile(os.path.join(directory, "model.json")):
        return directory
    staging = f"{directory}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(directory, ignore_errors=True)  # left without model.json by a crash
    log.info("init_from: downloading timm weights %s and converting them into %s", full, directory)
    try:
        convert(full, None, staging)
    except ValueError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise InitFromError(f"config.init_from: {e}") from None
    os.replace(staging, directory)
    return directory


def _graft(ours, theirs, directory: str):
    """`ours` with every tensor of `theirs` put in; the classifier is kept when shapes differ."""
    flat_ours = flax.traverse_util.flatten_dict(flax.core.unfreeze(ours))
    flat_theirs = flax.traverse_util.flatten_dict(flax.core.unfreeze(theirs))
    missing = sorted("/".join(k) for k in set(flat_ours) - set(flat_theirs))
    wrong = [
        "/".join(k)
        for k, v in flat_theirs.items()
        if k in flat_ours and np.shape(v) != np.shape(flat_ours[k]) and k[0] != "classifier"
    ]
    if missing or wrong:
        listed = ", ".join((missing + wrong)[:4])
        raise InitFromError(
            f"config.init_from: {directory} does not fit config.model ({len(missing)} missing, "
            f"{len(wrong)} mis-shaped tensors: {listed}); set config.model as in its model.json"
        )
    merged = {
        k: (
            v
            if k[0] == "classifier" and np.shape(flat_theirs[k]) != np.shape(v)
            else np.asarray(flat_theirs[k], dtype=np.asarray(v).dtype)
        )
        for k, v in flat_ours.items()
    }
    return flax.traverse_util.unflatten_dict(merged)


if __name__ == "__main__":
    raise SystemExit(main())
