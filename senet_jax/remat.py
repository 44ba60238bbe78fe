"""Rematerialisation: which forward values the backward pass keeps, and which it recomputes.

Without it, the training step keeps every convolution's output (BatchNorm's input) and every
BatchNorm + activation output (the next convolution's input) until the backward pass: for the
default STL10 run (SE-MobileNetV1, stride-1 stem, 96x96, batch 128, float32) that is most of
XLA's 4.8 GB of temporaries. "conv_outputs" keeps only the convolution outputs and the batch
statistics; BatchNorm, activations, SE gates and dropout are recomputed from them during the
backward pass, which costs elementwise passes but no convolution (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax.ad_checkpoint import checkpoint_name

# Names the model's ops give to the values a policy may keep (models/ops/conv.py, depthwise.py,
# norm.py). Outside jax.checkpoint they are identities.
CONV_OUTPUT = "conv_output"
BATCH_STATISTICS = "batch_statistics"

POLICIES: dict[str, Callable | None] = {
    "none": None,  # no jax.checkpoint: the backward keeps whatever autodiff saves
    "conv_outputs": jax.checkpoint_policies.save_only_these_names(CONV_OUTPUT, BATCH_STATISTICS),
}


def conv_output(y):
    """Marks a convolution's output as a value the "conv_outputs" policy keeps."""
    return checkpoint_name(y, CONV_OUTPUT)


def batch_statistics(stats):
    """Marks BatchNorm's batch mean and variance (small) as kept: recomputing them re-reads x."""
    return checkpoint_name(stats, BATCH_STATISTICS)


def rematerialized(fn: Callable, policy: str) -> Callable:
    """`fn` under jax.checkpoint with the named policy; `fn` itself for "none"."""
    if policy not in POLICIES:
        raise ValueError(f"rematerialize {policy!r}: use one of {sorted(POLICIES)}")
    if POLICIES[policy] is None:
        return fn
    return jax.checkpoint(fn, policy=POLICIES[policy])
