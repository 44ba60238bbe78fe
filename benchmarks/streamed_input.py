"""Streamed-path training images per second per CPU core: JPEG decode (only the crop window)
+ random-resized-crop to 224 + flip + normalisation, exactly as data/file_stream.py does it.

    python benchmarks/streamed_input.py                  # 256 generated 500x375 JPEGs
    python benchmarks/streamed_input.py --threads 2 --size 224

Generated images (smooth gradients with noise, quality 90, about ImageNet's average
resolution and file size) stand in for ImageNet. tf.data runs on a private pool of
`--threads` threads; the figure divided by threads is the per-core rate.
Last line: ``streamed_input images_per_second=N per_core=M``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from senet_jax.data import augment, file_stream  # noqa: E402
from senet_jax.data.tf_setup import load_tf  # noqa: E402


def _jpegs(tf, count: int, height: int, width: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for i in range(count):
        base = [np.sin(xx / (20 + 7 * c + i % 13)) + np.cos(yy / (15 + 5 * c)) for c in range(3)]
        image = 127 + 60 * np.stack(base, -1) + rng.normal(0, 12, (height, width, 3))
        out.append(tf.io.encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality=90))
    return [x.numpy() for x in out]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=4, help="passes over the images timed")
    args = parser.parse_args()
    tf = load_tf()
    encoded = _jpegs(tf, args.images, 375, 500)
    mean, scale = augment.normalisation((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

    def make(position, image_bytes):
        u = augment.example_uniforms(tf, 1234, tf.constant(0, tf.int64), [position])[0]
        image = file_stream.train_image(
            tf, image_bytes, u, size=args.size, crop="random_resized_crop", flip=True
        )
        return (image - mean) * scale

    ds = tf.data.Dataset.from_tensor_slices(encoded).repeat(args.epochs + 1).enumerate()
    ds = ds.map(make, num_parallel_calls=args.threads, deterministic=True).batch(64)
    options = tf.data.Options()
    options.threading.private_threadpool_size = args.threads
    ds = ds.with_options(options)
    batches = ds.as_numpy_iterator()
    for _ in range(-(-args.images // 64)):  # warm-up: the first pass (tracing, caches)
        next(batches)
    start, images = time.perf_counter(), 0
    for batch in batches:
        images += len(batch)
    seconds = time.perf_counter() - start
    kb = np.mean([len(x) for x in encoded]) / 1024
    print(f"{len(encoded)} JPEGs 500x375 ({kb:.0f} KiB mean), {args.threads} thread(s)")
    rate = images / seconds
    print(f"streamed_input images_per_second={rate:.1f} per_core={rate / args.threads:.1f}")


if __name__ == "__main__":
    main()
