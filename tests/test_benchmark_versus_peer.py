"""benchmarks/versus_peer.py alternates the two benchmarks JAX-peer-peer-JAX and reports ratios."""

from __future__ import annotations

import json
import sys

import pytest
from benchmark_scripts import load


def _load():
    return load("versus_peer")


def _printer(train, eval_=None):
    """A command that prints what the benchmarks print: a JSON object, then the summary line."""
    result = {"train_images_per_second": train}
    if eval_ is not None:
        result["eval_images_per_second"] = eval_
    text = json.dumps(result, indent=1) + f"\ntrain_step images_per_second={train}"
    return [sys.executable, "-c", f"print({text!r})"]


def test_cycles_run_abba_and_ratios_come_from_medians():
    vp = _load()
    order = []
    speeds = {"jax": iter([10.0, 14.0, 12.0, 16.0]), "peer": iter([8.0, 8.0, 12.0, 12.0])}

    def fake_run(cmd):
        side = cmd[0]
        order.append(side)
        return {"train": next(speeds[side])}

    lines = []
    runs = vp.run_cycles({"jax": ["jax"], "peer": ["peer"]}, 2, run=fake_run, report=lines.append)
    assert order == ["jax", "peer", "peer", "jax"] * 2
    assert len(lines) == 2 and "jax 10.0 14.0" in lines[0] and "peer 8.0 8.0" in lines[0]
    summary = vp.summarize(runs)
    assert summary["train"]["jax_median"] == 13.0
    assert summary["train"]["peer_median"] == 10.0
    assert summary["train"]["ratio"] == 1.3
    assert summary["train"]["cycle_ratios"] == [1.5, 1.167]
    assert "eval" not in summary


def test_real_processes_are_parsed_with_eval_figures():
    vp = _load()
    cmds = {"jax": _printer(20.5, 70.0), "peer": _printer(19.0, 66.0)}
    summary = vp.summarize(vp.run_cycles(cmds, 1, report=lambda _: None))
    assert summary["train"]["jax_median"] == 20.5 and summary["train"]["peer_median"] == 19.0
    assert summary["eval"]["ratio"] == round(70.0 / 66.0, 3)


def test_a_failing_run_is_named_with_its_last_error_line():
    vp = _load()
    failing = [sys.executable, "-c", "import sys; sys.exit('torch: no such model xyz')"]
    with pytest.raises(vp.RunFailed, match="the peer run .* failed: exit status 1: torch: no such"):
        vp.run_cycles({"jax": _printer(1.0), "peer": failing}, 1, report=lambda _: None)


@pytest.mark.parametrize(
    "stdout", ["", "{not json}", '{"loss": 1.0}', '{"train_images_per_second": null}']
)
def test_output_without_a_figure_is_one_error(stdout):
    vp = _load()
    with pytest.raises(vp.RunFailed, match="no JSON object|no readable images/s"):
        vp.figures(stdout)


def test_both_commands_share_batch_size_steps_and_timm_layout():
    vp = _load()
    a = vp.parse_args(["--model", "se_resnet50", "--batch-size", "8", "--steps", "2"])
    assert a.peer_model == "seresnet50" and vp.timm_name("resnet50") == "resnet50"
    cmds = vp.commands(a)
    for cmd in cmds.values():
        assert cmd[cmd.index("--batch-size") + 1] == "8" and cmd[cmd.index("--steps") + 1] == "2"
        assert "--no-eval" in cmd
    assert "stride_in_1x1=false" in cmds["jax"] and "stem_pool=pad" in cmds["jax"]


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        _load().main(["--cycles", "0"])
    assert e.value.code == 2 and "--cycles must be at least 1" in capsys.readouterr().err
