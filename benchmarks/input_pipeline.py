"""Augmented training images per second that the input pipeline delivers on this machine.

    python benchmarks/input_pipeline.py                      # generated STL10-layout data
    python benchmarks/input_pipeline.py --data-dir ~/tensorflow_datasets   # a prepared STL10
    python benchmarks/input_pipeline.py --stl10-archive /data/stl10_binary.tar.gz
    python benchmarks/input_pipeline.py --folder /data/cifar10 --image-size 32 \
        --data-dir /tmp/tfds           # an image folder (train/<class>/*.jpg, test/<class>/*)
    python benchmarks/input_pipeline.py --strong --steps 100   # weak vs RandAugment views

Uses configs/stl10.py's augmentation (pad-crop, flip, cutout at 96x96) unless overridden, and
times the numpy batches the trainer receives. An image folder is prepared first (decoded once
into --data-dir, then read from there: the preparation time is printed, the first run's
includes decoding every image of both splits). Last line: ``input_pipeline images_per_second=N``.

``--strong`` times the augmentation alone, as the in-memory pipeline runs it (batches of cached
padded uint8 images mapped in parallel by tf.data): the weak view and RandAugment's strong view
in alternating rounds on the same generated images, so that the ratio holds on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import stl10  # noqa: E402
from senet_jax.data import augment, iterators, randaugment, sources, stl10_format  # noqa: E402
from senet_jax.data.tf_setup import load_tf, load_tfds  # noqa: E402


def prepare_folder(config) -> None:
    """What a training run does first: check the folder, statistics (decodes the training split
    on a first run), the evaluation split; each timed."""
    t = time.perf_counter()
    load_tfds()
    print(f"TensorFlow and tfds imported: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    info = sources.get_dataset_info(config.data)
    print(
        f"checked the folder ({info.num_train_examples} train examples): "
        f"{time.perf_counter() - t:.1f} s"
    )
    t = time.perf_counter()
    iterators.statistics(config.data)
    print(f"training split and statistics ready: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    next(
        iterators.eval_batches(
            config.data,
            batch_size=config.batch_size,
            process_index=0,
            process_count=1,
            local_devices=1,
        )
    )
    print(f"evaluation split ready: {time.perf_counter() - t:.1f} s")


def time_views(config, steps: int, rounds: int) -> None:
    """Weak and strong views' images per second through tf.data, in alternating rounds."""
    tf = load_tf()
    size, batch = int(config.data.image_size), config.batch_size
    side = size + 2 * augment.crop_pad_pixels(config.data)
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (1024, 8, 8, 3)).repeat(-(-side // 8), 1).repeat(-(-side // 8), 2)
    images = tf.constant(blocks[:, :side, :side].astype(np.uint8))
    stats = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    views = {
        "weak": (augment.augmenter(tf, config.data, *stats), 9),
        "strong": (randaugment.strong_augmenter(tf, config.data, *stats), randaugment.UNIFORMS),
    }

    def pipeline(view, columns):
        def make_batch(step):
            ids = (step * batch + tf.range(batch, dtype=tf.int64)) % images.shape[0]
            rand = augment.example_uniforms(tf, augment.key(0, 2), step, ids, columns)
            return view(tf.gather(images, ids), rand)

        ds = tf.data.Dataset.range(steps + 5).map(
            make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return ds.prefetch(tf.data.AUTOTUNE)

    rates = {name: [] for name in views}
    for r in range(rounds):
        for name, (view, columns) in views.items():
            stream = pipeline(view, columns).as_numpy_iterator()
            for _ in range(5):  # compiles on the first round
                next(stream)
            t = time.perf_counter()
            for x in stream:
                assert x.shape == (batch, size, size, 3)
            rates[name].append(steps * batch / (time.perf_counter() - t))
            print(f"round {r} {name}: {rates[name][-1]:.0f} img/s")
    weak, strong = (float(np.median(rates[n])) for n in ("weak", "strong"))
    print(
        f"median weak {weak:.0f} img/s, strong {strong:.0f} img/s, strong/weak {strong / weak:.3f}"
    )
    print(f"input_pipeline strong_images_per_second={strong:.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="tfds data_dir holding a prepared stl10")
    parser.add_argument("--stl10-archive", help="stl10_binary.tar.gz or its extracted folder")
    parser.add_argument("--folder", help="an image folder: train/<class>/*.jpg, test/<class>/*")
    parser.add_argument("--image-size", type=int, help="default: the config's (96)")
    parser.add_argument("--num-train", type=int, default=5000, help="generated train images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1000, help="timed batches")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--crop", choices=["pad_crop", "random_resized_crop", "none"])
    parser.add_argument("--cutout-size", type=int)
    parser.add_argument("--local-devices", type=int, default=1)
    parser.add_argument("--strong", action="store_true", help="weak vs RandAugment views")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (--strong)")
    args = parser.parse_args()

    config = stl10.get_config()
    config.batch_size = args.batch_size
    if args.crop:
        config.data.crop = args.crop
    if args.cutout_size is not None:
        config.data.cutout_size = args.cutout_size
    if args.image_size:
        config.data.image_size = args.image_size
    if args.strong:
        size, cpus = config.data.image_size, os.cpu_count()
        print(f"image_size={size} batch_size={config.batch_size} cpus={cpus}")
        time_views(config, args.steps, args.rounds)
        return
    scratch = tempfile.TemporaryDirectory()
    if args.folder:
        config.data.dataset = f"folder:{args.folder}"
        config.data.data_dir = args.data_dir or os.path.join(scratch.name, "tfds")
        prepare_folder(config)
    elif args.data_dir or args.stl10_archive:
        config.data.data_dir = args.data_dir
        config.data.stl10_archive = args.stl10_archive
    else:
        t = time.perf_counter()
        archive = stl10_format.write_stl10_archive(scratch.name, args.num_train, 100)
        config.data.stl10_archive = archive
        config.data.data_dir = os.path.join(scratch.name, "tfds")
        sources.get_dataset_info(config.data)
        seconds = time.perf_counter() - t
        print(f"generated and prepared {args.num_train} STL10-layout images in {seconds:.1f} s")

    print(
        f"crop={config.data.crop} flip={config.data.flip} cutout_size={config.data.cutout_size} "
        f"image_size={config.data.image_size} batch_size={config.batch_size} cpus={os.cpu_count()}"
    )
    stream = iterators.train_batches(
        config.data,
        batch_size=config.batch_size,
        seed=config.seed,
        process_index=0,
        process_count=1,
        local_devices=args.local_devices,
    )
    t = time.perf_counter()
    for _ in range(args.warmup):
        next(stream)
    print(
        f"first {args.warmup} batches (includes loading the split): {time.perf_counter() - t:.1f} s"
    )
    t = time.perf_counter()
    for _ in range(args.steps):
        batch = next(stream)
    elapsed = time.perf_counter() - t
    size = config.data.image_size
    assert batch["image"].shape[-3:] == (size, size, 3)
    rate = args.steps * args.batch_size / elapsed
    print(f"{args.steps} batches of {args.batch_size} in {elapsed:.2f} s")
    print(f"input_pipeline images_per_second={rate:.0f}")
    scratch.cleanup()


if __name__ == "__main__":
    main()
