"""Per-block parameter and multiply-add counts, computed from shapes only.

Multiply-adds count one per weight use: convolutions (depthwise included) and Dense
layers, plus the SE block's (or another attention kind's) channel-wise scale (one multiply
per activation). BatchNorm (foldable into the convolutions at inference), ReLU, gates and
poolings are not counted, following the MobileNet and SENet papers' convention.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from senet_jax.models.se import KINDS


@dataclasses.dataclass
class Row:
    name: str
    output_shape: tuple[int, ...]
    params: int
    mult_adds: int


def summarize(model, image_size: int, in_channels: int = 3) -> list[Row]:
    """One row per top-level layer (stem, blocks, classifier) for a single image."""
    images = jax.ShapeDtypeStruct((1, image_size, image_size, in_channels), jnp.float32)

    def run(x):
        variables = model.init(jax.random.key(0), x, train=False)
        _, state = model.apply(
            variables, x, train=False, capture_intermediates=True, mutable=["intermediates"]
        )
        return variables["params"], state["intermediates"]

    params, intermediates = jax.eval_shape(run, images)
    outputs = {
        path[:-1]: value[0].shape
        for path, value in traverse_util.flatten_dict(intermediates).items()
        if path[-1] == "__call__"
    }
    rows = {}
    for path, kernel in traverse_util.flatten_dict(params).items():
        top = path[0]
        row = rows.setdefault(top, Row(top, tuple(outputs[(top,)][1:]), 0, 0))
        row.params += int(np.prod(kernel.shape))
        module = path[:-1]
        if path[-1] != "kernel":
            continue
        out_shape = outputs[module]
        if kernel.ndim == 4:  # conv: every output element uses kh * kw * (in / groups) weights
            row.mult_adds += int(np.prod(out_shape[1:])) * int(np.prod(kernel.shape[:3]))
        elif kernel.ndim == 2:  # dense
            row.mult_adds += int(np.prod(kernel.shape))
    for module, out_shape in outputs.items():
        if module and module[-1] in KINDS:  # the attention's channel-wise scale
            rows[module[0]].mult_adds += int(np.prod(out_shape[1:]))
    # Intermediates come back sorted by name; put the stem first to read in data-flow order.
    return sorted(rows.values(), key=lambda r: (not r.name.startswith("stem"), r.name))


def format_table(rows: list[Row]) -> str:
    lines = [f"{'layer':<12}{'output':>18}{'params':>14}{'mult-adds':>16}"]
    for r in rows:
        lines.append(
            f"{r.name:<12}{'x'.join(map(str, r.output_shape)):>18}{r.params:>14,}{r.mult_adds:>16,}"
        )
    total_p, total_m = sum(r.params for r in rows), sum(r.mult_adds for r in rows)
    lines.append(f"{'total':<12}{'':>18}{total_p:>14,}{total_m:>16,}")
    lines.append(f"{total_p / 1e6:.2f}M parameters, {total_m / 1e6:.1f}M multiply-adds")
    return "\n".join(lines)
