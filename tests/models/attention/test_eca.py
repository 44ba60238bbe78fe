"""ECA: the paper's adaptive kernel size, and timm's EcaModule on the same weights."""

from __future__ import annotations

import jax
import pytest
from timm_twin import assert_same_output, inputs, randomised, timm_layers

from senet_jax.models.attention.eca import EfficientChannelAttention, eca_kernel_size


def test_kernel_size_follows_the_channel_count_as_the_paper():
    # ResNet-50's stage widths: k = 5 for 256-1024 channels, 7 for 2048.
    assert [eca_kernel_size(c) for c in (64, 128, 256, 512, 1024, 2048)] == [3, 5, 5, 5, 5, 7]
    for c in (8, 24, 96, 640, 4096):
        assert eca_kernel_size(c) == timm_layers.EcaModule(c).conv.kernel_size[0]


@pytest.mark.parametrize("channels,gate", [(64, "sigmoid"), (256, "sigmoid"), (2048, "tanh")])
def test_matches_timm(channels, gate):
    theirs = randomised(timm_layers.EcaModule(channels, gate_layer=gate))
    ours = EfficientChannelAttention(gate=gate)
    x = inputs(channels, 5)
    kernel = theirs.conv.weight.detach().numpy()[0, 0][:, None, None]
    assert ours.init(jax.random.key(0), x)["params"]["conv"]["kernel"].shape == kernel.shape
    assert_same_output(ours, {"params": {"conv": {"kernel": kernel}}}, theirs, x)
