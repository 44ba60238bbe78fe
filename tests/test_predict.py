"""python -m senet_jax.predict: files and folders, skipped files, the eval preprocessing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from use_helpers import eval_path_logits, raw_split

import senet_jax
from senet_jax import predict


def test_predict_on_image_files_equals_the_model_through_the_eval_pipeline(
    trained_run, tmp_path, capsys
):
    trained = senet_jax.load(trained_run)
    images, _ = raw_split(trained.config)
    folder = tmp_path / "images"
    os.makedirs(folder / "nested")
    for i, image in enumerate(images):  # PNG is lossless: the files hold the dataset's pixels
        Image.fromarray(image).save(folder / ("nested" if i % 2 else ".") / f"{i:02d}.png")
    argv = ["--workdir", trained_run, "--json", "--top-k", "10", str(folder)]
    assert predict.main(argv) == 0
    found = json.loads(capsys.readouterr().out)["images"]
    assert len(found) == len(images)
    logits = eval_path_logits(trained)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    for result in found:
        i = int(os.path.basename(result["file"])[:2])
        probs = {p["class"]: p["probability"] for p in result["predictions"]}
        got = np.array([probs[name] for name in trained.class_names])
        np.testing.assert_allclose(got, expected[i], atol=1e-6)
        assert result["predictions"][0]["class"] == trained.class_names[logits[i].argmax()]


def test_unreadable_files_are_named_and_skipped_exit_1(trained_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(tmp_path / "g.png")
    (tmp_path / "notes.txt").write_text("not an image")
    missing = str(tmp_path / "missing.png")
    argv = ["--workdir", trained_run, "--top-k", "3", str(tmp_path), missing]
    assert predict.main(argv) == 1
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [str(tmp_path / n) for n in ("a.jpg", "g.png")]
    assert all(line.count(", ") == 2 for line in lines)
    assert f"skipped {tmp_path / 'notes.txt'}: not a JPEG, PNG, BMP or GIF image" in err
    assert f"skipped {missing}: No such file or directory" in err


def test_usage_errors_exit_2(trained_run):
    with pytest.raises(SystemExit) as e:
        predict.main(["--workdir", trained_run])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        predict.main(["--workdir", trained_run, "--top-k", "0", "x.png"])
    assert e.value.code == 2
