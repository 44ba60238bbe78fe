"""The strong view of FixMatch-style training: crop and flip as the weak view, then RandAugment
(two ops drawn from fourteen, each at a random magnitude, as FixMatch's RA variant), then cutout.

Like `augment`, it works on whole batches driven by per-example uniforms from
`augment.example_uniforms`, so the strong view is a pure function of (seed, epoch, example):
columns 0-8 as the weak view's (crop, flip, cutout), 9-12 the two ops and their magnitudes.
Every op is written with TF's image and array ops on 0..255 values rounded after each op, as
the PIL ops FixMatch used work on uint8 (tests compare them with PIL's); each image is
computed by its own op only, in XLA-compiled calls per group of ops, and the images travel
between the calls as uint8 (a quarter of float's bytes, no conversion kernels). The geometric
ops give ImageProjectiveTransformV3's pixels (nearest pixel, mid-grey fill) as one batched
gather of uint8 pixels.

Magnitude ranges (FixMatch, Sohn et al. 2020, Table 12, and its reference code): enhance
factors (brightness, colour, contrast, sharpness) 0.1-1.9; posterize 4-8 bits; solarize
threshold 0-256; rotate +-30 degrees; shear +-0.3; translate +-0.3 of the side.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from senet_jax.data import augment

OPS = (
    "identity",
    "autocontrast",
    "equalize",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "rotate",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
UNIFORMS = 13  # columns of example_uniforms a strong view uses
_OP_COLUMNS = ((9, 10), (11, 12))  # (op, magnitude) of the first and second op
_FILL = 128.0
_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL's "L" conversion
_GEOMETRIC = OPS[9:]
# ops computed together (in one call, each image by its own op); the costly ones alone
_GROUPS = (
    _GEOMETRIC,
    ("brightness", "color", "contrast", "posterize", "solarize"),
    ("sharpness",),
    ("autocontrast",),
    ("equalize",),
)
# A group's image count is padded to a multiple of 4 up to 32, of 8 up to 64, then of 16:
# at most 3 images or a quarter of the count are padding, from few compiled shapes (17 for a
# batch of 128; a multiple of 16 throughout padded a group of ~9 equalize images to 16).
_BUCKETS = ((32, 4), (64, 8))
_LARGE_BUCKET = 16


def strong_augmenter(tf, data, mean, std):
    """(uint8 images [B, S+2p, S+2p, 3], uniforms [B, UNIFORMS]) -> float32 [B, S, S, 3],
    normalised. Takes the same (padded) cache as `augment.augmenter`.

    Crop and flip, and normalisation and cutout, are XLA-compiled like the weak view; the two
    ops run as `apply_op` describes."""
    size, crop, flip = int(data.image_size), data.crop, bool(data.flip)
    cut, pad = augment.pixels(data.cutout_size, size), augment.crop_pad_pixels(data)
    mean, scale = augment.normalisation(mean, std)
    compiled = lambda f: tf.function(f, jit_compile=True, autograph=False)

    @compiled
    def crop_flip(images, uniforms):  # -> uint8: the values are whole numbers in 0..255
        if crop == "random_resized_crop":
            x = tf.round(augment._random_resized_crop(tf, images, uniforms, size, flip))
        else:
            x = augment._pad_crop_flip(tf, images, uniforms, size, pad, flip)
        return tf.cast(tf.clip_by_value(x, 0.0, 255.0), tf.uint8)

    @compiled
    def finish(x, uniforms):
        x = (tf.cast(x, tf.float32) - mean) * scale
        return augment._cutout(tf, x, uniforms, size, cut) if cut > 0 else x

    def strong(images, uniforms):
        x = crop_flip(images, uniforms)
        for op_column, magnitude_column in _OP_COLUMNS:
            op = tf.cast(uniforms[:, op_column] * len(OPS), tf.int32)
            x = apply_op_uint8(tf, x, tf.minimum(op, len(OPS) - 1), uniforms[:, magnitude_column])
        return finish(x, uniforms)

    return strong


def apply_op(tf, x, op, magnitude):
    """Op `op` [B] (an index into OPS) at `magnitude` [B] in [0, 1] on float 0..255 x [B, S, S, 3];
    each image gets its own op, rounded and clipped to 0..255 as PIL's uint8 results (floats of
    `apply_op_uint8`'s values)."""
    x = tf.cast(tf.convert_to_tensor(x, tf.float32), tf.uint8)
    return tf.cast(apply_op_uint8(tf, x, op, magnitude), tf.float32)


