"""train.py end to end, on generated STL10-layout data through the real code path."""

from __future__ import annotations

import json
import os

import numpy as np
from training_runs import (
    TINY_STEPS,
    assert_same_as_reference,
    assert_trees_identical,
    checkpoint_steps,
    load_state,
    run_train,
)


def test_end_to_end_leaves_results_checkpoints_and_summaries(reference_run):
    with open(os.path.join(reference_run, "results.json")) as f:
        results = json.load(f)
    assert results["test_examples"] == 40  # every test image, exactly once
    assert results["validation_examples"] == 20  # held out of the 84 training images
    assert 0.0 <= results["test_accuracy_at_best_validation"] <= 1.0
    assert results["best_validation_step"] in checkpoint_steps(reference_run)
    assert not [k for k in results if "best_test" in k]  # no selection on the test split
    assert results["train_steps"] == TINY_STEPS and results["epochs"] == 4
    assert results["model"] == "se_mobilenet_v1" and results["params"] > 0
    assert results["devices"] == 8 and results["images_per_second"] > 0
    assert results["wall_seconds"] > 0
    assert results["peak_host_memory_bytes"] > 100 * 2**20  # a JAX process is never smaller
    assert 0.0 <= results["test_accuracy"] <= 1.0 and np.isfinite(results["test_loss"])
    confusion = np.array(results["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 40
    assert abs(np.trace(confusion) / 40 - results["test_accuracy"]) < 1e-9
    assert set(results["per_class_accuracy"]) >= {"airplane", "truck"}
    assert checkpoint_steps(reference_run)[-1] == TINY_STEPS
    for name in ("confusion_matrix.png", "learning_curves.png"):
        with open(os.path.join(reference_run, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(reference_run))


def test_rerunning_a_finished_job_changes_nothing(reference_run, compile_cache, tmp_path):
    before = load_state(reference_run)
    proc = run_train(reference_run, compile_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_trees_identical(load_state(reference_run), before)


def test_preempted_then_resumed_run_is_bit_identical(reference_run, compile_cache, tmp_path):
    workdir = str(tmp_path / "preempted")
    first = run_train(workdir, compile_cache, preempt_at=7)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "preempted at step 7" in first.stderr
    assert checkpoint_steps(workdir)[-1] == 7
    assert not os.path.exists(os.path.join(workdir, "results.json"))
    with open(os.path.join(workdir, "history.json")) as f:
        first_wall = [h["wall_seconds"] for h in json.load(f) if "wall_seconds" in h][-1]
    second = run_train(workdir, compile_cache)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from step 7" in second.stderr
    assert_same_as_reference(workdir, reference_run)
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["wall_seconds"] > first_wall  # the resumed run adds to it


def test_learnable_data_loss_falls_and_accuracy_beats_chance(compile_cache, tmp_path):
    workdir = str(tmp_path / "learn")
    proc = run_train(
        workdir,
        compile_cache,
        synthetic_stl10="(320,100)",
        batch_size=32,
        num_epochs=8,
        eval_every_epochs=8,
        checkpoint_every_steps=1000,
        log_every_steps=10,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(workdir, "history.json")) as f:
        history = [h for h in json.load(f) if "train_loss" in h]
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert results["test_examples"] == 100
    assert results["test_accuracy"] >= 0.3, results["test_accuracy"]  # chance is 0.1


def test_stl10_is_fetched_from_its_url_prepared_and_trained(
    compile_cache, tmp_path, stl10_prepared
):
    """The one command on a connected machine: download (from a local mirror here), prepare
    through the real tfds builder, train, report test accuracy at the best validation step."""
    import hashlib

    from archive_server import Server

    with open(stl10_prepared.archive, "rb") as f:
        archive = f.read()
    server = Server(archive)
    try:
        workdir, data_dir = str(tmp_path / "run"), str(tmp_path / "tfds")
        proc = run_train(
            workdir,
            compile_cache,
            config="configs/stl10.py",
            data_dir=data_dir,
            stl10_url=server.url,
            stl10_sha256=hashlib.sha256(archive).hexdigest(),
            synthetic_stl10=None,
            **{"model.width_multiplier": 0.25, "model.stem_strides": 2, "image_size": 32},
        )
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "downloaded" in proc.stderr  # progress lines: stderr is not a terminal here
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    assert results["test_examples"] == 44 and "test_accuracy_at_best_validation" in results
