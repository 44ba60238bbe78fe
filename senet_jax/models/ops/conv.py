"""Dense k x k convolutions in three exact formulations, chosen per backend.

"onednn" calls oneDNN (ops/onednn.py), its direct convolutions for k x k and its matrix
products for 1x1, fastest on XLA:CPU; "matmul" runs them as im2col + 2-D matrix products
in XLA, the CPU fallback where oneDNN cannot be built; "native" is
lax.conv_general_dilated, fastest on GPU/TPU (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import logging
from jax import lax

from senet_jax import remat
from senet_jax.models.ops import backend_choice, onednn

he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "normal")

# How ungrouped convolutions run: "onednn" (oneDNN's direct convolutions, and its matrix
# products for 1x1; CPU only, float32), "matmul" (im2col + 2-D matrix products) or "native"
# (lax.conv_general_dilated, fastest on GPU/TPU). All three are exact.
CONV_IMPLEMENTATIONS = ("onednn", "matmul", "native")
# Backend -> what conv_implementation="auto" picks; unlisted backends get "native". On CPU,
# "onednn" where its library builds (else "matmul", said once in the log).
AUTO_CONV_BY_BACKEND = {"cpu": "onednn"}


# How spatial borders are padded: "torch" pads k // 2 on both sides (PyTorch and Caffe, so
# imported weights give the same outputs); "same" is TensorFlow's/flax's SAME, which for a
# stride-2 layer on an even size pads only the bottom/right.
PADDINGS = ("torch", "same")


def conv_padding(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """(before, after) padding of one spatial axis under a PADDINGS rule."""
    if padding == "torch":
        return kernel // 2, kernel // 2
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2
    raise ValueError(f"padding {padding!r}: use one of {list(PADDINGS)}")


def resolve_conv_implementation(name: str) -> str:
    """Maps "auto" to the implementation measured fastest on the default backend.

    Raises ValueError for "onednn" off CPU or where its library cannot be built.
    """
    resolved = backend_choice.resolve(
        "conv", name, CONV_IMPLEMENTATIONS, AUTO_CONV_BY_BACKEND, "native"
    )
    if resolved != "onednn":
        return resolved
    if name == "auto" and not onednn.available():
        _log_fallback_once(onednn.unavailable_reason())
        return "matmul"
    if jax.default_backend() != "cpu":
        raise ValueError(
            f"conv implementation 'onednn' runs on CPU only, not {jax.default_backend()}: "
            "use 'auto' or 'native'"
        )
    if not onednn.available():
        raise ValueError(
            f"conv implementation 'onednn' is unavailable here ({onednn.unavailable_reason()}): "
            "use 'auto' or 'matmul'"
        )
    return resolved


@functools.cache
def _log_fallback_once(reason: str | None) -> None:
    logging.warning("oneDNN convolutions unavailable (%s); CPU convolutions use 'matmul'", reason)


class Conv(nn.Module):
    """A bias-free k x k convolution, padded by `padding` (PADDINGS); parameters exactly as nn.Conv.

    Grouped convolutions (feature_group_count > 1, ResNeXt's 3x3) always run natively.
    "onednn" (the "auto" choice on CPU) applies to float32; other dtypes use "matmul".

    With implementation "matmul" it runs as patches
    [N*H'*W', k*k*C] times the kernel reshaped to [k*k*C, F] (for 1x1 the patches are
    the input itself). XLA:CPU's matmul path trains the 1x1 layers about 3x faster than
    its convolution path, and the 3-channel stem's convolution path is slow while its
    image needs no gradient, so the patches cost one cheap pass (benchmarks/RESULTS.md).
    The product is 2-D so that autodiff's weight gradient contracts one leading axis,
    which XLA:CPU's matmul reads in place; over (N, H, W) it transposes the cotangent first.
    """

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    implementation: str = "auto"
    padding: str = "torch"
    feature_group_count: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Any = he_normal

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        kh, kw = self.kernel_size
        groups = self.feature_group_count
        kernel = self.param(
            "kernel",
            self.kernel_init,
            (kh, kw, x.shape[-1] // groups, self.features),
            self.param_dtype,
        )
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        (sh, sw), (n, h, w, c) = self.strides, x.shape
        padding = (
            conv_padding(h, kh, sh, self.padding),
            conv_padding(w, kw, sw, self.padding),
        )
        implementation = (
            "native" if groups > 1 else resolve_conv_implementation(self.implementation)
        )
        onednn_f32 = implementation == "onednn" and x.dtype == jnp.float32
        if onednn_f32 and kh * kw > 1:
            return remat.conv_output(onednn.conv2d(x, kernel, tuple(self.strides), padding))
        if implementation == "native":
            y = lax.conv_general_dilated(
                x,
                kernel,
                self.strides,
                padding,
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=groups,
            )
            return remat.conv_output(y)
        ho, wo = (h + sum(padding[0]) - kh) // sh + 1, (w + sum(padding[1]) - kw) // sw + 1
        xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
        # Tap-major, channel-minor: the order of kernel.reshape(kh * kw * c, features).
        patches = jnp.concatenate(
            [
                lax.slice(
                    xp,
                    (0, i, j, 0),
                    (n, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c),
                    (1, sh, sw, 1),
                )
                for i in range(kh)
                for j in range(kw)
            ],
            axis=-1,
        )
        a, b = patches.reshape(-1, kh * kw * c), kernel.reshape(kh * kw * c, self.features)
        if onednn_f32:  # a 1x1: oneDNN's products, faster than XLA's on all three
            y = onednn.matmul(a, b)
        else:
            y = lax.dot_general(a, b, (((1,), (0,)), ((), ())))
        return remat.conv_output(y.reshape(n, ho, wo, self.features))


# The network's two uses: the 1x1 after each depthwise conv, and the k x k stem.
PointwiseConv = functools.partial(Conv, kernel_size=(1, 1))
StemConv = Conv
