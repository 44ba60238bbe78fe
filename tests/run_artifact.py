"""Runs an exported artifact in a fresh process, with no senet_jax import: the proof that it
stands alone. python tests/run_artifact.py FORMAT PATH JOBS.json, where each job is
{"images": .npy, "signature": name, "out": .npz}; one process runs them all."""

from __future__ import annotations

import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load(fmt: str, path: str):
    """signature name -> (uint8 images -> (probabilities, logits))."""
    if fmt == "stablehlo":
        import jax

        with open(path, "rb") as f:
            exported = jax.export.deserialize(f.read())
        return lambda _: lambda x: tuple(np.asarray(a) for a in exported.call(x))
    import tensorflow as tf

    if fmt == "saved_model":
        model = tf.saved_model.load(path)

        def saved_model_signature(name):
            def run(x):
                out = model.signatures[name](images=tf.constant(x))
                return out["probabilities"].numpy(), out["logits"].numpy()

            return run

        return saved_model_signature
    interpreter = tf.lite.Interpreter(model_path=path)

    def tflite_signature(name):
        def run(x):
            out = interpreter.get_signature_runner(name)(images=x)
            return out["probabilities"], out["logits"]

        return run

    return tflite_signature


if __name__ == "__main__":
    fmt, path, jobs_path = sys.argv[1:4]
    signature = load(fmt, path)
    with open(jobs_path) as f:
        jobs = json.load(f)
    for job in jobs:
        probabilities, logits = signature(job["signature"])(np.load(job["images"]))
        np.savez(job["out"], probabilities=probabilities, logits=logits)
    assert "senet_jax" not in sys.modules
