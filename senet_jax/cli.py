"""What the `python -m senet_jax.<command>` entry points share: the run flags, quiet
libraries, and one `error: ...` line (exit 2) instead of a traceback for a user's mistake."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


def set_up_logging() -> None:
    """Our own log lines on stderr at info; library chatter (absl, orbax, tfds) at errors only."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    ours = logging.getLogger("senet_jax")
    if not ours.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False


def main_with_errors(body: Callable[[], int], extra_errors: tuple = ()) -> int:
    """Runs a command's body; a user error (bad workdir, checkpoint, split, ...) is one line."""
    from senet_jax import inference

    try:
        return body()
    except inference.user_errors() + tuple(extra_errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
