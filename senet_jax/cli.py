"""What every entry point (train.py and `python -m senet_jax.<command>`) shares: a terminal
that shows our lines only, the run flags, and one `error: ...` line (exit 2) instead of a
traceback for a user's mistake.

Import this module before anything that may load TensorFlow: its C++ start-up lines (the
oneDNN notice, the CPU feature guard, absl's pre-init warning) are decided once, from the
environment, when TensorFlow loads.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator

# absl/glog line heads ("I0000 00:00:...") by severity, the scale of TF_CPP_MIN_LOG_LEVEL.
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_NATIVE_LINE = re.compile(r"^([IWEF])\d{4} ")
_ABSL_PRE_INIT = "All log messages before absl::InitializeLog() is called"


def quiet_native_logs() -> None:
    """TensorFlow's and XLA's C++ logs at errors only (a user's own setting is kept).

    TensorFlow 2.21 writes its import-time notices (oneDNN on Intel CPUs) through absl before
    it reads TF_CPP_MIN_LOG_LEVEL, so its first import is also filtered by that level here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or any(isinstance(f, QuietFirstImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, QuietFirstImport("tensorflow", native_log_level()))


def native_log_level() -> int:
    """TF_CPP_MIN_LOG_LEVEL as a number (0, everything, when unset or unreadable)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def kept_native_lines(text: str, min_level: int) -> str:
    """The lines of native stderr output at or above `min_level`; lines that are not absl or
    glog records (Python warnings, tracebacks) are always kept."""
    kept = []
    for line in text.splitlines(keepends=True):
        head = _NATIVE_LINE.match(line)
        if head and _SEVERITY[head.group(1)] < min_level:
            continue
        if _ABSL_PRE_INIT in line and min_level > _SEVERITY["W"]:  # a warning itself
            continue
        kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def native_stderr_filtered(min_level: int) -> Iterator[None]:
    """Captures file descriptor 2 (where C++ code writes) for the block, then writes back
    what `kept_native_lines` keeps, so nothing but the filtered records is lost."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to capture: nothing to filter either
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            sys.stderr.write(kept_native_lines(capture.read().decode(errors="replace"), min_level))
            sys.stderr.flush()


class QuietFirstImport(importlib.abc.MetaPathFinder):
    """An import hook that runs the first import of one top-level module under
    `native_stderr_filtered`, wherever in the code (ours, tfds, clu, jax2tf) it happens, and
    then removes itself. A probe (`importlib.util.find_spec`) without an import leaves it in
    place; the module keeps its own spec and loader."""

    def __init__(self, name: str, min_level: int):
        self.name, self.min_level = name, min_level
        self._finding = False

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _FilteredLoader(spec.loader, self)
        return spec

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


class _FilteredLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, hook: QuietFirstImport):
        self.loader, self.hook = loader, hook

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.hook.remove()
        module.__spec__.loader = module.__loader__ = self.loader
        with native_stderr_filtered(self.hook.min_level):
            self.loader.exec_module(module)


quiet_native_logs()  # at import: entry points import this module first


def run_parser(description: str, *, pretrained: bool = False) -> argparse.ArgumentParser:
    """A parser with --workdir and --checkpoint (argparse exits 2 on a usage error); with
    `pretrained`, --model (a model directory or timm:NAME) may stand in for --workdir."""
    parser = argparse.ArgumentParser(description=description)
    source = parser.add_mutually_exclusive_group(required=True) if pretrained else parser
    source.add_argument("--workdir", required=not pretrained, help="the workdir of a train.py run")
    if pretrained:
        source.add_argument(
            "--model",
            help="pretrained weights instead of a run: timm:NAME[.TAG] (from the Hugging Face "
            "hub) or a model directory (python -m senet_jax.weights)",
        )
    parser.add_argument(
        "--checkpoint",
        default="best",
        help="best (by the recorded metric; latest when none recorded it), latest, or a step",
    )
    return parser


def set_up_logging(*, timestamps: bool = False) -> None:
    """Our own log lines on stderr at info (with the time for long runs); library chatter
    (absl, orbax, tfds, clu) at warnings only, the known noise removed where it starts."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    ours = logging.getLogger("senet_jax")
    if not ours.handlers:
        handler = logging.StreamHandler(sys.stderr)
        form = (
            "%(asctime)s %(levelname)s %(message)s" if timestamps else "%(levelname)s %(message)s"
        )
        handler.setFormatter(logging.Formatter(form, "%H:%M:%S"))
        ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False


def user_errors() -> tuple[type[Exception], ...]:
    """What a command reports in one line (exit 2) rather than as a traceback: bad config,
    workdir, checkpoint, split, dataset or weights, and a run that diverged."""
    from senet_jax import checkpointing, config, config_file, hub, inference, trainer, weights
    from senet_jax.data import DatasetUnavailableError, Stl10ArchiveError
    from senet_jax.data.download import DownloadError
    from senet_jax.data.file_stream import StreamError
    from senet_jax.data.folder import FolderDatasetError

    return (
        config.ConfigError,
        config_file.ConfigFileError,
        checkpointing.IncompatibleCheckpointError,
        inference.LoadError,
        inference.SplitError,
        DatasetUnavailableError,
        Stl10ArchiveError,
        DownloadError,
        FolderDatasetError,
        StreamError,
        weights.InitFromError,
        hub.HubError,
        trainer.TrainingDivergedError,
    )


def main_with_errors(body: Callable[[], int], extra_errors: tuple = ()) -> int:
    """Runs a command's body; a user error is one `error: ...` line on stderr and exit 2."""
    try:
        return body()
    except user_errors() + tuple(extra_errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
