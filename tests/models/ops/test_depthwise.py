"""Every depthwise formulation must be the grouped convolution, outputs and gradients."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from senet_jax.models import create_model
from senet_jax.models.ops import depthwise
from senet_jax.models.ops.conv import PointwiseConv, StemConv, resolve_conv_implementation
from senet_jax.models.ops.depthwise import (
    FORMULATIONS,
    DepthwiseConv,
    grouped_conv,
    resolve_implementation,
)

PAD = ((1, 1), (1, 1))
# (batch, height, width, channels): odd and even sizes, several channel counts.
SHAPES = [(2, 7, 7, 8), (3, 8, 6, 16), (5, 9, 10, 3), (1, 4, 5, 24)]


def _loss(fn, strides):
    # A non-linear loss, so the cotangent differs from pixel to pixel.
    return lambda x, k: jnp.sum(
        jnp.sin(fn(x, k, strides, PAD)) * jnp.arange(1.0, 2.0, 1.0 / 7.0).mean()
    )


@pytest.mark.parametrize("name", sorted(set(FORMULATIONS) - {"grouped"}))
@pytest.mark.parametrize("stride", [1, 2])
def test_formulation_matches_grouped(name, stride):
    rng = np.random.RandomState(stride)
    for shape in SHAPES:
        x = jnp.asarray(rng.randn(*shape).astype(np.float32))
        k = jnp.asarray(rng.randn(3, 3, 1, shape[-1]).astype(np.float32))
        strides = (stride, stride)
        fn = FORMULATIONS[name]
        y = jax.jit(fn, static_argnums=(2, 3))(x, k, strides, PAD)
        y_ref = grouped_conv(x, k, strides, PAD)
        assert y.shape == y_ref.shape, (shape, y.shape, y_ref.shape)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
        dx, dk = jax.jit(jax.grad(_loss(fn, strides), (0, 1)))(x, k)
        dx_ref, dk_ref = jax.grad(_loss(grouped_conv, strides), (0, 1))(x, k)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dk, dk_ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("stride", [1, 2])
def test_kernel_grad_matches_grouped_on_larger_inputs(stride):
    # Many images and rows per channel: the two-stage sum (over W, then over N and H) must still
    # cover every pixel exactly once, for even and odd sizes.
    rng = np.random.RandomState(10 + stride)
    for shape in [(16, 24, 24, 8), (9, 13, 11, 5)]:
        x = jnp.asarray(rng.randn(*shape).astype(np.float32))
        k = jnp.asarray(rng.randn(3, 3, 1, shape[-1]).astype(np.float32))
        dk = jax.jit(jax.grad(_loss(depthwise.shift_add_vjp, (stride, stride)), 1))(x, k)
        dk_ref = jax.grad(_loss(grouped_conv, (stride, stride)), 1)(x, k)
        np.testing.assert_allclose(dk, dk_ref, rtol=1e-5, atol=1e-4)


def test_kernel_grad_accumulates_bfloat16_in_float32():
    rng = np.random.RandomState(3)
    x = jnp.asarray(rng.randn(8, 12, 12, 16).astype(np.float32)).astype(jnp.bfloat16)
    k = jnp.asarray(rng.randn(3, 3, 1, 16).astype(np.float32)).astype(jnp.bfloat16)
    dk = jax.grad(
        lambda k: jnp.sum(depthwise.shift_add_vjp(x, k, (1, 1), PAD).astype(jnp.float32))
    )(k)
    assert dk.dtype == jnp.bfloat16
    dk_ref = jax.grad(lambda k: jnp.sum(grouped_conv(x.astype(jnp.float32), k, (1, 1), PAD)))(
        k.astype(jnp.float32)
    )
    # Only the final rounding to bfloat16 (8 bits of mantissa) separates them.
    np.testing.assert_allclose(dk.astype(jnp.float32), dk_ref, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    "backend,expected",
    [("cpu", depthwise.AUTO_BY_BACKEND["cpu"]), ("gpu", "grouped"), ("tpu", "grouped")],
)
def test_auto_resolves_per_backend(monkeypatch, backend, expected):
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    assert resolve_implementation("auto") == expected
    assert resolve_implementation("grouped") == "grouped"


def test_unknown_implementation_raises():
    with pytest.raises(ValueError, match="depthwise implementation 'im2row' is unknown"):
        resolve_implementation("im2row")
    with pytest.raises(ValueError, match="unknown"):
        DepthwiseConv(implementation="nope").init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 2)))


def test_depthwise_module_params_match_grouped_conv():
    x = jnp.ones((1, 5, 5, 6))
    ours = DepthwiseConv().init(jax.random.PRNGKey(0), x)["params"]
    native = nn.Conv(6, (3, 3), feature_group_count=6, use_bias=False).init(
        jax.random.PRNGKey(0), x
    )["params"]
    assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, native)


@pytest.mark.parametrize("implementation", ["onednn", "matmul", "native", "auto"])
@pytest.mark.parametrize(
    "module,native",
    [
        (functools.partial(PointwiseConv, 12), nn.Conv(12, (1, 1), use_bias=False)),
        (
            functools.partial(StemConv, 8, strides=(2, 2)),
            nn.Conv(8, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=False),
        ),
        (
            functools.partial(StemConv, 8, strides=(1, 1)),
            nn.Conv(8, (3, 3), padding=((1, 1), (1, 1)), use_bias=False),
        ),
    ],
)
def test_convolutions_match_nn_conv(module, native, implementation):
    module = module(implementation=implementation)
    x = jnp.asarray(np.random.RandomState(0).randn(2, 7, 8, 5).astype(np.float32))
    params = native.init(jax.random.PRNGKey(1), x)
    assert jax.tree.map(jnp.shape, module.init(jax.random.PRNGKey(1), x)) == jax.tree.map(
        jnp.shape, params
    )
    y, y_ref = jax.jit(module.apply)(params, x), native.apply(params, x)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    g = jax.grad(lambda p, x: jnp.sum(jnp.sin(module.apply(p, x))), (0, 1))(params, x)
    g_ref = jax.grad(lambda p, x: jnp.sum(jnp.sin(native.apply(p, x))), (0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "backend,expected", [("cpu", "onednn"), ("gpu", "native"), ("tpu", "native")]
)
def test_conv_implementation_auto_resolves_per_backend(monkeypatch, backend, expected):
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    assert resolve_conv_implementation("auto") == expected
    assert resolve_conv_implementation("native") == "native"
    with pytest.raises(ValueError, match="conv implementation 'im2col' is unknown"):
        resolve_conv_implementation("im2col")


def test_conv_implementation_picks_the_code_path():
    # "native" must really lower to a convolution and "matmul" to dot products only.
    x = jnp.ones((1, 6, 6, 3))
    for impl, has_conv in (("native", True), ("matmul", False)):
        model = create_model(
            "se_mobilenet_v1",
            num_classes=4,
            width_multiplier=0.25,
            conv_implementation=impl,
            depthwise_implementation="shift_add_vjp",
        )
        variables = model.init(jax.random.PRNGKey(0), x)
        hlo = jax.jit(model.apply).lower(variables, x).as_text()
        assert ("convolution" in hlo) == has_conv, impl


def test_model_formulations_agree_and_param_counts_hold():
    # The whole network: same parameters, same logits and gradients whichever formulation runs.
    count = lambda p: sum(v.size for v in jax.tree.leaves(p))
    for name, expected in (("mobilenet_v1", 4_231_976), ("se_mobilenet_v1", 4_718_044)):
        shapes = jax.eval_shape(
            lambda name=name: create_model(name).init(
                jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))
            )
        )
        assert count(shapes["params"]) == expected
    x = jnp.asarray(np.random.RandomState(0).randn(2, 32, 32, 3).astype(np.float32))
    outs = {}
    for impl in ("grouped", "shift_add_vjp"):
        model = create_model(
            "se_mobilenet_v1", num_classes=10, width_multiplier=0.25, depthwise_implementation=impl
        )
        variables = model.init(jax.random.PRNGKey(0), x)

        def loss(p, model=model, variables=variables):
            # Running statistics: batch statistics of 2 images would amplify rounding differences.
            logits = model.apply({**variables, "params": p}, x, train=False)
            return jnp.sum(logits**2), logits

        (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
        outs[impl] = (logits, grads)
    np.testing.assert_allclose(outs["grouped"][0], outs["shift_add_vjp"][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(outs["grouped"][1]), jax.tree.leaves(outs["shift_add_vjp"][1])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.abs(b).max()))
