"""The sweep: grid, names, resumption, bad input, and the statistics it reports.

Runs use a nested test config written here and either an injected run_fn or a small
stand-in for train.py (the real one is exercised by test_train.py), so this file takes
seconds and does not depend on configs/stl10.py's layout.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from senet_jax import config_fields, config_file, sweep

NESTED_CONFIG = """
from __future__ import annotations

import ml_collections
from ml_collections.config_dict import placeholder


def get_config():
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict()
    c.model.name = "se_mobilenet_v1"
    c.model.width_multiplier = 1.0
    c.model.stem_strides = 1
    c.model.dropout_rate = 0.2
    c.model.se = ml_collections.ConfigDict()
    c.model.se.reduction = 16
    c.model.se.squeeze = "avg"
    c.model.se.gate = "sigmoid"
    c.model.se.blocks = tuple(range(1, 14))
    c.data = ml_collections.ConfigDict()
    c.data.dataset = "stl10"
    c.data.stl10_archive = placeholder(str)
    c.data.flip = True
    c.optim = ml_collections.ConfigDict()
    c.optim.learning_rate = 0.1
    c.batch_size = 128
    c.num_epochs = 600
    c.seed = 0
    c.half_precision = False
    return c
"""

# Stands in for train.py: takes the same flags, counts its calls, and writes results.json
# with an accuracy that depends on the settings and the seed. It fails (exit 3) for a seed
# listed in FAKE_TRAIN_FAIL_SEEDS, the way a crashed or killed run leaves no results.json.
FAKE_TRAIN = """
import json, os, sys

args = dict(a.split("=", 1) for a in sys.argv[1:] if a.startswith("--config.") and "=" in a)
argv = sys.argv[1:]
workdir = argv[argv.index("--workdir") + 1]
with open(os.environ["FAKE_TRAIN_CALLS"], "a") as f:
    f.write(workdir + "\\n")
seed = int(args["--config.seed"])
print("training seed", seed)
if str(seed) in os.environ.get("FAKE_TRAIN_FAIL_SEEDS", "").split(","):
    print("crashed", file=sys.stderr)
    sys.exit(3)
acc = 0.5 + 0.01 * seed
if args.get("--config.model.name") == "se_mobilenet_v1":
    acc += 0.02 + 0.001 * seed
