"""eSE, effective Squeeze-Excitation (Lee & Park, "CenterMask", CVPR 2020; VoVNetV2).

SE with its bottleneck removed: one C -> C dense layer keeps every channel's information
(SE's C/r reduction loses some), gated by a hard sigmoid.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from senet_jax.models.attention.base import ChannelAttention, global_mean


class EffectiveSqueezeExcite(ChannelAttention):
    """Global average pool -> Dense(C) -> hard sigmoid (relu6(x + 3) / 6)."""

    def excite(self, x: jnp.ndarray) -> jnp.ndarray:
        s = global_mean(x).astype(self.dtype)
        s = nn.Dense(x.shape[-1], dtype=self.dtype, param_dtype=self.param_dtype, name="fc")(s)
        return nn.hard_sigmoid(s)
