"""The exponential moving average of the parameters, which evaluation uses when it is on.

ema <- d * ema + (1 - d) * params after every step (optax.incremental_update), with
d = min(decay, (1 + step) / (10 + step)): the rate TensorFlow's ExponentialMovingAverage takes
with num_updates. Without that warm-up an average started at the random initial weights keeps
decay**steps of them: 61% after 500 steps at 0.999, so a short run (configs/cifar10.py:fixmatch)
would be evaluated mostly on its initialisation. Over FixMatch's 2**20 steps it changes nothing.
Only parameters are averaged: the averaged model evaluates with the live model's BatchNorm
statistics, which already are a moving average (as TorchSSL's FixMatch and FlexMatch do).
Averaging them a second time would only make them lag further behind the weights.
A decay of 0 turns the average off: no copy of the parameters is kept (`None`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax


def init_ema(params: Any, decay: float) -> Any:
    """The average starts at the initial parameters; None when the EMA is off."""
    return params if decay > 0 else None


def decay_at(decay: float, step) -> jnp.ndarray:
    """The decay the update after `step` completed steps uses: warmed up, at most `decay`."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(jnp.float32(decay), (1.0 + step) / (10.0 + step))


def update_ema(ema_params: Any, params: Any, decay: float, step) -> Any:
    """One averaging step after `step` completed steps (the state's count before this one);
    a run without an average (None) keeps none."""
    if ema_params is None or decay <= 0:
        return ema_params
    return optax.incremental_update(params, ema_params, step_size=1.0 - decay_at(decay, step))


def evaluation_params(state) -> Any:
    """What evaluation, the best checkpoint and export use: the average when the run has one."""
    ema_params = getattr(state, "ema_params", None)
    return state.params if ema_params is None else ema_params
