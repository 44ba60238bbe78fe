"""What a training run shows while it runs and leaves behind when it ends.

Small, side-effect-scoped helpers the trainer calls: a metric writer (TensorBoard on process 0),
a progress line, the confusion matrix and per-class accuracy, and atomic writers for
results.json and its plots. Heavy imports (tensorflow via clu, matplotlib, tqdm) happen inside
the functions that need them, so importing this module stays cheap for notebooks and tests.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

# Indirection so tests can drive the progress clock without touching the global time module.
_now = time.monotonic


# --------------------------------------------------------------------------------------------
# Metric writer
# --------------------------------------------------------------------------------------------


def create_metric_writer(workdir: str, *, is_main_process: bool):
    """Return a clu MetricWriter: TensorBoard files in `workdir` plus logging on process 0.

    Other processes only log, so a multi-host run leaves one set of event files, not one per host.
    The writer is asynchronous so summary I/O never stalls a training step; call `flush()` before
    reading the files and `close()` at the end.
    """
    from clu import metric_writers  # imports tensorflow: keep it out of module import time

    if not workdir and is_main_process:
        raise ValueError(
            "workdir is empty: pass --workdir DIR so TensorBoard summaries have a home"
        )
    return metric_writers.create_default_writer(
        logdir=workdir if is_main_process else None,
        just_logging=not is_main_process,
        asynchronous=True,
    )


# --------------------------------------------------------------------------------------------
# Progress line
# --------------------------------------------------------------------------------------------


def _format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    return str(datetime.timedelta(seconds=int(round(max(seconds, 0.0)))))


class Progress:
    """Step/loss/accuracy/throughput/ETA for the training loop.

    On a terminal it is a live tqdm bar redrawn in place; in a log file (batch jobs, pods) a
    redrawn bar is noise, so it prints one plain line each time the step crosses a multiple of
    `log_every_steps` (and at the last step). `accuracy` is a fraction in [0, 1]. `step` is the
    number of training steps completed so far (global, so resumed runs continue the count).
    """

    def __init__(
        self,
        total_steps: int,
        start_step: int = 0,
        *,
        interactive: bool | None = None,
        log_every_steps: int = 50,
        stream=sys.stderr,
    ):
        if total_steps <= 0:
            raise ValueError(
                f"total_steps={total_steps}: num_epochs and batch_size must give at least one step"
            )
        if not 0 <= start_step <= total_steps:
            raise ValueError(
                f"start_step={start_step} is outside [0, {total_steps}]: checkpoint step exceeds "
                "the configured run"
            )
        if log_every_steps <= 0:
            raise ValueError(
                f"log_every_steps={log_every_steps}: set the log interval to a positive number of "
                "steps"
            )
        if interactive is None:
            isatty = getattr(stream, "isatty", None)
            interactive = bool(isatty()) if callable(isatty) else False
        self.total_steps = int(total_steps)
        self.interactive = interactive
        self.log_every_steps = int(log_every_steps)
        self._stream = stream
        self._last_step = int(start_step)
        # The rate is measured from the first update, which already includes XLA compilation,
        # so compile time does not inflate the ETA.
        self._first: tuple[float, int] | None = None
        self._bar = None
        if interactive:
            from tqdm import tqdm  # the plain one: it honours `file=`, notebook widgets do not

            self._bar = tqdm(
                total=self.total_steps,
                initial=self._last_step,
                file=stream,
                dynamic_ncols=True,
                unit="step",
                bar_format="{l_bar}{bar}| step {n_fmt}/{total_fmt} [ETA {remaining}{postfix}]",
            )

    def _eta_seconds(self, step: int) -> float | None:
        now = _now()
        if self._first is None:
            self._first = (now, step)
            return None
        t0, s0 = self._first
        if step <= s0 or now <= t0:
            return None
        return (self.total_steps - step) * (now - t0) / (step - s0)

    def update(self, step: int, *, loss: float, accuracy: float, images_per_second: float) -> None:
        step = int(step)
        eta = self._eta_seconds(step)
        fields = (
            f"loss {float(loss):.4f}, accuracy {100.0 * float(accuracy):.2f}%, "
            f"{float(images_per_second):.1f} img/s"
        )
        if self._bar is not None:
            self._bar.set_postfix_str(fields, refresh=False)
            self._bar.update(step - self._bar.n)
        else:
            crossed = step // self.log_every_steps > self._last_step // self.log_every_steps
            if crossed or (step == self.total_steps and self._last_step < step):
                width = len(str(self.total_steps))
                print(
                    f"step {step:>{width}}/{self.total_steps} "
                    f"({100.0 * step / self.total_steps:5.1f}%) | "
                    f"{fields.replace(', ', ' | ')} | ETA {_format_duration(eta)}",
                    file=self._stream,
                    flush=True,
                )
        self._last_step = step

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# --------------------------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------------------------


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each true class (diagonal over row sums); NaN for a class with no examples."""
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion has shape {confusion.shape}: expected a square [K, K] matrix")
    totals = confusion.sum(axis=1).astype(np.float64)
    correct = np.diag(confusion).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, correct / np.where(totals > 0, totals, 1.0), np.nan)


