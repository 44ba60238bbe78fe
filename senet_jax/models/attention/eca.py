"""ECA, efficient channel attention (Wang et al., "ECA-Net", CVPR 2020).

SE's two dense layers become one 1D convolution across the pooled channel descriptor: each
channel's gate sees only its k neighbours, with k chosen from the channel count, so a
stage adds a handful of weights instead of 2C^2/r.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

from senet_jax.models.attention.base import GATES, ChannelAttention, global_mean


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """The paper's adaptive k: |log2(C) / gamma + b / gamma|, truncated, then made odd
    (upwards), as the authors' code. (timm also keeps k >= 3, which differs below 8 channels.)"""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class EfficientChannelAttention(ChannelAttention):
    """Global average pool -> 1D conv of size k over channels (no bias) -> gate."""

    gate: str = "sigmoid"

    def excite(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.gate not in GATES:
            raise ValueError(f"ECA gate={self.gate!r}: use one of {sorted(GATES)}")
        k = eca_kernel_size(x.shape[-1])
        s = global_mean(x).astype(self.dtype)[:, :, None]  # [N, C, 1]: channels as a sequence
        s = nn.Conv(
            1,
            (k,),
            padding=[((k - 1) // 2, (k - 1) // 2)],
            use_bias=False,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv",
        )(s)
        return GATES[self.gate](s[:, :, 0])
