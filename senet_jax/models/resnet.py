"""ResNet, ResNeXt and their SE versions: SE-ResNet, SE-ResNeXt and SENet-154 (Hu et al.).

One module covers the family; the names in ARCHITECTURES fix the depth, block type,
cardinality and stem, the rest are options. SE is placed per `config.model.se` (an
SEOptions), so the paper's residual-unit ablations (Tables 13-15) are config changes:

placement (where SE sits in a residual unit; paper Fig. 5 and Tables 14-15):
  "standard"  on the residual branch, after its last BatchNorm, before the sum (Fig. 5b)
  "pre"       on the unit's input, before the residual branch; the shortcut takes the
              unscaled input (Fig. 5c)
  "post"      on the unit's output, after the sum and its ReLU (Fig. 5d)
  "identity"  on the shortcut, in parallel with the residual branch; on a projection
              shortcut it scales the projection's output (Fig. 5e)
  "conv3x3"   bottleneck units only: after the 3x3 convolution's BatchNorm+ReLU, on the
              narrow middle channels (Table 15, "SE_3x3")
blocks (which stages get SE; paper Table 13): "all", or a list of stage names. Stages are
  named as in the paper's Table 1: "conv2_x", "conv3_x", "conv4_x", "conv5_x" (output
  strides 4, 8, 16, 32; the paper's "SE_Stage_2" is conv2_x, and so on). The integers
  2-5 are accepted for the same stages. conv1 (the stem) never has SE.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from senet_jax.models.ops.conv import PADDINGS, Conv
from senet_jax.models.ops.norm import batch_norm_factory
from senet_jax.models.ops.pool import POOL_MODES, max_pool_3x3_s2
from senet_jax.models.se import SEOptions
from senet_jax.models.width import scale_width

STAGE_NAMES = ("conv2_x", "conv3_x", "conv4_x", "conv5_x")
STAGE_PLANES = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
PLACEMENTS_BASIC = ("standard", "pre", "post", "identity")
PLACEMENTS_BOTTLENECK = (*PLACEMENTS_BASIC, "conv3x3")
# What config.model.se may say for this family (config validation reads these): stages by
# name or number, and the placements (conv3x3 only in bottleneck units).
SE_BLOCKS = (*STAGE_NAMES, 2, 3, 4, 5)
SE_PLACEMENTS = PLACEMENTS_BOTTLENECK
# The stem's 3x3 stride-2 max-pool (models/ops/pool.py): "ceil" (Caffe) or "pad" (PyTorch).
STEM_POOLS = POOL_MODES
# One 7x7 conv; three 3x3 convs (SENet-154); or the small-image stem of the CIFAR
# literature: one 3x3 conv and no max-pool (with stem_strides=1, total stride 8).
STEMS = ("7x7", "deep", "cifar")


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What a registered name fixes."""

    stage_sizes: tuple[int, int, int, int]
    bottleneck: bool = True
    se: bool = False
    groups: int = 1
    base_width: int = 64  # channels per group of the 3x3, per 64 planes
    conv2_expansion: int = 1  # SENet-154's 3x3 doubles the width it receives
    stem: str = "7x7"
    stem_features: int = 64
    downsample_kernel: int = 1  # projection shortcuts of conv3_x-conv5_x (conv2_x's is 1x1)
    dropout_rate: float = 0.0
    stride_in_1x1: bool = True  # where the original (Caffe) models put the bottleneck stride


def _family(prefix: str, se: bool, **kw) -> dict[str, Architecture]:
    depths = {
        18: ((2, 2, 2, 2), False),
        34: ((3, 4, 6, 3), False),
        50: ((3, 4, 6, 3), True),
        101: ((3, 4, 23, 3), True),
        152: ((3, 8, 36, 3), True),
    }
    return {f"{prefix}{d}": Architecture(s, b, se, **kw) for d, (s, b) in depths.items()}


_RESNEXT = dict(groups=32, base_width=4, stride_in_1x1=False)
ARCHITECTURES: dict[str, Architecture] = {
    **_family("resnet", se=False),
    **_family("se_resnet", se=True),
    "resnext50_32x4d": Architecture((3, 4, 6, 3), **_RESNEXT),
    "resnext101_32x4d": Architecture((3, 4, 23, 3), **_RESNEXT),
    "se_resnext26_32x4d": Architecture((2, 2, 2, 2), se=True, **_RESNEXT),
    "se_resnext50_32x4d": Architecture((3, 4, 6, 3), se=True, **_RESNEXT),
    "se_resnext101_32x4d": Architecture((3, 4, 23, 3), se=True, **_RESNEXT),
    "senet154": Architecture(
        (3, 8, 36, 3),
        se=True,
        groups=64,
        base_width=2,
        conv2_expansion=2,
        stem="deep",
        stem_features=128,
        downsample_kernel=3,
        dropout_rate=0.2,
        stride_in_1x1=False,
    ),
}


