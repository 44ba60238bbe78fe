"""Tests for senet_jax.reporting: summaries, progress output, confusion matrix, result files."""

from __future__ import annotations

import glob
import io
import json
import os
import re

import numpy as np
import pytest

from senet_jax import reporting

# ---------------------------------------------------------------- metric writer


def _read_scalars(workdir):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    acc = event_accumulator.EventAccumulator(workdir, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        out[tag] = [
            (e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)
        ]
    return out


def test_main_process_writes_tensorboard_scalars(tmp_path):
    workdir = str(tmp_path / "run")
    writer = reporting.create_metric_writer(workdir, is_main_process=True)
    writer.write_scalars(10, {"train_loss": 1.5, "train_accuracy": np.float32(0.25)})
    writer.write_scalars(20, {"train_loss": 0.75})
    writer.flush()
    writer.close()
    assert glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
    scalars = _read_scalars(workdir)
    assert scalars["train_loss"] == [(10, 1.5), (20, 0.75)]
    assert scalars["train_accuracy"] == [(10, 0.25)]


def test_other_processes_write_no_event_files(tmp_path):
    workdir = tmp_path / "run"
    writer = reporting.create_metric_writer(str(workdir), is_main_process=False)
    writer.write_scalars(1, {"train_loss": 2.0})
    writer.flush()
    writer.close()
    assert not workdir.exists() or not any(workdir.rglob("events.out.tfevents.*"))


# ---------------------------------------------------------------- confusion matrix


def test_per_class_accuracy_by_hand():
    confusion = np.array([[1, 1, 0], [0, 2, 1], [1, 0, 1]])  # rows: true class
    np.testing.assert_allclose(reporting.per_class_accuracy(confusion), [1 / 2, 2 / 3, 1 / 2])


def test_per_class_accuracy_of_absent_class_is_nan():
    acc = reporting.per_class_accuracy(np.array([[2, 0], [0, 0]]))
    assert acc[0] == 1.0 and np.isnan(acc[1])


# ---------------------------------------------------------------- atomic JSON


def test_write_json_atomic_round_trips_numpy_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "out.json"
    data = {
        "i": np.int64(7),
        "f": np.float32(0.5),
        "b": np.bool_(True),
        "arr": np.arange(4).reshape(2, 2),
        "nested": {"x": [np.float64(1.25), None]},
        "nan": float("nan"),
    }
    reporting.write_json_atomic(str(path), data)
    reporting.write_json_atomic(str(path), data)  # overwriting also works
    assert os.listdir(path.parent) == ["out.json"]
    loaded = json.loads(path.read_text())
    assert loaded == {
        "i": 7,
        "f": 0.5,
        "b": True,
        "arr": [[0, 1], [2, 3]],
        "nested": {"x": [1.25, None]},
        "nan": None,
    }
    assert type(loaded["i"]) is int
    umask = os.umask(0)
    os.umask(umask)
    assert (
        path.stat().st_mode & 0o777 == 0o666 & ~umask
    )  # readable like any other file the run writes


def test_write_json_atomic_keeps_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "out.json"
    reporting.write_json_atomic(str(path), {"a": 1})
    with pytest.raises(TypeError, match="JSON"):
        reporting.write_json_atomic(str(path), {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["out.json"]


# ---------------------------------------------------------------- results + plots


def _assert_png(path, min_bytes=5000):
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > min_bytes
    image = matplotlib.image.imread(path)
    assert (
        image.ndim == 3
        and image.shape[0] > 200
        and image.shape[1] > 200
        and image.shape[2] in (3, 4)
    )


def test_write_results_writes_json_and_plots(tmp_path):
    workdir = str(tmp_path)
    cm = np.array([[1, 0, 0], [0, 2, 0], [0, 1, 1]], np.int64)
    history = [
        {"step": 10, "train_loss": 2.0, "train_accuracy": 0.3, "learning_rate": 0.1},
        {
            "step": 20,
            "train_loss": 1.5,
            "train_accuracy": 0.4,
            "test_loss": 1.7,
            "test_accuracy": 0.35,
        },
        {"step": 30, "train_loss": 1.1, "train_accuracy": 0.6, "learning_rate": 0.05},
        {"step": 40, "test_loss": 1.2, "test_accuracy": 0.55},
    ]
    results = {
        "test_accuracy": np.float32(0.8),
        "test_loss": 0.6,
        "test_examples": np.int64(5),
        "model": "se_mobilenet_v1",
    }
    path = reporting.write_results(
        workdir, results, confusion=cm, class_names=["cat", "dog", "ship"], history=history
    )
    assert path == os.path.join(workdir, "results.json")
    loaded = json.loads(open(path).read())
    assert loaded["test_examples"] == 5 and loaded["model"] == "se_mobilenet_v1"
    assert loaded["test_accuracy"] == pytest.approx(0.8)
    assert loaded["per_class_accuracy"] == {"cat": 1.0, "dog": 1.0, "ship": 0.5}
    assert loaded["confusion_matrix"] == [[1, 0, 0], [0, 2, 0], [0, 1, 1]]
    _assert_png(os.path.join(workdir, "confusion_matrix.png"))
    _assert_png(os.path.join(workdir, "learning_curves.png"))
    assert sorted(os.listdir(workdir)) == [
        "confusion_matrix.png",
        "learning_curves.png",
        "results.json",
    ]


def test_write_results_without_extras_writes_only_json(tmp_path):
    reporting.write_results(str(tmp_path), {"test_accuracy": 0.5})
    assert os.listdir(tmp_path) == ["results.json"]
    with pytest.raises(ValueError, match="class_names"):
        reporting.write_results(
            str(tmp_path), {}, confusion=np.eye(3, dtype=int), class_names=["a", "b"]
        )


# ---------------------------------------------------------------- progress


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_log_lines_at_interval(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(reporting, "_now", clock)
    stream = io.StringIO()
    progress = reporting.Progress(
        120, interactive=None, log_every_steps=50, stream=stream
    )  # StringIO: not a tty
    for step in range(1, 121):
        clock.t = 0.5 * step  # 2 steps per second
        progress.update(step, loss=1.0 / step, accuracy=0.5, images_per_second=256.0)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert [int(re.search(r"step\s+(\d+)/120", line).group(1)) for line in lines] == [50, 100, 120]
    assert "\r" not in stream.getvalue()
    first = lines[0]
    assert "loss 0.0200" in first and "accuracy 50.00%" in first and "256.0 img/s" in first
    assert "ETA 0:00:35" in first  # (120 - 50) steps at 2 steps/s
    assert "ETA 0:00:00" in lines[-1]


def test_progress_logs_when_updates_skip_the_exact_multiple(monkeypatch):
    monkeypatch.setattr(reporting, "_now", _Clock())
    stream = io.StringIO()
    progress = reporting.Progress(
        200, start_step=30, interactive=False, log_every_steps=50, stream=stream
    )
    for step in (60, 90, 120, 150):
        progress.update(step, loss=0.1, accuracy=0.9, images_per_second=10.0)
    steps = [
        int(re.search(r"step\s+(\d+)/", line).group(1)) for line in stream.getvalue().splitlines()
    ]
    assert steps == [60, 120, 150]
    assert "ETA --:--" in stream.getvalue().splitlines()[0]  # no rate yet after one update


class _TtyStream(io.StringIO):
    def isatty(self):
        return True


def test_progress_interactive_bar_redraws_in_place():
    stream = _TtyStream()
    progress = reporting.Progress(10, interactive=None, stream=stream)
    for step in range(1, 11):
        progress.update(step, loss=0.5, accuracy=0.75, images_per_second=123.0)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r") >= 2
    assert (
        "10/10" in text
        and "loss 0.5000" in text
        and "accuracy 75.00%" in text
        and "123.0 img/s" in text
    )
    assert "ETA" in text


def test_progress_rejects_bad_settings():
    with pytest.raises(ValueError, match="log_every_steps"):
        reporting.Progress(10, log_every_steps=0, interactive=False)
    with pytest.raises(ValueError, match="start_step"):
        reporting.Progress(10, start_step=11, interactive=False)


def test_pseudo_label_plot_only_for_semi_supervised_histories(tmp_path):
    supervised = [{"step": 1, "train_loss": 2.0}, {"step": 2, "train_loss": 1.0}]
    assert not reporting.plot_pseudo_labels(supervised, str(tmp_path / "none.png"))
    assert not os.path.exists(tmp_path / "none.png")
    history = [
        {"step": 1, "train_loss": 2.0, "mask_rate": 0.1, "pseudo_label_accuracy": 0.5},
        {"step": 2, "train_loss": 1.0, "mask_rate": 0.4, "pseudo_label_accuracy": 0.7},
    ]
    reporting.write_results(str(tmp_path), {"test_accuracy": 0.5}, history=history)
    _assert_png(str(tmp_path / "pseudo_labels.png"))
    _assert_png(str(tmp_path / "learning_curves.png"))
