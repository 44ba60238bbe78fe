"""The unlabelled loss of FixMatch and FlexMatch: the strong view learns the weak view's label.

The weak view's prediction becomes a hard pseudo-label where its confidence reaches the
threshold; the strong view's cross-entropy against it is averaged over every unlabelled image
(masked ones count as zero), so the loss weight does not change with the mask rate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct


class PseudoLabels(struct.PyTreeNode):
    """Per unlabelled image: the weak view's label, its confidence, and whether it is used."""

    label: jnp.ndarray  # int32 [N]
    confidence: jnp.ndarray  # float32 [N], the weak view's max softmax probability
    mask: jnp.ndarray  # float32 [N], 1 where confidence >= the threshold of its label


def pseudo_label(weak_logits: jnp.ndarray, threshold) -> PseudoLabels:
    """`threshold`: a scalar (FixMatch) or one per class [C] (FlexMatch), looked up by label.
    The weak logits carry no gradient: the pseudo-label is a target, not a prediction."""
    probs = jax.nn.softmax(jax.lax.stop_gradient(weak_logits).astype(jnp.float32), axis=-1)
    label = jnp.argmax(probs, axis=-1).astype(jnp.int32)
    confidence = jnp.max(probs, axis=-1)
    threshold = jnp.asarray(threshold, jnp.float32)
    bar = threshold[label] if threshold.ndim else threshold
    return PseudoLabels(label, confidence, (confidence >= bar).astype(jnp.float32))


def masked_unlabelled_loss(strong_logits: jnp.ndarray, pseudo: PseudoLabels) -> jnp.ndarray:
    """Mean over all unlabelled images of mask * CE(strong view, pseudo-label)."""
    losses = optax.softmax_cross_entropy_with_integer_labels(
        strong_logits.astype(jnp.float32), pseudo.label
    )
    return jnp.mean(losses * pseudo.mask)
