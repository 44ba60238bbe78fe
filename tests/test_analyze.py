"""python -m senet_jax.analyze: mean excitations per class and the replace-with-mean test."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
from use_helpers import raw_split

import senet_jax
from senet_jax import analyze, checkpointing, evaluate, inference, optim, steps


@pytest.fixture(scope="module")
def trained(trained_run):
    return senet_jax.load(trained_run)


def test_analyze_writes_one_mean_per_block_and_class(trained_run, trained, capsys):
    argv = ["--workdir", trained_run, "--batch-size", "16", "--classes", "cat,dog"]
    assert analyze.main(argv) == 0
    folder = os.path.join(trained_run, "analysis", f"test-{trained.step}")
    arrays = np.load(os.path.join(folder, "excitations.npz"))
    with open(os.path.join(folder, "analysis.json")) as f:
        summary = json.load(f)
    blocks = [f"block{i:02d}" for i in range(1, 14)]
    assert list(summary["blocks"]) == blocks
    for name in blocks:
        per_class, overall = arrays[name], arrays[f"{name}:all"]
        assert per_class.shape == (10, summary["blocks"][name])
        assert overall.shape == (per_class.shape[1],)
        assert 0.0 <= np.nanmin(per_class) and np.nanmax(per_class) <= 1.0  # sigmoid gates
        counts = arrays["counts"]
        weighted = np.nansum(per_class * counts[:, None], 0) / counts.sum()
        np.testing.assert_allclose(weighted, overall, rtol=1e-5)
    assert arrays["counts"].sum() == 40 and summary["examples"] == 40
    assert summary["replaced_blocks"] == ["block12", "block13"]  # the last stage, by default
    exact = evaluate.evaluate(trained, "test", 16)
    assert summary["accuracy"] == exact["top1_accuracy"]
    assert 0.0 <= summary["accuracy_with_mean_gates"] <= 1.0
    with open(os.path.join(folder, "excitations.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "replaced by their mean" in capsys.readouterr().out


def test_identity_replacement_gives_the_same_accuracy_and_gates(trained):
    normal = analyze.run_pass(trained, "test", 16)
    same = analyze.run_pass(trained, "test", 16, replace=lambda name, gates: gates)
    assert same["accuracy"] == normal["accuracy"]
    for name, sums in normal["sums"].items():
        np.testing.assert_array_equal(same["sums"][name], sums)


def test_mean_replacement_by_hand_on_a_tiny_batch(trained):
    images, _ = raw_split(trained.config)
    x = trained.preprocess(images[:4])
    logits, gates = analyze._step_fn(trained, None)(trained.variables, x)
    mean = gates["block13"].mean(0)
    replace = lambda name, g: jax.numpy.broadcast_to(mean, g.shape) if name == "block13" else g
    new_logits, new_gates = analyze._step_fn(trained, replace)(trained.variables, x)
    np.testing.assert_allclose(new_gates["block13"], np.broadcast_to(mean, (4, mean.shape[0])))
    np.testing.assert_array_equal(new_gates["block12"], gates["block12"])  # before: untouched
    assert not np.allclose(new_logits, logits)
    # With four copies of one image the mean is each example's own gate: nothing changes.
    same = np.repeat(x[:1], 4, axis=0)
    logits, gates = analyze._step_fn(trained, None)(trained.variables, same)
    mean = gates["block13"].mean(0)
    new_logits, _ = analyze._step_fn(trained, replace)(trained.variables, same)
    np.testing.assert_allclose(new_logits, logits, rtol=1e-5, atol=1e-5)


def test_a_model_without_se_is_one_line_exit_2(trained_run, tmp_path, capsys):
    config, names = inference.read_run(trained_run)
    config.model.name = "mobilenet_v1"
    workdir = str(tmp_path / "plain")
    model = steps.create_model(config, len(names))
    tx, _ = optim.create_optimizer(config.optim, num_epochs=config.num_epochs, steps_per_epoch=4)
    state = steps.create_train_state(model, tx, jax.random.key(0), (32, 32, 3))
    manager = checkpointing.CheckpointManager(workdir, config, num_classes=len(names))
    manager.save(1, state)
    manager.wait_until_finished()
    manager.close()
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump({"config": config.to_dict(), "class_names": list(names)}, f)
    assert analyze.main(["--workdir", workdir]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mobilenet_v1 has no SE blocks" in err[0]


def test_unknown_class_or_block_is_one_line_exit_2(trained_run, capsys):
    assert analyze.main(["--workdir", trained_run, "--classes", "cat,unicorn"]) == 2
    assert analyze.main(["--workdir", trained_run, "--replace-blocks", "block99"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: class unicorn unknown; choose from airplane")
    assert err[1].startswith("error: SE block block99 unknown; choose from block01")


def test_an_eca_run_trains_with_train_py_and_is_analysed(compile_cache, tmp_path, capsys):
    """train.py --config configs/stl10.py --config.model.se.kind=eca, then analyze: ECA's
    gates are read and replaced as SE's (one [C] mean per block and class)."""
    import subprocess

    from training_runs import REPO, TINY, train_command, train_env

    workdir = str(tmp_path / "eca")
    small = {"width_multiplier": 0.25, "stem_strides": 2, "image_size": 32, "cutout_size": 0}
    overrides = {**TINY, **small, "num_epochs": 1, "warmup_epochs": 0, "model.se.kind": "eca"}
    command = train_command(workdir, "configs/stl10.py", **overrides)
    proc = subprocess.run(
        command, env=train_env(compile_cache), cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = senet_jax.load(workdir)
    assert "eca" in trained.variables["params"]["block13"]
    assert analyze.main(["--workdir", workdir, "--batch-size", "16"]) == 0
    folder = os.path.join(workdir, "analysis", f"test-{trained.step}")
    with open(os.path.join(folder, "analysis.json")) as f:
        summary = json.load(f)
    assert list(summary["blocks"]) == [f"block{i:02d}" for i in range(1, 14)]
    assert summary["replaced_blocks"] == ["block12", "block13"]
    arrays = np.load(os.path.join(folder, "excitations.npz"))
    assert arrays["block13"].shape == (10, summary["blocks"]["block13"])
    assert 0.0 <= np.nanmin(arrays["block13"]) and np.nanmax(arrays["block13"]) <= 1.0
