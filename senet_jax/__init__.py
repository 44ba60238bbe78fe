"""senet-jax: Squeeze-and-Excitation networks in JAX/Flax linen."""

__version__ = "0.1.0"
