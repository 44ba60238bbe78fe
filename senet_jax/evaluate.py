"""Evaluate a trained run on a split: python -m senet_jax.evaluate --workdir W [--split test]

Top-1 and top-5 accuracy and loss over every image of the split exactly once (the padding
of the last batch is masked), per-class accuracy and the confusion matrix, written to
W/eval/<split>-<step>/ (metrics.json, confusion_matrix.json, confusion_matrix.png); nothing
else in the workdir changes. The data is read through the run's own config.data.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import numpy as np

from senet_jax import cli


def evaluate(trained, split: str, batch_size: int) -> dict[str, Any]:
    """Exact metrics of `trained` (an inference.TrainedModel) over `split`, one device."""
    import jax

    from senet_jax import inference, reporting, steps

    state = inference.eval_state(trained)
    step_fn = jax.jit(steps.eval_step)
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
    reporting.plot_confusion_matrix(
        confusion, results["class_names"], os.path.join(folder, "confusion_matrix.png")
    )


def main(argv: list[str] | None = None) -> int:
    parser = cli.run_parser("Top-1/top-5 accuracy, loss and confusion matrix of a trained run.")
    parser.add_argument("--split", default=None, help="default: the run's config.data.eval_split")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.batch_size <= 0:
        parser.error("--batch-size must be positive")

    def body() -> int:
        from senet_jax import inference

        trained = inference.load(args.workdir, args.checkpoint, batch_size=args.batch_size)
        split = args.split or trained.config.data.eval_split
        results = evaluate(trained, split, args.batch_size)
        folder = output_dir(args.workdir, split, trained.step)
        write(results, folder)
        print(
            f"{split} at step {trained.step}: top-1 {results['top1_accuracy']:.4f}, "
            f"top-5 {results['top5_accuracy']:.4f}, loss {results['loss']:.4f} over "
            f"{results['examples']} images; written to {folder}"
        )
        return 0

    return cli.main_with_errors(body)


if __name__ == "__main__":
    cli.set_up_logging()
    sys.exit(main())