acc += 0.0001 * int(args.get("--config.model.se.reduction", "0"))
os.makedirs(workdir, exist_ok=True)
with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"test_accuracy": acc, "test_loss": 1.0, "test_examples": 8000}, f)
"""


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "nested_config.py"
    path.write_text(NESTED_CONFIG)
    return str(path)


@pytest.fixture
def fake_train(tmp_path, monkeypatch):
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    monkeypatch.setenv("FAKE_TRAIN_CALLS", str(calls))
    monkeypatch.delenv("FAKE_TRAIN_FAIL_SEEDS", raising=False)
    return str(script), calls


def call_count(calls) -> int:
    return len(calls.read_text().splitlines())


# ---------------------------------------------------------------- statistics


def test_t_interval_matches_hand_computation_and_scipy():
    values = [0.80, 0.82, 0.84]
    got = sweep.t_interval(values)
    # mean 0.82; deviations -0.02, 0, 0.02 -> sample variance 0.0008/2 = 0.0004, std 0.02
    assert got.n == 3
    assert got.mean == pytest.approx(0.82)
    assert got.std == pytest.approx(0.02)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t_{0.975, 2}
    assert (got.low, got.high) == pytest.approx((0.82 - half, 0.82 + half))
    assert np.std(values, ddof=1) == pytest.approx(got.std)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (got.low, got.high) == pytest.approx((low, high))


def test_t_interval_degenerate_sizes():
    assert sweep.t_interval([]).n == 0 and math.isnan(sweep.t_interval([]).mean)
    one = sweep.t_interval([0.7])
    assert one.mean == 0.7 and math.isnan(one.std) and math.isnan(one.low)


def test_paired_difference_uses_only_seeds_present_in_both():
    base = (("model.name", "mobilenet_v1"),)
    se = (("model.name", "se_mobilenet_v1"),)
    results = {
        base: {0: 0.60, 1: 0.70, 2: 0.65},
        se: {0: 0.62, 1: 0.73, 3: 0.99},  # seed 2 missing, seed 3 has no partner
    }
    rows = sweep.summarize([base, se], results, [0, 1, 2, 3], baseline=base)
    base_row, se_row = rows
    assert base_row.is_baseline and base_row.seeds == (0, 1, 2) and base_row.missing == (3,)
    assert se_row.seeds == (0, 1, 3) and se_row.missing == (2,)
    # differences on seeds 0 and 1: 0.02 and 0.03 -> mean 0.025, std 0.00707, t_{0.975,1}=12.706
    d = se_row.diff
    assert d.n == 2
    assert d.mean == pytest.approx(0.025)
    assert d.std == pytest.approx(math.sqrt(0.00005))
    half = 12.706204736174707 * math.sqrt(0.00005) / math.sqrt(2)
    assert (d.low, d.high) == pytest.approx((0.025 - half, 0.025 + half))
    assert se_row.accuracy.mean == pytest.approx(np.mean([0.62, 0.73, 0.99]))
    # the paired interval is not the difference of the two unpaired means
    assert d.mean != pytest.approx(se_row.accuracy.mean - base_row.accuracy.mean)


def test_summary_files(tmp_path):
    a, b = (("model.se.reduction", 8),), (("model.se.reduction", 16),)
    rows = sweep.summarize([a, b], {a: {0: 0.5, 1: 0.6}, b: {0: 0.55}}, [0, 1], baseline=b)
    table = sweep.write_summary(rows, str(tmp_path))
    assert "model.se.reduction=16 (baseline)" in table
    assert "| 55.00 |" in table  # mean of the baseline's one run, in percent
    assert (tmp_path / "summary.md").read_text() == table
    assert (tmp_path / "summary.png").stat().st_size > 0
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["setting", "model.se.reduction", "n"]
    first = dict(zip(header, lines[1].split(",")))
    assert first["n"] == "2" and float(first["mean"]) == pytest.approx(0.55)
    assert first["diff_n"] == "1" and float(first["diff_mean"]) == pytest.approx(-0.05)
    assert first["missing"] == ""


def test_costs_average_wall_time_and_img_s_and_keep_the_largest_peak_memory(tmp_path):
    a, b = (("model.name", "a"),), (("model.name", "b"),)
    recorded = {
        (a, 0): {"wall_seconds": 600, "images_per_second": 100, "peak_host_memory_bytes": 2e9},
        (a, 1): {"wall_seconds": 1200, "images_per_second": 50, "peak_host_memory_bytes": 3e9},
        (b, 0): {"test_accuracy": 0.5},  # written before results.json recorded its cost
    }
    runs = []
    for (setting, seed), result in recorded.items():
        workdir = tmp_path / f"{setting[0][1]}{seed}"
        workdir.mkdir()
        (workdir / "results.json").write_text(json.dumps({"test_accuracy": 0.5, **result}))
        runs.append(sweep.Run(setting, seed, workdir.name, str(workdir), ()))
    costs = sweep.collect_costs(runs)
    assert set(costs) == {a}
    assert costs[a] == sweep.Cost(900.0, 75.0, 3e9)
    rows = sweep.summarize([a, b], sweep.collect(runs), [0, 1], costs=costs)
    table = sweep.markdown_table(rows)
    assert "| wall (min) | train img/s | peak RSS (GB) |" in table
    assert "| 15.0 | 75 | 3.00 |" in table and "| n/a | n/a | n/a |" in table
    lines = sweep.csv_text(rows).splitlines()
    first = dict(zip(lines[0].split(","), lines[1].split(",")))
    assert float(first["peak_host_memory_bytes_max"]) == 3e9


def test_pairs_split_across_machines_are_named_under_the_table(tmp_path):
    base, se = (("model.name", "mobilenet_v1"),), (("model.name", "se_mobilenet_v1"),)
    amd, intel = "AMD EPYC 7B13", "Intel(R) Xeon(R) Processor"
    ran_on = {(base, 0): amd, (se, 0): amd, (base, 1): amd, (se, 1): intel, (se, 2): intel}
    runs = []
    for (setting, seed), cpu in ran_on.items():
        workdir = tmp_path / f"{setting[0][1]}{seed}"
        workdir.mkdir()
        result = {"test_accuracy": 0.5, "cpu": cpu, "device_kind": "cpu"}
        (workdir / "results.json").write_text(json.dumps(result))
        runs.append(sweep.Run(setting, seed, workdir.name, str(workdir), ()))
    machines = sweep.collect_machines(runs)
    notes = sweep.machine_notes(machines, baseline=base)
    assert notes[0] == f"The runs span 2 machines: {amd} (3 runs); {intel} (2 runs)."
    assert notes[1].endswith(": model.name=se_mobilenet_v1 seed 1.")  # seed 2 has no pair
    rows = sweep.summarize([base, se], sweep.collect(runs), [0, 1, 2], baseline=base)
    summary = sweep.write_summary(rows, str(tmp_path / "w"), notes)
    assert summary.endswith(f"- {notes[0]}\n- {notes[1]}\n")
    assert (tmp_path / "w" / "summary.md").read_text() == summary
    one_machine = {key: amd for key in machines}
    assert sweep.machine_notes(one_machine, baseline=base) == []


# ---------------------------------------------------------------- grid and names


def test_grid_expansion_and_run_names(config_path, tmp_path):
    config = config_file.load(config_path)
    axes = sweep.parse_sets(
        ["model.name=mobilenet_v1,se_mobilenet_v1", "model.se.reduction=4,16"], config
    )
    settings = sweep.expand_grid(axes)
    assert settings == [
        (("model.name", "mobilenet_v1"), ("model.se.reduction", 4)),
        (("model.name", "mobilenet_v1"), ("model.se.reduction", 16)),
        (("model.name", "se_mobilenet_v1"), ("model.se.reduction", 4)),
        (("model.name", "se_mobilenet_v1"), ("model.se.reduction", 16)),
    ]
    runs = sweep.plan_runs(config_path, settings, [0, 1], str(tmp_path / "w"), "t.py")
    assert len(runs) == 8
    assert runs[0].name == "model.name=mobilenet_v1/model.se.reduction=4/seed=0"
    assert runs[0].workdir == str(tmp_path / "w" / runs[0].name)
    assert runs[0].command[1:] == (
        "t.py",
        "--config",
        config_path,
        "--workdir",
        runs[0].workdir,
        "--config.model.name=mobilenet_v1",
        "--config.model.se.reduction=4",
        "--config.seed=0",
    )
    again = sweep.plan_runs(config_path, settings, [0, 1], str(tmp_path / "w"), "t.py")
    assert [r.name for r in again] == [r.name for r in runs]  # stable


def test_values_take_the_field_types(config_path):
    config = config_file.load(config_path)
    axes = dict(
        sweep.parse_sets(
            [
                "optim.learning_rate=0.1,1",
                "half_precision=true,False",
                "model.se.blocks=(),(1,2,3),(12,13),(4,)",
                "data.stl10_archive=/a/b.tar.gz",
            ],
            config,
        )
    )
    assert axes["optim.learning_rate"] == [0.1, 1.0]
    assert all(isinstance(v, float) for v in axes["optim.learning_rate"])
    assert axes["half_precision"] == [True, False]
    assert axes["model.se.blocks"] == [(), (1, 2, 3), (12, 13), (4,)]
    assert axes["data.stl10_archive"] == ["/a/b.tar.gz"]
    names = [sweep.setting_name(((f, v),)) for f, v in [("model.se.blocks", (1, 2, 3))]]
    assert names == ["model.se.blocks=1_2_3"]
    assert sweep.setting_name((("model.se.blocks", ()),)) == "model.se.blocks=none"
    assert sweep.format_value((4,)) == "(4,)" and sweep.format_value(()) == "()"


# ---------------------------------------------------------------- the command line


def run_main(capsys, *args, run_fn=sweep.run_subprocess):
    code = sweep.main(list(args), run_fn=run_fn)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_print_commands_prints_one_line_per_run_and_runs_nothing(
    config_path, fake_train, tmp_path, capsys
):
    script, calls = fake_train
    work = tmp_path / "w"

    def no_run(*_):
        raise AssertionError("--print-commands ran something")

    code, out, err = run_main(
        capsys,
        "--config", config_path,
        "--set", "model.name=mobilenet_v1,se_mobilenet_v1",
        "--set", "model.se.blocks=(1,2,3),(12,13)",
        "--seeds", "0,1,2",
        "--workdir", str(work),
        "--train-script", script,
        "--print-commands",
        "--", "--config.num_epochs=5",
        run_fn=no_run,
    )  # fmt: skip
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 2 * 2 * 3
    first = shlex.split(lines[0])
    assert first[0] == "python"
    assert os.path.abspath(first[1]) == script  # relative when under the cwd
    assert first[2:4] == ["--config", config_path]
    assert "--config.model.se.blocks=(1,2,3)" in first
    assert first[-2:] == ["--config.seed=0", "--config.num_epochs=5"]
    assert not work.exists() and call_count(calls) == 0


def test_sweep_end_to_end_with_a_train_script(config_path, fake_train, tmp_path, capsys):
    """Through a real subprocess: output goes to each run's log, results to the summary."""
    script, calls = fake_train
    work = tmp_path / "w"
    code, out, err = run_main(
        capsys,
        "--config", config_path,
        "--set", "model.name=mobilenet_v1,se_mobilenet_v1",
        "--seeds", "0,1,2",
        "--workdir", str(work),
        "--baseline", "model.name=mobilenet_v1",
        "--train-script", script,
    )  # fmt: skip
    assert code == 0, err
    assert call_count(calls) == 6
    log = work / "model.name=se_mobilenet_v1" / "seed=2" / "train.log"
    assert "training seed 2" in log.read_text()
    assert "[model.name=se_mobilenet_v1/seed=2] training seed 2" in out
    csv_rows = (work / "summary.csv").read_text().splitlines()
    row = dict(zip(csv_rows[0].split(","), csv_rows[2].split(",")))
    # fake accuracies: base 0.5 + 0.01 s; SE adds 0.02 + 0.001 s -> differences 0.020, 0.021, 0.022
    assert float(row["diff_mean"]) == pytest.approx(0.021)
    assert float(row["diff_std"]) == pytest.approx(0.001)
    assert (work / "summary.png").exists()
    assert "| model.name=se_mobilenet_v1 | 3 |" in out


