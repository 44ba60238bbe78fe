"""channel_sums: every array's sum over all but the channel axis, whatever the rank."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from senet_jax.models.ops.reductions import channel_sums


@pytest.mark.parametrize("shape", [(3, 5, 7, 4), (2, 9, 6), (11, 3), (2, 1, 1, 8)])
def test_matches_plain_sums(shape):
    rng = np.random.RandomState(len(shape))
    arrays = [jnp.asarray(rng.randn(*shape).astype(np.float32)) for _ in range(3)]
    sums = jax.jit(channel_sums)(*arrays)
    assert len(sums) == 3
    for got, a in zip(sums, arrays):
        assert got.shape == (shape[-1],)
        np.testing.assert_allclose(
            got, np.asarray(a).sum(axis=tuple(range(len(shape) - 1))), rtol=1e-5, atol=1e-5
        )