def apply_op_uint8(tf, x, op, magnitude):
    """`apply_op` on uint8 images [B, S, S, 3], giving uint8.

    Each group of ops in `_GROUPS` runs as one XLA-compiled call on only the images that drew
    one of its ops (their count padded as `_BUCKETS` says, so that few shapes are compiled):
    compiled for the whole batch, every image would pay for every op."""
    x = tf.convert_to_tensor(x, tf.uint8)
    op = tf.convert_to_tensor(op, tf.int32)
    magnitude = tf.convert_to_tensor(magnitude, tf.float32)
    group = tf.zeros_like(op)  # 0: identity
    for k, names in enumerate(_GROUPS, start=1):
        group += k * tf.cast(tf.reduce_any([op == OPS.index(n) for n in names], axis=0), tf.int32)
    n = len(_GROUPS) + 1
    positions = tf.dynamic_partition(tf.range(tf.shape(x)[0]), group, n)
    results = [tf.gather(x, positions[0])]
    for k, names in enumerate(_GROUPS, start=1):
        count = tf.shape(positions[k])[0]
        rows = _pad_to_bucket(tf, positions[k])  # one gather copies the images, padding and all
        args = [tf.gather(v, rows) for v in (x, op, magnitude)]
        results.append(_compiled_group(tf, names)(*args)[:count])
    return tf.ensure_shape(tf.dynamic_stitch(positions, results), x.shape)


def _pad_to_bucket(tf, rows):
    """Image indices `rows` padded with index 0 to the bucket size (`_BUCKETS`) of their count:
    the padding's results are computed and dropped."""
    count = tf.shape(rows)[0]
    multiple = tf.constant(_LARGE_BUCKET)
    for limit, step in reversed(_BUCKETS):
        multiple = tf.where(count <= limit, step, multiple)
    return tf.pad(rows, [[0, -count % multiple]])


@functools.cache
def _compiled_group(tf, names):
    """The ops `names` on the images given, each by its own op, compiled once per TF module."""

    def group(x, op, m):
        if names[0] in _GEOMETRIC:  # pixels move, values stay: no arithmetic on them
            return _warp(tf, x, op, m)
        if names == ("equalize",):
            return _equalize(tf, x)
        x = y = tf.cast(x, tf.float32)
        for name in names:
            drew = tf.reshape(tf.equal(op, OPS.index(name)), [-1, 1, 1, 1])
            y = tf.where(drew, _colour_ops(tf)[name](x, m), y)
        return tf.cast(tf.clip_by_value(tf.round(y), 0.0, 255.0), tf.uint8)

    return tf.function(group, jit_compile=True, autograph=False)


def _colour_ops(tf):
    """name -> f(x [n, S, S, 3], magnitude [n]) for the ops that change values, not positions."""
    per_image = lambda m: tf.reshape(m, [-1, 1, 1, 1])
    factor = lambda m: 0.1 + 1.9 * per_image(m)
    blend = lambda base, x, m: base + factor(m) * (x - base)  # ImageEnhance: factor 1 is x
    gray = lambda x: tf.round(tf.reduce_sum(x * tf.constant(_GRAY), axis=-1, keepdims=True))
    mean_gray = lambda x: tf.round(tf.reduce_mean(gray(x), axis=[1, 2, 3], keepdims=True))
    step = lambda m: tf.pow(2.0, 8.0 - tf.floor(4.0 + 4.999 * per_image(m)))  # 4-8 bits
    return {
        "autocontrast": lambda x, m: _autocontrast(tf, x),
        "brightness": lambda x, m: x * factor(m),
        "color": lambda x, m: blend(gray(x), x, m),
        "contrast": lambda x, m: blend(mean_gray(x), x, m),
        "sharpness": lambda x, m: blend(_smooth(tf, x), x, m),
        "posterize": lambda x, m: tf.floor(x / step(m)) * step(m),
        "solarize": lambda x, m: tf.where(x < 256.0 * per_image(m), x, 255.0 - x),
    }


