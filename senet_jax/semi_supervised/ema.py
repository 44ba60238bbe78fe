"""The exponential moving average of the parameters, which evaluation uses when it is on.

ema <- decay * ema + (1 - decay) * params after every step (optax.incremental_update).
Only parameters are averaged: the averaged model evaluates with the live model's BatchNorm
statistics, which already are a moving average (as TorchSSL's FixMatch and FlexMatch do).
Averaging them a second time would only make them lag further behind the weights.
A decay of 0 turns the average off: no copy of the parameters is kept (`None`).
"""

from __future__ import annotations

from typing import Any

import optax


def init_ema(params: Any, decay: float) -> Any:
    """The average starts at the initial parameters; None when the EMA is off."""
    return params if decay > 0 else None


def update_ema(ema_params: Any, params: Any, decay: float) -> Any:
    """One averaging step; a run without an average (None) keeps none."""
    if ema_params is None or decay <= 0:
        return ema_params
    return optax.incremental_update(params, ema_params, step_size=1.0 - decay)


def evaluation_params(state) -> Any:
    """What evaluation, the best checkpoint and export use: the average when the run has one."""
    ema_params = getattr(state, "ema_params", None)
    return state.params if ema_params is None else ema_params