class ResidualUnit(nn.Module):
    """A basic (two 3x3) or bottleneck (1x1, 3x3, 1x1) residual unit with optional SE."""

    features: int
    width: int
    strides: int
    bottleneck: bool
    groups: int
    conv2_expansion: int
    stride_in_1x1: bool
    downsample_kernel: int
    branch_relu: bool
    se: SEOptions | None
    conv: Any
    norm: Any
    dtype: Any
    param_dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        placement = self.se.placement if self.se is not None else None

        def se(y):
            attention = self.se.attention(
                norm=self.norm, dtype=self.dtype, param_dtype=self.param_dtype
            )
            return attention(y)

        y = se(x) if placement == "pre" else x
        s = self.strides
        if self.bottleneck:
            s1, s3 = (s, 1) if self.stride_in_1x1 else (1, s)
            y = self.norm(name="bn1")(self.conv(self.width, (1, 1), (s1, s1), name="conv1")(y))
            y = self.conv(
                self.width * self.conv2_expansion,
                (3, 3),
                (s3, s3),
                feature_group_count=self.groups,
                name="conv2",
            )(y)
            y = self.norm(name="bn2")(y)
            if placement == "conv3x3":
                y = se(y)
            y = self.conv(self.features, (1, 1), name="conv3")(y)
            y = self.norm(activation="none", name="bn3")(y)
        else:
            y = self.norm(name="bn1")(self.conv(self.features, (3, 3), (s, s), name="conv1")(y))
            y = self.conv(self.features, name="conv2")(y)
            y = self.norm(activation="relu" if self.branch_relu else "none", name="bn2")(y)
        if placement == "standard":
            y = se(y)
        shortcut = x
        if s != 1 or x.shape[-1] != self.features:
            k = self.downsample_kernel
            shortcut = self.conv(self.features, (k, k), (s, s), name="downsample_conv")(x)
            shortcut = self.norm(activation="none", name="downsample_bn")(shortcut)
        if placement == "identity":
            shortcut = se(shortcut)
        y = nn.relu(y + shortcut.astype(y.dtype))
        return se(y) if placement == "post" else y


