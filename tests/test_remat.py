"""senet_jax.remat: the "conv_outputs" policy keeps less and gives the same training step."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from config_utils import configure

from configs import stl10
from senet_jax import config as config_lib
from senet_jax import optim, remat, steps


def _tiny(model_name="se_mobilenet_v1"):
    c = stl10.get_config()
    configure(c, width_multiplier=0.25, stem_strides=1, image_size=32, dropout_rate=0.2)
    configure(c, num_epochs=2, warmup_epochs=0, batch_size=8)
    c.model.name = model_name
    c.optim.schedule = "constant"  # warmup would start at a rate of 0: the step must move
    return c


def _state_and_batch(config):
    model = steps.create_model(config, 10)
    tx, _ = optim.create_optimizer(config.optim, num_epochs=2, steps_per_epoch=5)
    state = steps.create_train_state(model, tx, jax.random.key(0), (32, 32, 3))
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.normal(size=(8, 32, 32, 3)).astype(np.float32),
        "label": rng.integers(0, 10, 8).astype(np.int32),
    }
    return state, batch


def _forward_loss(state, batch):
    def loss(params):
        logits, _ = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats},
            batch["image"],
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": jax.random.key(1)},
        )
        return jnp.sum(logits**2)

    return loss


def _saved_bytes(fn, *args):
    """Bytes the backward pass holds: the leaves of the function jax.vjp returns, traced
    abstractly (jax.eval_shape) rather than run op by op."""
    residuals = jax.eval_shape(lambda *a: jax.tree.leaves(jax.vjp(fn, *a)[1]), *args)
    return sum(leaf.size * leaf.dtype.itemsize for leaf in residuals)


# MobileNet keeps BatchNorm + ReLU and SE outputs beside each convolution's; a ResNet block
# also keeps its residual sums, which the policy recomputes too.
@pytest.mark.parametrize("model_name, most", [("se_mobilenet_v1", 0.5), ("se_resnet18", 0.7)])
def test_conv_outputs_keeps_less_than_autodiff_keeps(model_name, most):
    state, batch = _state_and_batch(_tiny(model_name))
    loss = _forward_loss(state, batch)
    kept = _saved_bytes(loss, state.params)
    kept_remat = _saved_bytes(remat.rematerialized(loss, "conv_outputs"), state.params)
    assert kept_remat < most * kept, (kept_remat, kept)


def test_training_step_is_the_same_with_and_without_rematerialization():
    state, batch = _state_and_batch(_tiny())
    outputs = {}
    for policy in remat.POLICIES:
        step = jax.jit(functools.partial(steps.train_step, rematerialize=policy))
        outputs[policy] = step(state, batch)
    (plain_state, plain_metrics), (remat_state, remat_metrics) = outputs.values()
    chex.assert_trees_all_close(remat_state.params, plain_state.params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(remat_state.batch_stats, plain_state.batch_stats, rtol=1e-5)
    chex.assert_trees_all_close(remat_metrics, plain_metrics, rtol=1e-5)
    # The step moved the parameters: equal outputs are not equal inputs passed through.
    moved = jax.tree.leaves(
        jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), remat_state.params, state.params)
    )
    assert max(float(m) for m in moved) > 1e-4


def test_unknown_policy_is_one_line_naming_the_field():
    c = stl10.get_config()
    c.rematerialize = "everything"
    with pytest.raises(
        config_lib.ConfigError, match=r"config.rematerialize: 'everything'.*conv_outputs"
    ):
        config_lib.validate(c, device_count=1)
    with pytest.raises(ValueError, match="conv_outputs"):
        remat.rematerialized(lambda x: x, "everything")


def test_semi_supervised_runs_refuse_rematerialization_in_one_line():
    c = stl10.get_config()
    c.rematerialize = "conv_outputs"
    c.ssl.method = "fixmatch"
    with pytest.raises(config_lib.ConfigError, match=r"config.rematerialize: .*ssl.method"):
        config_lib.validate(c, device_count=1)
