"""The pure steps: train_step, eval_step, the train state, and their pmapped forms."""

from __future__ import annotations

import functools

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from config_utils import configure
from flax import jax_utils

from configs import stl10
from senet_jax import optim, steps
from senet_jax.models import create_model

AXIS = "batch"


def small_config(**overrides):
    c = stl10.get_config()
    configure(c, width_multiplier=0.25, stem_strides=2, image_size=32, dropout_rate=0.0)
    configure(c, num_epochs=4, warmup_epochs=1, batch_size=16)
    return configure(c, **overrides)


def make_tx(config, steps_per_epoch=5):
    tx, _ = optim.create_optimizer(
        config.optim, num_epochs=config.num_epochs, steps_per_epoch=steps_per_epoch
    )
    return tx


def make_state(config, num_classes=10, axis_name=None, steps_per_epoch=5):
    model = steps.create_model(config, num_classes, axis_name=axis_name)
    shape = (config.data.image_size,) * 2 + (3,)
    return steps.create_train_state(
        model, make_tx(config, steps_per_epoch), jax.random.key(0), shape
    )


def learnable_batch(n=16, size=32, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.int32)
    images = rng.normal(size=(n, size, size, 3)).astype(np.float32)
    images[..., 0] += labels[:, None, None] / 3.0 - 1.5  # the class is written in the red channel
    return {"image": images, "label": labels}


# One jitted step shared by the tests: jit caches by the state's structure, so tests that
# reuse a state object (and with it its optimizer) compile once.
STEP = jax.jit(steps.train_step)


@pytest.fixture(scope="module")
def sgd_state():
    return make_state(
        small_config(optimizer="sgd", learning_rate=0.1, warmup_epochs=0, stem_strides=1)
    )


def test_weight_decay_skips_batchnorm_and_biases(sgd_state):
    mask = optim.decay_mask(sgd_state.params)
    assert mask["stem"]["kernel"] and mask["block01"]["pointwise"]["kernel"]
    assert mask["block01"]["depthwise"]["kernel"] and mask["classifier"]["kernel"]
    assert not mask["stem_bn"]["scale"] and not mask["stem_bn"]["bias"]
    assert not mask["classifier"]["bias"] and not mask["block01"]["se"]["reduce"]["bias"]


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_train_step_lowers_the_loss_on_a_fixed_batch(optimizer, sgd_state):
    state = (
        sgd_state
        if optimizer == "sgd"
        else make_state(
            small_config(optimizer="adamw", learning_rate=3e-3, warmup_epochs=0, stem_strides=1)
        )
    )
    batch = learnable_batch()
    losses = []
    for _ in range(10):
        state, metrics = STEP(state, batch)
        losses.append(float(metrics["loss"]))
        assert metrics["finite"] == 1.0
    assert losses[-1] < losses[0] * 0.9
    assert int(state.step) == 10


def test_schedule_warms_up_then_decays_to_zero():
    config = small_config(num_epochs=10, warmup_epochs=2, learning_rate=0.4)
    _, schedule = optim.create_optimizer(
        config.optim, num_epochs=config.num_epochs, steps_per_epoch=10
    )
    assert float(schedule(0)) == 0.0
    assert float(schedule(20)) == pytest.approx(0.4)
    assert float(schedule(10)) == pytest.approx(0.2)
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-7)
    assert float(schedule(60)) < float(schedule(40)) < 0.4


def test_total_steps_sets_the_schedule_length_whatever_num_epochs():
    config = small_config(num_epochs=10, warmup_epochs=2, learning_rate=0.4)
    _, schedule = optim.create_optimizer(
        config.optim, num_epochs=config.num_epochs, steps_per_epoch=10, total_steps=40
    )
    assert float(schedule(20)) == pytest.approx(0.4)  # warmup still counts epochs of 10 steps
    assert float(schedule(30)) == pytest.approx(0.2)  # half way down the 20 steps of cosine
    assert float(schedule(40)) == pytest.approx(0.0, abs=1e-7)


def test_nonfinite_loss_is_flagged(sgd_state):
    batch = learnable_batch()
    batch["image"][0, 0, 0, 0] = np.nan
    _, metrics = STEP(sgd_state, batch)
    assert metrics["finite"] == 0.0


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("position", [0, 7, 36863])
def test_all_finite_finds_one_bad_value_among_many_leaves(bad, position):
    # A conv-kernel-sized leaf: XLA:CPU's vectorized reductions only run on larger arrays.
    big = np.random.RandomState(0).uniform(-3e38, 3e38, (3, 3, 64, 64)).astype(np.float32)
    tree = {"a": big, "b": [np.zeros(5, np.float32)] * 3}
    assert bool(jax.jit(steps._all_finite)(tree))  # large but finite values do not overflow it
    tree["b"] = [np.zeros(5, np.float32), np.array([0, 0, bad, 0, 0], np.float32)]
    assert not bool(jax.jit(steps._all_finite)(tree))
    tree["b"] = [np.zeros(5, np.float32)] * 3
    tree["a"] = big.copy()
    tree["a"].reshape(-1)[position] = bad
    assert not bool(jax.jit(steps._all_finite)(tree))


