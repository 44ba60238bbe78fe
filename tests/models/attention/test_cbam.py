"""CBAM: channel then spatial attention, as timm's CbamModule, BatchNorm included."""

from __future__ import annotations

import jax
import pytest
from timm_twin import (
    EVAL_NORM,
    assert_same_output,
    batch_norm,
    conv,
    dense,
    inputs,
    randomised,
    timm_layers,
    variable_shapes,
)

from senet_jax.models.attention.cbam import ConvBlockAttention


@pytest.mark.parametrize("channels,reduction", [(32, 16), (64, 4)])
def test_matches_timm(channels, reduction):
    theirs = randomised(timm_layers.CbamModule(channels, rd_ratio=1 / reduction))
    ours = ConvBlockAttention(reduction=reduction, norm=EVAL_NORM)
    x = inputs(channels, 9)
    bn_params, bn_stats = batch_norm(theirs.spatial.conv.bn)
    params = {
        "fc1": {"kernel": dense(theirs.channel.fc1.weight)},
        "fc2": {"kernel": dense(theirs.channel.fc2.weight)},
        "spatial_conv": {"kernel": conv(theirs.spatial.conv.conv.weight)},
        "spatial_bn": bn_params,
    }
    shapes = variable_shapes(ours, x)
    assert shapes == jax.tree.map(
        lambda a: a.shape, {"params": params, "batch_stats": {"spatial_bn": bn_stats}}
    )
    assert_same_output(ours, {"params": params, "batch_stats": {"spatial_bn": bn_stats}}, theirs, x)


def test_without_a_norm_factory_says_so():
    with pytest.raises(ValueError, match="norm"):
        ConvBlockAttention().init(jax.random.key(0), inputs(16, 4))
