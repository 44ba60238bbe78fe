"""CBAM, the convolutional block attention module (Woo et al., ECCV 2018).

Channel attention first: average- and max-pooled descriptors through one shared
bottleneck MLP, summed, gated. Then spatial attention on the rescaled map: the mean and
the maximum over channels, a 7x7 convolution with BatchNorm, gated per position.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from senet_jax.models.attention.base import (
    GATES,
    ChannelAttention,
    global_mean,
    se_hidden_features,
)

SPATIAL_KERNEL = 7


class ConvBlockAttention(ChannelAttention):
    """CBAM; `norm` is the network's BatchNorm factory (it must take `activation="none"`).

    The gates `excite` returns (and analyze reads) are the channel gates; the spatial
    gates are applied after them, in `rescale`.
    """

    reduction: int = 16
    min_features: int = 1
    gate: str = "sigmoid"
    norm: Any = None

    def excite(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.gate not in GATES:
            raise ValueError(f"CBAM gate={self.gate!r}: use one of {sorted(GATES)}")
        channels = x.shape[-1]
        hidden = se_hidden_features(channels, self.reduction, self.min_features)
        dense = lambda n, name: nn.Dense(
            n, use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype, name=name
        )
        fc1, fc2 = dense(hidden, "fc1"), dense(channels, "fc2")
        mlp = lambda s: fc2(nn.relu(fc1(s.astype(self.dtype))))
        pooled_max = jnp.max(x, axis=(1, 2)).astype(jnp.float32)
        return GATES[self.gate](mlp(global_mean(x)) + mlp(pooled_max))

    def rescale(self, x: jnp.ndarray, gates: jnp.ndarray) -> jnp.ndarray:
        if self.norm is None:
            raise ValueError("ConvBlockAttention needs norm, the network's BatchNorm factory")
        y = super().rescale(x, gates)
        y32 = y.astype(jnp.float32)
        pooled = jnp.stack([jnp.mean(y32, axis=-1), jnp.max(y32, axis=-1)], axis=-1)
        pad = SPATIAL_KERNEL // 2
        s = nn.Conv(
            1,
            (SPATIAL_KERNEL, SPATIAL_KERNEL),
            padding=[(pad, pad), (pad, pad)],
            use_bias=False,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="spatial_conv",
        )(pooled.astype(self.dtype))
        s = self.norm(activation="none", name="spatial_bn")(s)
        return y * GATES[self.gate](s).astype(y.dtype)
