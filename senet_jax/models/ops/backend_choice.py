"""Picking an implementation by backend: one rule for every swappable piece of the model.

The fastest exact formulation of an op differs between XLA:CPU and GPU/TPU, so
modules take an implementation name where "auto" means "what was measured fastest
on the backend JAX runs on" (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import jax


def resolve(
    kind: str, name: str, choices: Iterable[str], auto_by_backend: Mapping[str, str], fallback: str
) -> str:
    """`name`, or for "auto" `auto_by_backend`'s entry for the default backend (else `fallback`)."""
    if name == "auto":
        return auto_by_backend.get(jax.default_backend(), fallback)
    if name not in choices:
        raise ValueError(
            f"{kind} implementation {name!r} is unknown: use 'auto' or one of {sorted(choices)}"
        )
    return name
