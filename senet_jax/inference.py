"""Using a trained run: `load(workdir)` gives a model that predicts on uint8 images.

A run's workdir holds everything needed: config.json (the resolved config and class names)
and orbax checkpoints. Only the parameters and BatchNorm statistics are restored (a partial
orbax restore): inference never reads the optimizer state, so it does not depend on how the
optimizer is built today. Images go through exactly the evaluation preprocessing (resize as
the eval decode does, then `data.augment.normaliser`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from senet_jax import checkpointing, data, steps
from senet_jax.data import augment, sources
from senet_jax.data.tf_setup import load_tf

log = logging.getLogger("senet_jax")


class LoadError(ValueError):
    """The workdir cannot give the model asked for (no config, no such checkpoint, ...)."""


class SplitError(ValueError):
    """The dataset has no split of that name."""


def read_run(workdir: str) -> tuple[ml_collections.ConfigDict, tuple[str, ...]]:
    """(config, class names) from WORKDIR/config.json, written by the trainer."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise LoadError(
            f"{workdir} holds no config.json: pass the --workdir of a train.py run "
            "(it writes config.json when it starts)"
        )
    with open(path) as f:
        record = json.load(f)
    return ml_collections.ConfigDict(record["config"]), tuple(record["class_names"])


def select_step(manager: checkpointing.CheckpointManager, checkpoint: str | int) -> int:
    """The step that "best", "latest" or a step number names; LoadError when there is none."""
    steps_saved = manager.all_steps()
    if not steps_saved:
        raise LoadError(f"{manager.directory} holds no checkpoint: train first, or check --workdir")
    listing = ", ".join(map(str, steps_saved))
    if checkpoint == "latest":
        return steps_saved[-1]
    if checkpoint == "best":
        best = manager.best_step()
        if best is None:
            log.warning(
                "no checkpoint in %s recorded %s: using the latest, step %d",
                manager.directory,
                checkpointing.BEST_METRIC,
                steps_saved[-1],
            )
            return steps_saved[-1]
        return best
    try:
        step = int(checkpoint)
    except (TypeError, ValueError):
        raise LoadError(
            f"checkpoint {checkpoint!r}: use best, latest or a step number ({listing})"
        ) from None
    if step not in steps_saved:
        raise LoadError(f"{manager.directory} has no checkpoint {step}; it has {listing}")
    return step