def test_eval_step_sums_only_masked_examples(sgd_state):
    state = sgd_state
    batch = learnable_batch(8)
    mask = np.array([1, 1, 1, 0, 1, 0, 0, 1], bool)
    sums = jax.jit(steps.eval_step)(state, {**batch, "mask": mask})
    logits = state.apply_fn(
        {"params": state.params, "batch_stats": state.batch_stats}, batch["image"], train=False
    )
    pred = np.asarray(jnp.argmax(logits, -1))
    loss = np.asarray(-jax.nn.log_softmax(logits)[np.arange(8), batch["label"]])
    assert sums["count"] == 5
    assert sums["correct"] == np.sum((pred == batch["label"]) & mask)
    np.testing.assert_allclose(sums["loss_sum"], loss[mask].sum(), rtol=1e-5)
    assert np.asarray(sums["confusion"]).sum() == 5
    assert np.asarray(sums["confusion"])[batch["label"][0], pred[0]] >= 1


def test_eval_step_counts_top5_over_masked_examples(sgd_state):
    batch = learnable_batch(8)
    mask = np.array([1, 0, 1, 1, 1, 0, 1, 1], bool)
    sums = jax.jit(steps.eval_step)(sgd_state, {**batch, "mask": mask})
    logits = np.asarray(
        sgd_state.apply_fn(
            {"params": sgd_state.params, "batch_stats": sgd_state.batch_stats},
            batch["image"],
            train=False,
        )
    )
    rank = (logits > logits[np.arange(8), batch["label"]][:, None]).sum(-1)  # classes above
    assert sums["correct_top5"] == np.sum((rank < 5) & mask)
    assert sums["correct"] <= sums["correct_top5"] <= sums["count"]


def test_eval_metrics_adds_batches_exactly_then_divides():
    """Two batches' sums (as eval_step returns them, float32) fold into one set of metrics:
    the 3 correct of 4 counted, loss and top-5 over the same 4, confusion counts as ints."""
    names = ("loss_sum", "correct", "correct_top5", "count")
    first = dict(zip(names, np.float32([1.5, 2, 3, 3])), confusion=np.float32([[2, 0], [1, 0]]))
    second = dict(zip(names, np.float32([0.5, 1, 1, 1])), confusion=np.float32([[0, 0], [0, 1]]))
    metrics = steps.eval_metrics(iter([first, second]))
    assert metrics["examples"] == 4
    assert metrics["accuracy"] == 0.75 and metrics["top5_accuracy"] == 1.0
    assert metrics["loss"] == 0.5
    assert metrics["confusion"].dtype == np.int64
    assert metrics["confusion"].tolist() == [[2, 0], [1, 1]]


def _float64_state(bn_axis_name=None, learning_rate=0.05):
    """SE-MobileNetV1 at width 0.25 computed in float64: comparisons of steps taken different
    ways can then be tight (in float32, BatchNorm over tiny batches amplifies rounding)."""
    config = small_config(batch_size=16, learning_rate=learning_rate, warmup_epochs=0)
    model = create_model(
        "se_mobilenet_v1",
        num_classes=10,
        width_multiplier=0.25,
        stem_strides=1,
        bn_axis_name=bn_axis_name,
        dtype=jnp.float64,
        param_dtype=jnp.float64,
    )
    return steps.create_train_state(model, make_tx(config), jax.random.key(0), (32, 32, 3))


def _float64_batch(n, seed=0):
    b = learnable_batch(n, seed=seed)
    return {"image": b["image"].astype(np.float64), "label": b["label"]}


