"""Paired multi-seed sweeps: a grid of config settings, each trained with the same seeds.

    python -m senet_jax.sweep --config configs/stl10.py \
        --set model.name=mobilenet_v1,se_mobilenet_v1 --seeds 0,1,2 \
        --workdir runs/sweep --baseline model.name=mobilenet_v1 [-- extra train.py flags]

Why paired: on 5,000 images one seed's accuracy moves by about a point from
initialisation and data order alone, as much as many ablations change it. Runs of two
settings that share a seed share that noise in part, so the per-seed difference from the
baseline has a narrower t interval than two independent means do.

Each (setting, seed) trains in its own sub-workdir, one run after another; a sub-workdir
that already holds results.json is skipped, and train.py resumes an interrupted one, so
rerunning the same command continues a killed sweep. Everything is checked before the
first run: a bad field or value is one `error:` line and exit status 2.
"""

from __future__ import annotations

import argparse
import ast
import collections
import copy
import csv
import dataclasses
import io
import itertools
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections

from senet_jax import config_fields, config_file, machine
from senet_jax.config_file import REPO_ROOT

DEFAULT_TRAIN_SCRIPT = os.path.join(REPO_ROOT, "train.py")
RESULTS = "results.json"
COST_FIELDS = ("wall_seconds", "images_per_second", "peak_host_memory_bytes")
LOG = "train.log"
METRIC = "test_accuracy"

Setting = tuple[tuple[str, Any], ...]  # ((field, value), ...) in --set order
# run_fn(command, log_path, prefix) -> exit status; the default streams a subprocess.
RunFn = Callable[[Sequence[str], str, str], int]


class SweepError(ValueError):
    """Bad sweep input, found before any run starts."""


# ---------------------------------------------------------------- the config and its fields


def check_field(field: str, config: ml_collections.ConfigDict, where: str) -> None:
    """SweepError naming `where` the unknown field came from, and the real one it means."""
    message = config_fields.unknown_field_message(config, field)
    if message:
        raise SweepError(f"{where}: {message}")


