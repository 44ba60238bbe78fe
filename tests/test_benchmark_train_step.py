"""benchmarks/train_step.py runs the real train step and prints JSON plus the summary line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from benchmark_scripts import BENCHMARKS, load

SCRIPT = BENCHMARKS / "train_step.py"


def _load():
    return load("train_step")


def test_prints_json_and_last_line(capsys):
    _load().main(
        [
            "--batch-size",
            "4",
            "--image-size",
            "32",
            "--width",
            "0.25",
            "--stem-strides",
            "2",
            "--steps",
            "1",
            "--repeats",
            "2",
            "--warmup",
            "0",
        ]
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("train_step images_per_second=")
    result = json.loads("\n".join(out[:-1]))
    assert result["train_images_per_second"] == float(out[-1].split("=")[1]) > 0
    assert result["eval_images_per_second"] > 0 and result["compile_seconds"] > 0
    assert len(result["train_images_per_second_runs"]) == 2
    assert result["depthwise"] in ("grouped", "shift_add", "shift_add_vjp")


@pytest.mark.parametrize("kind", ["eca", "cbam", "ge", "ese"])
def test_attention_flag_sets_the_kind_and_the_config_validates(kind):
    from senet_jax import config as config_lib

    bench = _load()
    config = bench.make_config(bench.parse_args(["--attention", kind, "--image-size", "32"]))
    assert config.model.se.kind == kind
    config_lib.validate(config, device_count=1)
    with pytest.raises(SystemExit):
        bench.parse_args(["--attention", "sk"])


def test_rejects_bad_flags():
    with pytest.raises(SystemExit):
        _load().parse_args(["--steps", "0"])


def test_bad_choice_fails_in_one_line_before_compiling(capsys):
    with pytest.raises(SystemExit) as e:
        _load().main(["--conv", "winograd"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: config.model.conv_implementation: 'winograd' is not known; use one of auto, "
        "matmul, native, onednn (e.g. --config.model.conv_implementation=auto)"
    ]


@pytest.mark.parametrize("script", ["train_step.py", "input_pipeline.py"])
def test_runs_from_the_repository_root_without_pythonpath(script):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--help"],
        cwd=SCRIPT.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout
