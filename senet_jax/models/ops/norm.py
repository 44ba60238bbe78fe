"""BatchNorm followed by ReLU (or ReLU6, or nothing) as one operation with a hand-written backward.

Plain autodiff of BatchNorm + ReLU keeps `x - mean` and several other full-size
temporaries alive between the forward and backward passes; on CPU, where these
memory-bound passes cost as much as the matmuls, fusing them into the minimum
(two reductions and one elementwise pass each way) trains MobileNet markedly
faster (benchmarks/RESULTS.md). Parameters and statistics are named and computed
exactly as flax's nn.BatchNorm (fast variance, biased batch variance, running
averages with `momentum`), so checkpoints and numerics do not change.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from senet_jax.models.ops.reductions import channel_sums


def batch_stats(x: jnp.ndarray, axis_name: str | None, use_fast_variance: bool = True):
    """Mean and biased variance over all but the channel axis, as flax computes them (>= float32).

    use_fast_variance: E[x^2] - E[x]^2 in one pass (clipped at 0), else E[(x - E[x])^2].
    """
    x = x.astype(_compute_dtype(x))
    axes = tuple(range(x.ndim - 1))
    pmean = (lambda v: lax.pmean(v, axis_name)) if axis_name is not None else (lambda v: v)
    if use_fast_variance:
        mean, mean_sq = pmean((jnp.mean(x, axes), jnp.mean(x * x, axes)))
        return mean, jnp.maximum(0.0, mean_sq - mean * mean)
    mean = pmean(jnp.mean(x, axes))
    return mean, pmean(jnp.mean(jnp.square(x - mean), axes))


def _compute_dtype(x):
    return jnp.promote_types(x.dtype, jnp.float32)


def _normalize(x, mean, var, scale, bias, epsilon):
    return (x.astype(_compute_dtype(x)) - mean) * (lax.rsqrt(var + epsilon) * scale) + bias


# The activations the fused op knows: "none" is a plain BatchNorm (a residual unit's last one).
ACTIVATIONS = ("relu", "relu6", "none")


def _activate(y, activation):
    if activation == "relu":
        return jnp.maximum(y, 0.0)
    if activation == "relu6":
        return jnp.clip(y, 0.0, 6.0)
    return y


def _active(pre, activation):
    """Where the activation passes its gradient through (ReLU6 uses the open interval, as JAX)."""
    if activation == "relu":
        return pre > 0
    if activation == "relu6":
        return (pre > 0) & (pre < 6)
    return None


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def batch_norm_act(x, scale, bias, epsilon, axis_name, use_fast_variance=True, activation="relu"):
    """act(BatchNorm(x)) with batch statistics; returns (y, mean, var) for the running averages.

    The statistics are outputs for bookkeeping only: no gradient flows back through them.
    """
    return _bn_act_fwd(x, scale, bias, epsilon, axis_name, use_fast_variance, activation)[0]


def _bn_act_fwd(x, scale, bias, epsilon, axis_name, use_fast_variance, activation):
    mean, var = batch_stats(x, axis_name, use_fast_variance)
    y = _activate(_normalize(x, mean, var, scale, bias, epsilon), activation).astype(x.dtype)
    return (y, mean, var), (x, scale, bias, mean, var)


def _bn_act_bwd(epsilon, axis_name, use_fast_variance, activation, residuals, cotangents):
    # Both variance formulas have the same derivative, so one backward serves both.
    x, scale, bias, mean, var = residuals
    g = cotangents[0].astype(_compute_dtype(x))
    inv = lax.rsqrt(var + epsilon)
    x_hat = (x.astype(_compute_dtype(x)) - mean) * inv
    active = _active(x_hat * scale + bias, activation)
    if active is not None:
        g = jnp.where(active, g, 0.0)
    d_bias, d_scale = channel_sums(g, g * x_hat)
    count = x.size // x.shape[-1]
    mean_g, mean_gx = d_bias / count, d_scale / count
    if axis_name is not None:
        mean_g, mean_gx = lax.pmean((mean_g, mean_gx), axis_name)
    dx = (g - mean_g - x_hat * mean_gx) * (scale * inv)
    return dx.astype(x.dtype), d_scale.astype(scale.dtype), d_bias.astype(bias.dtype)


batch_norm_act.defvjp(_bn_act_fwd, _bn_act_bwd)


class BatchNormAct(nn.Module):
    """act(nn.BatchNorm(...)(x)), with nn.BatchNorm's parameters and statistics.

    activation: "relu" (the default), "relu6" or "none" (see ACTIVATIONS).
    """

    activation: str = "relu"
    use_running_average: bool = False
    momentum: float = 0.99
    epsilon: float = 1e-5
    axis_name: str | None = None
    use_fast_variance: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    scale_init: Callable = nn.initializers.ones
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r}: use one of {list(ACTIVATIONS)}")
        features = x.shape[-1]
        ra_mean = self.variable(
            "batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), (features,)
        )
        ra_var = self.variable(
            "batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), (features,)
        )
        scale = self.param("scale", self.scale_init, (features,), self.param_dtype)
        bias = self.param("bias", self.bias_init, (features,), self.param_dtype)
        if self.use_running_average:
            y = _normalize(x, ra_mean.value, ra_var.value, scale, bias, self.epsilon)
            return _activate(y, self.activation).astype(self.dtype)
        # Like nn.BatchNorm: no cross-device mean while initializing (the axis may not exist yet).
        axis_name = None if self.is_initializing() else self.axis_name
        y, mean, var = batch_norm_act(
            x, scale, bias, self.epsilon, axis_name, self.use_fast_variance, self.activation
        )
        if not self.is_initializing():
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * lax.stop_gradient(
                mean
            )
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * lax.stop_gradient(
                var
            )
        return y.astype(self.dtype)


def batch_norm_factory(
    *,
    train: bool,
    momentum: float,
    epsilon: float,
    axis_name: str | None,
    dtype: Any,
    param_dtype: Any,
    activation: str = "relu",
) -> Callable[..., BatchNormAct]:
    """BatchNormAct bound to a network's options (callers add `name` and may override
    `activation`): batch statistics when training, with the exact two-pass variance."""
    return functools.partial(
        BatchNormAct,
        activation=activation,
        use_running_average=not train,
        momentum=momentum,
        epsilon=epsilon,
        axis_name=axis_name,
        use_fast_variance=False,
        dtype=dtype,
        param_dtype=param_dtype,
    )
