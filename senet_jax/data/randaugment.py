"""The strong view of FixMatch-style training: crop and flip as the weak view, then RandAugment
(two ops drawn from fourteen, each at a random magnitude, as FixMatch's RA variant), then cutout.

Like `augment`, it works on whole batches driven by per-example uniforms from
`augment.example_uniforms`, so the strong view is a pure function of (seed, epoch, example):
columns 0-8 as the weak view's (crop, flip, cutout), 9-12 the two ops and their magnitudes.
Every op is written with TF's image and array ops on 0..255 values rounded after each op, as
the PIL ops FixMatch used work on uint8 (tests compare them with PIL's); each image is
computed by its own op only. The geometric ops are ImageProjectiveTransformV3 (nearest
pixel, mid-grey fill).

Magnitude ranges (FixMatch, Sohn et al. 2020, Table 12, and its reference code): enhance
factors (brightness, colour, contrast, sharpness) 0.1-1.9; posterize 4-8 bits; solarize
threshold 0-256; rotate +-30 degrees; shear +-0.3; translate +-0.3 of the side.
"""

from __future__ import annotations

import math

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


def strong_augmenter(tf, data, mean, std):
    """(uint8 images [B, S+2p, S+2p, 3], uniforms [B, UNIFORMS]) -> float32 [B, S, S, 3],
    normalised. Takes the same (padded) cache as `augment.augmenter`.

    Crop and flip, and normalisation and cutout, are XLA-compiled like the weak view. The
    two ops run as TF kernels on only the images that drew each op (`tf.dynamic_partition`):
    compiled for static shapes, every image would pay for all fourteen ops, and XLA:CPU's
    scatter (the histogram) and gathers made that about 30 times slower than the weak view."""
    size, crop, flip = int(data.image_size), data.crop, bool(data.flip)
    cut, pad = augment.pixels(data.cutout_size, size), augment.crop_pad_pixels(data)
    mean, scale = augment.normalisation(mean, std)
    compiled = lambda f: tf.function(f, jit_compile=True, autograph=False)

    @compiled
    def crop_flip(images, uniforms):
        if crop == "random_resized_crop":
            return tf.round(augment._random_resized_crop(tf, images, uniforms, size, flip))
        return augment._pad_crop_flip(tf, images, uniforms, size, pad, flip)

    @compiled
    def finish(x, uniforms):
        x = (x - mean) * scale
        return augment._cutout(tf, x, uniforms, size, cut) if cut > 0 else x

    def strong(images, uniforms):
        x = crop_flip(images, uniforms)
        for op_column, magnitude_column in _OP_COLUMNS:
            op = tf.cast(uniforms[:, op_column] * len(OPS), tf.int32)
            x = apply_op(tf, x, tf.minimum(op, len(OPS) - 1), uniforms[:, magnitude_column])
        return finish(x, uniforms)

    return strong


def apply_op(tf, x, op, magnitude):
    """Op `op` [B] (an index into OPS) at `magnitude` [B] in [0, 1] on float 0..255 x [B, S, S, 3];
    each image is computed by its own op only."""
    n = len(OPS)
    positions = tf.dynamic_partition(tf.range(tf.shape(x)[0]), op, n)
    images = tf.dynamic_partition(tf.cast(x, tf.uint8), op, n)  # a quarter of float's bytes
    magnitudes = tf.dynamic_partition(magnitude, op, n)
    ops = {**_colour_ops(tf), **_geometric_ops(tf, int(x.shape[1]))}
    results = [
        tf.cast(
            tf.clip_by_value(tf.round(ops[name](tf.cast(images[k], tf.float32), m)), 0, 255),
            tf.uint8,
        )
        for k, (name, m) in enumerate(zip(OPS, magnitudes))
    ]
    return tf.ensure_shape(tf.cast(tf.dynamic_stitch(positions, results), tf.float32), x.shape)


