"""RandAugment's strong view: a pure function of (seed, step); its ops against PIL's."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from configs import stl10
from senet_jax.data import augment, randaugment

SIZE, PAD = 32, 4
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def strong_batch(seed, step, images):
    data = stl10.get_config().data
    data.image_size, data.crop_padding, data.cutout_size = SIZE, PAD / SIZE, 0.25
    strong = randaugment.strong_augmenter(tf, data, MEAN, STD)
    ids = tf.range(len(images), dtype=tf.int64)
    key = augment.key(seed, 5)
    uniforms = augment.example_uniforms(tf, key, tf.constant(step, tf.int64), ids, 13)
    padded = np.pad(images, [(0, 0), (PAD, PAD), (PAD, PAD), (0, 0)])
    return strong(tf.constant(padded), uniforms).numpy()


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    smooth = rng.integers(40, 200, (24, 4, 4, 3)).repeat(SIZE // 4, 1).repeat(SIZE // 4, 2)
    return np.clip(smooth + rng.integers(-30, 30, smooth.shape), 0, 255).astype(np.uint8)


def test_same_seed_and_step_give_the_same_pixels_and_another_step_does_not(images):
    first = strong_batch(0, 3, images)
    assert first.shape == (24, SIZE, SIZE, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, strong_batch(0, 3, images))
    assert not np.array_equal(first, strong_batch(0, 4, images))
    assert not np.array_equal(first, strong_batch(1, 3, images))
    # cutout zeroes a square (at least its corner quarter) in every image (0: the mean colour)
    assert all((image == 0).all(-1).sum() >= (SIZE // 8) ** 2 for image in first)


def apply(name, images, magnitude):
    op = np.full(len(images), randaugment.OPS.index(name), np.int32)
    m = np.full(len(images), magnitude, np.float32)
    out = randaugment.apply_op(tf, tf.constant(images, tf.float32), op, m).numpy()
    return out.astype(np.int32)


@pytest.mark.parametrize(
    "name,magnitude,reference,tolerance",
    [
        ("equalize", 0.5, ImageOps.equalize, 0),
        ("posterize", 0.0, lambda im: ImageOps.posterize(im, 4), 0),
        ("solarize", 0.5, lambda im: ImageOps.solarize(im, 128), 0),
        ("autocontrast", 0.5, ImageOps.autocontrast, 1),
        ("identity", 0.7, lambda im: im, 0),
    ],
)
def test_ops_match_pil(images, name, magnitude, reference, tolerance):
    ours = apply(name, images[:6], magnitude)
    for image, mine in zip(images[:6], ours):
        theirs = np.asarray(reference(Image.fromarray(image)), np.int32)
        assert np.abs(mine - theirs).max() <= tolerance, name


def test_geometric_ops_move_pixels_and_fill_with_grey(images):
    shifted = apply("translate_x", images[:2], 1.0)  # +0.3 of the side: content moves left
    shift = round(0.3 * SIZE)
    np.testing.assert_array_equal(shifted[:, :, : SIZE - shift], images[:2, :, shift:])
    assert (shifted[:, :, SIZE - shift + 1 :] == 128).all()
    rotated = apply("rotate", images[:2], 1.0)  # 30 degrees: corners leave the image
    assert (rotated[:, 0, 0] == 128).all() and not np.array_equal(rotated, images[:2])
    np.testing.assert_array_equal(apply("rotate", images[:2], 0.5), images[:2])  # 0 degrees


def test_each_image_gets_its_own_op(images):
    ops = np.array([randaugment.OPS.index(n) for n in ("identity", "solarize") * 3], np.int32)
    out = randaugment.apply_op(
        tf, tf.constant(images[:6], tf.float32), ops, np.zeros(6, np.float32)
    ).numpy()
    np.testing.assert_array_equal(out[0::2], images[0:6:2])
    np.testing.assert_array_equal(out[1::2], 255 - images[1:6:2].astype(np.float32))


def test_geometric_ops_match_tensorflows_projective_transform_per_image(images):
    """The batched gather gives the pixels of TF's own kernel, image by image."""
    rng = np.random.default_rng(3)
    names = randaugment.OPS[9:] * 2
    ops = np.array([randaugment.OPS.index(n) for n in names], np.int32)
    magnitudes = rng.random(len(names)).astype(np.float32)
    ours = randaugment.apply_op(tf, images[: len(names)].astype(np.float32), ops, magnitudes)
    centre = (SIZE - 1) / 2
    for image, name, m, mine in zip(images, names, magnitudes, ours.numpy()):
        s = 2.0 * m - 1.0
        a = {
            "rotate": (np.cos(s * np.pi / 6), -np.sin(s * np.pi / 6), 0.0),
            "shear_x": (1.0, 0.3 * s, 0.0),
            "shear_y": (1.0, 0.0, 0.3 * s),
            "translate_x": (1.0, 0.0, 0.0),
            "translate_y": (1.0, 0.0, 0.0),
        }[name]
        a00, a01, a10 = a
        a11 = a00 if name == "rotate" else 1.0
        a10 = -a01 if name == "rotate" else a10
        tx = 0.3 * SIZE * s if name == "translate_x" else 0.0
        ty = 0.3 * SIZE * s if name == "translate_y" else 0.0
        transform = [
            [a00, a01, centre - a00 * centre - a01 * centre + tx]
            + [a10, a11, centre - a10 * centre - a11 * centre + ty, 0.0, 0.0]
        ]
        theirs = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.constant(image[None], tf.float32),
            transforms=tf.constant(transform, tf.float32),
            output_shape=[SIZE, SIZE],
            fill_value=128.0,
            interpolation="NEAREST",
            fill_mode="CONSTANT",
        )
        mismatched = (mine != theirs.numpy()[0]).any(-1).mean()
        assert mismatched <= 0.002, (name, mismatched)  # float rounding at half-pixel ties


def test_group_padding_is_a_small_share_from_few_shapes():
    sizes = {n: int(tf.shape(randaugment._pad_to_bucket(tf, tf.range(n)))[0]) for n in range(129)}
    assert sizes[0] == 0 and sizes[1] == 4 and sizes[9] == 12 and sizes[46] == 48
    assert all(0 <= size - n <= max(3, n // 4) for n, size in sizes.items())  # a quarter
    assert len(set(sizes.values())) == 17  # compiled shapes per group for 128 images, 0 too
    padded = randaugment._pad_to_bucket(tf, tf.range(5, 10)).numpy()
    assert padded.tolist() == [5, 6, 7, 8, 9, 0, 0, 0]  # padding rows repeat image 0
