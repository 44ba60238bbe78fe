"""One semi-supervised training step (FixMatch or FlexMatch), pure and distribution-agnostic.

A step sees B labelled images and mu*B unlabelled ones in two views (weak: flip and crop;
strong: RandAugment and cutout). With batch_norm="joint" the three go through the network in
ONE forward pass (one per part with `microbatches`, each part holding its share of all
three), so BatchNorm normalises them together as FixMatch does (and, with `axis_name`,
across devices through the model's `bn_axis_name`). The other settings
(settings.BATCH_NORM_GROUPS) run one forward per group of views, each normalised by its own
batch statistics, and keep the first group's as the running ones: "split" gives the
labelled images a forward of their own, as in the supervised step; "strong_apart" normalises
the labelled images with the weak views (drawn and augmented alike) and the RandAugment
views apart (README, "Semi-supervised CIFAR-10", compares the three).

The loss is CE(labelled) + weight * the masked pseudo-label loss. With `axis_name`,
gradients and metrics are averaged over that axis like `steps.train_step`, and the FlexMatch
record sees the whole global batch on every device.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from senet_jax import steps
from senet_jax.semi_supervised import ema, flexmatch, settings
from senet_jax.semi_supervised.pseudo_labels import masked_unlabelled_loss, pseudo_label


class SemiSupervisedState(steps.TrainState):
    """`steps.TrainState` plus the averaged parameters (None: EMA off) and FlexMatch's record
    of the last confident prediction per unlabelled image (None: FixMatch)."""

    ema_params: Any = None
    pseudo_record: jnp.ndarray | None = None


def create_state(
    state: steps.TrainState, *, method: str, ema_decay: float, num_unlabelled: int
) -> SemiSupervisedState:
    """Extends a fresh supervised train state with what the method needs."""
    record = flexmatch.empty_record(num_unlabelled) if method == "flexmatch" else None
    fields = {name: getattr(state, name) for name in steps.TrainState.__dataclass_fields__}
    return SemiSupervisedState(
        **fields, ema_params=ema.init_ema(state.params, ema_decay), pseudo_record=record
    )


def _forward(state, params, batch_stats, key, views, batch_norm):
    """(logits of each view, the running BatchNorm statistics after them).
    `views` = (labelled images, weak views, strong views); each group of
    `settings.BATCH_NORM_GROUPS[batch_norm]` is one forward, normalised by its own batch
    statistics, and only the first group's become the running ones."""
    apply = functools.partial(state.apply_fn, train=True, mutable=["batch_stats"])
    variables = {"params": params, "batch_stats": batch_stats}
    logits, kept = [None] * len(views), None
    for i, group in enumerate(settings.BATCH_NORM_GROUPS[batch_norm]):
        images = jnp.concatenate([views[v] for v in group])
        rngs = {"dropout": key if i == 0 else jax.random.fold_in(key, i)}
        out, updates = apply(variables, images, rngs=rngs)
        kept = updates["batch_stats"] if kept is None else kept
        ends = np.cumsum([views[v].shape[0] for v in group])[:-1]
        for v, chunk in zip(group, jnp.split(out, ends)):
            logits[v] = chunk
    return logits, kept


