"""What every channel-attention kind shares: gates from `excite`, sown, then applied.

Keeping the sow and the multiply here means `senet_jax.analyze` reads and replaces the
gates of every kind the same way (an interceptor on `excite`), whatever the kind computes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

GATES: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "sigmoid": nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": nn.relu,
}


def global_mean(x: jnp.ndarray) -> jnp.ndarray:
    """[N, C] spatial mean, in float32: a mean over thousands of bf16 values loses precision."""
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


def se_hidden_features(channels: int, reduction: int, min_features: int = 1) -> int:
    """Width of an SE-style bottleneck: C / r, but never below `min_features`."""
    return max(min_features, channels // reduction)


def channel_summary(gates: jnp.ndarray) -> jnp.ndarray:
    """[N, C] float32: the gates themselves, or their spatial mean when they vary over space."""
    gates = gates.astype(jnp.float32)
    return jnp.mean(gates, axis=(1, 2)) if gates.ndim == 4 else gates


class ChannelAttention(nn.Module):
    """Base of the attention kinds: subclasses define `excite(x)`.

    `excite` returns the gates, [N, C] (one per channel) or [N, H, W, C] (varying over
    space); `rescale` multiplies them in (CBAM adds its spatial step there). The gates are
    sown into the "excitations" collection as [N, C] (free unless that collection is
    mutable), which is how `senet_jax.analyze` reads them.
    """

    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        gates = self.excite(x)
        self.sow("excitations", "gate", channel_summary(gates))
        return self.rescale(x, gates)

    def excite(self, x: jnp.ndarray) -> jnp.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define excite(x)")

    def rescale(self, x: jnp.ndarray, gates: jnp.ndarray) -> jnp.ndarray:
        if gates.ndim == 2:
            gates = gates[:, None, None, :]
        return x * gates.astype(x.dtype)
