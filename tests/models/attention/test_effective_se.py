"""eSE: one C -> C layer and a hard sigmoid, as timm's EffectiveSEModule."""

from __future__ import annotations

import jax
import numpy as np
from timm_twin import (
    assert_same_output,
    dense,
    inputs,
    randomised,
    timm_layers,
)

from senet_jax.models.attention.effective_se import EffectiveSqueezeExcite


def test_matches_timm():
    theirs = randomised(timm_layers.EffectiveSEModule(32))
    ours = EffectiveSqueezeExcite()
    x = inputs(32, 6)
    params = {"fc": {"kernel": dense(theirs.fc.weight), "bias": theirs.fc.bias.detach().numpy()}}
    assert ours.init(jax.random.key(0), x)["params"]["fc"]["kernel"].shape == (32, 32)
    assert_same_output(ours, {"params": params}, theirs, x)


def test_gates_are_hard_sigmoid_of_the_pooled_layer():
    x = inputs(4, 3)
    params = {"fc": {"kernel": np.eye(4, dtype=np.float32) * 2.0, "bias": np.zeros(4, np.float32)}}
    gates = EffectiveSqueezeExcite().apply({"params": params}, x)[:, 0, 0] / x[:, 0, 0]
    np.testing.assert_allclose(gates, np.clip(2.0 * x.mean(axis=(1, 2)) + 3, 0, 6) / 6, atol=1e-6)
