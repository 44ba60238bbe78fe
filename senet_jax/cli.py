"""What every entry point (train.py and `python -m senet_jax.<command>`) shares: a terminal
that shows our lines only, the run flags, and one `error: ...` line (exit 2) instead of a
traceback for a user's mistake.

Import this module before anything that may load TensorFlow: its C++ start-up lines (the
oneDNN notice, the CPU feature guard, absl's pre-init warning) are decided once, from the
environment, when TensorFlow loads.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable


def quiet_native_logs() -> None:
    """TensorFlow's and XLA's C++ logs at errors only (a user's own setting is kept)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