def test_eight_devices_and_one_device_give_the_same_parameters():
    """Same global batch: pmean'd gradients and cross-device BatchNorm equal the 1-device step.

    Run in float64 so the comparison is tight: in float32, BatchNorm over tiny per-layer
    batches amplifies summation-order rounding (about 1e-4 after two steps), which would
    force a tolerance too loose to tell a real bug.
    """
    assert jax.local_device_count() == 8
    with jax.enable_x64(True):
        state_for = functools.partial(_float64_state, learning_rate=0.01)
        batch = functools.partial(_float64_batch, 16)
        shard = lambda b: jax.tree.map(lambda x: x.reshape(8, 2, *x.shape[1:]), b)
        step1 = jax.jit(steps.train_step)
        step8 = jax.pmap(functools.partial(steps.train_step, axis_name=AXIS), axis_name=AXIS)
        single, replicated = state_for(None), jax_utils.replicate(state_for(AXIS))
        for i in range(2):
            single, m1 = step1(single, batch(i))
            replicated, m8 = step8(replicated, shard(batch(i)))
            np.testing.assert_allclose(m8["loss"][0], m1["loss"], rtol=1e-6)
        multi = jax_utils.unreplicate(replicated)
        chex.assert_trees_all_close(multi.params, single.params, rtol=1e-6, atol=1e-7)
        chex.assert_trees_all_close(multi.batch_stats, single.batch_stats, rtol=1e-6, atol=1e-7)
        assert int(multi.step) == int(single.step) == 2


def test_dropout_keys_differ_across_devices(sgd_state):
    state = jax_utils.replicate(sgd_state)

    def logits_per_device(state, batch):
        key = jax.random.fold_in(
            jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step),
            jax.lax.axis_index(AXIS),
        )
        return jax.random.bernoulli(key, 0.5, (64,))

    masks = jax.pmap(logits_per_device, axis_name=AXIS)(state, None)
    assert len({tuple(np.asarray(m)) for m in masks}) == 8


@pytest.mark.parametrize(
    "model,se",
    [
        ("se_mobilenet_v1", {"squeeze": "max", "gate": "tanh", "reduction": 8}),
        ("se_mobilenet_v1", {"gate": "relu", "blocks": "12,13", "min_features": 24}),
    ],
    ids=["max-tanh-r8", "relu-blocks-min"],
)
def test_a_training_step_runs_with_the_se_options_from_the_config(model, se):
    """Every config.model.se option reaches the model: one step trains, and the SE weights
    have the shapes the options imply."""
    config = small_config(**{"model.name": model, **{f"model.se.{k}": v for k, v in se.items()}})
    state = make_state(config)
    state, metrics = jax.jit(steps.train_step)(state, learnable_batch())
    assert metrics["finite"] == 1.0 and np.isfinite(float(metrics["loss"]))
    se_modules = {
        "/".join(path[:-2]): leaf.shape
        for path, leaf in flax.traverse_util.flatten_dict(state.params).items()
        if "se" in path and path[-2] == "reduce" and path[-1] == "kernel"
    }
    assert se_modules
    if "blocks" in se and model == "se_mobilenet_v1":
        assert sorted(se_modules) == ["block12/se", "block13/se"]
    for shape in se_modules.values():
        channels, hidden = shape
        expected = max(se.get("min_features", 1), channels // se.get("reduction", 16))
        assert hidden == expected


@pytest.mark.parametrize("kind", ["se", "eca", "cbam", "ge", "ese"])
@pytest.mark.parametrize("name", ["se_mobilenet_v1", "se_resnet50"])
def test_every_attention_kind_trains_a_step(name, kind):
    """config.model.se.kind through the train state and step train.py uses: finite loss,
    the kind's parameters updated, BatchNorm statistics (CBAM's spatial one) updated."""
    config = small_config(optimizer="sgd", learning_rate=0.1, warmup_epochs=0)
    config.model.name = name
    config.model.se.kind = kind
    config.model.se.gather = "conv" if kind == "ge" else "pool"  # GE-theta: it has weights
    config.model.se.extent = 2 if kind == "ge" else 0
    if name == "se_resnet50":
        config.model.stage_sizes = (1, 1, 1, 1)  # one bottleneck unit a stage keeps it quick
    state = make_state(config)
    new, metrics = jax.jit(steps.train_step)(state, learnable_batch())
    assert np.isfinite(float(metrics["loss"]))
    unit = "block13" if name == "se_mobilenet_v1" else "conv5_1"
    before, after = state.params[unit][kind], new.params[unit][kind]
    assert any(
        bool(jnp.any(a != b)) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after))
    )
    if kind in ("cbam", "ge"):  # their own BatchNorm statistics move too
        old_stats, new_stats = state.batch_stats[unit][kind], new.batch_stats[unit][kind]
        pairs = zip(jax.tree.leaves(old_stats), jax.tree.leaves(new_stats))
        assert any(bool(jnp.any(a != b)) for a, b in pairs)


class TinyNet(nn.Module):
    """Conv, BatchNorm (cross-device with `axis_name`), dense: what a step needs of a model,
    compiled in seconds (the steps are the same for every registry model)."""

    axis_name: str | None = None
    dtype: jnp.dtype = jnp.float32
    dropout: float = 0.0  # 0 where devices are compared: each device draws its own mask

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Conv(8, (3, 3), strides=2, dtype=self.dtype, param_dtype=self.dtype)(x)
        x = nn.BatchNorm(
            use_running_average=not train,
            momentum=0.9,
            axis_name=self.axis_name,
            dtype=self.dtype,
            param_dtype=self.dtype,
        )(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(x))
        return nn.Dense(10, dtype=self.dtype, param_dtype=self.dtype)(x.mean(axis=(1, 2)))