def split_values(text: str) -> list[str]:
    """Splits at commas outside brackets and quotes, so `(4,5),(6,7)` is two tuples."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_value(field: str, text: str, kind: type) -> Any:
    """Parses a command-line value to the field's type, as train.py's config flags will."""
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError("not true or false")
            return text.lower() == "true"
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
        if kind in (tuple, list):
            value = ast.literal_eval(text)
            return tuple(value) if isinstance(value, (tuple, list)) else (value,)
        try:  # untyped (None-valued) fields: a Python literal, else the string
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    except (ValueError, SyntaxError):
        example = {bool: "True", int: "16", float: "0.1", tuple: "(1,2)", list: "(1,2)"}
        hint = f", e.g. {example[kind]}" if kind in example else ""
        raise SweepError(
            f"{field}={text}: not a valid {kind.__name__}; the field holds a {kind.__name__}{hint}"
        ) from None


def format_value(value: Any) -> str:
    """The command-line text of a value (tuples without spaces, so names stay short)."""
    if isinstance(value, tuple):
        inner = ",".join(format_value(v) if isinstance(v, tuple) else repr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return str(value)


def _set_path(config: ml_collections.ConfigDict, field: str, value: Any) -> None:
    *parents, leaf = field.split(".")
    for key in parents:
        config = config[key]
    config[leaf] = value


def parse_sets(
    specs: Sequence[str], config: ml_collections.ConfigDict
) -> list[tuple[str, list[Any]]]:
    """`FIELD=V1,V2,...` strings -> [(field, [typed values])], each field checked and typed."""
    fields = config_fields.field_types(config)
    axes, seen = [], set()
    for spec in specs:
        field, sep, values = spec.partition("=")
        field = field.strip()
        if not sep or not values.strip():
            raise SweepError(f"--set {spec}: use FIELD=VALUE[,VALUE...]")
        check_field(field, config, "--set")
        if field in seen:
            raise SweepError(f"--set {field}: given twice; list all its values in one --set")
        seen.add(field)
        typed = [parse_value(field, v, fields[field]) for v in split_values(values)]
        for value in typed:  # the config's own type check, as train.py will apply it
            try:
                _set_path(copy.deepcopy(config), field, value)
            except (TypeError, ValueError) as e:
                raise SweepError(f"--set {field}={format_value(value)}: {e}") from None
        if len({format_value(v) for v in typed}) != len(typed):
            raise SweepError(f"--set {field}: a value is repeated")
        axes.append((field, typed))
    return axes


def parse_baseline(
    specs: Sequence[str], axes: list[tuple[str, list[Any]]], config: ml_collections.ConfigDict
) -> Setting:
    """`FIELD=VALUE` per swept field (one is enough when one field is swept) -> that setting."""
    fields = config_fields.field_types(config)
    swept = dict(axes)
    chosen: dict[str, Any] = {}
    for spec in specs:
        field, sep, text = spec.partition("=")
        field = field.strip()
        if not sep:
            raise SweepError(f"--baseline {spec}: use FIELD=VALUE, one of the --set settings")
        check_field(field, config, "--baseline")
        if field not in swept:
            raise SweepError(
                f"--baseline {spec}: {field} is not swept; use one of the --set fields "
                f"({', '.join(swept)})"
            )
        value = parse_value(field, text.strip(), fields[field])
        if format_value(value) not in {format_value(v) for v in swept[field]}:
            raise SweepError(
                f"--baseline {spec}: {format_value(value)} is not in the grid; "
                f"{field} takes {', '.join(format_value(v) for v in swept[field])}"
            )
        chosen[field] = next(v for v in swept[field] if format_value(v) == format_value(value))
    missing = [f for f in swept if f not in chosen]
    if missing:
        raise SweepError(
            f"--baseline names no value of {', '.join(missing)}: add --baseline FIELD=VALUE "
            f"for each, so the baseline is one setting of the grid"
        )
    return tuple((f, chosen[f]) for f in swept)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SweepError(f"--seeds {text}: use comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise SweepError(f"--seeds {text}: give at least one seed, none twice")
    return seeds


# ---------------------------------------------------------------- the grid and its runs


def expand_grid(axes: list[tuple[str, list[Any]]]) -> list[Setting]:
    """The product of the --set lists, first field varying slowest."""
    fields = [f for f, _ in axes]
    return [tuple(zip(fields, values)) for values in itertools.product(*(v for _, v in axes))]


def _sanitise(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "none"  # () -> none


def setting_name(setting: Setting) -> str:
    """`model.name=mobilenet_v1/model.se.reduction=8`: one folder level per swept field."""
    return "/".join(f"{field}={_sanitise(format_value(value))}" for field, value in setting)


def setting_label(setting: Setting) -> str:
    return " ".join(f"{field}={format_value(value)}" for field, value in setting)


@dataclasses.dataclass(frozen=True)
class Run:
    setting: Setting
    seed: int
    name: str  # relative to the sweep's workdir, e.g. model.name=mobilenet_v1/seed=0
    workdir: str
    command: tuple[str, ...]


def check_settings(
    config: ml_collections.ConfigDict, settings: list[Setting], extra_args: Sequence[str]
) -> None:
    """Validates each setting's whole config as train.py does, so a bad value (say
    ssl.method=bogus) stops the sweep before its first run rather than failing that setting's
    runs after hours of the others."""
    from senet_jax import config as config_lib  # imports JAX: only once the sweep is sure to run

    fields = config_fields.field_types(config)
    extra = []
    for arg in extra_args:
        field, eq, text = arg[len("--config.") :].partition("=")
        if arg.startswith("--config.") and eq and field in fields:
            extra.append((field, parse_value(field, text, fields[field])))
    for setting in settings:
        trial = copy.deepcopy(config)
        for field, value in (*setting, *extra):
            _set_path(trial, field, value)
        try:
            config_lib.validate(trial)
        except config_lib.ConfigError as e:
            raise SweepError(f"{setting_label(setting)}: {e}") from None


def plan_runs(
    config_spec: str,
    settings: list[Setting],
    seeds: list[int],
    workdir: str,
    train_script: str = DEFAULT_TRAIN_SCRIPT,
    extra_args: Sequence[str] = (),
) -> list[Run]:
    names = [setting_name(s) for s in settings]
    if len(set(names)) != len(names):
        raise SweepError("two settings give the same folder name after sanitising; rename a value")
    runs = []
    for setting, name in zip(settings, names):
        for seed in seeds:
            run_name = f"{name}/seed={seed}"
            sub = os.path.join(workdir, run_name)
            overrides = [f"--config.{field}={format_value(value)}" for field, value in setting]
            command = (
                sys.executable,
                train_script,
                "--config",
                config_spec,
                "--workdir",
                sub,
                *overrides,
                f"--config.seed={seed}",
                *extra_args,
            )
            runs.append(Run(setting, seed, run_name, sub, command))
    return runs


def run_subprocess(command: Sequence[str], log_path: str, prefix: str) -> int:
    """Runs one training, appending its output to log_path and echoing it with a prefix."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=env,
        )
        try:
            for line in proc.stdout:
                log.write(line)
                sys.stdout.write(prefix + line)
                sys.stdout.flush()
            return proc.wait()
        except BaseException:  # Ctrl-C: stop the child too; its checkpoints let it resume
            proc.terminate()
            proc.wait()
            raise