def test_failed_run_is_reported_and_a_rerun_redoes_only_unfinished_runs(
    config_path, fake_train, tmp_path, capsys, monkeypatch
):
    script, calls = fake_train
    work = tmp_path / "w"
    args = (
        "--config", config_path,
        "--set", "model.se.reduction=4,16",
        "--seeds", "0,1,2",
        "--workdir", str(work),
        "--baseline", "model.se.reduction=16",
        "--train-script", script,
    )  # fmt: skip
    monkeypatch.setenv("FAKE_TRAIN_FAIL_SEEDS", "1")
    code, out, err = run_main(capsys, *args)
    assert code == 1
    assert call_count(calls) == 6  # the sweep went on after the first failure
    failed = [line for line in err.splitlines() if line.startswith("failed:")]
    assert failed == [
        f"failed: model.se.reduction={r}/seed=1: exit status 3, "
        f"log {work}/model.se.reduction={r}/seed=1/train.log"
        for r in (4, 16)
    ]
    assert "| model.se.reduction=4 | 2 |" in out  # what is present is still summarised
    assert "| 1 |" in out  # missing seed column

    monkeypatch.delenv("FAKE_TRAIN_FAIL_SEEDS")
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    assert call_count(calls) == 8  # only the two failed runs ran again
    assert out.count("done before, skipped") == 4
    assert "| model.se.reduction=4 | 3 |" in out


