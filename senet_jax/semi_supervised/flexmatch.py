"""FlexMatch's per-class thresholds (Zhang et al. 2021, "FlexMatch: Boosting Semi-Supervised
Learning with Curriculum Pseudo Labeling"), as pure functions of a prediction record.

The record holds, per unlabelled image (by its global index), the last pseudo-label whose
confidence reached the fixed threshold tau, or -1 while it has none. A class's learning status
sigma(c) is how many images it holds; normalised with the warm-up denominator
max(max_c sigma(c), number of unused images), mapped through the convex M(x) = x / (2 - x),
it scales tau: T(c) = M(beta(c)) * tau. Early on every class is below tau, which lets more
pseudo-labels through while the model is still learning the class.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

UNUSED = -1


def empty_record(num_unlabelled: int) -> jnp.ndarray:
    """No image has a confident prediction yet."""
    return jnp.full((num_unlabelled,), UNUSED, jnp.int32)


def class_thresholds(record: jnp.ndarray, num_classes: int, tau: float) -> jnp.ndarray:
    """[C] thresholds T(c) = M(beta(c)) * tau from the record (see the module docstring)."""
    record = jnp.asarray(record)
    used = jnp.where(record >= 0, record, num_classes)  # unused images land past the end
    status = jnp.bincount(used, length=num_classes + 1)[:num_classes].astype(jnp.float32)
    unused = jnp.sum(record == UNUSED).astype(jnp.float32)
    beta = status / jnp.maximum(jnp.maximum(jnp.max(status), unused), 1.0)
    return beta / (2.0 - beta) * tau


def record_predictions(
    record: jnp.ndarray,
    indices: jnp.ndarray,
    labels: jnp.ndarray,
    confidence: jnp.ndarray,
    tau: float,
    *,
    axis_name: str | None = None,
) -> jnp.ndarray:
    """The record after a batch: images whose confidence reaches tau take their new label,
    the others keep theirs. With `axis_name` the whole global batch is recorded on every
    device, so the replicated record stays identical everywhere. Indices are global
    unlabelled-image indices, distinct within a global batch."""
    if axis_name is not None:
        indices, labels, confidence = (
            jax.lax.all_gather(x, axis_name).reshape(-1) for x in (indices, labels, confidence)
        )
    record = jnp.asarray(record)
    kept = record[indices]
    return record.at[indices].set(jnp.where(confidence >= tau, labels, kept))
