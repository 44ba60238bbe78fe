"""The depthwise 3x3 convolution as one swappable piece.

MobileNet spends most of its time here on some backends, and the fastest exact
formulation differs by backend, so the model asks for `DepthwiseConv` and the
formulation is chosen by name (or automatically by backend).
"""

from typing import Any, Callable, Dict, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

# formulation(x, kernel, strides, padding) -> y, with kernel shaped (kh, kw, 1, C)
# exactly like nn.Conv(feature_group_count=C), so checkpoints do not depend on it.
Formulation = Callable[[jnp.ndarray, jnp.ndarray, Tuple[int, int], Sequence[Tuple[int, int]]], jnp.ndarray]


def grouped_conv(x, kernel, strides, padding):
    """XLA's native grouped convolution: the best choice on GPU and TPU."""
    return lax.conv_general_dilated(
        x, kernel, window_strides=strides, padding=padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x.shape[-1])


FORMULATIONS: Dict[str, Formulation] = {
    "grouped": grouped_conv,
}

# Backend -> formulation picked by implementation="auto".
AUTO_BY_BACKEND: Dict[str, str] = {}


def resolve_implementation(name: str) -> str:
    """Maps "auto" to the fastest formulation measured for the default backend."""
    if name == "auto":
        return AUTO_BY_BACKEND.get(jax.default_backend(), "grouped")
    if name not in FORMULATIONS:
        raise ValueError(f"depthwise implementation {name!r} is unknown: use 'auto' or one of {sorted(FORMULATIONS)}")
    return name


class DepthwiseConv(nn.Module):
    """A bias-free depthwise convolution with symmetric padding of kernel_size // 2."""

    kernel_size: Tuple[int, int] = (3, 3)
    strides: Tuple[int, int] = (1, 1)
    implementation: str = "auto"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Callable = nn.initializers.variance_scaling(2.0, "fan_in", "normal")

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        channels = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, 1, channels), self.param_dtype)
        padding = [(k // 2, k // 2) for k in self.kernel_size]
        fn = FORMULATIONS[resolve_implementation(self.implementation)]
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        return fn(x, kernel, tuple(self.strides), padding)