def test_an_interrupted_sweep_continues_where_it_stopped(config_path, tmp_path, capsys):
    """Ctrl-C in the third run; the rerun skips the two finished ones and redoes the third."""
    calls = []

    def fake_run(command, log_path, prefix):
        calls.append(command)
        workdir = command[command.index("--workdir") + 1]
        if len(calls) == 3:
            raise KeyboardInterrupt
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump({"test_accuracy": 0.5, "test_loss": 1.0, "test_examples": 1}, f)
        return 0

    args = (
        "--config", config_path,
        "--set", "model.se.gate=sigmoid,tanh",
        "--seeds", "0,1",
        "--workdir", str(tmp_path / "w"),
        "--train-script", __file__,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        sweep.main(list(args), run_fn=fake_run)
    assert len(calls) == 3
    code, out, _ = run_main(capsys, *args, run_fn=fake_run)
    assert code == 0
    assert len(calls) == 5  # the interrupted run and the one never started
    assert calls[3] == calls[2]  # the same command: train.py resumes its checkpoint


def test_summarize_only_reads_what_is_there(config_path, tmp_path, capsys):
    """--summarize: for runs done elsewhere (e.g. from --print-commands on a cluster)."""
    work = tmp_path / "w"
    done = work / "model.se.squeeze=max" / "seed=1"
    done.mkdir(parents=True)
    (done / "results.json").write_text('{"test_accuracy": 0.25}')

    def no_run(*_):
        raise AssertionError("--summarize ran something")

    code, out, _ = run_main(
        capsys,
        "--config", config_path,
        "--set", "model.se.squeeze=avg,max",
        "--seeds", "0,1",
        "--workdir", str(work),
        "--train-script", __file__,
        "--summarize",
        run_fn=no_run,
    )  # fmt: skip
    assert code == 0
    assert "| model.se.squeeze=avg | 0 | n/a |" in out
    assert "| model.se.squeeze=max | 1 | 25.00 | n/a | n/a | 0 |" in out
    assert (work / "summary.md").exists()


@pytest.mark.parametrize(
    "sets, extra, message",
    [
        (["model.se.reductio=4,8"], [], "error: --set: config.model.se.reductio is not a config "
         "field; did you mean config.model.se.reduction?"),
        (["model.se.reduction=4,eight"], [], "error: model.se.reduction=eight: not a valid int"),
        (["model.se.blocks=all"], [], "error: model.se.blocks=all: not a valid tuple"),
        (["model.se.reduction=4,4"], [], "error: --set model.se.reduction: a value is repeated"),
        (["model.se.reduction"], [], "error: --set model.se.reduction: use FIELD=VALUE"),
        (["seed=1,2"], [], "error: --set seed: use --seeds"),
        (["model.se.reduction=4"], ["--seeds", "0,x"], "error: --seeds 0,x: use comma-separated"),
        (["model.se.reduction=4"], ["--", "--config.num_epoch=3"],
         "error: after --: config.num_epoch is not a config field; did you mean "
         "config.num_epochs?"),
    ],
)  # fmt: skip
def test_bad_input_is_one_error_line_and_exit_2(
    config_path, tmp_path, capsys, sets, extra, message
):
    def no_run(*_):
        raise AssertionError("ran despite bad input")

    args = ["--config", config_path, "--workdir", str(tmp_path / "w"), "--train-script", __file__]
    for s in sets:
        args += ["--set", s]
    code, out, err = run_main(capsys, *args, *extra, run_fn=no_run)
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(message), err
    assert out == "" and not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    "baselines, message",
    [
        (["model.name=resnet50"], "error: --baseline model.name=resnet50: resnet50 is not in "
         "the grid; model.name takes mobilenet_v1, se_mobilenet_v1"),
        (["model.se.gate=tanh"], "error: --baseline model.se.gate=tanh: model.se.gate is not "
         "swept"),
        (["model.nam=mobilenet_v1"], "error: --baseline: config.model.nam is not a config field; "
         "did you mean config.model.name?"),
        (["model.name=mobilenet_v1"], "error: --baseline names no value of model.se.reduction"),
    ],
)  # fmt: skip
def test_baseline_must_be_a_setting_of_the_grid(config_path, tmp_path, capsys, baselines, message):
    args = [
        "--config", config_path,
        "--workdir", str(tmp_path / "w"),
        "--set", "model.name=mobilenet_v1,se_mobilenet_v1",
        "--train-script", __file__,
    ]  # fmt: skip
    if "model.se.reduction" in message:
        args += ["--set", "model.se.reduction=8,16"]
    for b in baselines:
        args += ["--baseline", b]
    code, out, err = run_main(capsys, *args)
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(message), err


