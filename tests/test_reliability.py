"""train.py under faults and bad input: exit codes, messages, and no lost or changed work.

Every fault test ends by comparing final parameters with the uninterrupted `reference_run`
bit for bit, so "resumed correctly" means exactly that.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from test_config import tree_hash
from training_runs import (
    REPO,
    TINY_STEPS,
    assert_same_as_reference,
    checkpoint_steps,
    load_state,
    run_train,
    train_command,
    train_env,
)


class Job:
    """train.py in the background, its stderr in a file, so the test can act while it runs."""

    def __init__(self, workdir, cache_dir, log_path, **overrides):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            train_command(workdir, **overrides),
            env=train_env(cache_dir),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def wait_for(self, condition, timeout=300.0, interval=0.001):
        """Polls `condition` until true; fails if the job ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.proc.poll() is not None:
                pytest.fail(
                    f"train.py ended (rc {self.proc.returncode}) before the awaited "
                    f"moment:\n{self.stderr()[-3000:]}"
                )
            time.sleep(interval)
        pytest.fail("timed out waiting for train.py")

    def signal(self, sig) -> float:
        """Sends `sig`, waits for the exit, returns the seconds it took."""
        start = time.perf_counter()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=120)
        self._log.close()
        return time.perf_counter() - start

    def stderr(self) -> str:
        with open(self.log_path) as f:
            return f.read()


def tmp_checkpoints(workdir):
    folder = os.path.join(workdir, "checkpoints")
    try:
        return [n for n in os.listdir(folder) if ".orbax-checkpoint-tmp" in n]
    except FileNotFoundError:
        return []


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# ------------------------------------------------------------------------ bad input via train.py


def _bad_config(tmp_path, reference_run):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("earlier results")
    return (
        str(workdir),
        train_command(str(workdir), optimizer="adam"),
        r"config\.optim\.name: 'adam' is not known.*--config\.optim\.name=",
    )


def _flat_override(tmp_path, reference_run):
    """A field written the pre-sections way: the error names its new place."""
    workdir = str(tmp_path / "run")
    command = train_command(workdir) + ["--config.image_size=32"]
    return workdir, command, r"config\.image_size is now config\.data\.image_size"


def _misspelt_field(tmp_path, reference_run):
    workdir = str(tmp_path / "run")
    command = train_command(workdir) + ["--config.num_epoch=3"]
    return (
        workdir,
        command,
        r"config\.num_epoch is not a config field; did you mean config\.num_epochs\?",
    )


def _flat_config_file(tmp_path, reference_run):
    """A user's own config file in the old flat layout."""
    path = tmp_path / "old_config.py"
    path.write_text(
        "import ml_collections\n\n\ndef get_config():\n"
        "    return ml_collections.ConfigDict(dict(model='se_mobilenet_v1', batch_size=16))\n"
    )
    workdir = str(tmp_path / "run")
    command = [
        sys.executable,
        os.path.join(REPO, "train.py"),
        f"--config={path}",
        f"--workdir={workdir}",
    ]
    return workdir, command, r"config\.model: is missing: this config predates config sections"


def _incompatible_checkpoint(tmp_path, reference_run):
    workdir = str(tmp_path / "run")
    shutil.copytree(reference_run, workdir)
    return (
        workdir,
        train_command(workdir, width_multiplier=0.5),
        r"model\.width_multiplier=0\.25 but the config has config\.model\.width_multiplier=0\.5"
        r".*--config\.model\.width_multiplier=0\.25.*nothing was deleted",
    )


def _missing_dataset(tmp_path, reference_run):
    """The real STL10 config, offline, with an empty data_dir and no archive."""
    workdir, data_dir = str(tmp_path / "run"), str(tmp_path / "tfds")
    command = [
        sys.executable,
        os.path.join(REPO, "train.py"),
        f"--config={os.path.join(REPO, 'configs/stl10.py')}",
        f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}",
    ]
    return (
        workdir,
        command,
        rf"'stl10' is not prepared in {data_dir}.*config\.data\.data_dir"
        r".*config\.data\.stl10_archive",
    )