def _autocontrast(tf, x):
    """Each channel stretched to 0..255; a flat channel is left as it is."""
    lo = tf.reduce_min(x, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(x, axis=[1, 2], keepdims=True)
    return tf.where(hi > lo, (x - lo) * (255.0 / tf.maximum(hi - lo, 1.0)), x)


def _smooth(tf, x):
    """PIL's SMOOTH filter (3x3, centre 5, others 1, over 13); the border keeps its pixels.
    Nine shifted slices summed in one fused pass, as int32 (x holds whole numbers): the same
    sums as in float, and XLA:CPU ran the sharpness op about 1.7x faster so."""
    size, whole = x.shape[1], tf.cast(x, tf.int32)
    inner = 4 * whole[:, 1:-1, 1:-1, :]
    for dy in range(3):
        for dx in range(3):
            inner += whole[:, dy : dy + size - 2, dx : dx + size - 2, :]
    inner = tf.cast(inner, tf.float32)
    padded = tf.pad(tf.round(inner / 13.0), [[0, 0], [1, 1], [1, 1], [0, 0]])
    where_inner = tf.pad(tf.ones([size - 2, size - 2], tf.bool), [[1, 1], [1, 1]])
    return tf.where(where_inner[None, :, :, None], padded, x)


@functools.cache
def _strictly_below():
    """[256, 256] float32, 1 where row < column: hist @ it is the exclusive cumulative sum.
    A matmul rather than tf.cumsum (a 256-wide window sum under XLA:CPU): equalize as a whole
    ran about 3x faster so; exact while a channel has fewer than 2**24 pixels."""
    return np.triu(np.ones((256, 256), np.float32), k=1)


def _equalize(tf, x):
    """PIL's ImageOps.equalize per image and channel of uint8 x [n, S, S, 3]: a lookup table
    from the histogram. Every (image, channel) has its own 256 bins of one flat histogram
    (bin = value + 256 * (3 * image + channel)), so the count and the lookup work on the
    images where they lie, without transposes; XLA's scatter-add counts them."""
    size, values = x.shape[1], tf.cast(x, tf.int32)
    rows = tf.shape(x)[0] * 3
    bins = values + 256 * tf.reshape(tf.range(rows), [-1, 1, 1, 3])
    hist = tf.math.unsorted_segment_sum(tf.ones_like(bins), bins, 256 * rows)
    hist = tf.reshape(hist, [rows, 256])
    top = tf.reshape(tf.reduce_max(values, axis=[1, 2]), [rows])
    last = tf.gather(hist, top, axis=1, batch_dims=1)
    step = ((size * size - last) // 255)[:, None]  # the top value's count is left out
    before = tf.cast(tf.matmul(tf.cast(hist, tf.float32), _strictly_below()), tf.int32)
    lut = tf.minimum((before + step // 2) // tf.maximum(step, 1), 255)
    lut = tf.where(step > 0, lut, tf.range(256)[None, :])  # nearly flat: left as it is
    return tf.cast(tf.gather(tf.reshape(lut, [-1]), bins), tf.uint8)


def _affine(tf, op, m, size: int):
    """Each image's map from output to input pixel about the image centre, per image:
    (a00, a01, a10, a11, shift_x, shift_y), the identity for non-geometric ops; the
    magnitude's sign is its direction."""
    s = 2.0 * m - 1.0
    is_op = lambda name: tf.equal(op, OPS.index(name))
    pick = lambda name, value, default: tf.where(is_op(name), value, default)
    angle = pick("rotate", s * math.radians(30.0), 0.0)
    shear, shift = 0.3 * s, 0.3 * size * s
    cos, sin = tf.cos(angle), tf.sin(angle)
    return (
        cos,
        pick("shear_x", shear, -sin),
        pick("shear_y", shear, sin),
        cos,
        pick("translate_x", shift, 0.0),
        pick("translate_y", shift, 0.0),
    )


def _warp(tf, x, op, m):
    """The geometric ops as ImageProjectiveTransformV3 computes them (nearest pixel, rounded
    half away from zero; mid-grey outside the image), written as one gather per image so that
    XLA compiles it: TF's kernel costs as much for the images it leaves unmoved. Any dtype: the
    values are only moved (uint8 moves a quarter of float's bytes)."""
    size = x.shape[1]
    a00, a01, a10, a11, tx, ty = (tf.reshape(v, [-1, 1, 1]) for v in _affine(tf, op, m, size))
    centre = (size - 1) / 2.0
    offset_x = centre - a00 * centre - a01 * centre + tx
    offset_y = centre - a10 * centre - a11 * centre + ty
    grid = tf.range(size, dtype=tf.float32)
    cols, rows = grid[None, None, :], grid[None, :, None]
    nearest = lambda v: tf.cast(tf.sign(v) * tf.floor(tf.abs(v) + 0.5), tf.int32)
    src_x = nearest(a00 * cols + a01 * rows + offset_x)
    src_y = nearest(a10 * cols + a11 * rows + offset_y)
    inside = (src_x >= 0) & (src_x < size) & (src_y >= 0) & (src_y < size)
    flat = tf.clip_by_value(src_y, 0, size - 1) * size + tf.clip_by_value(src_x, 0, size - 1)
    pixels = tf.reshape(x, [-1, size * size, 3])
    moved = tf.gather(pixels, tf.reshape(flat, [-1, size * size]), axis=1, batch_dims=1)
    fill = tf.cast(_FILL, x.dtype)
    return tf.where(inside[..., None], tf.reshape(moved, tf.shape(x)), fill)
