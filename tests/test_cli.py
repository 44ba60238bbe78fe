"""The entry points on a user's terminal: our lines only, no library start-up chatter, and a
user's mistake as one `error:` line (exit 2) that nothing precedes."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from training_runs import REPO

from senet_jax import cli, config, inference

# What TensorFlow, absl and orbax printed before ours: the lines a user must not see.
LIBRARY_NOISE = [
    r"oneDNN custom operations",
    r"cpu_feature_guard|This TensorFlow binary is optimized",
    r"All log messages before absl::InitializeLog\(\) is called",
    r"CheckpointManagerOptions\.read_only=True",
    r"Given directory is read only",
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d",  # any absl/glog-style C++ or Python library line
]
OURS = re.compile(r"^(INFO|WARNING|ERROR) |^error: |^skipped ")


def _user_env() -> dict:
    """The environment of a user's shell: no TF_CPP_MIN_LOG_LEVEL (the tests' conftest sets
    one for its own process), so the entry point alone has to keep TensorFlow quiet."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update({"JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO})
    return env


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env=_user_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_no_library_noise(stderr: str) -> None:
    for pattern in LIBRARY_NOISE:
        found = [line for line in stderr.splitlines() if re.search(pattern, line)]
        assert not found, f"library line on the terminal: {found[0]!r}\n{stderr[-3000:]}"


def test_predict_prints_only_our_lines(trained_run, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "photo.png")
    proc = _run("-m", "senet_jax.predict", "--workdir", trained_run, str(tmp_path / "photo.png"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"{tmp_path / 'photo.png'}: ")
    _assert_no_library_noise(proc.stderr)
    assert all(OURS.match(line) for line in proc.stderr.splitlines()), proc.stderr[-3000:]


def test_a_wrong_workdir_is_the_only_line(tmp_path):
    proc = _run("-m", "senet_jax.evaluate", "--workdir", str(tmp_path / "nothing"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"error: {tmp_path / 'nothing'} holds no config.json")
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_train_offline_error_comes_after_no_library_lines(tmp_path):
    """The real STL10 config with an empty data_dir and an unreachable host: train.py opens
    the workdir's checkpoints (read-only) and the dataset before it fails; neither may speak."""
    data_dir = str(tmp_path / "tfds")
    proc = _run(
        "train.py",
        f"--config={os.path.join(REPO, 'configs', 'stl10.py')}",
        f"--workdir={tmp_path / 'run'}",
        f"--config.data.data_dir={data_dir}",
        "--config.data.stl10_url=http://127.0.0.1:9/stl10_binary.tar.gz",
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert [line for line in proc.stderr.splitlines() if line.startswith("error: ")] == [
        proc.stderr.splitlines()[-1]
    ]
    assert f"'stl10' is not prepared in {data_dir}" in proc.stderr
    assert "Variant folder" not in proc.stderr  # tfds's note, quieted by data/tf_setup.py
    _assert_no_library_noise(proc.stderr)


@pytest.mark.parametrize(
    "error",
    [
        config.ConfigError("config.batch_size: must be a positive integer, got 0"),
        inference.LoadError("W holds no config.json: pass the --workdir of a train.py run"),
    ],
)
def test_a_user_error_is_one_line_and_exit_2(error, capsys):
    def body() -> int:
        raise error

    assert cli.main_with_errors(body) == 2
    assert capsys.readouterr().err == f"error: {error}\n"


def test_any_other_error_is_a_traceback():
    def body() -> int:
        raise KeyError("a bug of ours")

    with pytest.raises(KeyError):
        cli.main_with_errors(body)


NATIVE_START_UP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1.5    7 port.cc:153] oneDNN custom operations are on.\n"
    "W0000 00:00:1.6    7 some.cc:1] a warning\n"
    "E0000 00:00:1.7    7 other.cc:2] an error\n"
    "a line that is no absl record\n"
)


@pytest.mark.parametrize(
    "min_level, kept",
    [
        (0, NATIVE_START_UP.splitlines()),
        (1, [line for line in NATIVE_START_UP.splitlines() if "oneDNN" not in line]),
        (2, NATIVE_START_UP.splitlines()[3:]),
        (3, NATIVE_START_UP.splitlines()[4:]),
    ],
)
def test_native_lines_below_the_level_are_dropped_and_others_kept(min_level, kept):
    assert cli.kept_native_lines(NATIVE_START_UP, min_level).splitlines() == kept


def _noisy_module(tmp_path, monkeypatch, name: str, *, fails: bool = False) -> None:
    """A module that writes absl-style records to file descriptor 2 when imported, as
    TensorFlow's C++ start-up does (Python's sys.stderr is not involved)."""
    body = f"import os\nos.write(2, {NATIVE_START_UP.encode()!r})\n"
    if fails:
        body += "raise ImportError('broken on import')\n"
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_the_first_import_of_the_module_shows_only_lines_at_the_level(tmp_path, monkeypatch, capfd):
    import importlib.machinery
    import importlib.util

    _noisy_module(tmp_path, monkeypatch, "noisy_native_module")
    hook = cli.QuietFirstImport("noisy_native_module", min_level=2)
    monkeypatch.setattr(sys, "meta_path", [hook, *sys.meta_path])
    assert importlib.util.find_spec("noisy_native_module") is not None  # a probe, no import
    assert hook in sys.meta_path
    module = importlib.import_module("noisy_native_module")
    try:
        err = capfd.readouterr().err
        assert err.splitlines() == NATIVE_START_UP.splitlines()[3:]
        assert hook not in sys.meta_path  # once only
        assert isinstance(module.__loader__, importlib.machinery.SourceFileLoader)
        assert module.__spec__.loader is module.__loader__
    finally:
        del sys.modules["noisy_native_module"]


def test_a_failing_import_gives_stderr_back_with_its_error(tmp_path, monkeypatch, capfd):
    _noisy_module(tmp_path, monkeypatch, "broken_native_module", fails=True)
    hook = cli.QuietFirstImport("broken_native_module", min_level=2)
    monkeypatch.setattr(sys, "meta_path", [hook, *sys.meta_path])
    with pytest.raises(ImportError, match="broken on import"):
        importlib.import_module("broken_native_module")
    os.write(2, b"written after the import\n")
    err = capfd.readouterr().err
    assert err.splitlines() == [*NATIVE_START_UP.splitlines()[3:], "written after the import"]
