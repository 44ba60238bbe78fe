"""Evaluate a trained run on a split: python -m senet_jax.evaluate --workdir W [--split test]
or pretrained weights on a dataset whose classes are theirs (ImageNet's):
python -m senet_jax.evaluate --model timm:NAME|DIR --dataset folder:PATH|TFDS_NAME [--out DIR]

Top-1 and top-5 accuracy and loss over every image of the split exactly once (the padding
of the last batch is masked), per-class accuracy and the confusion matrix, written to
W/eval/<split>-<step>/ (metrics.json, confusion_matrix.json, confusion_matrix.png; no picture
above 100 classes); nothing else in the workdir changes. A run's data is read through its own
config.data. Pretrained weights read the dataset's images through their own preprocessing,
the one `senet_jax.load(...).predict` applies (their interpolation; the streamed eval path
only resizes bilinearly), and its labels become the model's class indices by class name
(senet_jax/label_map.py), so a folder may hold any subset of ImageNet's classes.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import numpy as np

from senet_jax import cli, label_map

MAX_PLOTTED_CLASSES = 100  # a confusion-matrix picture of more classes is unreadable


def evaluate(trained, split: str, batch_size: int, batches=None) -> dict[str, Any]:
    """Exact metrics of `trained` (an inference.TrainedModel) over `split`, one device;
    `batches` (image, label, mask) default to the run's own evaluation batches of `split`."""
    import jax

    from senet_jax import inference, reporting, steps

    state = inference.eval_state(trained)
    step_fn = jax.jit(steps.eval_step)
    if batches is None:
        batches = inference.split_batches(trained.config, split, batch_size)
    metrics = steps.eval_metrics(step_fn(state, batch) for batch in batches)
    confusion = metrics["confusion"]
    per_class = reporting.per_class_accuracy(confusion)
    return {
        "split": split,
        "step": trained.step,
        "examples": metrics["examples"],
        "top1_accuracy": metrics["accuracy"],
        "top5_accuracy": metrics["top5_accuracy"],
        "loss": metrics["loss"],
        "per_class_accuracy": dict(zip(trained.class_names, per_class.tolist())),
        "class_names": list(trained.class_names),
        "confusion_matrix": confusion.tolist(),
    }


def output_dir(workdir: str, split: str, step: int) -> str:
    """W/eval/<split>-<step>; a sliced split such as test[:50%] gets a file-safe name."""
    return os.path.join(workdir, "eval", f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', split)}-{step}")


def write(results: dict[str, Any], folder: str) -> None:
    from senet_jax import reporting

    confusion = np.asarray(results["confusion_matrix"])
    metrics = {k: v for k, v in results.items() if k not in ("confusion_matrix", "class_names")}
    reporting.write_json_atomic(os.path.join(folder, "metrics.json"), metrics)
    reporting.write_json_atomic(
        os.path.join(folder, "confusion_matrix.json"),
        {"class_names": results["class_names"], "rows_true_columns_predicted": confusion},
    )
    if len(results["class_names"]) <= MAX_PLOTTED_CLASSES:
        reporting.plot_confusion_matrix(
            confusion, results["class_names"], os.path.join(folder, "confusion_matrix.png")
        )


def data_config(dataset: str, data_dir: str | None):
    """The config.data fields that name and prepare a dataset (configs/ is not installed)."""
    import ml_collections

    from senet_jax.data import download

    return ml_collections.ConfigDict(
        {
            "dataset": dataset,
            "data_dir": data_dir,
            "stl10_archive": None,
            "synthetic_stl10": None,
            "stl10_url": download.STL10_URL,
            "stl10_sha256": download.STL10_SHA256,
        }
    )


def default_split(builder) -> str:
    """test, else validation (ImageNet's labelled held-out split), else the first one."""
    splits = sorted(builder.info.splits.keys())
    return next((s for s in ("test", "validation") if s in splits), splits[0])


def pretrained_batches(trained, builder, split: str, batch_size: int, to_model: np.ndarray):
    """Every example of `split` once, decoded by tfds, preprocessed as `trained.predict` does,
    labels as the model's class indices; the last batch padded and masked."""
    from senet_jax.data.tf_setup import load_tf

    load_tf()
    images, labels = [], []
    examples = builder.as_dataset(split=split, shuffle_files=False).as_numpy_iterator()
    for example in examples:
        images.append(example["image"])
        labels.append(to_model[int(example["label"])])
        if len(images) == batch_size:
            yield _padded_batch(trained, images, labels, batch_size)
            images, labels = [], []
    if images:
        yield _padded_batch(trained, images, labels, batch_size)


def _padded_batch(trained, images, labels, batch_size: int) -> dict[str, np.ndarray]:
    x = trained.preprocess(images)
    pad = batch_size - len(x)
    return {
        "image": np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]),
        "label": np.asarray(labels + [0] * pad, np.int32),
        "mask": np.arange(batch_size) < len(x),
    }