def portable(command: Sequence[str]) -> list[str]:
    """For a scheduler: `python` for this interpreter, the script relative to the cwd."""
    python, script, *rest = command
    if python == sys.executable:
        python = "python"
    relative = os.path.relpath(script)
    if not relative.startswith(".."):
        script = relative
    return [python, script, *rest]


@dataclasses.dataclass(frozen=True)
class Failure:
    name: str
    returncode: int
    log: str


def execute(runs: list[Run], run_fn: RunFn = run_subprocess) -> list[Failure]:
    """Runs what has no results.json yet, one after another; returns the failed runs."""
    failures = []
    for i, run in enumerate(runs, 1):
        tag = f"[{i}/{len(runs)}] {run.name}"
        if os.path.exists(os.path.join(run.workdir, RESULTS)):
            print(f"{tag}: done before, skipped", flush=True)
            continue
        os.makedirs(run.workdir, exist_ok=True)
        log = os.path.join(run.workdir, LOG)
        print(f"{tag}: running, log {log}", flush=True)
        code = run_fn(run.command, log, f"[{run.name}] ")
        if code == 0 and not os.path.exists(os.path.join(run.workdir, RESULTS)):
            code = -1  # "succeeded" without a result: count it as failed
        if code != 0:
            print(f"{tag}: FAILED with exit status {code}, log {log}", flush=True)
            failures.append(Failure(run.name, code, log))
    return failures


def _result(run: Run) -> dict | None:
    """A finished run's results.json (None when it is missing or unreadable)."""
    try:
        with open(os.path.join(run.workdir, RESULTS), encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def collect(runs: list[Run]) -> dict[Setting, dict[int, float]]:
    """test_accuracy of every finished run, by setting and seed."""
    results: dict[Setting, dict[int, float]] = {}
    for run in runs:
        per_seed = results.setdefault(run.setting, {})
        try:
            per_seed[run.seed] = float(_result(run)[METRIC])
        except (ValueError, KeyError, TypeError):
            continue
    return results


@dataclasses.dataclass(frozen=True)
class Cost:
    """What a setting's finished runs cost: mean wall time and img/s, the largest peak RSS."""

    wall_seconds: float
    images_per_second: float
    peak_host_memory_bytes: float


def collect_costs(runs: list[Run]) -> dict[Setting, Cost]:
    """Per setting, over the runs whose results.json records their cost (older ones do not)."""
    found: dict[Setting, list[dict]] = {}
    for run in runs:
        try:
            result = _result(run)
            cost = {k: float(result[k]) for k in COST_FIELDS}
        except (ValueError, KeyError, TypeError):
            continue
        found.setdefault(run.setting, []).append(cost)
    return {
        setting: Cost(
            wall_seconds=statistics.fmean(c["wall_seconds"] for c in costs),
            images_per_second=statistics.fmean(c["images_per_second"] for c in costs),
            peak_host_memory_bytes=max(c["peak_host_memory_bytes"] for c in costs),
        )
        for setting, costs in found.items()
    }


def collect_machines(runs: list[Run]) -> dict[tuple[Setting, int], str]:
    """The machine each finished run recorded, by (setting, seed); older runs have none."""
    found = {}
    for run in runs:
        name = machine.label(_result(run) or {})
        if name:
            found[(run.setting, run.seed)] = name
    return found


def machine_notes(
    machines: dict[tuple[Setting, int], str], baseline: Setting | None = None
) -> list[str]:
    """Lines for under the table when the runs span machines (the module doc of
    senet_jax.machine says why), naming each pair whose two runs ran on different ones."""
    counts = collections.Counter(machines.values())
    if len(counts) < 2:
        return []
    notes = [
        f"The runs span {len(counts)} machines: "
        + "; ".join(f"{name} ({n} runs)" for name, n in counts.items())
        + "."
    ]
    split = [
        f"{setting_label(setting)} seed {seed}"
        for (setting, seed), name in machines.items()
        if baseline is not None
        and setting != baseline
        and machines.get((baseline, seed), name) != name
    ]
    if split:
        notes.append(
            "Pairs split across machines, whose difference carries the machines' spread as "
            "well as the setting's (rerun one side on the other's machine): "
            + ", ".join(split)
            + "."
        )
    return notes


# ---------------------------------------------------------------- statistics


@dataclasses.dataclass(frozen=True)
class Interval:
    """Mean, sample std and 95% Student t interval of n values (NaN where n is too small)."""

    n: int
    mean: float
    std: float
    low: float
    high: float


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    from scipy import stats

    n = len(values)
    nan = float("nan")
    if n == 0:
        return Interval(0, nan, nan, nan, nan)
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(1, mean, nan, nan, nan)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)


