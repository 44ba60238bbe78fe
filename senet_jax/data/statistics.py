"""Exact per-channel mean and std of a split, streamed, and cached next to the prepared data.

Why exact: normalisation constants computed in float32 over millions of pixels drift with the
batch order and size; a per-channel histogram of the uint8 values (256 integer bins) is exact,
order-independent and cheap (one bincount per channel), and the final mean and variance come
from integer sums with a single rounding. Images may differ in size (user folders), so
``channel_statistics`` accepts single images [H, W, 3] as well as batches [B, H, W, 3].
Why cached: a pass over a split costs as much as an epoch of decoding; the JSON written next to
the prepared dataset makes every later run read three numbers instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable

import numpy as np

log = logging.getLogger("senet_jax")

Triple = tuple[float, float, float]


def _empty_split_error() -> ValueError:
    return ValueError(
        "config.data.mean/std: cannot compute statistics of an empty split (no images, or images "
        "with no pixels); set them by hand"
    )


class ChannelMoments:
    """Exact running per-channel histogram of uint8 RGB pixels."""

    def __init__(self):
        self.histogram = np.zeros((3, 256), np.int64)
        self.examples = 0

    def update(self, images: np.ndarray) -> None:
        """Adds one image [H, W, 3] or a batch [B, H, W, 3] of uint8 pixels."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(
                f"channel statistics need uint8 images (0..255), got dtype {images.dtype}"
            )
        if images.ndim not in (3, 4) or images.shape[-1] != 3:
            raise ValueError(
                "channel statistics need RGB images [H, W, 3] or batches [B, H, W, 3], "
                f"got shape {images.shape}"
            )
        for c in range(3):
            self.histogram[c] += np.bincount(images[..., c].ravel(), minlength=256)
        self.examples += 1 if images.ndim == 3 else images.shape[0]

    def mean_std(self) -> tuple[Triple, Triple]:
        """(mean, std) per channel in [0, 1] units; population std (ddof=0), as numpy's."""
        values = np.arange(256, dtype=np.int64)
        means, stds = [], []
        for c in range(3):
            n = int(self.histogram[c].sum())
            if n == 0:
                raise _empty_split_error()
            s1 = int(self.histogram[c] @ values)  # exact: < 2**63 for < 3.6e16 pixels
            s2 = int(self.histogram[c] @ (values * values))
            # Python int / int is correctly rounded, so each value is rounded once.
            means.append(s1 / (255 * n))
            stds.append(math.sqrt((n * s2 - s1 * s1) / (255 * 255 * n * n)))
        return tuple(means), tuple(stds)


def channel_statistics(
    batches: Iterable[np.ndarray], *, return_examples: bool = False
) -> tuple[Triple, Triple] | tuple[Triple, Triple, int]:
    """Exact per-channel (mean, std) in [0, 1] of uint8 images or batches; one pass.

    With return_examples, (mean, std, number of images) — what cached_statistics stores.
    An empty iterable raises ValueError (config.data.mean/std must then be set by hand).
    """
    moments = ChannelMoments()
    for images in batches:
        moments.update(images)
    if moments.examples == 0:
        raise _empty_split_error()
    mean, std = moments.mean_std()
    return (mean, std, moments.examples) if return_examples else (mean, std)


def _read_cache(path: str, examples: int | None) -> tuple[Triple, Triple] | None:
    try:
        with open(path) as f:
            data = json.load(f)
        mean = tuple(float(v) for v in data["mean"])
        std = tuple(float(v) for v in data["std"])
        cached_examples = int(data["examples"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as e:
        log.warning("ignoring unreadable channel statistics %s (%s); recomputing", path, e)
        return None
    if len(mean) != 3 or len(std) != 3:
        log.warning("ignoring channel statistics %s: not 3 values each; recomputing", path)
        return None
    if examples is not None and cached_examples != examples:
        log.warning(
            "channel statistics %s cover %d examples, the split has %d; recomputing",
            path,
            cached_examples,
            examples,
        )
        return None
    return mean, std


def _write_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # readers see the old file or the whole new one, never a part
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise


def cached_statistics(
    path_json: str,
    compute_fn: Callable[[], tuple[Triple, Triple, int]],
    *,
    examples: int | None = None,
) -> tuple[Triple, Triple]:
    """(mean, std) from path_json, or from compute_fn() (then stored there atomically).

    compute_fn returns (mean, std, examples), e.g.
    ``lambda: channel_statistics(images_of_split(), return_examples=True)``. examples, when
    given, is the split's current size: a cache computed over a different count is stale and
    recomputed. An unreadable cache is recomputed too (with a warning), never trusted.
    """
    cached = _read_cache(path_json, examples)
    if cached is not None:
        return cached
    mean, std, count = compute_fn()
    mean = tuple(float(v) for v in mean)
    std = tuple(float(v) for v in std)
    record = {"mean": list(mean), "std": list(std), "examples": int(count)}
    _write_atomically(path_json, json.dumps(record, indent=2) + "\n")
    log.info(
        "channel statistics over %d examples: mean %s, std %s (saved to %s)",
        count,
        [round(v, 4) for v in mean],
        [round(v, 4) for v in std],
        path_json,
    )
    return mean, std
