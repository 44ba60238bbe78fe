"""Train and evaluate a model: python train.py --config configs/stl10.py --workdir runs/x

Any config field can be overridden: --config.batch_size=256 --config.model.se.reduction=8
--config.data.image_size=32. Rerunning the same command resumes from the latest checkpoint.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "workdir", None, "Folder for checkpoints, TensorBoard summaries and results.json."
)
config_flags.DEFINE_config_file(
    "config", None, "A config file, e.g. configs/stl10.py.", lock_config=True
)
flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for multi-process runs off TPU."
)
flags.DEFINE_integer("num_processes", None, "Number of processes in a multi-process run.")
flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")
flags.mark_flags_as_required(["config", "workdir"])


def _quiet_libraries() -> None:
    """Library chatter (orbax, tfds, clu) at warnings only; our own progress at info."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    ours = logging.getLogger("senet_jax")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False


def _check_config_overrides(argv) -> None:
    """An unknown or moved --config.FIELD is one line naming the real field, exit 2.

    ml_collections would stop on it with a long traceback while parsing flags, so the
    config file is loaded here first and the override names are checked against it.
    """
    from senet_jax import config as config_lib

    path = next(
        (a.split("=", 1)[1] for a in argv if a.startswith("--config=")),
        next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"), None),
    )
    if path is None or not os.path.isfile(path.split(":", 1)[0]):
        return  # absl reports the missing or unreadable file itself
    spec = importlib.util.spec_from_file_location("_senet_jax_config", path.split(":", 1)[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        config_lib.check_overrides(module.get_config(), argv)
    except config_lib.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    _quiet_libraries()
    import jax

    from senet_jax.host_memory import reuse_freed_host_memory

    reuse_freed_host_memory()  # before any backend starts: see senet_jax/host_memory.py
    from senet_jax.data.tf_setup import load_tf

    load_tf()  # TensorFlow only feeds data, with the accelerators hidden: they are JAX's
    if FLAGS.coordinator_address:
        if jax.config.jax_platforms in (None, "", "cpu") or jax.config.jax_platforms.startswith(
            "cpu"
        ):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    elif "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):  # a multi-host TPU slice: auto-detected
        jax.distributed.initialize()
    from senet_jax import config as config_lib
    from senet_jax import trainer
    from senet_jax.checkpointing import IncompatibleCheckpointError
    from senet_jax.data import DatasetUnavailableError, Stl10ArchiveError
    from senet_jax.data.download import DownloadError
    from senet_jax.data.file_stream import StreamError
    from senet_jax.data.folder import FolderDatasetError
    from senet_jax.weights import InitFromError

    try:
        trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (
        config_lib.ConfigError,
        IncompatibleCheckpointError,
        DatasetUnavailableError,
        Stl10ArchiveError,
        DownloadError,
        FolderDatasetError,
        InitFromError,
        StreamError,
        trainer.TrainingDivergedError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    _check_config_overrides(sys.argv[1:])
    app.run(main)
