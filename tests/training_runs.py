"""Runs train.py in a subprocess on a tiny generated STL10-layout archive, and reads what it left.

Shared by the end-to-end, resume and fault tests. A persistent XLA compilation cache shared by
all runs of the session keeps repeated runs of the same tiny job cheap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
from config_utils import dotted

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 84 train (20 held out for validation) / 40 test images at 32x32, batch 16 over 8 devices:
# 4 steps an epoch, 16 in all.
TINY = {
    "synthetic_stl10": "(84,40)",
    "validation_examples": 20,
    "batch_size": 16,
    "num_epochs": 4,
    "warmup_epochs": 1,
    "eval_every_epochs": 2,
    "checkpoint_every_steps": 2,
    "log_every_steps": 1,
    "keep_checkpoints": 2,
}
TINY_STEPS = 16


def config_flags(overrides: dict[str, object]) -> list:
    """--config.FIELD=VALUE flags; a None value leaves the config file's own value."""
    return [f"--config.{dotted(k)}={v}" for k, v in overrides.items() if v is not None]


def train_command(
    workdir: str, config: str = "configs/smoke.py", *, preempt_at: int | None = None, **overrides
) -> list:
    """train.py's command line; with `preempt_at`, a SIGTERM lands once that step has run."""
    script = ["train.py"] if preempt_at is None else ["tests/preempted_train.py", str(preempt_at)]
    return [
        sys.executable,
        os.path.join(REPO, script[0]),
        *script[1:],
        f"--config={os.path.join(REPO, config)}",
        f"--workdir={workdir}",
        *config_flags({**TINY, **overrides}),
    ]


def train_env(cache_dir: str, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
            "JAX_PLATFORMS": "cpu",
            "JAX_COMPILATION_CACHE_DIR": cache_dir,
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
            "PYTHONPATH": REPO,
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_train(
    workdir: str,
    cache_dir: str,
    *,
    env_extra=None,
    timeout: float = 600,
    preempt_at: int | None = None,
    **overrides,
):
    return subprocess.run(
        train_command(workdir, preempt_at=preempt_at, **overrides),
        env=train_env(cache_dir, **(env_extra or {})),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def checkpoint_steps(workdir: str) -> Sequence[int]:
    folder = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    return sorted(int(name) for name in os.listdir(folder) if name.isdigit())


def load_state(workdir: str, step: int = None) -> dict:
    """The saved train state of a checkpoint (default: the newest) as a tree of numpy arrays."""
    import orbax.checkpoint as ocp

    step = checkpoint_steps(workdir)[-1] if step is None else step
    path = os.path.join(workdir, "checkpoints", str(step), "state")
    return ocp.PyTreeCheckpointer().restore(path)


def assert_trees_identical(a, b) -> None:
    import jax

    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_same_as_reference(workdir: str, reference_run: str) -> None:
    """Finished at the last step with the uninterrupted run's parameters and results, exactly."""
    assert checkpoint_steps(workdir)[-1] == TINY_STEPS
    assert_trees_identical(load_state(workdir), load_state(reference_run))
    with (
        open(os.path.join(workdir, "results.json")) as f,
        open(os.path.join(reference_run, "results.json")) as g,
    ):
        resumed, reference = json.load(f), json.load(g)
    for key in ("test_accuracy", "test_loss", "test_examples", "confusion_matrix"):
        assert resumed[key] == reference[key]
