"""senet-jax: Squeeze-and-Excitation networks in JAX/Flax linen."""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    """`senet_jax.load` imported on first use, so `import senet_jax` stays light."""
    if name == "load":
        from senet_jax.inference import load

        return load
    raise AttributeError(f"module 'senet_jax' has no attribute {name!r}")
