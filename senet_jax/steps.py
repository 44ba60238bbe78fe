"""Pure, distribution-agnostic steps: the train state, one training step, one evaluation step.

Given an `axis_name`, `train_step` averages gradients and metrics over that axis and
`eval_step` sums over it; the trainer wraps both in `jax.pmap` in one place. Nothing here
assumes a backend or a device count.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from senet_jax import models, remat


class TrainState(struct.PyTreeNode):
    step: jnp.ndarray
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jnp.ndarray  # raw uint32 key data, so checkpoints hold plain arrays
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)


def create_model(config, num_classes: int, axis_name: str | None = None) -> nn.Module:
    """`config.model` as the factory's keyword arguments, with the class count and the compute
    dtype; `axis_name` turns on cross-device BatchNorm statistics."""
    options = config.model.to_dict()
    return models.create_model(
        options.pop("name"),
        num_classes=num_classes,
        bn_axis_name=axis_name,
        dtype=jnp.bfloat16 if config.half_precision else jnp.float32,
        **options,
    )


def create_train_state(
    model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array, image_shape: tuple
) -> TrainState:
    """Parameters, BatchNorm statistics and optimizer state on the host's default device."""
    init_rng, state_rng = jax.random.split(rng)

    @jax.jit
    def init(key):
        return model.init(key, jnp.zeros((1, *image_shape), jnp.float32), train=False)

    variables = init(init_rng)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        rng=jax.random.key_data(state_rng),
        apply_fn=model.apply,
        tx=tx,
    )


def _all_finite(tree) -> jnp.ndarray:
    """True when no leaf holds an inf or a NaN.

    x - x is 0 for a finite x and NaN otherwise, and the sum of zeros cannot overflow: one
    fused reduction per leaf that reads it once. `jnp.all(jnp.isfinite(x))` compiles to three
    kernels per leaf on XLA:CPU, `sum(x * 0)` also writes and reads a zero array per leaf
    shape, and a max of |x| misses NaN there (its vectorized max drops NaN)."""
    return jnp.isfinite(sum(jnp.sum(x - x) for x in jax.tree.leaves(tree)))


