"""python -m senet_jax.evaluate on the tiny trained run, and --model DIR --dataset folder:PATH:
pretrained weights on an image folder whose class folders are ImageNet classes (a name, a
first synonym, a WordNet id)."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from PIL import Image
from use_helpers import snapshot

import senet_jax
from senet_jax import evaluate, hub, weights


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


# Folder names sort as the folder's labels 0, 1; ImageNet's indices of those classes.
CLASSES = {"goldfish": 1, "n01440764": 0}  # a first synonym; tench's WordNet id
SIZES = [(40, 48), (52, 36), (33, 33)]


def _model_directory(tmp_path) -> str:
    """A model directory as the converter writes it: a small random network, ImageNet's class
    names and bicubic resize-then-crop preprocessing."""
    from configs import smoke
    from senet_jax.models import create_model

    options = smoke.get_config().model.to_dict()
    model = create_model(**options, num_classes=1000)
    variables = model.init(jax.random.key(5), np.zeros((1, 32, 32, 3), np.float32))
    info = {
        "num_classes": 1000,
        "class_names": hub.imagenet_class_names(),
        "preprocessing": {
            "resize_size": 36,
            "crop_size": 32,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "interpolation": "bicubic",
        },
    }
    out = str(tmp_path / "model")
    weights.save_pretrained(out, options, variables, info)
    return out


def _image_folder(root, classes, sizes) -> dict[str, list[np.ndarray]]:
    """train/ (one image a class, as folder.py requires) and test/ (sizes) as PNG files."""
    rng = np.random.default_rng(0)
    test = {}
    for name in classes:
        for split, shapes in (("train", sizes[:1]), ("test", sizes)):
            os.makedirs(root / split / name)
            for k, shape in enumerate(shapes):
                pixels = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{k}.png")
                if split == "test":
                    test.setdefault(name, []).append(pixels)
    return test


def test_evaluate_matches_the_models_own_predictions_with_imagenet_labels(tmp_path, capsys):
    model_dir = _model_directory(tmp_path)
    test = _image_folder(tmp_path / "data", CLASSES, SIZES)
    out = tmp_path / "eval"
    argv = ["--model", model_dir, "--dataset", f"folder:{tmp_path / 'data'}", "--out", str(out)]
    assert evaluate.main([*argv, "--batch-size", "4"]) == 0  # 6 images: a padded last batch

    images = [image for name in sorted(CLASSES) for image in test[name]]
    labels = np.array([CLASSES[name] for name in sorted(CLASSES) for _ in test[name]])
    probs = senet_jax.load(model_dir).predict(images)
    top5 = np.argsort(-probs, axis=1, kind="stable")[:, :5]
    with open(out / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["examples"] == 6 and metrics["split"] == "test"
    assert metrics["top1_accuracy"] == np.mean(probs.argmax(1) == labels)
    assert metrics["top5_accuracy"] == np.mean((top5 == labels[:, None]).any(1))
    loss = -np.mean(np.log(probs[np.arange(6), labels]))
    assert abs(metrics["loss"] - loss) < 1e-4 * max(loss, 1.0)
    with open(out / "confusion_matrix.json") as f:
        matrix = np.array(json.load(f)["rows_true_columns_predicted"])
    assert matrix.shape == (1000, 1000) and matrix.sum() == 6
    for index in CLASSES.values():  # each true class's row counts the model's predictions
        rows = labels == index
        expected = np.bincount(probs[rows].argmax(1), minlength=1000)
        assert matrix[index].tolist() == expected.tolist()
    names = hub.imagenet_class_names()
    assert sorted(metrics["per_class_accuracy"]) == sorted(names[i] for i in CLASSES.values())
    assert not (out / "confusion_matrix.png").exists()  # no picture of 1000 classes
    assert "over 6 images" in capsys.readouterr().out


def test_class_names_that_are_not_the_models_are_one_line_exit_2(tmp_path, capsys):
    model_dir = _model_directory(tmp_path)
    _image_folder(tmp_path / "data", ["goldfish", "not_a_class"], SIZES[:1])
    argv = ["--model", model_dir, "--dataset", f"folder:{tmp_path / 'data'}"]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --dataset folder:{tmp_path / 'data'}: ")
    assert "1 of its 2 class names" in err[0] and "'not_a_class'" in err[0]


def test_dataset_goes_with_model_only(tmp_path):
    try:
        evaluate.main(["--model", str(tmp_path)])
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("--model without --dataset was accepted")
