"""The depthwise 3x3 convolution as one swappable piece.

MobileNet spends most of its time here on some backends, and the fastest exact
formulation differs by backend, so the model asks for `DepthwiseConv` and the
formulation is chosen by name (or automatically by backend).

Measured on a 2-core AVX-512 CPU (SE-MobileNetV1 train step, 96x96, batch 64; see
benchmarks/RESULTS.md): XLA:CPU's grouped convolution, and above all its kernel
gradient, is several times slower than nine shifted multiply-adds; the kernel
gradient of those is fastest as one fused reduction that reads x and the cotangent
once and keeps few, small partial sums.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from senet_jax import remat
from senet_jax.models.ops import backend_choice
from senet_jax.models.ops.conv import conv_padding
from senet_jax.models.ops.reductions import channel_sums

# formulation(x, kernel, strides, padding) -> y, with kernel shaped (kh, kw, 1, C)
# exactly like nn.Conv(feature_group_count=C), so checkpoints do not depend on it.
Formulation = Callable[
    [jnp.ndarray, jnp.ndarray, tuple[int, int], Sequence[tuple[int, int]]], jnp.ndarray
]


def grouped_conv(x, kernel, strides, padding):
    """XLA's native grouped convolution: the best choice on GPU and TPU."""
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=strides,
        padding=padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=x.shape[-1],
    )


def _output_size(size: int, k: int, stride: int, pad: tuple[int, int]) -> int:
    return (size + pad[0] + pad[1] - k) // stride + 1


def _tap(xp, i, j, out_hw, strides):
    """The input pixels that kernel tap (i, j) meets, one per output pixel."""
    (ho, wo), (sh, sw) = out_hw, strides
    n, c = xp.shape[0], xp.shape[3]
    return lax.slice(
        xp, (0, i, j, 0), (n, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c), (1, sh, sw, 1)
    )


def _multiply_add_taps(xp, kernel, out_hw, strides):
    """sum over taps of shifted (strided) slices of the padded input times per-channel weights."""
    y = None
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            t = _tap(xp, i, j, out_hw, strides) * kernel[i, j, 0]
            y = t if y is None else y + t
    return y


def _pad(x, padding):
    return jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))


def shift_add(x, kernel, strides, padding):
    """Nine shifted slices times per-channel weights; gradients by plain autodiff."""
    ho = _output_size(x.shape[1], kernel.shape[0], strides[0], padding[0])
    wo = _output_size(x.shape[2], kernel.shape[1], strides[1], padding[1])
    return _multiply_add_taps(_pad(x, padding), kernel, (ho, wo), strides)


def _kernel_grad(x, g, kernel_hw, strides, padding):
    """d loss / d kernel: per tap, the sum over N, H, W of tap * g, accumulated in at least float32.

    The nine tap products go to one channel_sums call: XLA fuses the nine windows into
    its reduction, so x and g are read once. Reducing over all of N, H, W at once, nine
    separate reductions, or a loop over small groups of images were each measured
    slower (benchmarks/RESULTS.md).
    """
    kh, kw = kernel_hw
    out_hw = g.shape[1:3]
    acc_dtype = jnp.promote_types(g.dtype, jnp.float32)
    xp = _pad(x, padding)
    g = g.astype(acc_dtype)
    products = tuple(
        _tap(xp, i, j, out_hw, strides).astype(acc_dtype) * g for i in range(kh) for j in range(kw)
    )
    dk = jnp.stack(channel_sums(*products))
    return dk.reshape(kh, kw, 1, g.shape[-1])


def _input_grad(g, kernel, in_hw, strides, padding):
    """d loss / d x: the cotangent, dilated by the stride and padded, correlated with the
    flipped kernel."""
    kh, kw = kernel.shape[:2]
    (h, w), (sh, sw) = in_hw, strides
    ho, wo = g.shape[1:3]
    lo = (kh - 1 - padding[0][0], kw - 1 - padding[1][0])
    hi = (h + kh - 1 - lo[0] - ((ho - 1) * sh + 1), w + kw - 1 - lo[1] - ((wo - 1) * sw + 1))
    gp = lax.pad(
        g,
        jnp.zeros((), g.dtype),
        ((0, 0, 0), (lo[0], hi[0], sh - 1), (lo[1], hi[1], sw - 1), (0, 0, 0)),
    )
    return _multiply_add_taps(gp, kernel[::-1, ::-1], (h, w), (1, 1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _shift_add_vjp(x, kernel, strides, padding):
    return shift_add(x, kernel, strides, padding)


def _shift_add_fwd(x, kernel, strides, padding):
    return shift_add(x, kernel, strides, padding), (x, kernel)


def _shift_add_bwd(strides, padding, residuals, g):
    x, kernel = residuals
    dk = _kernel_grad(x, g, kernel.shape[:2], strides, padding)
    dx = _input_grad(g, kernel, x.shape[1:3], strides, padding)
    return dx, dk.astype(kernel.dtype)


_shift_add_vjp.defvjp(_shift_add_fwd, _shift_add_bwd)


def shift_add_vjp(x, kernel, strides, padding):
    """shift_add with a hand-written backward: correlation for dx, one fused reduction for dk."""
    return _shift_add_vjp(x, kernel, tuple(strides), tuple(tuple(p) for p in padding))


FORMULATIONS: dict[str, Formulation] = {
    "grouped": grouped_conv,
    "shift_add": shift_add,
    "shift_add_vjp": shift_add_vjp,
}

# Backend -> formulation picked by implementation="auto".
AUTO_BY_BACKEND: dict[str, str] = {"cpu": "shift_add_vjp"}


def resolve_implementation(name: str) -> str:
    """Maps "auto" to the fastest formulation measured for the default backend."""
    return backend_choice.resolve("depthwise", name, FORMULATIONS, AUTO_BY_BACKEND, "grouped")


class DepthwiseConv(nn.Module):
    """A bias-free depthwise convolution padded by `padding` (ops.conv.PADDINGS: "torch" is
    kernel_size // 2 on both sides)."""

    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    implementation: str = "auto"
    padding: str = "torch"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Callable = nn.initializers.variance_scaling(2.0, "fan_in", "normal")

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        channels = x.shape[-1]
        kernel = self.param(
            "kernel", self.kernel_init, (*self.kernel_size, 1, channels), self.param_dtype
        )
        padding = [
            conv_padding(n, k, s, self.padding)
            for n, k, s in zip(x.shape[1:3], self.kernel_size, self.strides)
        ]
        fn = FORMULATIONS[resolve_implementation(self.implementation)]
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        return remat.conv_output(fn(x, kernel, tuple(self.strides), padding))