def _gradients(
    state, batch_stats, part, key, *, method, threshold, weight, label_smoothing, batch_norm
):
    """(loss, aux, grads, new batch statistics) of the forward over the labelled images and
    both views; `part` = (labelled images, their labels, weak views, strong views)."""
    labelled_images, labels, weak_images, strong_images = part
    views = (labelled_images, weak_images, strong_images)

    def loss_fn(params):
        logits, new_stats = _forward(state, params, batch_stats, key, views, batch_norm)
        labelled_logits, weak, strong = (x.astype(jnp.float32) for x in logits)
        num_classes = labelled_logits.shape[-1]
        targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
        labelled_loss = optax.softmax_cross_entropy(labelled_logits, targets).mean()
        bar = threshold
        if method == "flexmatch":
            bar = flexmatch.class_thresholds(state.pseudo_record, num_classes, threshold)
        pseudo = pseudo_label(weak, bar)
        unlabelled_loss = masked_unlabelled_loss(strong, pseudo)
        aux = (labelled_logits, pseudo, labelled_loss, unlabelled_loss, jnp.asarray(bar))
        return labelled_loss + weight * unlabelled_loss, (aux, new_stats)

    (loss, (aux, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return loss, aux, grads, new_stats


def _merged(aux):
    """The parts' stacked aux as one batch's: logits and pseudo-labels in batch order, the
    losses averaged (equal parts), the thresholds (the same in every part) once."""
    labelled_logits, pseudo, labelled_loss, unlabelled_loss, bar = aux
    flat = lambda x: x.reshape(-1, *x.shape[2:])
    pseudo = jax.tree.map(flat, pseudo)
    return flat(labelled_logits), pseudo, labelled_loss.mean(), unlabelled_loss.mean(), bar[0]


def _metrics(loss, aux, labelled, unlabelled, axis_name) -> dict[str, jnp.ndarray]:
    """Means over the global batch; pseudo-label accuracy over the used (masked) unlabelled
    images whose true label is known (>= 0), 0 while there are none."""
    labelled_logits, pseudo, labelled_loss, unlabelled_loss, bar = aux
    metrics = {
        "loss": loss,
        "labelled_loss": labelled_loss,
        "unlabelled_loss": unlabelled_loss,
        "accuracy": jnp.mean(jnp.argmax(labelled_logits, -1) == labelled["label"]),
        "mask_rate": jnp.mean(pseudo.mask),
    }
    if jnp.ndim(bar):
        metrics["class_thresholds"] = bar
    sums = {}
    if "label" in unlabelled:
        known = pseudo.mask * (unlabelled["label"] >= 0)
        sums = {
            "correct": jnp.sum(known * (pseudo.label == unlabelled["label"])),
            "count": jnp.sum(known),
        }
    if axis_name is not None:
        metrics, sums = jax.lax.pmean(metrics, axis_name), jax.lax.psum(sums, axis_name)
    if sums:
        metrics["pseudo_label_accuracy"] = sums["correct"] / jnp.maximum(sums["count"], 1.0)
    return metrics


def _recorded(record, method, unlabelled, pseudo, threshold, axis_name):
    """FlexMatch's record after this step's predictions; FixMatch keeps none."""
    if method != "flexmatch":
        return record
    return flexmatch.record_predictions(
        record,
        unlabelled["index"],
        pseudo.label,
        pseudo.confidence,
        threshold,
        axis_name=axis_name,
    )


def ssl_train_step(
    state: SemiSupervisedState,
    labelled: dict[str, jnp.ndarray],
    unlabelled: dict[str, jnp.ndarray],
    *,
    method: str = "fixmatch",
    threshold: float = 0.95,
    weight: float = 1.0,
    ema_decay: float = 0.0,
    label_smoothing: float = 0.0,
    axis_name: str | None = None,
    microbatches: int = 1,
    batch_norm: str = "joint",
) -> tuple[SemiSupervisedState, dict[str, jnp.ndarray]]:
    """`labelled`: image [B, H, W, C], label [B]. `unlabelled`: weak and strong [mu*B, H, W, C],
    index [mu*B] (global unlabelled-image indices; FlexMatch needs them) and optionally label
    [mu*B] (-1 where unknown) for the pseudo-label accuracy metric. `microbatches` > 1
    computes the gradient in that many parts, each with its share of all three
    (steps.accumulate_gradients)."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    if axis_name is not None:  # a different dropout mask on every device
        key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    gradients_of = functools.partial(
        _gradients,
        state,
        method=method,
        threshold=threshold,
        weight=weight,
        label_smoothing=label_smoothing,
        batch_norm=batch_norm,
    )
    part = (labelled["image"], labelled["label"], unlabelled["weak"], unlabelled["strong"])
    loss, aux, grads, batch_stats = steps.accumulate_gradients(
        gradients_of, part, state.batch_stats, key, microbatches
    )
    aux = _merged(aux)
    metrics = _metrics(loss, aux, labelled, unlabelled, axis_name)
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    record = _recorded(state.pseudo_record, method, unlabelled, aux[1], threshold, axis_name)
    checked = (grads, params, batch_stats)
    metrics["finite"] = (jnp.isfinite(metrics["loss"]) & steps._all_finite(checked)).astype(
        jnp.float32
    )
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        batch_stats=batch_stats,
        opt_state=opt_state,
        ema_params=ema.update_ema(state.ema_params, params, ema_decay, state.step),
        pseudo_record=record,
    )
    return new_state, metrics
