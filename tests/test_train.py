"""train.py end to end, on generated STL10-layout data through the real code path."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from training_runs import (
    TINY_STEPS,
    assert_same_as_reference,
    assert_trees_identical,
    checkpoint_steps,
    load_state,
    run_train,
)

from senet_jax import machine


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
    assert results["cpu"] == machine.processor_name() and results["device_kind"] == "cpu"
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


def test_total_steps_sets_the_run_length_whatever_num_epochs(compile_cache, tmp_path):
    """6 steps of 4 an epoch (num_epochs=4 would be 16): the cosine reaches half its peak at
    step 6 (4 warmup steps, then 2 of cosine), evaluation follows epochs of 4 steps, and a
    rerun with a longer total_steps goes on from the checkpoint, as num_epochs does."""
    workdir = str(tmp_path / "fixed")
    proc = run_train(workdir, compile_cache, total_steps=6, eval_every_epochs=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert checkpoint_steps(workdir)[-1] == 6
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    assert results["train_steps"] == 6 and results["epochs"] == 1.5
    with open(os.path.join(workdir, "history.json")) as f:
        history = json.load(f)
    rates = {h["step"]: h["learning_rate"] for h in history if "learning_rate" in h}
    assert rates[5] == pytest.approx(0.05) and rates[6] == pytest.approx(0.025)
    assert [h["step"] for h in history if "validation_accuracy" in h] == [4, 6]
    longer = run_train(workdir, compile_cache, total_steps=8, eval_every_epochs=1)
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert "resuming from step 6 of 8" in longer.stderr
    assert checkpoint_steps(workdir)[-1] == 8


def test_microbatches_train_a_run_and_say_so(compile_cache, tmp_path):
    """16 images over 8 devices, at most 1 a pass: each device's 2 in 2 parts."""
    workdir = str(tmp_path / "parts")
    proc = run_train(workdir, compile_cache, total_steps=4, warmup_epochs=0, microbatch_size=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "computes its 2 images in 2 parts of 1 (config.microbatch_size)" in proc.stderr
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["train_steps"] == 4


def test_a_warmup_longer_than_total_steps_is_one_line_exit_2(compile_cache, tmp_path):
    workdir = str(tmp_path / "short")
    proc = run_train(workdir, compile_cache, total_steps=3, warmup_epochs=1)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: config.optim.warmup_epochs: 1 epochs of 4 steps are 4 steps")
    assert checkpoint_steps(workdir) == []
