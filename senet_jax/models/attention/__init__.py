"""Channel-attention kinds besides SE (ECA, CBAM, Gather-Excite, eSE), one module each.

Each is a `base.ChannelAttention`: an `excite` method that returns the gates and a shared
`__call__` that sows them and rescales the input. The registry of kinds, SE included, is
`senet_jax.models.se.KINDS`, which every architecture and `senet_jax.analyze` go through.
"""