class ResNet(nn.Module):
    """ResNet / ResNeXt / SENet classifier for NHWC images; returns float32 logits.

    Architecture (set by the registered name, see ARCHITECTURES): stage_sizes, bottleneck,
    groups and base_width (ResNeXt's cardinality and group width), conv2_expansion, stem
    ("7x7" or SENet-154's "deep" three 3x3), stem_features, downsample_kernel.

    Options (config.model):
      se: SEOptions or None (no SE); see the module docstring for placement and blocks,
        senet_jax.models.se.KINDS for the channel-attention kinds (se.kind).
      stride_in_1x1: a bottleneck's stride on its first 1x1 conv, as the original Caffe
        ResNet/SE-ResNet (the default for resnet*/se_resnet*); False puts it on the 3x3, as
        torchvision/timm ("ResNet v1.5") and all ResNeXt/SENet-154 models. No effect on basic
        units (resnet18/34) or on parameter counts.
      padding: "torch" (k // 2 on every side, PyTorch and Caffe; the default) or "same"
        (flax/TensorFlow SAME, bottom/right only for stride 2 on even sizes).
      stem_pool: "ceil" (Caffe, the original models; default) or "pad" (PyTorch), STEM_POOLS.
      branch_relu: basic units only: a ReLU also ends the residual branch (before SE and
        the sum), as in timm's legacy_seresnet18/34 (their weights need it); default False.
      width_multiplier: scales every stage's and the stem's channels (multiples of 8).
      stem_strides: 2 is the ImageNet stem. 1 is the small-image stem: the first stem
        convolution runs at stride 1 and the max-pool stays, so the total stride is 16
        instead of 32 (a 6x6 last map at 96x96), at 4x the multiply-adds, same parameters.
      stem: the registered name's ("7x7", or "deep" for SENet-154), or "cifar": one 3x3
        convolution at stem_strides and no max-pool, the CIFAR papers' ResNet (with
        stem_strides=1, a 4x4 last map at 32x32).
      conv_implementation: ops.conv.Conv's "auto"/"onednn"/"matmul"/"native" for the ungrouped
        convolutions; grouped 3x3s always run natively.
      bn_axis_name: BatchNorm averages its batch statistics over that pmap axis.
    """

    stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
    bottleneck: bool = True
    num_classes: int = 1000
    groups: int = 1
    base_width: int = 64
    conv2_expansion: int = 1
    stem: str = "7x7"
    stem_features: int = 64
    downsample_kernel: int = 1
    se: SEOptions | None = None
    stride_in_1x1: bool = True
    padding: str = "torch"
    stem_pool: str = "ceil"
    branch_relu: bool = False
    width_multiplier: float = 1.0
    stem_strides: int = 2
    dropout_rate: float = 0.0
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    bn_axis_name: str | None = None
    conv_implementation: str = "auto"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def total_stride(self) -> int:
        """Input pixels per output pixel of the last feature map (stem conv, its max-pool
        unless the stem is "cifar", and three stride-2 stages)."""
        return self.stem_strides * (1 if self.stem == "cifar" else 2) * 8

    def check_options(self) -> None:
        """A ValueError naming the first option this architecture cannot have."""
        choices = {
            "padding": (self.padding, PADDINGS),
            "stem_pool": (self.stem_pool, STEM_POOLS),
            "stem": (self.stem, STEMS),
            "stem_strides": (self.stem_strides, (1, 2)),
        }
        for field, (value, valid) in choices.items():
            if value not in valid:
                raise ValueError(f"{field}={value!r}: use one of {list(valid)}")
        if self.se is None:
            return
        valid = PLACEMENTS_BOTTLENECK if self.bottleneck else PLACEMENTS_BASIC
        if self.se.placement not in valid:
            kind = "bottleneck" if self.bottleneck else "basic-block"
            raise ValueError(
                f"SE placement {self.se.placement!r} is not available in this {kind} "
                f"network: use one of {list(valid)}"
            )
        if self.se.blocks != "all":
            bad = [b for b in self.se.blocks if b not in SE_BLOCKS]
            if bad:
                raise ValueError(
                    f"SE blocks {bad} are not stages of this network: use 'all' or a list of "
                    f"{list(STAGE_NAMES)} (or the stage numbers 2-5)"
                )

    def _layers(self, train: bool):
        """The norm and conv factories every unit shares, bound to this model's options.

        Split out of __call__ (which stays the one compact method); creates no modules, so
        parameter names and creation order are those of an inline definition.
        """
        # BatchNorm (+ ReLU) fused with its own backward (models/ops/norm.py).
        norm = batch_norm_factory(
            train=train,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        conv = functools.partial(
            Conv,
            implementation=self.conv_implementation,
            padding=self.padding,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        return norm, conv

    def _stem(self, x: jnp.ndarray, norm, conv, width) -> jnp.ndarray:
        """The stem (7x7, SENet-154's deep three 3x3, or the CIFAR 3x3) and its max-pool.

        Called from __call__, so its modules are __call__'s (names stem_conv*/stem_bn*).
        """
        s = (self.stem_strides,) * 2
        if self.stem == "deep":
            x = norm(name="stem_bn1")(conv(width(64), (3, 3), s, name="stem_conv1")(x))
            x = norm(name="stem_bn2")(conv(width(64), (3, 3), name="stem_conv2")(x))
            x = conv(width(self.stem_features), (3, 3), name="stem_conv3")(x)
            x = norm(name="stem_bn3")(x)
        elif self.stem == "cifar":
            x = conv(width(self.stem_features), (3, 3), s, name="stem_conv1")(x)
            return norm(name="stem_bn1")(x)
        else:
            x = conv(width(self.stem_features), (7, 7), s, name="stem_conv1")(x)
            x = norm(name="stem_bn1")(x)
        return max_pool_3x3_s2(x, self.stem_pool, self.padding)

    def _stages(self, x: jnp.ndarray, norm, conv, width) -> jnp.ndarray:
        """The residual stages, units named conv<k>_<i> (conv2_1 ... conv5_3 in ResNet-50).

        Called from __call__, so its modules are __call__'s, named as before the split.
        """
        expansion = 4 if self.bottleneck else 1
        for stage, (blocks, planes, stride) in enumerate(
            zip(self.stage_sizes, STAGE_PLANES, STAGE_STRIDES)
        ):
            name = STAGE_NAMES[stage]
            se = self.se if self.se is not None and self.se.applies_to(name, stage + 2) else None
            planes = width(planes)
            for i in range(blocks):
                x = ResidualUnit(
                    features=planes * expansion,
                    width=planes * self.base_width // 64 * self.groups,
                    strides=stride if i == 0 else 1,
                    bottleneck=self.bottleneck,
                    groups=self.groups,
                    conv2_expansion=self.conv2_expansion,
                    stride_in_1x1=self.stride_in_1x1,
                    downsample_kernel=self.downsample_kernel if stage else 1,
                    branch_relu=self.branch_relu,
                    se=se,
                    conv=conv,
                    norm=norm,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    name=f"{name[:-2]}_{i + 1}",
                )(x)
        return x

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        self.check_options()
        norm, conv = self._layers(train)
        width = functools.partial(scale_width, width_multiplier=self.width_multiplier)
        x = self._stem(x.astype(self.dtype), norm, conv, width)
        x = self._stages(x, norm, conv, width)
        x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(
            self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="classifier"
        )(x)
        return x.astype(jnp.float32)


def create(name: str, num_classes: int = 1000, se: Any = None, **options) -> ResNet:
    """The registered architecture `name` with config.model-style options.

    `se` only for SE architectures. Options override the architecture's defaults (e.g.
    stride_in_1x1, dropout_rate); `stem=None` keeps the architecture's stem.
    """
    arch = ARCHITECTURES[name]
    if se is not None and not arch.se:
        raise ValueError(f"{name} has no channel attention: use se_{name} for se options")
    fields = {f.name: getattr(arch, f.name) for f in dataclasses.fields(arch)}
    fields.pop("se")
    if options.get("stem", "") is None:
        options.pop("stem")
    fields.update(options)
    return ResNet(num_classes=num_classes, se=SEOptions.create(se) if arch.se else None, **fields)
