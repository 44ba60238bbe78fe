"""python -m senet_jax.export: each artifact, run in a fresh process, against the JAX model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from use_helpers import raw_split, snapshot

import senet_jax
from senet_jax import export

HERE = os.path.dirname(os.path.abspath(__file__))
# Max abs difference allowed on the probabilities (top-1 must be identical everywhere).
TOLERANCE = {"saved_model": 1e-5, "stablehlo": 1e-5, "tflite": 1e-4}


@pytest.fixture(scope="module")
def trained(trained_run):
    return senet_jax.load(trained_run)


@pytest.fixture(scope="module")
def images(trained):
    """8 test images at the model's size (a batch predict runs unpadded), and at 96x96."""
    from senet_jax.data import augment
    from senet_jax.data.tf_setup import load_tf

    raw, _ = raw_split(trained.config)
    tf, size = load_tf(), trained.image_size
    small = np.stack([np.asarray(augment.resize_uint8(tf, x, size)) for x in raw[:8]])
    return small, raw[8:16]


def run_fresh(fmt: str, path: str, jobs: list, tmp_path) -> list:
    """[(probabilities, logits)] of each (images, signature) job, from the artifact, in one new
    process that never imports senet_jax."""
    specs = []
    for i, (images, signature) in enumerate(jobs):
        np.save(tmp_path / f"images{i}.npy", images)
        specs.append(
            {
                "images": str(tmp_path / f"images{i}.npy"),
                "signature": signature,
                "out": str(tmp_path / f"out{i}.npz"),
            }
        )
    with open(tmp_path / "jobs.json", "w") as f:
        json.dump(specs, f)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, os.path.join(HERE, "run_artifact.py"), fmt, path]
    command.append(str(tmp_path / "jobs.json"))
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = [np.load(spec["out"]) for spec in specs]
    return [(out["probabilities"], out["logits"]) for out in outputs]


def check_close(fmt, got, trained, images):
    probabilities, logits = got
    expected_logits = trained.logits(images)
    expected = trained.predict(images)
    diff = float(np.abs(probabilities - expected).max())
    print(f"{fmt}: max |dp| {diff:.2e}, max |dlogit| {np.abs(logits - expected_logits).max():.2e}")
    assert diff <= TOLERANCE[fmt]
    np.testing.assert_allclose(logits, expected_logits, atol=20 * TOLERANCE[fmt])
    np.testing.assert_array_equal(logits.argmax(-1), expected_logits.argmax(-1))


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_each_artifact_in_a_fresh_process_matches_the_jax_model(
    fmt, trained_run, trained, images, tmp_path
):
    out = str(tmp_path / "export")
    assert export.main(["--workdir", trained_run, "--format", fmt, "--out", out]) == 0
    path = os.path.join(out, export.ARTIFACTS[fmt])
    with open(os.path.join(out, f"{fmt}.json")) as f:
        described = json.load(f)
    assert described["checkpoint_step"] == trained.step and described["image_size"] == 32
    small, large = images
    signature = {"saved_model": "serving_default", "tflite": "fixed_size"}.get(fmt, "")
    jobs = [(small, signature), (small[:3], signature)]  # two batch sizes: a symbolic batch
    if fmt == "saved_model":  # any size, resized inside as evaluation does; and fixed size
        jobs += [(large, signature), (small, "fixed_size")]
    results = run_fresh(fmt, path, jobs, tmp_path)
    for (batch, _), got in zip(jobs, results):
        check_close(fmt, got, trained, batch)


def test_an_unwritable_out_is_one_line_exit_2_and_the_workdir_unchanged(
    trained_run, tmp_path, capsys
):
    before = snapshot(trained_run, "")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    argv = ["--workdir", trained_run, "--format", "stablehlo", "--out", str(blocker / "out")]
    assert export.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --out {blocker / 'out'}: cannot write")
    assert snapshot(trained_run, "") == before
