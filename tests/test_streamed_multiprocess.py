"""The streamed input path with 2 processes over jax.distributed on localhost: killed (kill -9)
and resumed, it ends with exactly the parameters of an uninterrupted 2-process run; a resume
under another process count is refused in one line."""

from __future__ import annotations

import os
import subprocess

from test_multiprocess import free_port
from training_runs import (
    assert_trees_identical,
    checkpoint_steps,
    load_state,
    train_command,
    train_env,
)

# 60 examples in 3 files: process 0 reads 40, process 1 reads 20; 8 per process-step makes
# 2 steps an epoch, 12 in all. Checkpoint 3 lands mid-epoch, so resuming skips records.
STREAMED = {
    "validation_examples": 0,
    "max_cache_bytes": 1,  # forces the streamed path
    "crop": "random_resized_crop",
    "shuffle_buffer": 16,
    "num_epochs": 6,
    "checkpoint_every_steps": 3,
    "eval_every_epochs": 2,
}
STEPS = 12


def _command(workdir, data_dir, **kwargs):
    command = train_command(workdir, data_dir=data_dir, **STREAMED, **kwargs)
    return [arg for arg in command if not arg.startswith("--config.data.synthetic_stl10=")]


def _run_two(workdir, data_dir, cache, preempt_at=None):
    address = f"127.0.0.1:{free_port()}"
    env = train_env(cache, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    procs = [
        subprocess.Popen(
            _command(workdir, data_dir, preempt_at=preempt_at)
            + [f"--coordinator_address={address}", "--num_processes=2", f"--process_id={i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    return [p.returncode for p in procs], outputs


def test_streamed_two_processes_resume_exactly_after_kill(stl10_sharded, compile_cache, tmp_path):
    reference = str(tmp_path / "reference")
    codes, outs = _run_two(reference, stl10_sharded, compile_cache)
    assert codes == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert checkpoint_steps(reference)[-1] == STEPS

    workdir = str(tmp_path / "killed")
    codes, outs = _run_two(workdir, stl10_sharded, compile_cache, preempt_at="5:SIGKILL")
    # Both kill themselves (-9) after step 5, but whichever dies first can take the other down
    # through the coordination service (-6, abort) before its own kill: either may be first.
    assert -9 in codes and set(codes) <= {-9, -6}, outs[0][-3000:] + outs[1][-3000:]
    assert 3 in checkpoint_steps(workdir) and STEPS not in checkpoint_steps(workdir)

    # One process may not resume a 2-process stream: one line, exit 2, nothing deleted.
    before = checkpoint_steps(workdir)
    single = subprocess.run(
        _command(workdir, stl10_sharded),
        env=train_env(compile_cache),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 2, single.stderr[-3000:]
    error = [line for line in single.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "data-iterator state belongs to processes=2" in error[0]
    assert checkpoint_steps(workdir) == before

    codes, outs = _run_two(workdir, stl10_sharded, compile_cache)
    assert codes == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert "resuming from step" in outs[0]
    assert checkpoint_steps(workdir)[-1] == STEPS
    assert_trees_identical(load_state(workdir), load_state(reference))
    assert os.path.exists(os.path.join(workdir, "results.json"))