def forward(module: nn.Module, variables, x) -> tuple[Any, Any]:
    """(logits, features): features are the input of the Dense named "classifier" (the pooled
    penultimate activations), read by an interceptor so every model gives them, unchanged."""
    captured = {}

    def grab(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and context.module.path == ("classifier",):
            captured["features"] = args[0]
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(grab):
        logits = module.apply(variables, x, train=False)
    return logits, captured["features"]


def _as_image_list(images) -> list[np.ndarray]:
    """One uint8 HWC image, an NHWC batch, or a sequence of HWC images of any sizes."""
    if isinstance(images, np.ndarray) or hasattr(images, "__array__"):
        array = np.asarray(images)
        items = list(array) if array.ndim == 4 else [array]
    else:
        items = [np.asarray(image) for image in images]
    out = []
    for image in items:
        if image.dtype != np.uint8:
            raise ValueError(f"images must be uint8 pixels (0-255), got {image.dtype}")
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[-1] not in (1, 3):
            raise ValueError(f"an image must be HxW, HxWx1 or HxWx3, got shape {image.shape}")
        out.append(np.repeat(image, 3, -1) if image.shape[-1] == 1 else image)
    return out


def _buckets(n: int, batch_size: int) -> Iterator[tuple[int, int, int]]:
    """(start, stop, padded size) chunks: few distinct shapes, so few compilations."""
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        yield start, stop, min(batch_size, 1 << (stop - start - 1).bit_length())


@dataclasses.dataclass
class TrainedModel:
    """A restored model: `predict`, `logits` and `features` take uint8 images (see
    `_as_image_list`), resize and normalise them as evaluation does, and return numpy arrays."""

    config: ml_collections.ConfigDict
    class_names: tuple[str, ...]
    step: int
    module: nn.Module
    variables: dict[str, Any]
    batch_size: int = 64
    # Pretrained weights' own evaluation preprocessing (weights.py's model.json "preprocessing":
    # shorter side to resize_size, centre crop_size); None: a run's, resize to S x S.
    preprocessing: dict[str, Any] | None = None

    def __post_init__(self):
        self._forward = jax.jit(lambda variables, x: forward(self.module, variables, x))
        data = self.config.data
        self._normalise = augment.normaliser(load_tf(), data.mean, data.std)

    @property
    def image_size(self) -> int:
        return int(self.config.data.image_size)

    def preprocess(self, images) -> np.ndarray:
        """float32 [N, S, S, 3]: resized (when not S x S) and normalised as in evaluation."""
        tf, size = load_tf(), self.image_size
        if self.preprocessing:
            resized = [_resize_and_crop(tf, i, self.preprocessing) for i in _as_image_list(images)]
        else:
            resized = [
                image if image.shape[:2] == (size, size) else augment.resize_uint8(tf, image, size)
                for image in _as_image_list(images)
            ]
        return np.asarray(self._normalise(np.stack([np.asarray(r) for r in resized])))

    def apply_normalised(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, features) of already preprocessed images, in padded fixed-size chunks."""
        logits, features = [], []
        for start, stop, padded in _buckets(len(x), self.batch_size):
            chunk = x[start:stop]
            pad = np.zeros((padded - len(chunk), *chunk.shape[1:]), chunk.dtype)
            chunk = np.concatenate([chunk, pad])
            out = self._forward(self.variables, chunk.astype(np.float32))
            logits.append(np.asarray(out[0])[: stop - start])
            features.append(np.asarray(out[1], np.float32)[: stop - start])
        return np.concatenate(logits), np.concatenate(features)

    def logits(self, images) -> np.ndarray:
        return self.apply_normalised(self.preprocess(images))[0]

    def predict(self, images) -> np.ndarray:
        """Class probabilities [N, classes] (softmax of the logits)."""
        return np.asarray(jax.nn.softmax(self.logits(images), axis=-1))

    def features(self, images) -> np.ndarray:
        """The pooled penultimate features [N, F]: the classifier's input."""
        return self.apply_normalised(self.preprocess(images))[1]

    def with_model_options(self, **options) -> TrainedModel:
        """The same weights in a model built with other `config.model` options that leave the
        parameters unchanged (e.g. depthwise_implementation="grouped" for export)."""
        config = self.config.copy_and_resolve_references()
        config.model.update(options)
        module = steps.create_model(config, len(self.class_names))
        return dataclasses.replace(self, config=config, module=module)


def _resize_and_crop(tf, image: np.ndarray, preprocessing: dict[str, Any]) -> np.ndarray:
    """uint8 image: shorter side to resize_size (their interpolation, antialiased), then the
    centre crop_size square, as timm evaluates its weights."""
    short, crop = int(preprocessing["resize_size"]), int(preprocessing["crop_size"])
    h, w = image.shape[:2]
    size = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    method = {"bicubic": "bicubic", "bilinear": "bilinear"}.get(
        preprocessing.get("interpolation"), "bilinear"
    )
    resized = tf.image.resize(image, size, method=method, antialias=True)
    resized = np.asarray(tf.clip_by_value(tf.round(resized), 0, 255)).astype(np.uint8)
    top, left = int(round((size[0] - crop) / 2)), int(round((size[1] - crop) / 2))
    return resized[top : top + crop, left : left + crop]


def load_weights(source: str, *, batch_size: int = 64) -> TrainedModel:
    """Pretrained weights as a model: "timm:NAME[.TAG]" (fetched from the hub and converted in
    memory) or a model directory, with their class names and their own preprocessing."""
    from senet_jax import hub, weights

    try:
        if source.startswith(hub.PREFIX):
            full, facts = hub.resolve(source)
            state_dict = weights.read_checkpoint(hub.download(full))
            _, variables = weights.from_timm(full, state_dict)
            info = {
                "model": weights.model_config(*weights.timm_architecture(full)[:2]),
                "num_classes": int(np.shape(variables["params"]["classifier"]["bias"])[0]),
                "preprocessing": hub.preprocessing(facts),
            }
            info["class_names"] = (
                hub.imagenet_class_names() if info["num_classes"] == 1000 else None
            )
        else:
            _, variables, info = weights.load_pretrained(source)
    except ValueError as e:
        raise LoadError(str(e)) from None
    prep = info.get("preprocessing")
    if not prep:
        raise LoadError(
            f"{source}: model.json has no preprocessing; write it with senet_jax.weights"
        )
    count = int(info["num_classes"])
    data = {"image_size": prep["crop_size"], "mean": prep["mean"], "std": prep["std"]}
    config = ml_collections.ConfigDict(
        {"model": info["model"], "data": data, "half_precision": False}
    )
    names = tuple(info.get("class_names") or (str(i) for i in range(count)))
    module = steps.create_model(config, count)
    return TrainedModel(config, names, 0, module, variables, batch_size, preprocessing=prep)


def load(workdir: str, checkpoint: str | int = "best", *, batch_size: int = 64) -> TrainedModel:
    """The model of a run at a checkpoint: "best" (by checkpointing.BEST_METRIC; the latest
    when no checkpoint recorded it), "latest" or a step number. Pretrained weights,
    "timm:NAME[.TAG]" or a model directory, load through `load_weights` (no checkpoint)."""
    if str(workdir).startswith("timm:") or os.path.isfile(os.path.join(workdir, "model.json")):
        return load_weights(str(workdir), batch_size=batch_size)
    config, class_names = read_run(workdir)
    manager = checkpointing.CheckpointManager(
        workdir, config, num_classes=len(class_names), read_only=True
    )
    try:
        step = select_step(manager, checkpoint)
        module = steps.create_model(config, len(class_names))
        size = int(config.data.image_size)
        shapes = jax.eval_shape(
            lambda: module.init(jax.random.key(0), np.zeros((1, size, size, 3), np.float32))
        )
        template = {
            k: jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes.get(k, {}))
            for k in ("params", "batch_stats")
        }
        try:
            variables = manager.restore_subset(step, template)
        except checkpointing.IncompatibleCheckpointError:
            raise
        except Exception as e:
            raise LoadError(
                f"checkpoint {step} in {manager.directory} is unreadable "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from None
    finally:
        manager.close()
    log.info("loaded checkpoint %d from %s", step, manager.directory)
    return TrainedModel(config, class_names, step, module, variables, batch_size=batch_size)


def check_split(builder, split: str) -> None:
    """SplitError listing the builder's splits unless `split` (slices allowed) is one."""
    try:
        builder.info.splits[split]
    except Exception:
        names = ", ".join(sorted(builder.info.splits.keys()))
        raise SplitError(
            f"--split {split!r}: {builder.name} has no such split; its splits: {names}"
        ) from None


def split_batches(config, split: str, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Every example of `split` exactly once, single device: image [n, S, S, 3] (normalised),
    label [n], mask [n] (False on the padding of the last batch)."""
    check_split(sources.prepared_builder(config.data), split)
    batches = data.eval_batches(
        config.data,
        batch_size=batch_size,
        split=split,
        local_devices=1,
        process_index=0,
        process_count=1,
    )
    for batch in batches:
        yield {k: v[0] for k, v in batch.items()}


def eval_state(trained: TrainedModel) -> steps.TrainState:
    """A state `steps.eval_step` accepts: the restored variables, no optimizer."""
    return steps.TrainState(
        step=np.int32(trained.step),
        params=trained.variables["params"],
        batch_stats=trained.variables.get("batch_stats", {}),
        opt_state=None,
        rng=None,
        apply_fn=trained.module.apply,
        tx=None,
    )


__all__ = ["LoadError", "SplitError", "TrainedModel", "forward", "load", "read_run"]
