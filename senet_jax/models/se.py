"""The Squeeze-and-Excitation block (Hu et al., "Squeeze-and-Excitation Networks").

The options mirror the paper's ablations (Tables 10-13): reduction ratio, squeeze
operator and excitation gate, so each ablation is a config change, not a code change.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

SQUEEZE_OPS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "avg": lambda x: jnp.mean(x, axis=(1, 2)),
    "max": lambda x: jnp.max(x, axis=(1, 2)),
}

GATES: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "sigmoid": nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": nn.relu,
}


def se_hidden_features(channels: int, reduction: int, min_features: int = 1) -> int:
    """Width of the bottleneck: C / r, but never below `min_features`."""
    return max(min_features, channels // reduction)


class SqueezeExcite(nn.Module):
    """Recalibrates channels of an NHWC feature map by learned, input-dependent gates.

    squeeze:    a global pooling turns each channel into one descriptor;
    excitation: Dense(C/r) -> ReLU -> Dense(C) -> gate gives one weight per channel;
    scale:      the feature map is multiplied channel-wise by those weights.
    """

    reduction: int = 16
    squeeze: str = "avg"
    gate: str = "sigmoid"
    min_features: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.squeeze not in SQUEEZE_OPS:
            raise ValueError(
                f"SqueezeExcite.squeeze={self.squeeze!r}: use one of {sorted(SQUEEZE_OPS)}"
            )
        if self.gate not in GATES:
            raise ValueError(f"SqueezeExcite.gate={self.gate!r}: use one of {sorted(GATES)}")
        channels = x.shape[-1]
        hidden = se_hidden_features(channels, self.reduction, self.min_features)
        dense = lambda n, name: nn.Dense(
            n, dtype=self.dtype, param_dtype=self.param_dtype, name=name
        )
        # Pool in float32: a mean over thousands of bf16 values loses precision.
        s = SQUEEZE_OPS[self.squeeze](x.astype(jnp.float32)).astype(self.dtype)
        s = nn.relu(dense(hidden, "reduce")(s))
        s = GATES[self.gate](dense(channels, "expand")(s))
        return x * s[:, None, None, :].astype(x.dtype)
