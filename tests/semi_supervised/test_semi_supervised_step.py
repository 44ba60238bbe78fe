"""The semi-supervised step: pmapped over 8 devices it matches one device, and it learns."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import jax_utils
from test_steps import TinyNet, learnable_batch

from senet_jax import steps
from senet_jax.semi_supervised import step as ssl_step

AXIS = "batch"
NUM_UNLABELLED = 64


def make_state(method, ema_decay, axis_name=None, dtype=jnp.float32, dropout=0.0):
    tx = optax.sgd(0.1, momentum=0.9)
    model = TinyNet(axis_name, dtype, dropout)
    state = steps.create_train_state(model, tx, jax.random.key(0), (16, 16, 3))
    return ssl_step.create_state(
        state, method=method, ema_decay=ema_decay, num_unlabelled=NUM_UNLABELLED
    )


def batches(seed, labelled=8, mu=2, dtype=np.float32):
    """A learnable labelled batch and an unlabelled one whose strong view is the weak one
    plus noise; the first half of the unlabelled labels is known, the rest is -1."""
    lab = learnable_batch(labelled, size=16, seed=seed)
    unl = learnable_batch(labelled * mu, size=16, seed=seed + 100)
    rng = np.random.default_rng(seed)
    known = np.where(np.arange(labelled * mu) < labelled * mu // 2, unl["label"], -1)
    unlabelled = {
        "weak": unl["image"].astype(dtype),
        "strong": (unl["image"] + rng.normal(0, 0.3, unl["image"].shape)).astype(dtype),
        "index": rng.permutation(NUM_UNLABELLED)[: labelled * mu].astype(np.int32),
        "label": known.astype(np.int32),
    }
    return {"image": lab["image"].astype(dtype), "label": lab["label"]}, unlabelled


def shard(tree):
    return jax.tree.map(lambda x: x.reshape(8, -1, *x.shape[1:]), tree)


@pytest.mark.parametrize("method", ["fixmatch", "flexmatch"])
def test_eight_devices_and_one_device_give_the_same_state(method):
    """pmean'd gradients, cross-device BatchNorm, the EMA and FlexMatch's record (gathered
    over devices) equal the one-device step on the same global batch. Float64, as in
    test_steps, so the comparison is tight."""
    assert jax.local_device_count() == 8
    options = dict(method=method, threshold=0.1, weight=1.0, ema_decay=0.9)
    with jax.enable_x64(True):
        single = make_state(method, 0.9, dtype=jnp.float64)
        replicated = jax_utils.replicate(make_state(method, 0.9, AXIS, jnp.float64))
        step1 = jax.jit(functools.partial(ssl_step.ssl_train_step, **options))
        step8 = jax.pmap(
            functools.partial(ssl_step.ssl_train_step, **options, axis_name=AXIS), axis_name=AXIS
        )
        for i in range(2):
            labelled, unlabelled = batches(i, dtype=np.float64)
            single, m1 = step1(single, labelled, unlabelled)
            replicated, m8 = step8(replicated, shard(labelled), shard(unlabelled))
            for name in ("loss", "unlabelled_loss", "mask_rate", "pseudo_label_accuracy"):
                np.testing.assert_allclose(m8[name][0], m1[name], rtol=1e-6, err_msg=name)
        # max of 10 probabilities >= 0.1: every pseudo-label is used
        assert float(m1["mask_rate"]) == 1.0 and float(m1["unlabelled_loss"]) > 0
        multi = jax_utils.unreplicate(replicated)
        chex.assert_trees_all_close(multi.params, single.params, rtol=1e-6, atol=1e-7)
        chex.assert_trees_all_close(multi.ema_params, single.ema_params, rtol=1e-6, atol=1e-7)
        chex.assert_trees_all_close(multi.batch_stats, single.batch_stats, rtol=1e-6, atol=1e-7)
        if method == "flexmatch":
            np.testing.assert_array_equal(multi.pseudo_record, single.pseudo_record)
            assert np.all(np.asarray(replicated.pseudo_record) == np.asarray(multi.pseudo_record))
            assert (np.asarray(single.pseudo_record) >= 0).any()
            assert m1["class_thresholds"].shape == (10,)


def test_the_step_learns_and_the_average_trails_the_weights():
    state = make_state("fixmatch", 0.9, dropout=0.1)
    step = jax.jit(functools.partial(ssl_step.ssl_train_step, threshold=0.5, ema_decay=0.9))
    labelled, unlabelled = batches(0)
    del unlabelled["label"]  # no known labels: no pseudo-label accuracy
    losses = []
    for _ in range(10):
        state, metrics = step(state, labelled, unlabelled)
        losses.append(float(metrics["labelled_loss"]))
        assert metrics["finite"] == 1.0
    assert "pseudo_label_accuracy" not in metrics and "class_thresholds" not in metrics
    assert losses[-1] < losses[0] * 0.9
    assert int(state.step) == 10 and state.pseudo_record is None
    live = jax.tree.leaves(state.params)[0]
    average = jax.tree.leaves(state.ema_params)[0]
    assert not np.allclose(live, average)


def test_weight_zero_is_the_labelled_loss_alone():
    state = make_state("fixmatch", 0.0)
    labelled, unlabelled = batches(1)
    _, metrics = jax.jit(functools.partial(ssl_step.ssl_train_step, threshold=0.0, weight=0.0))(
        state, labelled, unlabelled
    )
    assert float(metrics["mask_rate"]) == 1.0
    assert float(metrics["loss"]) == pytest.approx(float(metrics["labelled_loss"]))
    assert float(metrics["unlabelled_loss"]) > 0


@pytest.mark.parametrize("method", ["fixmatch", "flexmatch"])
def test_microbatches_equal_devices_that_normalise_their_own_share(method):
    """Two parts of one step (each with half the labelled, weak and strong images) give what
    two devices give when each normalises its own half: the same loss, metrics, parameters,
    EMA and FlexMatch record."""
    options = dict(method=method, threshold=0.1, weight=1.0, ema_decay=0.9)
    two = jax.devices()[:2]
    with jax.enable_x64(True):
        parts = make_state(method, 0.9, dtype=jnp.float64)
        devices = jax_utils.replicate(make_state(method, 0.9, None, jnp.float64), devices=two)
        step_parts = jax.jit(functools.partial(ssl_step.ssl_train_step, **options, microbatches=2))
        step_devices = jax.pmap(
            functools.partial(ssl_step.ssl_train_step, **options, axis_name=AXIS),
            axis_name=AXIS,
            devices=two,
        )
        halves = lambda tree: jax.tree.map(lambda x: x.reshape(2, -1, *x.shape[1:]), tree)
        for i in range(2):
            labelled, unlabelled = batches(i, dtype=np.float64)
            parts, m_parts = step_parts(parts, labelled, unlabelled)
            devices, m_devices = step_devices(devices, halves(labelled), halves(unlabelled))
            for name in ("loss", "unlabelled_loss", "mask_rate", "pseudo_label_accuracy"):
                np.testing.assert_allclose(
                    m_devices[name][0], m_parts[name], rtol=1e-9, err_msg=name
                )
        assert float(m_parts["unlabelled_loss"]) > 0
        merged = jax_utils.unreplicate(devices)
        chex.assert_trees_all_close(merged.params, parts.params, rtol=1e-8, atol=1e-10)
        chex.assert_trees_all_close(merged.ema_params, parts.ema_params, rtol=1e-8, atol=1e-10)
        if method == "flexmatch":
            np.testing.assert_array_equal(merged.pseudo_record, parts.pseudo_record)


def test_split_batch_norm_with_weight_zero_is_the_supervised_step():
    """batch_norm="split": the labelled images are normalised alone, so with no unlabelled
    loss the step is the supervised one on the labelled batch (parameters and running
    statistics), whatever the unlabelled views hold; "joint" normalises them together and
    differs. Float64 (the losses are float32, hence rtol 1e-6)."""
    options = dict(threshold=0.0, weight=0.0, ema_decay=0.0)
    fresh = lambda: make_state("fixmatch", 0.0, dtype=jnp.float64)
    with jax.enable_x64(True):
        labelled, unlabelled = batches(2, dtype=np.float64)
        supervised, _ = jax.jit(steps.train_step)(fresh(), labelled)
        states = {}
        for batch_norm in ("split", "joint"):
            step = functools.partial(ssl_step.ssl_train_step, **options, batch_norm=batch_norm)
            states[batch_norm], metrics = jax.jit(step)(fresh(), labelled, unlabelled)
            assert float(metrics["unlabelled_loss"]) > 0
        expected = (supervised.params, supervised.batch_stats)
        split, joint = states["split"], states["joint"]
        chex.assert_trees_all_close(
            (split.params, split.batch_stats), expected, rtol=1e-6, atol=1e-9
        )
        gaps = jax.tree.map(
            lambda a, b: float(np.max(np.abs(a - b))), joint.params, supervised.params
        )
        assert max(jax.tree.leaves(gaps)) > 1e-3


@pytest.mark.parametrize("batch_norm", ["split", "strong_apart"])
def test_grouped_batch_norm_uses_the_unlabelled_loss(batch_norm):
    """With weight > 0 the step's gradient, its forwards split by view, includes the
    pseudo-label loss: it moves the parameters away from the weight-zero step's, not the
    running statistics."""
    with jax.enable_x64(True):
        labelled, unlabelled = batches(3, dtype=np.float64)
        states = {}
        for weight in (0.0, 1.0):
            step = jax.jit(
                functools.partial(
                    ssl_step.ssl_train_step, threshold=0.0, weight=weight, batch_norm=batch_norm
                )
            )
            states[weight], metrics = step(
                make_state("fixmatch", 0.0, dtype=jnp.float64), labelled, unlabelled
            )
        assert float(metrics["mask_rate"]) == 1.0
        kernel = lambda s: jax.tree.leaves(s.params)[0]
        assert not np.allclose(kernel(states[0.0]), kernel(states[1.0]))
        chex.assert_trees_all_close(states[0.0].batch_stats, states[1.0].batch_stats)


def test_strong_apart_batch_norm_keeps_the_strong_views_out_of_the_clean_statistics():
    """batch_norm="strong_apart": the labelled images and weak views share one forward, whose
    statistics become the running ones, and the strong views have their own. So with no
    unlabelled loss the strong views change nothing, and the running statistics are a plain
    forward's over concat(labelled, weak); under "joint" other strong views give another
    state. Float64."""
    options = dict(threshold=0.0, weight=0.0, ema_decay=0.0)
    fresh = lambda: make_state("fixmatch", 0.0, dtype=jnp.float64)
    with jax.enable_x64(True):
        labelled, unlabelled = batches(4, dtype=np.float64)
        other = dict(unlabelled, strong=unlabelled["strong"][::-1] * 2.0 + 1.0)
        states = {}
        for batch_norm in ("strong_apart", "joint"):
            step = jax.jit(
                functools.partial(ssl_step.ssl_train_step, **options, batch_norm=batch_norm)
            )
            states[batch_norm] = [step(fresh(), labelled, u)[0] for u in (unlabelled, other)]
        first, second = states["strong_apart"]
        chex.assert_trees_all_close(
            (first.params, first.batch_stats), (second.params, second.batch_stats), rtol=1e-12
        )
        state = fresh()
        clean = np.concatenate([labelled["image"], unlabelled["weak"]])
        _, updates = state.apply_fn(
            {"params": state.params, "batch_stats": state.batch_stats},
            clean,
            train=True,
            mutable=["batch_stats"],
        )
        chex.assert_trees_all_close(first.batch_stats, updates["batch_stats"], rtol=1e-12)
        joint = [s.batch_stats for s in states["joint"]]
        gaps = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), *joint)
        assert max(jax.tree.leaves(gaps)) > 1e-3
