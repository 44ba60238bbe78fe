"""The optimizer (`config.optim`): an optax chain and its learning-rate schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax


def _warmup_cosine(optim, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    warmup = min(int(optim.warmup_epochs * steps_per_epoch), total_steps - 1)
    return optax.warmup_cosine_decay_schedule(
        0.0, optim.learning_rate, max(warmup, 0), decay_steps=total_steps, end_value=0.0
    )


def _constant(optim, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    warmup = int(optim.warmup_epochs * steps_per_epoch)
    if warmup == 0:
        return optax.constant_schedule(optim.learning_rate)
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, optim.learning_rate, warmup),
            optax.constant_schedule(optim.learning_rate),
        ],
        [warmup],
    )


def _step(optim, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    """The rate times decay_factor every decay_epochs (after any warmup): the paper's ImageNet
    schedule (0.6, divided by 10 every 30 epochs)."""
    every = max(1, int(round(optim.decay_epochs * steps_per_epoch)))
    decay = optax.exponential_decay(optim.learning_rate, every, optim.decay_factor, staircase=True)
    warmup = int(optim.warmup_epochs * steps_per_epoch)
    if warmup == 0:
        return decay
    ramp = optax.linear_schedule(0.0, optim.learning_rate, warmup)
    return optax.join_schedules([ramp, lambda step: decay(step + warmup)], [warmup])


SCHEDULES: dict[str, Callable[[Any, int, int], optax.Schedule]] = {
    "warmup_cosine": _warmup_cosine,
    "constant": _constant,
    "step": _step,
}


def decay_mask(params) -> Any:
    """Weight decay only on conv and dense kernels: not on BatchNorm scales/biases or biases."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key == "kernel", params)


def _sgd(optim, schedule):
    return optax.chain(
        optax.add_decayed_weights(optim.weight_decay, mask=decay_mask),
        optax.sgd(schedule, momentum=optim.momentum, nesterov=bool(optim.get("nesterov", True))),
    )


def _adamw(optim, schedule):
    return optax.adamw(schedule, weight_decay=optim.weight_decay, mask=decay_mask)


OPTIMIZERS: dict[str, Callable[[Any, optax.Schedule], optax.GradientTransformation]] = {
    "sgd": _sgd,
    "adamw": _adamw,
}


def create_optimizer(
    optim, *, num_epochs: int, steps_per_epoch: int, total_steps: int | None = None
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optax transformation and its schedule for `config.optim` over the whole run:
    `total_steps` steps when given (config.total_steps), else num_epochs epochs."""
    total = total_steps if total_steps is not None else num_epochs * steps_per_epoch
    schedule = SCHEDULES[optim.schedule](optim, total, steps_per_epoch)
    return OPTIMIZERS[optim.name](optim, schedule), schedule