# --------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    """Plain-Python copy of `value`; non-finite floats become null so the file is strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.generic):
        return _to_json(value.item())
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):  # also jax arrays
        return _to_json(np.asarray(value).tolist())
    raise TypeError(
        f"cannot write {type(value).__name__} to JSON: convert it to a number, string, list or dict"
    )


def _replace_atomically(path: str, write: Callable[[str], None]) -> None:
    """Run `write(tmp)` on a sibling temp file, then rename it over `path`.

    os.replace is atomic on one filesystem, so a run killed mid-write leaves either the old file
    or the new one, never half of one; the temp file is removed if writing fails.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # A fresh unique name rather than mkstemp, whose 0600 mode would survive the rename.
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: str, data: dict) -> None:
    """Write `data` as indented JSON, atomically; numpy/jax scalars and arrays become plain JSON."""
    text = json.dumps(_to_json(data), indent=2, allow_nan=False) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    _replace_atomically(path, write)


# --------------------------------------------------------------------------------------------
# Plots (matplotlib's object API with the Agg canvas: no display, no pyplot global state,
# so a notebook's own backend is left alone and figures are freed when they go out of scope)
# --------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: str) -> None:
    _replace_atomically(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))


def _class_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"class_names has {len(names)} names for {num_classes} classes: pass one name per class"
        )
    return names


def plot_confusion_matrix(confusion, class_names, path) -> None:
    """Heat map of counts (rows = true class) with each cell's count written on it."""
    confusion = np.asarray(confusion)
    k = confusion.shape[0]
    per_class_accuracy(confusion)  # validates the shape
    names = _class_names(class_names, k)
    side = max(4.0, 0.6 * k + 2.0)
    fig = _new_figure(side + 1.0, side)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(confusion, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(confusion.sum())
    correct = int(np.trace(confusion))
    accuracy = f"{100.0 * correct / total:.2f}%" if total else "n/a"
    ax.set_title(f"Confusion matrix ({total} examples, accuracy {accuracy})")
    if k <= 40:  # beyond that the numbers overlap and only the colours are readable
        threshold = confusion.max() / 2.0 if confusion.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    str(int(confusion[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if confusion[i, j] > threshold else "black",
                )
    _save_png(fig, path)


def _series(history: Iterable[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    steps, values = [], []
    for entry in history:
        value = entry.get(key)
        if value is None or "step" not in entry:
            continue
        value = float(value)
        if math.isfinite(value):
            steps.append(float(entry["step"]))
            values.append(value)
    order = np.argsort(steps, kind="stable")  # a resumed run may append out of order
    return [steps[i] for i in order], [values[i] for i in order]


def plot_learning_curves(history, path) -> None:
    """Loss and accuracy against step, train and test on the same axes (plus learning rate).

    Entries may miss keys (test metrics come less often than train metrics); each curve uses only
    the entries that have its key.
    """
    history = list(history)
    panels = [("loss", "loss"), ("accuracy", "accuracy")]
    if any(e.get("learning_rate") is not None for e in history):
        panels.append(("learning rate", None))
    fig = _new_figure(5.0 * len(panels), 4.0)
    for index, (title, metric) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), index + 1)
        keys = (
            [("learning_rate", "learning rate")]
            if metric is None
            else [
                (f"train_{metric}", "train"),
                (f"validation_{metric}", "validation"),
                (f"test_{metric}", "test"),
            ]
        )
        for key, label in keys:
            steps, values = _series(history, key)
            if steps:
                marker = None if key.startswith("train_") else "o"
                ax.plot(steps, values, label=label, marker=marker, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    _save_png(fig, path)


PSEUDO_LABEL_KEYS = (("mask_rate", "mask rate"), ("pseudo_label_accuracy", "pseudo-label accuracy"))


def plot_pseudo_labels(history, path) -> bool:
    """Semi-supervised runs: the share of unlabelled images above the threshold and, where
    their labels are known, the accuracy of those pseudo-labels, against step. Returns
    whether there was anything to plot (supervised runs have neither)."""
    curves = [(label, _series(history, key)) for key, label in PSEUDO_LABEL_KEYS]
    curves = [(label, series) for label, series in curves if series[0]]
    if not curves:
        return False
    fig = _new_figure(5.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for label, (steps, values) in curves:
        ax.plot(steps, values, label=label)
    ax.set_title("pseudo-labels")
    ax.set_xlabel("step")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend()
    _save_png(fig, path)
    return True


def plot_excitations(per_class, overall, class_names, class_indices, path) -> None:
    """The paper's Figs. 7-8: per SE block, mean gate against channel index, one curve per
    chosen class plus "all" (black); one panel per block in a grid."""
    blocks = list(overall)
    cols = min(4, len(blocks))
    rows = math.ceil(len(blocks) / cols)
    fig = _new_figure(4.0 * cols, 2.8 * rows)
    for index, name in enumerate(blocks):
        ax = fig.add_subplot(rows, cols, index + 1)
        for label, k in zip(class_names, class_indices):
            ax.plot(per_class[name][k], label=label, linewidth=0.8)
        ax.plot(overall[name], color="black", label="all", linewidth=1.2)
        ax.set_title(name)
        ax.set_xlabel("channel index")
        ax.set_ylabel("activation")
        ax.grid(True, alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    _save_png(fig, path)


# --------------------------------------------------------------------------------------------
# End-of-run results
# --------------------------------------------------------------------------------------------


def write_results(
    workdir: str,
    results: dict,
    *,
    confusion: np.ndarray | None = None,
    class_names=None,
    history=None,
) -> str:
    """Writes WORKDIR/results.json, confusion_matrix.png, learning_curves.png (and for
    semi-supervised runs pseudo_labels.png); returns its path.

    With `confusion`, the JSON also gets `per_class_accuracy` ({class name: accuracy}) and
    `confusion_matrix` (list of rows, rows = true class). Call it from process 0 only.
    """
    payload = dict(results)
    if confusion is not None:
        confusion = np.asarray(confusion, dtype=np.int64)
        accuracy = per_class_accuracy(confusion)
        names = _class_names(class_names, confusion.shape[0])
        payload["per_class_accuracy"] = dict(zip(names, accuracy.tolist()))
        payload["confusion_matrix"] = confusion.tolist()
        plot_confusion_matrix(confusion, names, os.path.join(workdir, "confusion_matrix.png"))
    if history:
        plot_learning_curves(history, os.path.join(workdir, "learning_curves.png"))
        plot_pseudo_labels(history, os.path.join(workdir, "pseudo_labels.png"))
    path = os.path.join(workdir, "results.json")
    write_json_atomic(path, payload)
    return path
