"""MobileNetV1 (Howard et al., 2017), optionally with an SE block in every
depthwise-separable block, the SE-MobileNet of the SENet paper (Table 3)."""

import functools
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from senet_jax.models import backend_choice
from senet_jax.models.depthwise import DepthwiseConv
from senet_jax.models.norm import BatchNormReLU
from senet_jax.models.se import SqueezeExcite

STEM_FEATURES = 32
# (pointwise output channels, depthwise stride) of the 13 depthwise-separable blocks.
BLOCKS: Tuple[Tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


def total_stride(stem_strides: int = 2) -> int:
    """Input pixels per output pixel of the last feature map."""
    stride = stem_strides
    for _, s in BLOCKS:
        stride *= s
    return stride


def scale_width(features: int, width_multiplier: float) -> int:
    """Channels after the width multiplier, kept a multiple of 8 (and at least 8)."""
    if width_multiplier == 1.0:
        return features
    return max(8, int(features * width_multiplier + 4) // 8 * 8)


he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "normal")

# How the 1x1 and stem convolutions run: "matmul" (2-D matrix products, fastest on XLA:CPU)
# or "native" (lax.conv_general_dilated, fastest on GPU/TPU). Both are exact.
CONV_IMPLEMENTATIONS = ("matmul", "native")
# Backend -> what conv_implementation="auto" picks; unlisted backends get "native".
AUTO_CONV_BY_BACKEND = {"cpu": "matmul"}


def resolve_conv_implementation(name: str) -> str:
    """Maps "auto" to the implementation measured fastest on the default backend."""
    return backend_choice.resolve("conv", name, CONV_IMPLEMENTATIONS, AUTO_CONV_BY_BACKEND, "native")


class Conv(nn.Module):
    """A bias-free k x k convolution with symmetric padding k // 2; parameters exactly as nn.Conv.

    With implementation "matmul" (the "auto" choice on CPU) it runs as patches
    [N*H'*W', k*k*C] times the kernel reshaped to [k*k*C, F] (for 1x1 the patches are
    the input itself). XLA:CPU's matmul path trains the 1x1 layers about 3x faster than
    its convolution path, and the 3-channel stem's convolution path is slow while its
    image needs no gradient, so the patches cost one cheap pass (benchmarks/RESULTS.md).
    The product is 2-D so that autodiff's weight gradient contracts one leading axis,
    which XLA:CPU's matmul reads in place; over (N, H, W) it transposes the cotangent first.
    """

    features: int
    kernel_size: Tuple[int, int] = (3, 3)
    strides: Tuple[int, int] = (1, 1)
    implementation: str = "auto"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Any = he_normal

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        kh, kw = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features), self.param_dtype)
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        padding = ((kh // 2, kh // 2), (kw // 2, kw // 2))
        if resolve_conv_implementation(self.implementation) == "native":
            return lax.conv_general_dilated(x, kernel, self.strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
        (sh, sw), (n, h, w, c) = self.strides, x.shape
        ho, wo = (h + 2 * (kh // 2) - kh) // sh + 1, (w + 2 * (kw // 2) - kw) // sw + 1
        xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
        # Tap-major, channel-minor: the order of kernel.reshape(kh * kw * c, features).
        patches = jnp.concatenate([
            lax.slice(xp, (0, i, j, 0), (n, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c), (1, sh, sw, 1))
            for i in range(kh) for j in range(kw)], axis=-1)
        y = lax.dot_general(patches.reshape(-1, kh * kw * c), kernel.reshape(kh * kw * c, self.features),
                            (((1,), (0,)), ((), ())))
        return y.reshape(n, ho, wo, self.features)


# The network's two uses: the 1x1 after each depthwise conv, and the k x k stem.
PointwiseConv = functools.partial(Conv, kernel_size=(1, 1))
StemConv = Conv


class SeparableBlock(nn.Module):
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU, then SE (if enabled)."""

    features: int
    strides: int
    use_se: bool
    se_options: Any
    depthwise_implementation: str
    conv_implementation: str
    norm: Any
    dtype: Any
    param_dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = DepthwiseConv(strides=(self.strides, self.strides), implementation=self.depthwise_implementation,
                          dtype=self.dtype, param_dtype=self.param_dtype, name="depthwise")(x)
        x = self.norm(name="depthwise_bn")(x)
        x = PointwiseConv(self.features, implementation=self.conv_implementation, dtype=self.dtype, param_dtype=self.param_dtype, name="pointwise")(x)
        x = self.norm(name="pointwise_bn")(x)
        if self.use_se:
            x = SqueezeExcite(**dict(self.se_options), dtype=self.dtype, param_dtype=self.param_dtype, name="se")(x)
        return x


class MobileNetV1(nn.Module):
    """MobileNetV1 classifier for NHWC images; returns float32 logits.

    `se_blocks` selects which of the 13 blocks get SE (None: all when `use_se`),
    which is how the paper's "SE in one stage only" ablation is expressed.
    `stem_strides=1` halves the total stride (32 -> 16), the usual adaptation for
    small images such as STL10's 96x96, at 4x the multiply-adds.
    `bn_axis_name` makes BatchNorm average its batch statistics over that pmap axis.
    """

    num_classes: int = 1000
    width_multiplier: float = 1.0
    use_se: bool = False
    se_reduction: int = 16
    se_squeeze: str = "avg"
    se_gate: str = "sigmoid"
    se_min_features: int = 1
    se_blocks: Optional[Sequence[int]] = None
    stem_strides: int = 2
    dropout_rate: float = 0.0
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    bn_axis_name: Optional[str] = None
    depthwise_implementation: str = "auto"
    conv_implementation: str = "auto"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        # BatchNorm + ReLU fused (senet_jax.models.norm): same parameters and statistics as nn.BatchNorm.
        norm = functools.partial(BatchNormReLU, use_running_average=not train, momentum=self.bn_momentum,
                                 epsilon=self.bn_epsilon, axis_name=self.bn_axis_name, use_fast_variance=False,
                                 dtype=self.dtype, param_dtype=self.param_dtype)
        se_options = dict(reduction=self.se_reduction, squeeze=self.se_squeeze,
                          gate=self.se_gate, min_features=self.se_min_features)
        se_blocks = range(len(BLOCKS)) if self.se_blocks is None else set(self.se_blocks)

        x = x.astype(self.dtype)
        x = StemConv(scale_width(STEM_FEATURES, self.width_multiplier), strides=(self.stem_strides,) * 2,
                     implementation=self.conv_implementation, dtype=self.dtype, param_dtype=self.param_dtype, name="stem")(x)
        x = norm(name="stem_bn")(x)
        for i, (features, strides) in enumerate(BLOCKS):
            x = SeparableBlock(features=scale_width(features, self.width_multiplier), strides=strides,
                               use_se=self.use_se and i in se_blocks, se_options=se_options,
                               depthwise_implementation=self.depthwise_implementation,
                               conv_implementation=self.conv_implementation, norm=norm,
                               dtype=self.dtype, param_dtype=self.param_dtype, name=f"block{i + 1:02d}")(x)
        x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="classifier")(x)
        return x.astype(jnp.float32)
