"""The ResNet stem's 3x3 stride-2 max-pool, with a backward of its own (max_pool_3x3_s2)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from senet_jax.models.ops.conv import conv_padding

# "ceil" is Caffe's (no padding, the last window may overhang the bottom/right border; the
# original SENet and timm's legacy_* models), "pad" pads one pixel per side (PyTorch's
# ResNet: torchvision, timm's resnet*/seresnet*).
POOL_MODES = ("ceil", "pad")


def _pool_taps(xp, out_hw):
    (ho, wo), n, c = out_hw, xp.shape[0], xp.shape[3]
    return {
        (i, j): lax.slice(xp, (0, i, j, 0), (n, i + 2 * ho - 1, j + 2 * wo - 1, c), (1, 2, 2, 1))
        for i in range(3)
        for j in range(3)
    }


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_pool(x, pads, out_hw):
    return _max_pool_fwd(x, pads, out_hw)[0]


def _max_pool_fwd(x, pads, out_hw):
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
    taps = list(_pool_taps(xp, out_hw).values())
    y = functools.reduce(jnp.maximum, taps)
    return y, (x, y)


def _max_pool_bwd(pads, out_hw, residuals, g):
    x, y = residuals
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
    # Each window's gradient goes to its first maximum in row-major order, as PyTorch's.
    taken = jnp.zeros(y.shape, bool)
    parts = {}
    for ij, tap in _pool_taps(xp, out_hw).items():
        hit = (tap == y) & ~taken
        taken = taken | hit
        parts[ij] = jnp.where(hit, g, 0).astype(g.dtype)

    # Tap (i, j) of output (a, b) reads xp[2a + i, 2b + j]: with xp split into its four
    # (row, column) parities every tap is a plain shift by 0 or 1, no strided scatter.
    def shifted(ij):
        di, dj = ij[0] // 2, ij[1] // 2
        return jnp.pad(parts[ij], ((0, 0), (di, 1 - di), (dj, 1 - dj), (0, 0)))

    phases = [
        [sum(shifted(ij) for ij in parts if (ij[0] % 2, ij[1] % 2) == (p, q)) for q in (0, 1)]
        for p in (0, 1)
    ]
    n, ho, wo, c = y.shape
    dxp = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)  # N, H', 2, W', 2, C
    dxp = dxp.reshape(n, 2 * ho + 2, 2 * wo + 2, c)
    (ht, _), (wl, _) = pads
    return (dxp[:, ht : ht + x.shape[1], wl : wl + x.shape[2]],)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool_3x3_s2(x: jnp.ndarray, mode: str, padding: str) -> jnp.ndarray:
    """The stem's 3x3 stride-2 max-pool; padding never wins (-inf).

    The maximum of nine strided slices, with a hand-written backward over the input's
    four row/column parities: on XLA:CPU the gradient of lax.reduce_window's max
    (select-and-gather over packed pairs) took about a fifth of a ResNet-50 train step,
    and autodiff of nine maxima still a tenth (benchmarks/RESULTS.md).
    """
    pads = []
    for n in x.shape[1:3]:
        if mode == "ceil":
            out = -(-max(n - 3, 0) // 2) + 1
            pads.append((0, max((out - 1) * 2 + 3 - n, 0)))
        else:
            pads.append(conv_padding(n, 3, 2, padding))
    out_hw = tuple((n + lo + hi - 3) // 2 + 1 for n, (lo, hi) in zip(x.shape[1:3], pads))
    return _max_pool(x, tuple(pads), out_hw)