def _tiny_float64_state():
    tx = optax.sgd(0.1, momentum=0.9)
    model = TinyNet(dtype=jnp.float64)
    return steps.create_train_state(model, tx, jax.random.key(0), (16, 16, 3))


def _tiny_float64_batch(n, seed=0):
    b = learnable_batch(n, size=16, seed=seed)
    return {"image": b["image"].astype(np.float64), "label": b["label"]}


def test_microbatches_equal_devices_that_normalise_their_own_share():
    """Two parts of one batch give the step two devices give when each normalises its own
    half and gradients are averaged: the same loss and the same parameters."""
    two = jax.devices()[:2]
    with jax.enable_x64(True):
        batch = _tiny_float64_batch(16)
        step_parts = jax.jit(functools.partial(steps.train_step, microbatches=2))
        parts_state, parts_metrics = step_parts(_tiny_float64_state(), batch)
        step_devices = jax.pmap(
            functools.partial(steps.train_step, axis_name=AXIS), axis_name=AXIS, devices=two
        )
        replicated = jax_utils.replicate(_tiny_float64_state(), devices=two)
        halves = jax.tree.map(lambda x: x.reshape(2, 8, *x.shape[1:]), batch)
        devices_state, devices_metrics = step_devices(replicated, halves)
        for name in ("loss", "accuracy"):
            np.testing.assert_allclose(parts_metrics[name], devices_metrics[name][0], rtol=1e-9)
        chex.assert_trees_all_close(
            parts_state.params, jax_utils.unreplicate(devices_state).params, rtol=1e-8, atol=1e-10
        )
        whole_state, _ = jax.jit(steps.train_step)(_tiny_float64_state(), batch)
        differences = jax.tree.map(
            lambda a, b: float(jnp.max(jnp.abs(a - b))), parts_state.params, whole_state.params
        )
        assert max(jax.tree.leaves(differences)) > 1e-6  # per-part BatchNorm is not the whole's


def test_microbatches_update_the_running_averages_part_after_part():
    """The same half twice: the gradient of that half alone, and BatchNorm's running averages
    moved twice towards its statistics (momentum m: s -> m s + (1 - m) mu, twice)."""
    m = 0.9  # TinyNet's BatchNorm momentum
    with jax.enable_x64(True):
        half = _tiny_float64_batch(8)
        twice = jax.tree.map(lambda x: np.concatenate([x, x]), half)
        start = _tiny_float64_state()
        once_state, once_metrics = jax.jit(steps.train_step)(start, half)
        parts_state, parts_metrics = jax.jit(functools.partial(steps.train_step, microbatches=2))(
            _tiny_float64_state(), twice
        )
        np.testing.assert_allclose(parts_metrics["loss"], once_metrics["loss"], rtol=1e-12)
        chex.assert_trees_all_close(parts_state.params, once_state.params, rtol=1e-10, atol=1e-12)
        expected = jax.tree.map(
            lambda s, s1: s1 + m * (s1 - s), start.batch_stats, once_state.batch_stats
        )
        # The running averages keep the state's float32 between parts: float32's tolerance.
        chex.assert_trees_all_close(parts_state.batch_stats, expected, rtol=1e-6, atol=1e-9)
        moved = jax.tree.map(
            lambda a, b: float(jnp.max(jnp.abs(a - b))), expected, start.batch_stats
        )
        assert max(jax.tree.leaves(moved)) > 1e-3


@pytest.mark.parametrize(
    "per_device, size, parts",
    [
        (128, None, 1),
        (128, 128, 1),
        (16, 64, 1),
        (128, 64, 2),
        (96, 64, 2),
        (128, 40, 4),
        (7, 3, 0),
    ],
)
def test_microbatch_count_is_the_fewest_equal_parts_that_fit(per_device, size, parts):
    assert steps.microbatch_count(per_device, size) == parts


def test_microbatches_shrink_the_steps_temporaries():
    state = steps.create_train_state(TinyNet(), optax.sgd(0.1), jax.random.key(0), (16, 16, 3))
    batch = learnable_batch(64, size=16)
    temporaries = {}
    for parts in (1, 4):
        step = jax.jit(functools.partial(steps.train_step, microbatches=parts), donate_argnums=0)
        analysis = step.lower(state, batch).compile().memory_analysis()
        temporaries[parts] = analysis.temp_size_in_bytes
    assert temporaries[4] < 0.5 * temporaries[1], temporaries