@dataclasses.dataclass(frozen=True)
class Row:
    setting: Setting
    accuracy: Interval
    seeds: tuple[int, ...]  # present
    missing: tuple[int, ...]
    is_baseline: bool = False
    diff: Interval | None = None  # paired difference from the baseline (None: no baseline)
    cost: Cost | None = None


def summarize(
    settings: list[Setting],
    results: dict[Setting, dict[int, float]],
    seeds: Sequence[int],
    baseline: Setting | None = None,
    costs: dict[Setting, Cost] | None = None,
) -> list[Row]:
    rows = []
    costs = costs or {}
    base = results.get(baseline, {}) if baseline is not None else {}
    for setting in settings:
        got = results.get(setting, {})
        present = tuple(s for s in seeds if s in got)
        diff = None
        if baseline is not None:
            paired = [s for s in present if s in base]
            diff = t_interval([got[s] - base[s] for s in paired])
        rows.append(
            Row(
                setting,
                t_interval([got[s] for s in present]),
                present,
                tuple(s for s in seeds if s not in got),
                setting == baseline,
                diff,
                costs.get(setting),
            )
        )
    return rows


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}"


def _signed_pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:+.2f}"


def markdown_table(rows: list[Row]) -> str:
    """Accuracies in percent; the CSV keeps the fractions results.json holds."""
    has_base = any(r.diff is not None for r in rows)
    head = ["setting", "n", "mean %", "std (pp)", "95% CI"]
    if has_base:
        head += ["paired diff (pp)", "95% CI of diff", "pairs"]
    has_cost = any(r.cost is not None for r in rows)
    if has_cost:
        head += ["wall (min)", "train img/s", "peak RSS (GB)"]
    head.append("missing seeds")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        a = r.accuracy
        cells = [
            setting_label(r.setting) + (" (baseline)" if r.is_baseline else ""),
            str(a.n),
            _pct(a.mean),
            _pct(a.std),
            "n/a" if math.isnan(a.low) else f"[{_pct(a.low)}, {_pct(a.high)}]",
        ]
        if has_base:
            d = r.diff
            if r.is_baseline:
                cells += ["baseline", "", str(d.n)]
            else:
                ci = (
                    "n/a" if math.isnan(d.low) else f"[{_signed_pct(d.low)}, {_signed_pct(d.high)}]"
                )
                cells += [_signed_pct(d.mean), ci, str(d.n)]
        if has_cost:
            cells += _cost_cells(r.cost)
        cells.append(",".join(map(str, r.missing)) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cost_cells(cost: Cost | None) -> list[str]:
    if cost is None:
        return ["n/a"] * 3
    return [
        f"{cost.wall_seconds / 60:.1f}",
        f"{cost.images_per_second:.0f}",
        f"{cost.peak_host_memory_bytes / 1e9:.2f}",
    ]


def csv_text(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    fields = [f for f, _ in rows[0].setting] if rows else []
    stats_cols = ["n", "mean", "std", "ci95_low", "ci95_high"]
    diff_cols = ["diff_" + c for c in stats_cols]
    cost_cols = ["wall_seconds_mean", "images_per_second_mean", "peak_host_memory_bytes_max"]
    writer.writerow(
        ["setting", *fields, *stats_cols, *diff_cols, "baseline", "seeds", "missing", *cost_cols]
    )
    for r in rows:
        a, d, c = r.accuracy, r.diff, r.cost
        diff = [d.n, d.mean, d.std, d.low, d.high] if d is not None else [""] * 5
        cost = [c.wall_seconds, c.images_per_second, c.peak_host_memory_bytes] if c else [""] * 3
        writer.writerow(
            [
                setting_label(r.setting),
                *(format_value(v) for _, v in r.setting),
                a.n,
                a.mean,
                a.std,
                a.low,
                a.high,
                *diff,
                int(r.is_baseline),
                " ".join(map(str, r.seeds)),
                " ".join(map(str, r.missing)),
                *cost,
            ]
        )
    return out.getvalue()


def plot(rows: list[Row], path: str) -> None:
    """Mean +- 95% CI per setting (a dot alone where n < 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        f"{setting_label(r.setting)}{' (baseline)' if r.is_baseline else ''} n={r.accuracy.n}"
        for r in rows
    ]
    means = [100 * r.accuracy.mean for r in rows]
    errs = [
        0.0 if math.isnan(r.accuracy.std) else 100 * (r.accuracy.high - r.accuracy.mean)
        for r in rows
    ]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 2), 4.5))
    colors = ["tab:orange" if r.is_baseline else "tab:blue" for r in rows]
    for i, (m, e, c) in enumerate(zip(means, errs, colors)):
        ax.errorbar(i, m, yerr=e, fmt="o", color=c, capsize=5)
    ax.set_xlim(-0.5, len(rows) - 0.5)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy, % (mean and 95% t interval)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_summary(rows: list[Row], workdir: str, notes: Sequence[str] = ()) -> str:
    """summary.md (the table, then `notes` as a list), summary.csv and summary.png; returns
    summary.md's text."""
    os.makedirs(workdir, exist_ok=True)
    table = markdown_table(rows)
    if notes:
        table += "\n" + "".join(f"- {note}\n" for note in notes)
    with open(os.path.join(workdir, "summary.md"), "w", encoding="utf-8") as f:
        f.write(table)
    with open(os.path.join(workdir, "summary.csv"), "w", encoding="utf-8") as f:
        f.write(csv_text(rows))
    if rows:
        plot(rows, os.path.join(workdir, "summary.png"))
    return table


# ---------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2, like every other bad input here
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m senet_jax.sweep",
        description="Train a grid of config settings with several seeds each, then compare.",
        epilog="Arguments after `--` go to every train.py run unchanged.",
    )
    p.add_argument("--config", required=True, help="config file, as train.py takes it")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="a config field and its values; several --set make a product grid",
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--workdir", required=True, help="sweep folder; one sub-folder per run")
    p.add_argument(
        "--baseline",
        action="append",
        metavar="FIELD=VALUE",
        help="the setting paired differences are taken from (repeat it per swept field)",
    )
    p.add_argument(
        "--print-commands",
        action="store_true",
        help="print one train.py command per run (for a scheduler) and run nothing",
    )
    p.add_argument(
        "--summarize",
        action="store_true",
        help="run nothing; summarise the results.json files already there",
    )
    p.add_argument("--train-script", default=DEFAULT_TRAIN_SCRIPT, help="default: train.py")
    return p


def main(argv: Sequence[str] | None = None, run_fn: RunFn = run_subprocess) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    args = _parser().parse_args(argv)
    try:
        if not args.set:
            raise SweepError("give at least one --set FIELD=V1,V2")
        if not os.path.isfile(args.train_script):
            raise SweepError(f"--train-script {args.train_script}: no such file")
        config = config_file.load(args.config)
        axes = parse_sets(args.set, config)
        if "seed" in dict(axes):
            raise SweepError("--set seed: use --seeds; every setting runs with each seed")
        unknown = config_fields.unknown_override_message(config, extra)
        if unknown:  # a typo after `--` would otherwise fail N runs later
            raise SweepError(f"after --: {unknown}")
        seeds = parse_seeds(args.seeds)
        baseline = None
        if args.baseline:
            baseline = parse_baseline(args.baseline, axes, config)
        settings = expand_grid(axes)
        if os.path.realpath(args.train_script) == os.path.realpath(DEFAULT_TRAIN_SCRIPT):
            check_settings(config, settings, extra)  # another script has its own rules
        runs = plan_runs(args.config, settings, seeds, args.workdir, args.train_script, extra)
    except (SweepError, config_file.ConfigFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    if args.print_commands:
        for run in runs:
            print(shlex.join(portable(run.command)))
        return 0
    failures = [] if args.summarize else execute(runs, run_fn)
    rows = summarize(settings, collect(runs), seeds, baseline, collect_costs(runs))
    print()
    notes = machine_notes(collect_machines(runs), baseline)
    print(write_summary(rows, args.workdir, notes), end="")
    print(f"summary: {os.path.join(args.workdir, 'summary.md')}, summary.csv, summary.png")
    for f in failures:
        print(f"failed: {f.name}: exit status {f.returncode}, log {f.log}", file=sys.stderr)
    if failures:
        print(
            f"{len(failures)} of {len(runs)} runs failed; rerun the same command to retry them "
            f"(finished runs are skipped)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
