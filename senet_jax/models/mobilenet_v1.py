"""MobileNetV1 (Howard et al., 2017), optionally with an SE block in every
depthwise-separable block, the SE-MobileNet of the SENet paper (Table 3), or another
channel-attention kind in its place (config.model.se.kind)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from senet_jax.models.ops.conv import PointwiseConv, StemConv
from senet_jax.models.ops.depthwise import DepthwiseConv
from senet_jax.models.ops.norm import batch_norm_factory
from senet_jax.models.se import SEOptions
from senet_jax.models.width import scale_width

STEM_FEATURES = 32
# (pointwise output channels, depthwise stride) of the 13 depthwise-separable blocks.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
# What config.model.se may say for this architecture: block numbers (block01..block13).
SE_BLOCKS = tuple(range(1, len(BLOCKS) + 1))
SE_PLACEMENTS = ("standard",)


class SeparableBlock(nn.Module):
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU, then SE or another channel
    attention (if enabled)."""

    features: int
    strides: int
    se: SEOptions | None
    depthwise_implementation: str
    conv_implementation: str
    padding: str
    norm: Any
    dtype: Any
    param_dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = DepthwiseConv(
            strides=(self.strides, self.strides),
            implementation=self.depthwise_implementation,
            padding=self.padding,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="depthwise",
        )(x)
        x = self.norm(name="depthwise_bn")(x)
        x = PointwiseConv(
            self.features,
            implementation=self.conv_implementation,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="pointwise",
        )(x)
        x = self.norm(name="pointwise_bn")(x)
        if self.se is not None:
            x = self.se.attention(norm=self.norm, dtype=self.dtype, param_dtype=self.param_dtype)(x)
        return x


class MobileNetV1(nn.Module):
    """MobileNetV1 classifier for NHWC images; returns float32 logits.

    `se` (None: no SE) holds the SE options; its `blocks` selects which of the 13
    blocks get SE (1-based, as the block names), the paper's one-stage ablation, and its
    `kind` which channel attention (senet_jax.models.se.KINDS).
    `stem_strides=1` halves the total stride (32 -> 16), the usual adaptation for
    small images such as STL10's 96x96, at 4x the multiply-adds.
    `bn_axis_name` makes BatchNorm average its batch statistics over that pmap axis.
    `padding` ("torch", the default: k // 2 on every side, as PyTorch; or "same", flax's SAME)
    and `relu6` (timm's `mobilenetv1_100` uses ReLU6) exist so imported weights
    (senet_jax.weights) give the logits they were trained to give.
    """

    num_classes: int = 1000
    width_multiplier: float = 1.0
    se: SEOptions | None = None
    stem_strides: int = 2
    dropout_rate: float = 0.0
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    bn_axis_name: str | None = None
    depthwise_implementation: str = "auto"
    conv_implementation: str = "auto"
    padding: str = "torch"
    relu6: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def total_stride(self) -> int:
        """Input pixels per output pixel of the last feature map."""
        stride = self.stem_strides
        for _, s in BLOCKS:
            stride *= s
        return stride

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        # BatchNorm + ReLU fused (models/ops/norm.py): parameters and statistics as nn.BatchNorm.
        norm = batch_norm_factory(
            train=train,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            activation="relu6" if self.relu6 else "relu",
        )

        x = x.astype(self.dtype)
        x = StemConv(
            scale_width(STEM_FEATURES, self.width_multiplier),
            strides=(self.stem_strides,) * 2,
            implementation=self.conv_implementation,
            padding=self.padding,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="stem",
        )(x)
        x = norm(name="stem_bn")(x)
        for i, (features, strides) in enumerate(BLOCKS):
            x = SeparableBlock(
                features=scale_width(features, self.width_multiplier),
                strides=strides,
                se=self.se if self.se is not None and self.se.applies_to(i + 1) else None,
                depthwise_implementation=self.depthwise_implementation,
                conv_implementation=self.conv_implementation,
                padding=self.padding,
                norm=norm,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=f"block{i + 1:02d}",
            )(x)
        x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(
            self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="classifier"
        )(x)
        return x.astype(jnp.float32)
