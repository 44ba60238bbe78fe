"""python -m senet_jax.evaluate on the tiny trained run."""

from __future__ import annotations

import json
import os

import numpy as np
from use_helpers import snapshot

from senet_jax import evaluate


def test_evaluate_writes_exact_metrics_and_changes_nothing_else(trained_run, capsys):
    before = snapshot(trained_run, "eval")
    argv = ["--workdir", trained_run, "--checkpoint", "latest", "--batch-size", "16"]
    assert evaluate.main(argv) == 0
    assert snapshot(trained_run, "eval") == before
    folder = os.path.join(trained_run, "eval", "test-16")
    with open(os.path.join(folder, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(folder, "confusion_matrix.json")) as f:
        confusion = json.load(f)
    with open(os.path.join(trained_run, "results.json")) as f:
        results = json.load(f)  # the trainer's final evaluation, of the same step 16
    assert metrics["examples"] == 40 and metrics["step"] == 16  # 40 = 2 batches + padding
    assert metrics["top1_accuracy"] == results["test_accuracy"]
    assert abs(metrics["loss"] - results["test_loss"]) < 1e-4 * results["test_loss"]
    assert metrics["top1_accuracy"] <= metrics["top5_accuracy"] <= 1.0
    matrix = np.array(confusion["rows_true_columns_predicted"])
    assert matrix.tolist() == results["confusion_matrix"]
    assert confusion["class_names"][0] == "airplane" and matrix.sum() == 40
    rows = matrix.sum(1)
    for k, name in enumerate(confusion["class_names"]):
        expected = matrix[k, k] / rows[k] if rows[k] else None
        assert metrics["per_class_accuracy"][name] == expected
    with open(os.path.join(folder, "confusion_matrix.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "top-5" in capsys.readouterr().out


def test_a_split_the_dataset_lacks_is_one_line_listing_the_splits(trained_run, capsys):
    assert evaluate.main(["--workdir", trained_run, "--split", "validation"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --split 'validation': stl10 has no such split; its splits: test, train, unlabelled"
    ]
