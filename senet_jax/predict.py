"""Classify image files with a trained run or pretrained weights:
python -m senet_jax.predict --workdir W FILE_OR_DIR ... [--top-k 5] [--json]
python -m senet_jax.predict --model timm:seresnet50.a1_in1k photo.jpg   (or --model DIR)

Files (JPEG, PNG, BMP, GIF; directories are walked) are decoded by TensorFlow as tfds decodes
dataset images, then resized and normalised exactly as evaluation does, and classified in
batches. A file that cannot be read or decoded is named on stderr and skipped; the exit
status is then 1 (2 for usage errors).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import numpy as np

from senet_jax import cli


def image_files(paths: list[str]) -> Iterator[str]:
    """The paths given, with directories walked (sorted, hidden entries skipped)."""
    for path in paths:
        if not os.path.isdir(path):
            yield path
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield os.path.join(root, name)


def decode(path: str) -> np.ndarray:
    """uint8 [H, W, 3]; raises ValueError naming why a file is not a readable image."""
    from senet_jax.data.tf_setup import load_tf

    tf = load_tf()
    try:
        with open(path, "rb") as f:
            encoded = f.read()
        return tf.io.decode_image(encoded, channels=3, expand_animations=False).numpy()
    except OSError as e:
        raise ValueError(e.strerror or str(e)) from None
    except Exception:  # tf.errors.InvalidArgumentError and friends
        raise ValueError("not a JPEG, PNG, BMP or GIF image") from None


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict_files(trained, paths: list[str], top_k: int) -> tuple[list[dict], list[str]]:
    """([{file, predictions: [{class, probability}, ...]}], skipped files)."""
    results, skipped = [], []
    for chunk in _chunks(list(image_files(paths)), trained.batch_size):
        images, names = [], []
        for path in chunk:
            try:
                images.append(decode(path))
                names.append(path)
            except ValueError as e:
                print(f"skipped {path}: {e}", file=sys.stderr)
                skipped.append(path)
        if not images:
            continue
        for path, probs in zip(names, trained.predict(images)):
            order = np.argsort(-probs, kind="stable")[:top_k]
            top = [{"class": trained.class_names[i], "probability": float(probs[i])} for i in order]
            results.append({"file": path, "predictions": top})
    return results, skipped


def main(argv: list[str] | None = None) -> int:
    parser = cli.run_parser(
        "Class probabilities of image files from a trained run or pretrained weights.",
        pretrained=True,
    )
    parser.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.top_k <= 0 or args.batch_size <= 0:
        parser.error("--top-k and --batch-size must be positive")

    def body() -> int:
        from senet_jax import inference

        source = args.model or args.workdir
        trained = inference.load(source, args.checkpoint, batch_size=args.batch_size)
        results, skipped = predict_files(trained, args.paths, args.top_k)
        if args.json:
            json.dump({"checkpoint_step": trained.step, "images": results}, sys.stdout, indent=2)
            print()
        for result in [] if args.json else results:
            top = ", ".join(f"{p['class']} {p['probability']:.4f}" for p in result["predictions"])
            print(f"{result['file']}: {top}")
        if skipped:
            print(f"error: {len(skipped)} file(s) skipped (named above)", file=sys.stderr)
        return 1 if skipped else 0

    return cli.main_with_errors(body)


if __name__ == "__main__":
    cli.set_up_logging()
    sys.exit(main())
