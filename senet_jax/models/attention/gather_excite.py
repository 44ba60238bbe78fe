"""Gather-Excite (Hu, Shen, Albanie, Sun & Vedaldi, NeurIPS 2018), the SENet authors' sequel.

Gather aggregates context over a spatial `extent` (0: the whole map, as SE's squeeze; else
e, so each gathered cell covers about e x e input cells); excite resizes the gathered map
back to the input's (nearest neighbour) and gates the input with it. The paper's variants:
  gather="pool"  GE-theta-minus, parameter-free: average pooling (kernel 2e - 1, stride e,
                 padding e - 1, padding not counted; global extent: the mean)
  gather="conv"  GE-theta: depthwise convolutions with BatchNorm; log2(e) 3x3 stride-2
                 ones with ReLU between them, or for the global extent one depthwise
                 convolution as large as the map (VALID, so one cell per channel)
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from senet_jax.models.attention.base import GATES, ChannelAttention, global_mean

GATHERS = ("pool", "conv")


def extent_error(extent: Any) -> str | None:
    """None for a valid extent (0, or a power of two >= 2); else what is wrong with it."""
    valid = isinstance(extent, int) and not isinstance(extent, bool)
    if valid and (extent == 0 or (extent >= 2 and extent & (extent - 1) == 0)):
        return None
    return f"must be 0 (global) or a power of two >= 2 such as 2, 4, 8; got {extent!r}"


def resize_nearest(x: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """[N, h, w, C] -> [N, height, width, C]: output row i reads row floor(i * h / height)."""
    rows = (jnp.arange(height) * x.shape[1]) // height
    cols = (jnp.arange(width) * x.shape[2]) // width
    return x[:, rows][:, :, cols]


class GatherExcite(ChannelAttention):
    """GE-theta-minus (gather="pool") or GE-theta (gather="conv") with the given extent.

    `norm` is the network's BatchNorm factory (GE-theta only; it must take `activation`).
    """

    extent: int = 0
    gather: str = "pool"
    gate: str = "sigmoid"
    norm: Any = None

    def excite(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.gather not in GATHERS:
            raise ValueError(f"GatherExcite gather={self.gather!r}: use one of {list(GATHERS)}")
        if self.gate not in GATES:
            raise ValueError(f"GatherExcite gate={self.gate!r}: use one of {sorted(GATES)}")
        problem = extent_error(self.extent)
        if problem:
            raise ValueError(f"GatherExcite extent {problem}")
        gathered = self._gather_pool(x) if self.gather == "pool" else self._gather_conv(x)
        if gathered.ndim == 4 and gathered.shape[1:3] != x.shape[1:3]:
            gathered = resize_nearest(gathered, *x.shape[1:3])
        return GATES[self.gate](gathered)

    def _gather_pool(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.extent == 0:
            return global_mean(x)
        e = self.extent
        pad = ((e - 1, e - 1), (e - 1, e - 1))
        x32 = x.astype(jnp.float32)
        return nn.avg_pool(x32, (2 * e - 1,) * 2, (e, e), pad, count_include_pad=False)

    def _gather_conv(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.norm is None:
            raise ValueError("GatherExcite gather='conv' needs norm, the network's BatchNorm")
        channels = x.shape[-1]
        conv = lambda kernel, strides, padding, name: nn.Conv(
            channels,
            kernel,
            strides,
            padding,
            feature_group_count=channels,
            use_bias=False,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=name,
        )
        if self.extent == 0:
            y = conv(x.shape[1:3], 1, "VALID", "conv1")(x)
            return self.norm(activation="none", name="norm1")(y)[:, 0, 0, :]
        steps = int(math.log2(self.extent))
        for i in range(1, steps + 1):
            x = conv((3, 3), (2, 2), [(1, 1), (1, 1)], f"conv{i}")(x)
            x = self.norm(activation="relu" if i < steps else "none", name=f"norm{i}")(x)
        return x
