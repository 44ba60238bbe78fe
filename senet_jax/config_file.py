"""Loading a config file as `--config` names it (`path` or `path:argument`), before any flag
parsing: train.py checks its --config.FIELD overrides against it and the sweep plans its runs
from it. A file that cannot give a config is one line (ConfigFileError), not a traceback."""

from __future__ import annotations

import importlib.util
import os
import re
import sys

import ml_collections

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ConfigFileError(ValueError):
    """The --config file is missing, fails to import, or its get_config() gives no config."""


def load(spec: str) -> ml_collections.ConfigDict:
    """get_config() (or get_config(argument)) of the config file `spec` names."""
    path, argument = spec, None
    if not os.path.exists(path) and ":" in spec:
        path, argument = spec.split(":", 1)
    if not os.path.isfile(path):
        raise ConfigFileError(f"--config {spec}: no such file")
    if REPO_ROOT not in sys.path:  # config files import `configs.stl10`
        sys.path.insert(0, REPO_ROOT)
    name = "_senet_jax_config_" + re.sub(r"\W", "_", os.path.abspath(path))
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
        config = module.get_config() if argument is None else module.get_config(argument)
    except Exception as e:  # any failure in the user's file: one line
        message = f"{type(e).__name__}: {e}".splitlines()[0]
        raise ConfigFileError(f"--config {spec}: loading it failed: {message}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigFileError(f"--config {spec}: get_config() returned {type(config).__name__}")
    return config