def evaluate_pretrained(args) -> tuple[dict[str, Any], str]:
    """(results, split) of the --model weights on --dataset, labels matched by class name."""
    from senet_jax import inference
    from senet_jax.data import sources

    builder = sources.prepared_builder(data_config(args.dataset, args.data_dir))
    split = args.split or default_split(builder)
    inference.check_split(builder, split)
    trained = inference.load(args.model, batch_size=args.batch_size)
    dataset_names = builder.info.features["label"].names
    to_model = label_map.dataset_to_model(
        dataset_names, trained.class_names, f"--dataset {args.dataset}"
    )
    batches = pretrained_batches(trained, builder, split, args.batch_size, to_model)
    results = evaluate(trained, split, args.batch_size, batches)
    ours = [trained.class_names[i] for i in to_model]
    results["per_class_accuracy"] = {n: results["per_class_accuracy"][n] for n in ours}
    results["dataset"], results["model"] = args.dataset, args.model
    return results, split


def _parser():
    parser = cli.run_parser(
        "Top-1/top-5 accuracy, loss and confusion matrix of a trained run, or of pretrained "
        "weights on a dataset whose class names are theirs.",
        pretrained=True,
    )
    parser.add_argument("--split", default=None, help="default: the run's config.data.eval_split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--dataset",
        "--config.data.dataset",
        help="with --model: folder:PATH (train/ and test/ class folders) or a tfds name, its "
        "class names the model's (ImageNet names or WordNet ids); default split test/validation",
    )
    parser.add_argument("--data-dir", "--config.data.data_dir", help="with --model: tfds data_dir")
    parser.add_argument("--out", help="with --model: folder for metrics.json and the confusion")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.batch_size <= 0:
        parser.error("--batch-size must be positive")
    if bool(args.model) != bool(args.dataset):
        parser.error("--dataset goes with --model (a run evaluates on its own config.data)")
    if args.workdir and (args.out or args.data_dir):
        parser.error("--out and --data-dir go with --model (a run writes into W/eval/)")

    def body() -> int:
        from senet_jax import inference

        if args.model:
            results, split = evaluate_pretrained(args)
            folder, what = args.out, f"{args.model} on {args.dataset} {split}"
        else:
            trained = inference.load(args.workdir, args.checkpoint, batch_size=args.batch_size)
            split = args.split or trained.config.data.eval_split
            results = evaluate(trained, split, args.batch_size)
            folder = output_dir(args.workdir, split, trained.step)
            what = f"{split} at step {trained.step}"
        if folder:
            write(results, folder)
        print(
            f"{what}: top-1 {results['top1_accuracy']:.4f}, "
            f"top-5 {results['top5_accuracy']:.4f}, loss {results['loss']:.4f} over "
            f"{results['examples']} images" + (f"; written to {folder}" if folder else "")
        )
        return 0

    return cli.main_with_errors(body, (label_map.ClassMismatchError,))


if __name__ == "__main__":
    cli.set_up_logging()
    sys.exit(main())