def test_baseline_over_two_fields(config_path, tmp_path, capsys):
    args = [
        "--config", config_path,
        "--workdir", str(tmp_path / "w"),
        "--set", "model.name=mobilenet_v1,se_mobilenet_v1",
        "--set", "model.se.reduction=8,16",
        "--baseline", "model.se.reduction=16",
        "--baseline", "model.name=mobilenet_v1",
        "--train-script", __file__,
        "--print-commands",
    ]  # fmt: skip
    code, out, err = run_main(capsys, *args)
    assert code == 0 and len(out.splitlines()) == 12


@pytest.mark.parametrize(
    "sets, extra, message",
    [
        (["ssl.method=none,bogus"], [], "error: ssl.method=bogus: config.ssl.method: must be "
         "one of none, fixmatch, flexmatch, got 'bogus'"),
        (["ssl.method=none,fixmatch"], ["--config.ssl.batch_norm=nope"], "error: "
         "ssl.method=none: config.ssl.batch_norm: must be one of joint, split, strong_apart"),
    ],
)  # fmt: skip
def test_a_bad_value_for_train_py_stops_the_sweep_before_its_first_run(
    tmp_path, capsys, sets, extra, message
):
    """With the project's own train.py, every setting's whole config is validated first, so
    one bad value does not wait until the runs before it have trained."""

    def no_run(*_):
        raise AssertionError("ran despite a bad value")

    args = ["--config", os.path.join(sweep.REPO_ROOT, "configs", "cifar10.py:fixmatch")]
    args += ["--workdir", str(tmp_path / "w"), "--seeds", "0"]
    for s in sets:
        args += ["--set", s]
    code, out, err = run_main(capsys, *args, "--", *extra, run_fn=no_run)
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(message), err
    assert out == "" and not (tmp_path / "w").exists()


