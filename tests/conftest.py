"""Test session set-up: 8 simulated CPU devices so pmap code really runs on several."""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# The tests, their xdist workers and the train.py processes they start compile the same small
# models over and over, and compiling dominates the suite on a 2-core CPU: one JAX persistent
# cache (JAX's own setting; the compile_cache fixture hands it to the subprocesses) lets each
# program compile once.
XLA_CACHE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), ".pytest_cache", "xla")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", XLA_CACHE_DIR)


import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Stl10Fixture:
    root: str  # holds stl10_binary/ and stl10_binary.tar.gz
    archive: str  # the .tar.gz
    data_dir: str  # tfds data_dir where the real STL10 builder prepared it
    train_images: np.ndarray  # uint8 [N, 96, 96, 3] as generated, before any encoding
    train_labels: np.ndarray  # 0..9
    test_images: np.ndarray
    test_labels: np.ndarray


STL10_TRAIN, STL10_TEST = 60, 44  # 44 test examples: batch sizes that do and do not divide it


@pytest.fixture(scope="session")
def stl10_prepared(tmp_path_factory):
    """A small archive in STL10's official layout, prepared ONCE by tfds, offline."""
    from configs import stl10
    from senet_jax.data import sources, stl10_format

    root = str(tmp_path_factory.mktemp("stl10_archive"))
    archive = stl10_format.write_stl10_archive(root, STL10_TRAIN, STL10_TEST, seed=0)
    config = stl10.get_config()
    config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
    config.data.stl10_archive = archive
    config.data.validation_examples = 0
    sources.get_dataset_info(config.data)
    train_x, train_y = stl10_format.make_split("train", STL10_TRAIN, seed=0)
    test_x, test_y = stl10_format.make_split("test", STL10_TEST, seed=0)
    return Stl10Fixture(root, archive, config.data.data_dir, train_x, train_y, test_x, test_y)


STL10_SHARDS = 3  # files per split of `stl10_sharded`: the streamed path shards by file


@pytest.fixture(scope="session")
def stl10_sharded(tmp_path_factory):
    """The same kind of small STL10-layout archive, prepared in STL10_SHARDS files per split
    (tfds writes one file for a split this small): what the streamed path reads."""
    from senet_jax.data import stl10_format, stl10_prepare
    from senet_jax.data.tf_setup import load_tfds

    root = str(tmp_path_factory.mktemp("stl10_sharded_archive"))
    archive = stl10_format.write_stl10_archive(root, STL10_TRAIN, STL10_TEST, seed=1)
    data_dir = str(tmp_path_factory.mktemp("tfds_sharded"))
    builder = load_tfds().builder("stl10", data_dir=data_dir)
    stl10_prepare.prepare_offline(builder, archive, num_shards=STL10_SHARDS)
    return data_dir


@pytest.fixture(scope="session")
def compile_cache():
    """The persistent XLA cache the tests compile into, for every train.py subprocess."""
    os.makedirs(os.environ["JAX_COMPILATION_CACHE_DIR"], exist_ok=True)
    return os.environ["JAX_COMPILATION_CACHE_DIR"]


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, compile_cache):
    """The tiny job run once, uninterrupted, on 8 CPU devices: the baseline for resume tests."""
    from training_runs import run_train

    workdir = str(tmp_path_factory.mktemp("reference_run"))
    proc = run_train(workdir, compile_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


@pytest.fixture(scope="session")
def trained_run(reference_run, tmp_path_factory):
    """A copy of the finished tiny run for the commands that use a trained model (evaluate,
    predict, export, analyze write under it; the reference run stays as the train tests
    expect). Its config.json still reads the reference run's prepared data, read-only."""
    import shutil

    workdir = str(tmp_path_factory.mktemp("trained_run") / "run")
    shutil.copytree(reference_run, workdir)
    return workdir
