"""The stem max-pool with its own backward must be flax's max-pool: values and gradients."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from senet_jax.models.ops.pool import max_pool_3x3_s2


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("mode,padding", [("ceil", "torch"), ("pad", "torch"), ("pad", "same")])
def test_stem_max_pool_values_and_gradients_match_reduce_window(size, mode, padding):
    x = jnp.asarray(np.random.RandomState(1).randn(2, size, size, 3).astype(np.float32))
    if mode == "ceil":
        pads = ((0, 1 - size % 2),) * 2  # Caffe's ceil mode: the last window overhangs
    elif padding == "torch":
        pads = ((1, 1),) * 2
    else:
        pads = "SAME"
    ref = lambda x: nn.max_pool(x, (3, 3), strides=(2, 2), padding=pads)
    ours = lambda x: max_pool_3x3_s2(x, mode, padding)
    w = jnp.asarray(np.random.RandomState(2).randn(*ref(x).shape).astype(np.float32))
    np.testing.assert_array_equal(ours(x), ref(x))
    loss = lambda f: lambda x: jnp.sum(f(x) * w)
    np.testing.assert_allclose(jax.grad(loss(ours))(x), jax.grad(loss(ref))(x), atol=1e-6)


@pytest.mark.parametrize("size", [7, 8])
def test_same_padding_matches_flax_same(size):
    x = jnp.asarray(np.random.RandomState(0).randn(2, size, size, 4).astype(np.float32))
    pooled = max_pool_3x3_s2(x, "pad", "same")
    np.testing.assert_allclose(
        pooled, nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME"), atol=0
    )