def test_module_entry_point_reports_bad_field(config_path, tmp_path):
    """`python -m senet_jax.sweep` itself: exit status 2 and the one line on stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "senet_jax.sweep", "--config", config_path,
         "--set", "model.se.gat=relu", "--workdir", str(tmp_path / "w")],
        capture_output=True, text=True, cwd=sweep.REPO_ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: --set: config.model.se.gat is not a config field; "
        "did you mean config.model.se.gate?\n"
    )


# ---------------------------------------------------------------- the ablation configs

ABLATIONS = [
    "reduction",
    "squeeze",
    "gate",
    "blocks",
    "with_without_se",
    "resnet_placement",
    "resnet_stages",
    "resnet_reduction",
    "attention",
]


def docstring_command(module) -> list[str]:
    """The `python -m senet_jax.sweep ...` line of a module docstring, continuations joined."""
    text = textwrap.dedent(module.__doc__).replace("\\\n", " ")
    line = next(x for x in text.splitlines() if "python -m senet_jax.sweep" in x)
    return shlex.split(line)[3:]


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_configs_define_what_their_sweep_sets(name, tmp_path, capsys):
    """Needs the nested configs/stl10.py (config.model.se...): fails on the flat one."""
    import importlib

    module = importlib.import_module(f"configs.ablations.{name}")
    config = module.get_config()
    assert isinstance(config, sweep.ml_collections.ConfigDict)
    args = docstring_command(module)
    assert args[args.index("--config") + 1] == f"configs/ablations/{name}.py"
    assert args[args.index("--workdir") + 1] == f"runs/ablations/{name}"
    assert "--baseline" in args and "--set" in args
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    fields = config_fields.field_types(config)
    for s in sets:
        assert s.split("=", 1)[0] in fields
    # the whole command validates against the config, planning runs and running none
    args[args.index("--workdir") + 1] = str(tmp_path / name)
    old = os.getcwd()
    os.chdir(sweep.REPO_ROOT)
    try:
        code, out, err = run_main(capsys, *args, "--print-commands")
    finally:
        os.chdir(old)
    assert code == 0, err
    assert len(out.splitlines()) >= 2 * 3
