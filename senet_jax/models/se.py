"""The Squeeze-and-Excitation block (Hu et al., "Squeeze-and-Excitation Networks").

The options mirror the paper's ablations (Tables 10-15): reduction ratio, squeeze
operator, excitation gate, which blocks get SE and where it sits in a residual unit, so
each ablation is a config change (`config.model.se`), not a code change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

SQUEEZE_OPS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "avg": lambda x: jnp.mean(x, axis=(1, 2)),
    "max": lambda x: jnp.max(x, axis=(1, 2)),
}

GATES: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "sigmoid": nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": nn.relu,
}


@dataclasses.dataclass(frozen=True)
class SEOptions:
    """`config.model.se` as the architectures read it (hashable, so a module field).

    blocks: "all", or which blocks get SE, comma-separated on the command line
    ("12,13"): 1-based block numbers for MobileNetV1 (block01..block13), stage names
    for residual networks.
    placement: where SE sits in a residual unit (residual networks only).
    """

    reduction: int = 16
    squeeze: str = "avg"
    gate: str = "sigmoid"
    blocks: str | tuple = "all"
    min_features: int = 1
    placement: str = "standard"

    @classmethod
    def create(cls, se: Mapping[str, Any] | SEOptions | None) -> SEOptions:
        """From a mapping such as `config.model.se`; unknown keys raise a ValueError."""
        if isinstance(se, SEOptions):
            return se
        se = dict(se or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(se) - known)
        if unknown:
            raise ValueError(f"unknown SE option(s) {unknown}: use {sorted(known)}")
        se["blocks"] = parse_blocks(se.get("blocks", "all"))
        return cls(**se)

    def block_kwargs(self) -> dict[str, Any]:
        """The options of one SqueezeExcite module."""
        return dict(
            reduction=self.reduction,
            squeeze=self.squeeze,
            gate=self.gate,
            min_features=self.min_features,
        )

    def applies_to(self, *names: str | int) -> bool:
        """True when `blocks` is "all" or names any of `names` (a block number or stage)."""
        return self.blocks == "all" or any(n in self.blocks for n in names)


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


def se_hidden_features(channels: int, reduction: int, min_features: int = 1) -> int:
    """Width of the bottleneck: C / r, but never below `min_features`."""
    return max(min_features, channels // reduction)


class SqueezeExcite(nn.Module):
    """Recalibrates channels of an NHWC feature map by learned, input-dependent gates.

    squeeze:    a global pooling turns each channel into one descriptor;
    excitation: Dense(C/r) -> ReLU -> Dense(C) -> gate gives one weight per channel;
    scale:      the feature map is multiplied channel-wise by those weights.

    The gate outputs are sown into the "excitations" collection (free unless that
    collection is mutable), which is how `senet_jax.analyze` reads them.
    """

    reduction: int = 16
    squeeze: str = "avg"
    gate: str = "sigmoid"
    min_features: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        s = self.excite(x)
        self.sow("excitations", "gate", s.astype(jnp.float32))
        return x * s[:, None, None, :].astype(x.dtype)

    @nn.compact
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
        # Pool in float32: a mean over thousands of bf16 values loses precision.
        s = SQUEEZE_OPS[self.squeeze](x.astype(jnp.float32)).astype(self.dtype)
        s = nn.relu(dense(hidden, "reduce")(s))
        return GATES[self.gate](dense(channels, "expand")(s))
