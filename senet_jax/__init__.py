"""senet-jax: Squeeze-and-Excitation networks in JAX/Flax linen."""

from __future__ import annotations

__version__ = "0.1.0"
