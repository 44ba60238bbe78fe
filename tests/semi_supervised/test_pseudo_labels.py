"""The masked unlabelled loss against a case worked by hand."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from senet_jax.semi_supervised.pseudo_labels import masked_unlabelled_loss, pseudo_label

# Weak views as log-probabilities: softmax gives back these probabilities exactly.
WEAK = np.log(np.array([[0.97, 0.03], [0.10, 0.90], [0.02, 0.98]], np.float32))
STRONG = np.array([[0.0, 0.0], [math.log(4.0), 0.0], [0.0, math.log(3.0)]], np.float32)


def loss_for(threshold):
    pseudo = pseudo_label(WEAK, threshold)
    return pseudo, float(masked_unlabelled_loss(STRONG, pseudo))


def test_fixed_threshold_masks_the_unconfident_image_and_averages_over_all():
    pseudo, loss = loss_for(0.95)
    np.testing.assert_array_equal(pseudo.label, [0, 1, 1])
    np.testing.assert_array_equal(pseudo.mask, [1.0, 0.0, 1.0])
    np.testing.assert_allclose(pseudo.confidence, [0.97, 0.90, 0.98], rtol=1e-6)
    # image 0: -log(1/2); image 2: strong softmax (1/4, 3/4) -> -log(3/4); over all 3 images
    assert loss == pytest.approx((math.log(2.0) - math.log(0.75)) / 3, rel=1e-6)


def test_per_class_thresholds_are_looked_up_by_pseudo_label():
    pseudo, loss = loss_for(np.array([0.99, 0.85], np.float32))
    np.testing.assert_array_equal(pseudo.mask, [0.0, 1.0, 1.0])
    # image 1: strong softmax (4/5, 1/5) against label 1 -> -log(1/5)
    assert loss == pytest.approx((-math.log(0.2) - math.log(0.75)) / 3, rel=1e-6)


def test_the_pseudo_label_carries_no_gradient_to_the_weak_view():
    def loss(weak, strong):
        return masked_unlabelled_loss(strong, pseudo_label(weak, 0.5))

    d_weak, d_strong = jax.grad(loss, argnums=(0, 1))(jnp.asarray(WEAK), jnp.asarray(STRONG))
    assert not np.any(np.asarray(d_weak))
    assert np.any(np.asarray(d_strong))


def test_nothing_confident_gives_zero_loss():
    _, loss = loss_for(1.0)
    assert loss == 0.0
