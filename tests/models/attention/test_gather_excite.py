"""Gather-Excite: GE-theta-minus and GE-theta as timm's GatherExcite, and the global GE-theta."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from timm_twin import (
    EVAL_NORM,
    assert_same_output,
    batch_norm,
    conv,
    inputs,
    randomised,
    timm_layers,
    torch,
    variable_shapes,
)

from senet_jax.models.attention.gather_excite import GatherExcite, extent_error, resize_nearest


@pytest.mark.parametrize("extent,size", [(0, 7), (2, 9), (4, 8), (8, 9)])
def test_theta_minus_matches_timm(extent, size):
    theirs = timm_layers.GatherExcite(16, extra_params=False, extent=extent, use_mlp=False).eval()
    ours = GatherExcite(extent=extent, gather="pool")
    x = inputs(16, size)
    assert variable_shapes(ours, x) == {}  # parameter-free
    assert_same_output(ours, {}, theirs, x)


def torch_ge_theta(channels, extent):
    """GE-theta in PyTorch as timm's GatherExcite(extra_params=True, use_mlp=False) builds
    it (timm 1.0.31 itself fails to build that case: a TypeError in its constructor)."""
    layers, convs, norms = [], [], []
    steps = int(np.log2(extent))
    for i in range(steps):
        convs.append(torch.nn.Conv2d(channels, channels, 3, 2, 1, groups=channels, bias=False))
        norms.append(torch.nn.BatchNorm2d(channels))
        layers += [convs[-1], norms[-1]] + ([torch.nn.ReLU()] if i < steps - 1 else [])
    gather = randomised(torch.nn.Sequential(*layers))

    def forward(x):
        gathered = torch.nn.functional.interpolate(gather(x), size=x.shape[-2:])
        return x * torch.sigmoid(gathered)

    return forward, convs, norms


@pytest.mark.parametrize("extent,size", [(2, 9), (4, 8)])
def test_theta_matches_the_torch_formulation(extent, size):
    theirs, convs, norms = torch_ge_theta(16, extent)
    ours = GatherExcite(extent=extent, gather="conv", norm=EVAL_NORM)
    x = inputs(16, size)
    params, stats = {}, {}
    for i, (c, n) in enumerate(zip(convs, norms), start=1):
        params[f"conv{i}"] = {"kernel": conv(c.weight)}
        params[f"norm{i}"], stats[f"norm{i}"] = batch_norm(n)
    variables = {"params": params, "batch_stats": stats}
    shapes = variable_shapes(ours, x)
    assert shapes == jax.tree.map(lambda a: a.shape, variables)
    assert_same_output(ours, variables, theirs, x)


def test_global_theta_is_one_depthwise_filter_as_large_as_the_map():
    x = jnp.asarray(inputs(8, 5))
    ours = GatherExcite(extent=0, gather="conv", norm=EVAL_NORM)
    variables = ours.init(jax.random.key(0), x)
    assert variables["params"]["conv1"]["kernel"].shape == (5, 5, 1, 8)
    gates = ours.apply(variables, x)[:, 2, 3] / x[:, 2, 3]
    kernel = variables["params"]["conv1"]["kernel"][:, :, 0, :]
    expected = jax.nn.sigmoid(jnp.einsum("nhwc,hwc->nc", x, kernel) / jnp.sqrt(1 + 1e-5))
    np.testing.assert_allclose(gates, expected, atol=1e-5)


def test_extent_must_be_global_or_a_power_of_two():
    assert extent_error(0) is None and extent_error(8) is None
    assert extent_error(3) and extent_error(1) and extent_error(-2) and extent_error(True)


def test_nearest_resize_repeats_cells():
    x = jnp.arange(4.0).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(
        resize_nearest(x, 3, 4)[0, :, :, 0], [[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]]
    )
