"""The Squeeze-and-Excitation block (Hu et al., "Squeeze-and-Excitation Networks"), its
options, and the registry of channel-attention kinds that can take its place.

The options mirror the paper's ablations (Tables 10-15): reduction ratio, squeeze
operator, excitation gate, which blocks get SE and where it sits in a residual unit, so
each ablation is a config change (`config.model.se`), not a code change. `kind` swaps the
SE block for one of its successors (KINDS), with the same block selection and placement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from senet_jax.models.attention.base import (
    GATES,
    ChannelAttention,
    global_mean,
    se_hidden_features,
)
from senet_jax.models.attention.cbam import ConvBlockAttention
from senet_jax.models.attention.eca import EfficientChannelAttention
from senet_jax.models.attention.effective_se import EffectiveSqueezeExcite
from senet_jax.models.attention.gather_excite import GatherExcite

SQUEEZE_OPS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "avg": global_mean,
    "max": lambda x: jnp.max(x, axis=(1, 2)).astype(jnp.float32),
}


class SqueezeExcite(ChannelAttention):
    """Recalibrates channels of an NHWC feature map by learned, input-dependent gates.

    squeeze:    a global pooling turns each channel into one descriptor;
    excitation: Dense(C/r) -> ReLU -> Dense(C) -> gate gives one weight per channel;
    scale:      the feature map is multiplied channel-wise by those weights.
    """

    reduction: int = 16
    squeeze: str = "avg"
    gate: str = "sigmoid"
    min_features: int = 1

    def excite(self, x: jnp.ndarray) -> jnp.ndarray:
        """The gates [N, C] (squeeze and excitation), a method of its own so that an
        `nn.intercept_methods` interceptor can read or replace them (senet_jax.analyze)."""
        if self.squeeze not in SQUEEZE_OPS:
            raise ValueError(
                f"SqueezeExcite.squeeze={self.squeeze!r}: use one of {sorted(SQUEEZE_OPS)}"
            )
        if self.gate not in GATES:
            raise ValueError(f"SqueezeExcite.gate={self.gate!r}: use one of {sorted(GATES)}")
        channels = x.shape[-1]
        hidden = se_hidden_features(channels, self.reduction, self.min_features)
        dense = lambda n, name: nn.Dense(
            n, dtype=self.dtype, param_dtype=self.param_dtype, name=name
        )
        s = SQUEEZE_OPS[self.squeeze](x).astype(self.dtype)
        s = nn.relu(dense(hidden, "reduce")(s))
        return GATES[self.gate](dense(channels, "expand")(s))


@dataclasses.dataclass(frozen=True)
class Kind:
    """A channel-attention kind: its module and the SEOptions fields it takes (besides
    `blocks` and `placement`, which every kind takes); `uses_norm` when it has BatchNorm."""

    module: type[ChannelAttention]
    options: tuple[str, ...]
    uses_norm: bool = False


# config.model.se.kind -> Kind. Adding one is a ChannelAttention subclass plus a line here.
KINDS: dict[str, Kind] = {
    "se": Kind(SqueezeExcite, ("reduction", "squeeze", "gate", "min_features")),
    "eca": Kind(EfficientChannelAttention, ("gate",)),
    "cbam": Kind(ConvBlockAttention, ("reduction", "min_features", "gate"), uses_norm=True),
    "ge": Kind(GatherExcite, ("extent", "gather", "gate"), uses_norm=True),
    "ese": Kind(EffectiveSqueezeExcite, ()),
}
# The options that choose which blocks get attention and where: every kind takes them.
PLACEMENT_OPTIONS = ("kind", "blocks", "placement")


@dataclasses.dataclass(frozen=True)
class SEOptions:
    """`config.model.se` as the architectures read it (hashable, so a module field).

    kind: which channel attention (KINDS), SE by default.
    blocks: "all", or which blocks get attention, comma-separated on the command line
    ("12,13"): 1-based block numbers for MobileNetV1 (block01..block13), stage names
    for residual networks.
    placement: where it sits in a residual unit (residual networks only).
    extent, gather: Gather-Excite's (senet_jax.models.attention.gather_excite).
    """

    kind: str = "se"
    reduction: int = 16
    squeeze: str = "avg"
    gate: str = "sigmoid"
    blocks: str | tuple = "all"
    min_features: int = 1
    placement: str = "standard"
    extent: int = 0
    gather: str = "pool"

    @classmethod
    def create(cls, se: Mapping[str, Any] | SEOptions | None) -> SEOptions:
        """From a mapping such as `config.model.se`; unknown keys, an unknown kind or an
        option the kind does not take (set away from its default) raise a ValueError."""
        if isinstance(se, SEOptions):
            return se
        se = dict(se or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(se) - known)
        if unknown:
            raise ValueError(f"unknown SE option(s) {unknown}: use {sorted(known)}")
        kind = se.get("kind", cls.kind)
        if kind not in KINDS:
            raise ValueError(f"unknown attention kind {kind!r}: use one of {list(KINDS)}")
        unused = unused_options(se)
        if unused:
            raise ValueError(f"kind {kind!r} takes no {', '.join(unused)}: {takes(kind)}")
        se["blocks"] = parse_blocks(se.get("blocks", "all"))
        return cls(**se)

    def attention(self, *, norm: Any, dtype: Any, param_dtype: Any) -> ChannelAttention:
        """The module of this kind with its options, named "se" for SE (the names its
        checkpoints and timm imports use) and after the kind otherwise."""
        kind = KINDS[self.kind]
        options = {name: getattr(self, name) for name in kind.options}
        if kind.uses_norm:
            options["norm"] = norm
        return kind.module(**options, dtype=dtype, param_dtype=param_dtype, name=self.kind)

    def applies_to(self, *names: str | int) -> bool:
        """True when `blocks` is "all" or names any of `names` (a block number or stage)."""
        return self.blocks == "all" or any(n in self.blocks for n in names)


def unused_options(se: Mapping[str, Any]) -> list[str]:
    """The fields of `se` (a config.model.se mapping) set away from their SEOptions default
    that its kind does not take, e.g. ["reduction"] for kind="eca", reduction=8."""
    kind = KINDS[se.get("kind", SEOptions.kind)]
    defaults = {f.name: f.default for f in dataclasses.fields(SEOptions)}
    return [
        name
        for name, value in se.items()
        if name in defaults
        and name not in PLACEMENT_OPTIONS
        and name not in kind.options
        and value != defaults[name]
    ]


def takes(kind: str) -> str:
    """What `kind` takes, for error messages."""
    options = KINDS[kind].options
    return f"it takes {', '.join(options)}" if options else "it takes no options"


def parse_blocks(blocks: str | int | tuple | list) -> str | tuple:
    """ "all", or a tuple of block numbers and stage names from "12,13" or a sequence."""
    if isinstance(blocks, str):
        text = blocks.strip().strip("()[]")
        if text == "all":
            return "all"
        blocks = [b.strip().strip("'\"") for b in text.split(",") if b.strip()]
    elif isinstance(blocks, int):
        blocks = [blocks]
    return tuple(int(b) if isinstance(b, str) and b.isdigit() else b for b in blocks)
