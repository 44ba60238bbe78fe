"""Loading a --config file (`path` or `path:argument`): a file that gives no config is one line."""

from __future__ import annotations

import os

import ml_collections
import pytest

from senet_jax import config_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(tmp_path, body: str) -> str:
    path = tmp_path / "my_config.py"
    path.write_text("import ml_collections\n\n\n" + body)
    return str(path)


def test_a_repository_config_loads_with_its_own_imports():
    config = config_file.load(os.path.join(REPO, "configs", "smoke.py"))
    assert isinstance(config, ml_collections.ConfigDict)
    assert config.model.width_multiplier == 0.25  # smoke.py's change to configs/stl10.py


def test_an_argument_after_a_colon_reaches_get_config(tmp_path):
    path = _write(
        tmp_path,
        "def get_config(size='96'):\n"
        "    return ml_collections.ConfigDict({'image_size': int(size)})\n",
    )
    assert config_file.load(path).image_size == 96
    assert config_file.load(f"{path}:32").image_size == 32


@pytest.mark.parametrize(
    "body, message",
    [
        (None, "no such file"),
        ("def get_config():\n    raise KeyError('oops')\n", "loading it failed: KeyError: 'oops'"),
        ("x = (\n", "loading it failed: SyntaxError"),
        ("def get_config():\n    return {'a': 1}\n", "get_config() returned dict"),
    ],
)
def test_a_file_that_gives_no_config_is_one_line(tmp_path, body, message):
    path = str(tmp_path / "missing.py") if body is None else _write(tmp_path, body)
    with pytest.raises(config_file.ConfigFileError) as e:
        config_file.load(path)
    assert str(e.value).startswith(f"--config {path}: {message}")
    assert "\n" not in str(e.value)