def _colour_ops(tf):
    """name -> f(x [n, S, S, 3], magnitude [n]) for the ops that change values, not positions."""
    per_image = lambda m: tf.reshape(m, [-1, 1, 1, 1])
    factor = lambda m: 0.1 + 1.9 * per_image(m)
    blend = lambda base, x, m: base + factor(m) * (x - base)  # ImageEnhance: factor 1 is x
    gray = lambda x: tf.round(tf.reduce_sum(x * tf.constant(_GRAY), axis=-1, keepdims=True))
    mean_gray = lambda x: tf.round(tf.reduce_mean(gray(x), axis=[1, 2, 3], keepdims=True))
    step = lambda m: tf.pow(2.0, 8.0 - tf.floor(4.0 + 4.999 * per_image(m)))  # 4-8 bits
    return {
        "identity": lambda x, m: x,
        "autocontrast": lambda x, m: _autocontrast(tf, x),
        "equalize": lambda x, m: _equalize(tf, x),
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
    The 3x3 sum is an average pool: TF's depthwise convolution is several times slower."""
    box = 9.0 * tf.nn.avg_pool2d(x, 3, 1, "VALID")
    inner = tf.round((box + 4.0 * x[:, 1:-1, 1:-1, :]) / 13.0)
    size = x.shape[1]
    where_inner = tf.pad(tf.ones([size - 2, size - 2], tf.bool), [[1, 1], [1, 1]])
    padded = tf.pad(inner, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return tf.where(where_inner[None, :, :, None], padded, x)


def _equalize(tf, x):
    """PIL's ImageOps.equalize per image and channel: a lookup table from the histogram."""
    size = x.shape[1]
    channels = tf.reshape(tf.transpose(tf.cast(x, tf.int32), [0, 3, 1, 2]), [-1, size * size])
    hist = tf.math.bincount(channels, minlength=256, maxlength=256, axis=-1)  # [n*3, 256]
    last = tf.gather(hist, tf.reduce_max(channels, axis=1), axis=1, batch_dims=1)
    step = ((size * size - last) // 255)[:, None]  # the top value's count is left out
    before = tf.cumsum(hist, axis=1, exclusive=True)
    lut = tf.minimum((before + step // 2) // tf.maximum(step, 1), 255)
    lut = tf.where(step > 0, lut, tf.range(256)[None, :])  # nearly flat: left as it is
    equalized = tf.gather(lut, channels, axis=1, batch_dims=1)
    return tf.cast(
        tf.transpose(tf.reshape(equalized, [-1, 3, size, size]), [0, 2, 3, 1]), tf.float32
    )


def _affine(tf, name: str, m, size: int):
    """Op `name`'s map from output to input pixel about the image centre, per image:
    (a00, a01, a10, a11, shift_x, shift_y); the magnitude's sign is its direction."""
    s = 2.0 * m - 1.0
    zero, one = tf.zeros_like(m), tf.ones_like(m)
    if name == "rotate":
        cos, sin = tf.cos(s * math.radians(30.0)), tf.sin(s * math.radians(30.0))
        return cos, -sin, sin, cos, zero, zero
    shear, shift = 0.3 * s, 0.3 * size * s
    return {
        "shear_x": (one, shear, zero, one, zero, zero),
        "shear_y": (one, zero, shear, one, zero, zero),
        "translate_x": (one, zero, zero, one, shift, zero),
        "translate_y": (one, zero, zero, one, zero, shift),
    }[name]


def _geometric_ops(tf, size: int):
    """name -> f(x, magnitude) for the ops that move pixels: ImageProjectiveTransformV3 with
    each image's affine map, nearest pixel, mid-grey outside the image."""
    centre = (size - 1) / 2.0

    def warp(name):
        def apply(x, m):
            a00, a01, a10, a11, tx, ty = _affine(tf, name, m, size)
            offset_x = centre - a00 * centre - a01 * centre + tx
            offset_y = centre - a10 * centre - a11 * centre + ty
            zero = tf.zeros_like(m)
            transforms = tf.stack([a00, a01, offset_x, a10, a11, offset_y, zero, zero], axis=1)
            return tf.raw_ops.ImageProjectiveTransformV3(
                images=x,
                transforms=transforms,
                output_shape=[size, size],
                fill_value=_FILL,
                interpolation="NEAREST",
                fill_mode="CONSTANT",
            )

        return apply

    return {name: warp(name) for name in OPS[9:]}
