"""The fused BatchNorm+ReLU must be relu(nn.BatchNorm(x)): outputs, gradients, statistics, names."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from senet_jax.models.ops.norm import BatchNormAct


def _pair(**kw):
    ours = BatchNormAct(momentum=0.9, epsilon=1e-5, **kw)
    ref = nn.BatchNorm(momentum=0.9, epsilon=1e-5, **kw)
    return ours, ref


def _data(seed=0, shape=(4, 5, 3, 6)):
    rng = np.random.RandomState(seed)
    x = jnp.asarray(rng.randn(*shape).astype(np.float32) * 2 + 0.5)
    params = {
        "scale": jnp.asarray(rng.rand(shape[-1]).astype(np.float32) + 0.5),
        "bias": jnp.asarray(rng.randn(shape[-1]).astype(np.float32) * 0.3),
    }
    stats = {
        "mean": jnp.asarray(rng.randn(shape[-1]).astype(np.float32)),
        "var": jnp.asarray(rng.rand(shape[-1]).astype(np.float32) + 0.5),
    }
    return x, {"params": params, "batch_stats": stats}


def test_variables_match_flax_batchnorm():
    ours, ref = _pair(use_running_average=False)
    x = jnp.ones((2, 3, 3, 5))
    shapes = lambda m: jax.tree.map(jnp.shape, m.init(jax.random.PRNGKey(0), x))
    assert shapes(ours) == shapes(ref)


@pytest.mark.parametrize("fast", [True, False])
def test_training_outputs_gradients_and_running_stats_match(fast):
    ours, ref = _pair(use_running_average=False, use_fast_variance=fast)
    x, variables = _data()
    w = jnp.asarray(np.random.RandomState(1).randn(*x.shape).astype(np.float32))

    def run(module, fn):
        def loss(v, x):
            y, new = module.apply(v, x, mutable=["batch_stats"])
            return jnp.sum(fn(y) * w), (y, new)

        return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(variables, x)

    (g, gx), (y, new) = run(ours, lambda y: y)
    (g_ref, gx_ref), (y_ref, new_ref) = run(ref, nn.relu)
    np.testing.assert_allclose(y, nn.relu(y_ref), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-5)
    for k in ("scale", "bias"):
        np.testing.assert_allclose(g["params"][k], g_ref["params"][k], rtol=1e-4, atol=1e-5)
    for k in ("mean", "var"):
        np.testing.assert_allclose(
            new["batch_stats"][k], new_ref["batch_stats"][k], rtol=1e-5, atol=1e-6
        )
    assert float(jnp.abs(new["batch_stats"]["mean"] - variables["batch_stats"]["mean"]).max()) > 0


def test_eval_uses_running_averages():
    ours, ref = _pair(use_running_average=True)
    x, variables = _data(2)
    np.testing.assert_allclose(
        ours.apply(variables, x), nn.relu(ref.apply(variables, x)), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("fast", [True, False])
def test_cross_device_statistics_and_gradients_match(fast):
    # vmap with an axis name stands in for pmap: statistics and gradients are averaged across it.
    ours, ref = _pair(use_running_average=False, axis_name="d", use_fast_variance=fast)
    x, variables = _data(3, (3, 2, 4, 3, 5))
    w = jnp.asarray(np.random.RandomState(4).randn(*x.shape).astype(np.float32))

    def per_device(module, fn):
        def loss(v, x, w):
            y, new = module.apply(v, x, mutable=["batch_stats"])
            return jnp.sum(fn(y) * w), new

        return jax.vmap(
            jax.grad(loss, argnums=(0, 1), has_aux=True), in_axes=(None, 0, 0), axis_name="d"
        )

    (g, gx), new = per_device(ours, lambda y: y)(variables, x, w)
    (g_ref, gx_ref), new_ref = per_device(ref, nn.relu)(variables, x, w)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g["params"]["scale"], g_ref["params"]["scale"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        new["batch_stats"]["var"], new_ref["batch_stats"]["var"], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_half_precision_output_dtype(dtype):
    ours, ref = _pair(use_running_average=False, dtype=dtype)
    x, variables = _data(5)
    y, _ = ours.apply(variables, x.astype(dtype), mutable=["batch_stats"])
    y_ref, _ = ref.apply(variables, x.astype(dtype), mutable=["batch_stats"])
    assert y.dtype == y_ref.dtype == dtype
    np.testing.assert_allclose(
        y.astype(jnp.float32), nn.relu(y_ref).astype(jnp.float32), rtol=1e-2, atol=1e-2
    )


@pytest.mark.parametrize("activation,fn", [("relu6", nn.relu6), ("none", lambda y: y)])
def test_other_activations_match_flax(activation, fn):
    ours = BatchNormAct(activation=activation, momentum=0.9, epsilon=1e-5)
    ref = nn.BatchNorm(momentum=0.9, epsilon=1e-5, use_running_average=False)
    x, variables = _data(6)
    variables["params"]["scale"] = variables["params"]["scale"] * 6  # some outputs above 6
    w = jnp.asarray(np.random.RandomState(7).randn(*x.shape).astype(np.float32))

    def grads(module, post):
        def loss(v, x):
            y, _ = module.apply(v, x, mutable=["batch_stats"])
            return jnp.sum(post(y) * w), y

        return jax.grad(loss, argnums=(0, 1), has_aux=True)(variables, x)

    (g, gx), y = grads(ours, lambda y: y)
    (g_ref, gx_ref), y_ref = grads(ref, fn)
    np.testing.assert_allclose(y, fn(y_ref), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g["params"]["scale"], g_ref["params"]["scale"], rtol=1e-4, atol=1e-5)
    evaluated = BatchNormAct(activation=activation, use_running_average=True).apply(variables, x)
    reference = nn.BatchNorm(use_running_average=True).apply(variables, x)
    np.testing.assert_allclose(evaluated, fn(reference), rtol=1e-5, atol=1e-5)
