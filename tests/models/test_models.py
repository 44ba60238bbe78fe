"""Model registry, exact sizes against the papers, and the model's train/eval contract."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import jax_utils

from senet_jax.models import __main__ as summary_cli
from senet_jax.models import create_model, list_models
from senet_jax.models.summary import summarize


def param_count(model, image_size=224):
    x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"]))


def test_registry_lists_both_models_and_rejects_unknown_names():
    assert {"mobilenet_v1", "se_mobilenet_v1"} <= set(list_models())
    with pytest.raises(ValueError, match="se_mobilenet_v1"):
        create_model("se_mobilenet_v2")


@pytest.mark.parametrize(
    "name,num_classes,expected",
    [
        ("mobilenet_v1", 1000, 4_231_976),
        ("se_mobilenet_v1", 1000, 4_718_044),
        ("mobilenet_v1", 10, 3_217_226),
        ("se_mobilenet_v1", 10, 3_703_294),
    ],
)
def test_exact_parameter_counts(name, num_classes, expected):
    assert param_count(create_model(name, num_classes=num_classes)) == expected


@pytest.mark.parametrize(
    "name,paper_mult_adds", [("mobilenet_v1", 569e6), ("se_mobilenet_v1", 572e6)]
)
def test_multiply_adds_match_the_papers_within_one_percent(name, paper_mult_adds):
    rows = summarize(create_model(name, num_classes=1000), 224)
    total = sum(r.mult_adds for r in rows)
    assert abs(total - paper_mult_adds) / paper_mult_adds < 0.01
    assert sum(r.params for r in rows) == param_count(create_model(name, num_classes=1000))


def test_summary_command_prints_a_row_per_block_and_totals(capsys):
    summary_cli.main(["se_mobilenet_v1", "--image-size", "224", "--num-classes", "1000"])
    out = capsys.readouterr().out
    assert out.count("block") == 13
    assert "4,718,044" in out and "7x7x1024" in out


@pytest.mark.parametrize("name", ["mobilenet_v1", "se_mobilenet_v1"])
@pytest.mark.parametrize(
    "batch,size,width,classes", [(1, 32, 0.25, 10), (3, 96, 0.25, 7), (2, 224, 0.25, 1000)]
)
def test_output_shapes(name, batch, size, width, classes):
    model = create_model(name, num_classes=classes, width_multiplier=width)
    x = jnp.zeros((batch, size, size, 3))
    logits = jax.eval_shape(lambda x: model.apply(model.init(jax.random.key(0), x), x), x)
    chex.assert_shape(logits, (batch, classes))
    assert logits.dtype == jnp.float32


def test_stem_strides_sets_the_total_stride():
    assert create_model("mobilenet_v1").total_stride() == 32
    model = create_model("se_mobilenet_v1", num_classes=10, width_multiplier=0.25, stem_strides=1)
    assert model.total_stride() == 16
    x = jnp.zeros((1, 32, 32, 3))
    _, state = jax.eval_shape(
        lambda x: model.apply(
            model.init(jax.random.key(0), x),
            x,
            capture_intermediates=True,
            mutable=["intermediates"],
        ),
        x,
    )
    chex.assert_shape(state["intermediates"]["block13"]["__call__"][0], (1, 2, 2, 256))


def test_se_blocks_selects_where_se_goes():
    model = create_model(
        "se_mobilenet_v1", num_classes=10, width_multiplier=0.25, se={"blocks": (12, 13)}
    )
    x = jnp.zeros((1, 32, 32, 3))
    params = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)["params"]
    with_se = sorted(name for name, block in params.items() if "se" in block)
    assert with_se == ["block12", "block13"]


@pytest.fixture(scope="module")
def small():
    model = create_model("se_mobilenet_v1", num_classes=10, width_multiplier=0.25, dropout_rate=0.0)
    x = jax.random.normal(jax.random.key(1), (8, 32, 32, 3))
    return model, model.init(jax.random.key(0), x, train=False), x


def test_train_mode_updates_batch_stats_and_eval_mode_does_not(small):
    model, variables, x = small
    _, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
    changed = jax.tree.map(
        lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"], updated["batch_stats"]
    )
    assert all(jax.tree.leaves(changed))
    _, unchanged = model.apply(variables, x, train=False, mutable=["batch_stats"])
    chex.assert_trees_all_equal(variables["batch_stats"], unchanged["batch_stats"])


def test_dropout_needs_an_rng_and_differs_per_key():
    model = create_model("se_mobilenet_v1", num_classes=10, width_multiplier=0.25, dropout_rate=0.5)
    x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    run = lambda k: model.apply(
        variables, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(k)}
    )[0]
    assert not np.allclose(run(1), run(2))
    np.testing.assert_array_equal(run(3), run(3))


def test_bfloat16_compute_keeps_float32_params(small):
    _, _, x = small
    model = create_model(
        "se_mobilenet_v1", num_classes=10, width_multiplier=0.25, dtype=jnp.bfloat16
    )
    variables = model.init(jax.random.key(0), x, train=False)
    assert {p.dtype for p in jax.tree.leaves(variables["params"])} == {jnp.dtype(jnp.float32)}
    logits, state = model.apply(
        variables, x, train=False, capture_intermediates=True, mutable=["intermediates"]
    )
    assert logits.dtype == jnp.float32
    assert state["intermediates"]["block05"]["__call__"][0].dtype == jnp.bfloat16


def test_jit_and_pmap_give_the_plain_logits(small):
    model, variables, x = small
    assert jax.local_device_count() == 8
    plain = model.apply(variables, x, train=False)
    jitted = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
    replicated = jax_utils.replicate(variables)
    pmapped = jax.pmap(lambda v, x: model.apply(v, x, train=False))(
        replicated, x.reshape(8, 1, *x.shape[1:])
    )
    np.testing.assert_allclose(jitted, plain, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pmapped.reshape(plain.shape), plain, rtol=1e-5, atol=1e-5)


def test_cross_device_batchnorm_matches_the_global_batch():
    """BatchNorm with bn_axis_name under pmap must see the statistics of the whole global batch."""
    kw = dict(num_classes=10, width_multiplier=0.25)
    x = jax.random.normal(jax.random.key(1), (16, 32, 32, 3)) * 3 + 1
    model = create_model("mobilenet_v1", **kw)
    variables = model.init(jax.random.key(0), x, train=False)
    logits, stats = model.apply(variables, x, train=True, mutable=["batch_stats"])
    sharded = create_model("mobilenet_v1", bn_axis_name="batch", **kw)
    step = jax.pmap(
        lambda v, x: sharded.apply(v, x, train=True, mutable=["batch_stats"]), axis_name="batch"
    )
    p_logits, p_stats = step(jax_utils.replicate(variables), x.reshape(8, 2, 32, 32, 3))
    np.testing.assert_allclose(p_logits.reshape(logits.shape), logits, rtol=1e-4, atol=1e-4)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[0], p_stats), stats, rtol=1e-4, atol=1e-5)
