"""oneDNN convolutions must be lax.conv_general_dilated, and its products jnp.dot: outputs and
both gradients; the model must fall back to "matmul" (saying why) where the library cannot
be built."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from senet_jax import config as config_lib
from senet_jax.models import create_model
from senet_jax.models.ops import conv, native_library, onednn

pytestmark = pytest.mark.skipif(
    jax.default_backend() != "cpu", reason="oneDNN convolutions are a CPU formulation"
)


def _reference(x, k, strides, padding):
    return jax.lax.conv_general_dilated(
        x,
        k,
        strides,
        padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )


# (x shape, kernel shape, strides, padding): ResNet's layers in miniature, plus odd cases:
# TensorFlow's asymmetric SAME padding, non-square images and kernels, unequal strides.
GEOMETRIES = [
    ((2, 9, 8, 5), (3, 3, 5, 7), (1, 1), ((1, 1), (1, 1))),
    ((2, 9, 8, 5), (3, 3, 5, 7), (2, 2), ((1, 1), (1, 1))),
    ((2, 10, 10, 4), (3, 3, 4, 6), (2, 2), ((0, 1), (0, 1))),
    ((3, 16, 14, 3), (7, 7, 3, 8), (2, 2), ((3, 3), (3, 3))),
    ((2, 8, 8, 16), (1, 1, 16, 6), (1, 1), ((0, 0), (0, 0))),
    ((2, 8, 8, 4), (1, 1, 4, 6), (2, 2), ((0, 0), (0, 0))),
    ((1, 7, 9, 3), (1, 3, 3, 5), (2, 1), ((0, 0), (1, 1))),
]


@pytest.mark.parametrize("x_shape,k_shape,strides,padding", GEOMETRIES)
def test_forward_and_gradients_match_lax(x_shape, k_shape, strides, padding):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
    k = jnp.asarray(rng.standard_normal(k_shape), jnp.float32)
    y_ref = _reference(x, k, strides, padding)
    weights = jnp.asarray(rng.standard_normal(y_ref.shape), jnp.float32)
    y = jax.jit(onednn.conv2d, static_argnums=(2, 3))(x, k, strides, padding)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-4)

    def loss(fn):
        return lambda x, k: jnp.sum(jnp.tanh(fn(x, k, strides, padding)) * weights)

    grads = jax.jit(jax.grad(loss(onednn.conv2d), (0, 1)))(x, k)
    grads_ref = jax.grad(loss(_reference), (0, 1))(x, k)
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4)


def test_calls_only_what_the_gradient_needs():
    # The stem's image needs no gradient: only the kernel's is computed. Elsewhere both come
    # from one call (two could run at once and contend for the cores).
    x, k = jnp.ones((1, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
    padding = ((1, 1), (1, 1))
    loss = lambda x, k: jnp.sum(onednn.conv2d(x, k, (1, 1), padding))
    kernel_only = jax.jit(jax.grad(loss, 1)).lower(x, k).compile().as_text()
    assert "senet_onednn_conv_kernel_grad" in kernel_only
    assert "senet_onednn_conv_grads" not in kernel_only
    both = jax.jit(jax.grad(lambda x, k: loss(jnp.sin(x), k), (0, 1))).lower(x, k).as_text()
    assert both.count("senet_onednn_conv_grads") == 1
    assert "senet_onednn_conv_kernel_grad" not in both


def test_auto_uses_onednn_on_cpu_for_float32():
    # k x k through oneDNN's convolution, 1x1 (plain matrix products) through its sgemm.
    x = jnp.ones((1, 8, 8, 3))
    for dtype, kernel, implementation, expected in (
        (jnp.float32, (3, 3), "auto", "senet_onednn_conv_forward"),
        (jnp.float32, (1, 1), "auto", "senet_onednn_matmul"),
        (jnp.float32, (1, 1), "onednn", "senet_onednn_matmul"),
        (jnp.bfloat16, (3, 3), "auto", None),
        (jnp.bfloat16, (1, 1), "auto", None),
    ):
        module = conv.Conv(4, kernel, dtype=dtype, implementation=implementation)
        params = module.init(jax.random.PRNGKey(0), x)
        hlo = jax.jit(module.apply).lower(params, x).as_text()
        called = [t for t in onednn.TARGETS if f"@{t}(" in hlo]
        assert called == ([expected] if expected else []), (dtype, kernel, implementation)


# (a shape, b shape): a 1x1 layer's product, and the degenerate ones.
PRODUCTS = [((96, 16), (16, 24)), ((7, 3), (3, 1)), ((5, 0), (0, 4)), ((0, 6), (6, 3))]


@pytest.mark.parametrize("a_shape,b_shape", PRODUCTS)
def test_matmul_and_its_gradients_match_jnp_dot(a_shape, b_shape):
    rng = np.random.default_rng(4)
    a = jnp.asarray(rng.standard_normal(a_shape), jnp.float32)
    b = jnp.asarray(rng.standard_normal(b_shape), jnp.float32)
    weights = jnp.asarray(rng.standard_normal((a_shape[0], b_shape[1])), jnp.float32)
    dot = lambda a, b: jnp.dot(a, b, precision=jax.lax.Precision.HIGHEST)
    np.testing.assert_allclose(jax.jit(onednn.matmul)(a, b), dot(a, b), rtol=1e-5, atol=1e-5)

    def loss(fn):
        return lambda a, b: jnp.sum(jnp.tanh(fn(a, b)) * weights)

    for argnums in ((0, 1), 0, 1):
        grads = jax.jit(jax.grad(loss(onednn.matmul), argnums))(a, b)
        grads_ref = jax.grad(loss(dot), argnums)(a, b)
        for g, g_ref in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
            np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4)


def test_matmul_calls_only_what_the_gradient_needs():
    a, b = jnp.ones((8, 3)), jnp.ones((3, 4))
    loss = lambda a, b: jnp.sum(jnp.sin(onednn.matmul(a, b)))
    for argnums, expected in (((0, 1), 1), (0, 0), (1, 0)):
        hlo = jax.jit(jax.grad(loss, argnums)).lower(a, b).as_text()
        assert hlo.count("@senet_onednn_matmul_grads(") == expected, argnums
        # the forward, plus one product for a single gradient
        assert hlo.count("@senet_onednn_matmul(") == 2 - expected, argnums


def test_resnet_logits_and_gradients_equal_the_matmul_formulation():
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 32, 32, 3)), jnp.float32)

    def make(implementation):
        return create_model(
            "se_resnet18", num_classes=5, width_multiplier=0.125, conv_implementation=implementation
        )

    variables = make("matmul").init(jax.random.PRNGKey(0), x)

    def loss(model):
        def f(params):
            logits, _ = model.apply(
                {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
            )
            return jnp.sum(jnp.sin(logits)), logits

        return jax.jit(jax.grad(f, has_aux=True))

    (g, logits), (g_ref, logits_ref) = (
        loss(make(i))(variables["params"]) for i in ("onednn", "matmul")
    )
    np.testing.assert_allclose(logits, logits_ref, rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):  # atol: to the tensor's scale
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4 * max(1.0, np.abs(b).max()))


def test_runs_under_pmap_on_several_devices():
    # pmap runs one copy per device on XLA's threads, so the handlers run concurrently.
    n = jax.local_device_count()
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((n, 2, 8, 8, 4)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 4, 6)), jnp.float32)
    padding = ((1, 1), (1, 1))
    grad = jax.pmap(
        jax.grad(lambda k, x: jnp.sum(onednn.conv2d(x, k, (1, 1), padding) ** 2)),
        in_axes=(None, 0),
    )(k, x)
    ref = jax.vmap(
        jax.grad(lambda k, x: jnp.sum(_reference(x, k, (1, 1), padding) ** 2)), (None, 0)
    )(k, x)
    np.testing.assert_allclose(grad, ref, rtol=1e-4, atol=1e-3)


@pytest.fixture
def broken_onednn(monkeypatch):
    """oneDNN as on a machine where its library failed to build."""
    monkeypatch.setattr(onednn, "_outcome", {"error": "no C++ compiler on PATH (install g++)"})
    conv._log_fallback_once.cache_clear()


def test_auto_falls_back_to_matmul_and_says_why(broken_onednn, monkeypatch):
    warnings = []
    monkeypatch.setattr(conv.logging, "warning", lambda msg, *a: warnings.append(msg % a))
    assert conv.resolve_conv_implementation("auto") == "matmul"
    assert conv.resolve_conv_implementation("auto") == "matmul"
    assert warnings == [
        "oneDNN convolutions unavailable (no C++ compiler on PATH (install g++)); "
        "CPU convolutions use 'matmul'"
    ]
    with pytest.raises(ValueError, match=r"'onednn' is unavailable here \(no C\+\+ compiler"):
        conv.resolve_conv_implementation("onednn")


def test_config_rejects_onednn_where_it_cannot_run(broken_onednn):
    from configs import smoke

    config = smoke.get_config()
    config.model.conv_implementation = "onednn"
    with pytest.raises(
        config_lib.ConfigError, match=r"config\.model\.conv_implementation: .*matmul"
    ):
        config_lib.validate(config)


def test_onednn_only_on_cpu(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert conv.resolve_conv_implementation("auto") == "native"
    with pytest.raises(ValueError, match="'onednn' runs on CPU only, not gpu"):
        conv.resolve_conv_implementation("onednn")


def test_missing_onednn_package_is_one_line_with_the_fix(monkeypatch):
    def missing(name):
        raise onednn.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(onednn.metadata, "distribution", missing)
    with pytest.raises(native_library.BuildError, match="pip install onednn-cpu-gomp"):
        onednn._onednn_paths()


@pytest.mark.parametrize("kernel", [(3, 3), (1, 1)])
def test_conv_module_matches_nn_conv_with_onednn(kernel):
    x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 9, 9, 5)), jnp.float32)
    ours = conv.Conv(6, kernel, strides=(2, 2), implementation="onednn", padding="same")
    native = nn.Conv(6, kernel, strides=(2, 2), padding="SAME", use_bias=False)
    params = native.init(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(
        jax.jit(ours.apply)(params, x), native.apply(params, x), rtol=1e-5, atol=1e-5
    )
