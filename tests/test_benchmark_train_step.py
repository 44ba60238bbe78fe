"""benchmarks/train_step.py runs the real train step and prints JSON plus the summary line."""

from __future__ import annotations

import json
import math
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


def test_ssl_mode_times_the_semi_supervised_step_and_counts_every_view(capsys):
    tiny = "--width 0.25 --image-size 32 --stem-strides 2 --batch-size 4 --steps 1"
    _load().main(
        [*tiny.split(), "--repeats", "1", "--warmup", "0", "--no-eval"]
        + ["--ssl", "fixmatch", "--unlabelled-ratio", "2"]
    )
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads("\n".join(out[:-1]))
    total, labelled = result["train_images_per_second"], result["train_labelled_images_per_second"]
    assert out[-1] == (
        f"ssl_train_step images_per_second={total} labelled_images_per_second={labelled}"
    )
    assert result["ssl"] == "fixmatch" and result["ssl_ema_decay"] == 0.999
    assert result["labelled_batch_size"] == result["batch_size"] == 4
    assert result["unlabelled_ratio"] == 2 and result["images_per_step"] == 4 * (1 + 2 * 2)
    assert total > labelled > 0
    # Both are rounded to 0.1 img/s: the labelled rate times 1 + 2 mu is the total within that.
    assert labelled * 5 == pytest.approx(total, abs=0.05 * 5 + 0.05)
    assert result["train_images_per_second_runs"] == [total]
    assert math.isfinite(result["final_loss"])


def test_ssl_flexmatch_state_and_batch_fit_the_step():
    """The FlexMatch step runs on the benchmark's state (with its per-image record) and batch."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from senet_jax import steps

    bench = _load()
    flags = "--ssl flexmatch --unlabelled-ratio 3 --image-size 8 --width 0.25"
    config = bench.make_config(bench.parse_args(flags.split()))
    assert config.ssl.method == "flexmatch" and bench.images_per_labelled(config) == 7
    model = steps.create_model(config, 10)
    state = steps.create_train_state(model, optax.sgd(0.1), jax.random.PRNGKey(0), (8, 8, 3))
    rng = np.random.RandomState(0)
    labelled = {"image": jnp.zeros((2, 8, 8, 3)), "label": jnp.zeros((2,), jnp.int32)}
    step, state, batch = bench._ssl_step(config, state, labelled, rng)
    assert batch["unlabelled"]["weak"].shape == batch["unlabelled"]["strong"].shape == (6, 8, 8, 3)
    assert len(set(np.asarray(batch["unlabelled"]["index"]).tolist())) == 6
    assert state.pseudo_record.shape == (bench.NUM_UNLABELLED,)
    new_state, metrics = step(state, batch)
    assert int(new_state.step) == 1 and float(metrics["finite"]) == 1.0


def test_unlabelled_ratio_needs_ssl():
    with pytest.raises(SystemExit):
        _load().parse_args(["--unlabelled-ratio", "3"])
    with pytest.raises(SystemExit):
        _load().parse_args(["--ssl", "fixmatch", "--unlabelled-ratio", "0"])


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
