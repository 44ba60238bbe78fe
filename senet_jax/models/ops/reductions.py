"""Per-channel sums of NHWC arrays, shaped for XLA:CPU.

Summing several same-shaped arrays over N, H, W is the backward pass of both the
depthwise kernel (nine tap products) and BatchNorm (two sums). One variadic reduction
over W reads every operand once, and XLA fuses the operands' producers into it; the
small [N, H, C] partial sums left are then summed. On XLA:CPU that measured 1.2-3x
faster than one sum per array over N, H, W at once (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def channel_sums(*arrays):
    """For equally shaped arrays, each one's sum over all but the last axis."""
    x = arrays[0]
    if x.ndim < 3:
        return tuple(jnp.sum(a, axis=tuple(range(x.ndim - 1))) for a in arrays)
    zeros = tuple(jnp.zeros((), a.dtype) for a in arrays)
    partial = lax.reduce(
        arrays, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)), (x.ndim - 2,)
    )
    return tuple(jnp.sum(p, axis=tuple(range(p.ndim - 1))) for p in partial)