@pytest.mark.parametrize(
    "case",
    [
        _bad_config,
        _flat_override,
        _misspelt_field,
        _flat_config_file,
        _incompatible_checkpoint,
        _missing_dataset,
    ],
    ids=[
        "unknown_optimizer",
        "flat_override",
        "misspelt_field",
        "flat_config_file",
        "incompatible_checkpoint",
        "dataset_not_offline",
    ],
)
def test_bad_input_exits_2_with_one_line_and_an_untouched_workdir(
    case, tmp_path, reference_run, compile_cache
):
    workdir, command, message = case(tmp_path, reference_run)
    before = tree_hash(workdir)
    start = time.perf_counter()
    proc = subprocess.run(
        command, env=train_env(compile_cache), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and re.search(message, lines[0]), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert tree_hash(workdir) == before
    if not before:
        assert not os.path.exists(workdir)
    assert seconds < 60, (
        seconds
    )  # imports dominate (about 6 s on an idle machine); no data work or compiling
    print(f"{case.__name__}: failed in {seconds:.1f} s")


# ----------------------------------------------------------------------------- faults


def test_sigkill_mid_save_and_mid_step_then_rerun_is_bit_identical(
    reference_run, compile_cache, tmp_path
):
    workdir = str(tmp_path / "killed")
    # 1. kill -9 while a checkpoint (of step 4 or later) is being written
    job = Job(workdir, compile_cache, str(tmp_path / "1.log"))
    job.wait_for(lambda: any(int(n.split(".")[0]) >= 4 for n in tmp_checkpoints(workdir)))
    job.signal(signal.SIGKILL)
    assert job.proc.returncode == -signal.SIGKILL
    first = checkpoint_steps(workdir)
    assert first and first[-1] < TINY_STEPS
    # 2. the same command again; kill -9 while it trains past its first new checkpoint
    job = Job(workdir, compile_cache, str(tmp_path / "2.log"))
    job.wait_for(lambda: checkpoint_steps(workdir)[-1] > first[-1] + 2)
    time.sleep(0.1)
    job.signal(signal.SIGKILL)
    assert job.proc.returncode == -signal.SIGKILL
    assert f"resuming from step {first[-1]}" in job.stderr()
    second = checkpoint_steps(workdir)[-1]
    # 3. the same command runs to the end and matches the uninterrupted run exactly
    proc = run_train(workdir, compile_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming from step {second}" in proc.stderr
    assert_same_as_reference(workdir, reference_run)
    assert tmp_checkpoints(workdir) == []


def test_damaged_latest_checkpoint_is_reported_kept_and_the_previous_one_used(
    reference_run, compile_cache, tmp_path
):
    workdir = str(tmp_path / "damaged")
    shutil.copytree(reference_run, workdir)
    latest, previous = checkpoint_steps(workdir)[-1], checkpoint_steps(workdir)[-2]
    state_dir = os.path.join(workdir, "checkpoints", str(latest), "state")
    files = [os.path.join(d, n) for d, _, names in os.walk(state_dir) for n in names]
    largest = max(files, key=os.path.getsize)
    with open(largest, "r+b") as f:
        f.truncate(os.path.getsize(largest) // 2)
    damaged_bytes = tree_hash(os.path.join(workdir, "checkpoints", str(latest)))

    proc = run_train(workdir, compile_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(
        rf"checkpoint {latest} in .* is damaged: its state is unreadable", proc.stderr
    ), proc.stderr[-3000:]
    assert f"resuming from step {previous}" in proc.stderr
    kept = os.listdir(os.path.join(workdir, "damaged_checkpoints"))
    assert len(kept) == 1 and kept[0].startswith(f"{latest}-")
    assert (
        tree_hash(os.path.join(workdir, "damaged_checkpoints", kept[0])) == damaged_bytes
    )  # kept as it was
    assert_same_as_reference(
        workdir, reference_run
    )  # retrained from `previous`, saved `latest` afresh


def test_external_sigterm_exits_0_fast_then_nan_run_keeps_the_good_checkpoint(
    compile_cache, tmp_path
):
    workdir = str(tmp_path / "preempted")
    job = Job(workdir, compile_cache, str(tmp_path / "term.log"))
    job.wait_for(lambda: 4 in checkpoint_steps(workdir), interval=0.01)
    seconds = job.signal(signal.SIGTERM)
    stderr = job.stderr()
    assert job.proc.returncode == 0, stderr[-3000:]
    stopped = int(re.search(r"preempted at step (\d+)", stderr).group(1))
    assert stopped >= 4 and checkpoint_steps(workdir)[-1] == stopped
    assert seconds < 30, (
        seconds
    )  # measured 4.4-13.7 s on 2 busy cores: the step (and its eval, if due), save, exit
    print(f"SIGTERM to exit: {seconds:.1f} s (stopped at step {stopped})")

    # The next run resumes from it; an absurd learning rate makes it diverge at once.
    saved = tree_hash(os.path.join(workdir, "checkpoints"))
    proc = run_train(workdir, compile_cache, learning_rate=1e30)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"resuming from step {stopped}" in proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr[-3000:]
    diverged = int(re.search(r"NaN/Inf at step (\d+)", lines[0]).group(1))
    assert diverged > stopped
    assert (
        f"last good checkpoint (step {stopped}) is kept" in lines[0]
        and "config.optim.learning_rate" in lines[0]
    )
    assert (
        tree_hash(os.path.join(workdir, "checkpoints")) == saved
    )  # nothing bad saved, nothing deleted
    params = load_state(workdir)["params"]
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))
