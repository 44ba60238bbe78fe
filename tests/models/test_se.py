"""The SE block: squeeze, excitation and scale, and the paper's ablation options."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from senet_jax.models.se import SqueezeExcite, se_hidden_features


def gates_of(block, variables, x):
    """The per-channel gates the block applied: output / input (input is non-zero)."""
    return block.apply(variables, x) / x


@pytest.fixture
def x():
    return jax.random.uniform(jax.random.key(0), (2, 5, 7, 32), minval=0.5, maxval=2.0)


def test_output_shape_equals_input_shape(x):
    block = SqueezeExcite()
    variables = block.init(jax.random.key(1), x)
    chex.assert_shape(block.apply(variables, x), x.shape)
    assert variables["params"]["reduce"]["kernel"].shape == (32, 2)
    assert variables["params"]["expand"]["kernel"].shape == (2, 32)


def test_sigmoid_gates_lie_in_open_unit_interval_and_are_constant_over_space(x):
    block = SqueezeExcite()
    variables = block.init(jax.random.key(1), x)
    g = gates_of(block, variables, x)
    assert float(g.min()) > 0.0 and float(g.max()) < 1.0
    np.testing.assert_allclose(g, jnp.broadcast_to(g[:, :1, :1, :], g.shape), rtol=1e-5)


def test_scale_multiplies_channels_by_hand_computed_gates():
    x = jnp.arange(1, 1 + 2 * 2 * 4, dtype=jnp.float32).reshape(1, 2, 2, 4)
    block = SqueezeExcite(reduction=2)
    w1 = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]) * 0.1
    w2 = jnp.array([[1.0, -1.0, 0.0, 2.0], [0.0, 1.0, -1.0, 0.0]])
    params = {
        "reduce": {"kernel": w1, "bias": jnp.zeros(2)},
        "expand": {"kernel": w2, "bias": jnp.array([0.0, 0.0, 0.5, 0.0])},
    }
    squeezed = x.mean(axis=(1, 2))[0]  # channel means
    hidden = np.maximum(squeezed @ np.asarray(w1), 0.0)
    gates = 1 / (1 + np.exp(-(hidden @ np.asarray(w2) + np.array([0, 0, 0.5, 0]))))
    expected = np.asarray(x) * gates
    np.testing.assert_allclose(block.apply({"params": params}, x), expected, rtol=1e-6)


@pytest.mark.parametrize("squeeze", ["avg", "max"])
@pytest.mark.parametrize(
    "gate,lo,hi", [("sigmoid", 0.0, 1.0), ("tanh", -1.0, 1.0), ("relu", 0.0, np.inf)]
)
def test_every_squeeze_and_gate_option(x, squeeze, gate, lo, hi):
    block = SqueezeExcite(squeeze=squeeze, gate=gate)
    variables = block.init(jax.random.key(1), x)
    g = gates_of(block, variables, x)
    assert float(g.min()) >= lo and float(g.max()) <= hi
    other = SqueezeExcite(squeeze="max" if squeeze == "avg" else "avg", gate=gate)
    assert not np.allclose(block.apply(variables, x), other.apply(variables, x))


def test_unknown_options_raise_clear_errors(x):
    with pytest.raises(ValueError, match="squeeze"):
        SqueezeExcite(squeeze="median").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="gate"):
        SqueezeExcite(gate="softmax").init(jax.random.key(0), x)


def test_reduction_larger_than_channels_respects_minimum_width(x):
    assert se_hidden_features(32, 64) == 1
    assert se_hidden_features(32, 64, min_features=8) == 8
    variables = SqueezeExcite(reduction=64, min_features=8).init(jax.random.key(0), x)
    assert variables["params"]["reduce"]["kernel"].shape == (32, 8)


def test_bfloat16_compute_with_float32_params(x):
    block = SqueezeExcite(dtype=jnp.bfloat16)
    xb = x.astype(jnp.bfloat16)
    variables = block.init(jax.random.key(1), xb)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
    assert block.apply(variables, xb).dtype == jnp.bfloat16


def test_every_kind_is_a_channel_attention_named_after_it(x):
    from senet_jax.models.attention.base import ChannelAttention
    from senet_jax.models.ops.norm import batch_norm_factory
    from senet_jax.models.se import KINDS, SEOptions

    norm = batch_norm_factory(
        train=False,
        momentum=0.9,
        epsilon=1e-5,
        axis_name=None,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
    )
    assert set(KINDS) == {"se", "eca", "cbam", "ge", "ese"}
    for kind in KINDS:
        module = SEOptions.create({"kind": kind}).attention(
            norm=norm, dtype=jnp.float32, param_dtype=jnp.float32
        )
        assert isinstance(module, ChannelAttention) and module.name == kind
        variables = module.init(jax.random.key(0), x)
        y, state = module.apply(variables, x, mutable=["excitations"])
        chex.assert_shape(y, x.shape)
        chex.assert_shape(state["excitations"]["gate"][0], (2, 32))


@pytest.mark.parametrize(
    "se,field",
    [
        ({"kind": "eca", "reduction": 8}, "reduction"),
        ({"kind": "ese", "gate": "tanh"}, "gate"),
        ({"kind": "cbam", "squeeze": "max"}, "squeeze"),
        ({"kind": "se", "extent": 4}, "extent"),
    ],
)
def test_an_option_the_kind_does_not_take_is_a_value_error(se, field):
    from senet_jax.models.se import SEOptions, unused_options

    assert unused_options(se) == [field]
    with pytest.raises(ValueError, match=rf"kind '{se['kind']}' takes no {field}"):
        SEOptions.create(se)
    # Left at their defaults, options a kind does not take are fine (one config for all kinds).
    assert SEOptions.create({"kind": se["kind"], field: getattr(SEOptions, field)})
    with pytest.raises(ValueError, match="unknown attention kind 'sk'"):
        SEOptions.create({"kind": "sk"})
