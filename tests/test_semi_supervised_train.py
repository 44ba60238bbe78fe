"""train.py with configs/stl10_fixmatch.py on a generated STL10-layout archive with an
unlabelled part: it trains, keeps EMA weights, and a kill -9 then rerun ends bit-identical to
an uninterrupted run; a bad semi-supervised field is one line, exit 2, before any data work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from training_runs import (
    REPO,
    assert_trees_identical,
    checkpoint_steps,
    load_state,
    train_command,
    train_env,
)

CONFIG = "configs/stl10_fixmatch.py"
STEPS = 8  # 64 unlabelled images, 16 a step (ratio 1): 4 steps a pass, 2 passes


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    from senet_jax.data import stl10_format

    root = str(tmp_path_factory.mktemp("stl10_ssl"))
    return stl10_format.write_stl10_archive(root, 84, 40, num_unlabeled=64, seed=0)


def ssl_command(workdir: str, archive: str, data_dir: str, **overrides) -> list:
    fields = {
        "synthetic_stl10": None,
        "data.stl10_archive": archive,
        "data.data_dir": data_dir,
        "data.image_size": 32,
        "model.width_multiplier": 0.25,
        "ssl.unlabelled_ratio": 1,
        "ssl.threshold": 0.5,
        "num_epochs": 2,
        "eval_every_epochs": 1,
        **overrides,
    }
    return train_command(workdir, CONFIG, **fields)


def run(command, cache_dir):
    return subprocess.run(
        command, env=train_env(cache_dir), cwd=REPO, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def uninterrupted(archive, tmp_path_factory, compile_cache):
    root = tmp_path_factory.mktemp("ssl_reference")
    workdir = str(root / "run")
    proc = run(ssl_command(workdir, archive, str(root / "tfds")), compile_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, proc.stderr


def test_fixmatch_trains_with_ema_weights_and_logs_the_mask_rate(uninterrupted):
    workdir, log = uninterrupted
    assert checkpoint_steps(workdir)[-1] == STEPS
    assert "evaluating with the EMA weights" in log
    assert "mask_rate" in log and "unlabelled_loss" in log
    state = load_state(workdir)
    assert set(state) >= {"params", "ema_params"}
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    assert results["train_steps"] == STEPS
    assert 0 <= results["test_accuracy"] <= 1 and 0 <= results["test_accuracy_raw"] <= 1


def test_kill_9_then_rerun_is_bit_identical(uninterrupted, archive, tmp_path, compile_cache):
    reference, _ = uninterrupted
    workdir = str(tmp_path / "killed")
    command = ssl_command(workdir, archive, str(tmp_path / "tfds"))
    with open(tmp_path / "1.log", "w") as log:
        proc = subprocess.Popen(command, env=train_env(compile_cache), cwd=REPO, stderr=log)
        deadline = time.monotonic() + 900
        while not checkpoint_steps(workdir) or checkpoint_steps(workdir)[-1] < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    first = checkpoint_steps(workdir)[-1]
    assert first < STEPS
    rerun = run(command, compile_cache)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming from step {first}" in rerun.stderr
    assert_trees_identical(load_state(workdir), load_state(reference))


def test_resuming_with_another_method_is_refused_in_one_line(uninterrupted, archive, compile_cache):
    workdir, _ = uninterrupted
    data_dir = os.path.join(os.path.dirname(workdir), "tfds")
    command = ssl_command(workdir, archive, data_dir, **{"ssl.method": "flexmatch"})
    proc = run(command, compile_cache)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "config.ssl.method='fixmatch'" in proc.stderr


@pytest.mark.parametrize(
    "field,value,named",
    [
        ("ssl.method", "mixmatch", "config.ssl.method"),
        ("ssl.threshold", 1.5, "config.ssl.threshold"),
        ("ssl.unlabelled_ratio", 0, "config.ssl.unlabelled_ratio"),
        ("data.labelled_fold", 12, "config.data.labelled_fold"),
        ("data.unlabelled_split", "rest", "config.data.unlabelled_split"),
    ],
)
def test_a_bad_field_is_one_line_exit_2_and_no_workdir(
    field, value, named, archive, tmp_path, compile_cache
):
    workdir = str(tmp_path / "bad")
    proc = run(
        ssl_command(workdir, archive, str(tmp_path / "tfds"), **{field: value}), compile_cache
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {named}")
    assert not os.path.exists(workdir)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> str:
    """train/ (14 a class) and test/ (4 a class) PNG folders of the learnable STL10 images."""
    from PIL import Image

    from senet_jax.data import stl10_format

    root = tmp_path_factory.mktemp("ssl_folder") / "shapes"
    for split, count, seed in (("train", 140, 0), ("test", 40, 1)):
        images, labels = stl10_format.make_images(count, seed=seed)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / stl10_format.CLASS_NAMES[label]
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(image[::3, ::3]).save(folder / f"{i}.png")
    return str(root)


def test_folder_with_a_labelled_subset_and_the_rest_unlabelled_logs_pseudo_label_accuracy(
    image_folder, tmp_path, compile_cache
):
    workdir = str(tmp_path / "run")
    fields = {
        "synthetic_stl10": None,
        "data.dataset": f"folder:{image_folder}",
        "data.data_dir": str(tmp_path / "data"),
        "data.image_size": 32,
        "model.width_multiplier": 0.25,
        "data.labels_per_class": 10,
        "data.unlabelled_split": "rest",
        "ssl.method": "fixmatch",
        "ssl.unlabelled_ratio": 1,
        "batch_size": 8,
        "num_epochs": 2,
    }
    proc = run(train_command(workdir, "configs/stl10.py", **fields), compile_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mask_rate" in proc.stderr and "pseudo_label_accuracy" in proc.stderr
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    assert results["train_steps"] == 4  # 120 training images less 100 labelled, 8 a step


def test_an_unlabelled_split_over_max_cache_bytes_streams_and_is_recorded(tmp_path, compile_cache):
    """112 unlabelled images (344 KB at 32 px) over a 200 KB cap that the 40 training images
    fit: the unlabelled split streams from its file, 7 steps a pass of 16."""
    from senet_jax.data import stl10_format

    archive = stl10_format.write_stl10_archive(
        str(tmp_path / "archive"), 40, 16, num_unlabeled=112, seed=3
    )
    workdir, data_dir = str(tmp_path / "run"), str(tmp_path / "tfds")
    streamed = {"data.max_cache_bytes": 200_000, "num_epochs": 1, "warmup_epochs": 0}
    proc = run(ssl_command(workdir, archive, data_dir, **streamed), compile_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["train_steps"] == 112 // 16
    held = {**streamed, "data.max_cache_bytes": 2**30}
    again = run(ssl_command(workdir, archive, data_dir, **held), compile_cache)
    assert again.returncode == 2
    assert "unlabelled_streamed=True, this run has unlabelled_streamed=False" in again.stderr


def test_analyze_reads_a_semi_supervised_run_through_its_ema_weights(uninterrupted, caplog):
    """python -m senet_jax.analyze on a FixMatch run: the excitations of the EMA weights, the
    ones results.json's test_accuracy (not test_accuracy_raw) was measured with."""
    from senet_jax import analyze

    workdir, _ = uninterrupted
    with caplog.at_level("INFO"):
        assert (
            analyze.main(["--workdir", workdir, "--checkpoint", "latest", "--split", "test"]) == 0
        )
    assert any("using its EMA weights" in r.getMessage() for r in caplog.records)
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    folder = os.path.join(workdir, "analysis", f"test-{STEPS}")
    with open(os.path.join(folder, "analysis.json")) as f:
        summary = json.load(f)
    assert summary["accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-6)