def _gradients(state, batch_stats, batch, key, label_smoothing, rematerialize):
    """Loss, correct predictions, gradients and updated BatchNorm statistics of one batch."""
    images, labels = batch

    def forward(params, key):
        return state.apply_fn(
            {"params": params, "batch_stats": batch_stats},
            images,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": key},
        )

    def loss_fn(params):
        logits, updates = remat.rematerialized(forward, rematerialize)(params, key)
        num_classes = logits.shape[-1]
        targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
        loss = optax.softmax_cross_entropy(logits, targets).mean()
        return loss, (logits, updates["batch_stats"])

    (loss, (logits, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    correct = jnp.sum(jnp.argmax(logits, -1) == labels)
    return loss, correct, grads, new_stats


def accumulate_gradients(gradients_of, batch, batch_stats, key, microbatches: int = 1):
    """`gradients_of(batch_stats, part, key) -> (loss, aux, grads, new_batch_stats)` over
    `microbatches` equal parts of `batch` (every leaf split on its leading axis), one after
    another (lax.scan): the backward's temporaries shrink with the part, not the batch.

    BatchNorm normalises each part on its own, as devices without cross-device statistics
    would, and its running averages are updated part after part. Returns the mean of the
    parts' losses and gradients, their `aux` stacked on a new leading axis, and the statistics
    after the last part. One part is `gradients_of` itself, with the key as given."""
    if microbatches == 1:
        loss, aux, grads, batch_stats = gradients_of(batch_stats, batch, key)
        return loss, jax.tree.map(lambda x: x[None], aux), grads, batch_stats
    parts = jax.tree.map(lambda x: x.reshape(microbatches, -1, *x.shape[1:]), batch)

    def part(carry, xs):
        loss_sum, grad_sum, stats = carry
        part_batch, index = xs
        loss, aux, grads, new_stats = gradients_of(
            stats, part_batch, jax.random.fold_in(key, index)
        )
        # The carry keeps its dtypes (a float64 or bfloat16 computation may return others).
        stats = jax.tree.map(lambda new, old: new.astype(old.dtype), new_stats, stats)
        return (loss_sum + loss, jax.tree.map(jnp.add, grad_sum, grads), stats), aux

    # The sums start at zeros of the types one part returns (they follow the compute dtype).
    first = jax.tree.map(lambda x: x[0], parts)
    loss_type, _, grad_types, _ = jax.eval_shape(lambda: gradients_of(batch_stats, first, key))
    zeros = jax.tree.map(lambda t: jnp.zeros(t.shape, t.dtype), (loss_type, grad_types))
    (loss_sum, grad_sum, batch_stats), aux = jax.lax.scan(
        part, (*zeros, batch_stats), (parts, jnp.arange(microbatches))
    )
    grads = jax.tree.map(lambda g: g / microbatches, grad_sum)
    return loss_sum / microbatches, aux, grads, batch_stats


def microbatch_count(per_device_batch: int, microbatch_size: int | None) -> int:
    """Equal parts a device's batch is computed in: the fewest of at most `microbatch_size`
    images (None: one). 0 where no such equal split exists (config validation says so)."""
    if microbatch_size is None or per_device_batch <= microbatch_size:
        return 1
    parts = -(-per_device_batch // microbatch_size)
    return parts if per_device_batch % parts == 0 else 0


def train_step(
    state: TrainState,
    batch: dict[str, jnp.ndarray],
    *,
    label_smoothing: float = 0.0,
    axis_name: str | None = None,
    rematerialize: str = "none",
    microbatches: int = 1,
) -> tuple[TrainState, dict[str, jnp.ndarray]]:
    """One SGD step; with `axis_name`, gradients and metrics are averaged over that axis.

    `rematerialize` names a senet_jax.remat policy: what the backward keeps of the forward.
    `microbatches` > 1 computes the gradient in that many parts of the (per-device) batch."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    if axis_name is not None:  # a different dropout mask on every device
        key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    images, labels = batch["image"], batch["label"]
    gradients_of = functools.partial(
        _gradients, state, label_smoothing=label_smoothing, rematerialize=rematerialize
    )
    loss, correct, grads, batch_stats = accumulate_gradients(
        gradients_of, (images, labels), state.batch_stats, key, microbatches
    )
    correct = jnp.sum(correct)
    metrics = {"loss": loss, "accuracy": correct / labels.shape[0]}
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    # Finite grads can still overflow the parameters (a huge learning rate): check what is saved.
    metrics["finite"] = jnp.all(
        jnp.stack(
            [
                jnp.isfinite(metrics["loss"]),
                _all_finite(grads),
                _all_finite(new_params),
                _all_finite(batch_stats),
            ]
        )
    ).astype(jnp.float32)
    new_state = state.replace(
        step=state.step + 1, params=new_params, batch_stats=batch_stats, opt_state=opt_state
    )
    return new_state, metrics


def eval_step(
    state: TrainState, batch: dict[str, jnp.ndarray], *, axis_name: str | None = None
) -> dict[str, jnp.ndarray]:
    """Masked sums (loss, correct, correct_top5, count, confusion matrix): exact metrics over
    any padding. Top-5 is top-k with k = min(5, classes), so it is 1.0 with 5 classes or fewer."""
    logits = state.apply_fn(
        {"params": state.params, "batch_stats": state.batch_stats}, batch["image"], train=False
    )
    labels, mask = batch["label"], batch["mask"].astype(jnp.float32)
    num_classes = logits.shape[-1]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    predictions = jnp.argmax(logits, -1)
    confusion = jnp.einsum(
        "n,ni,nj->ij",
        mask,
        jax.nn.one_hot(labels, num_classes),
        jax.nn.one_hot(predictions, num_classes),
    )
    _, top = jax.lax.top_k(logits, min(5, num_classes))
    sums = {
        "loss_sum": jnp.sum(loss * mask),
        "correct": jnp.sum((predictions == labels) * mask),
        "correct_top5": jnp.sum(jnp.any(top == labels[:, None], axis=-1) * mask),
        "count": jnp.sum(mask),
        "confusion": confusion,
    }
    if axis_name is not None:
        sums = jax.lax.psum(sums, axis_name)
    return sums


def eval_metrics(batch_sums: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Top-1/top-5 accuracy, mean loss, example count and confusion matrix from the host copies
    of `eval_step`'s per-batch sums, added in float64 so counts stay exact over any split."""
    totals = None
    for sums in batch_sums:
        sums = jax.tree.map(lambda x: np.asarray(x, np.float64), sums)
        totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    count = int(totals["count"])
    return {
        "examples": count,
        "accuracy": float(totals["correct"] / count),
        "top5_accuracy": float(totals["correct_top5"] / count),
        "loss": float(totals["loss_sum"] / count),
        "confusion": totals["confusion"].round().astype(np.int64),
    }
