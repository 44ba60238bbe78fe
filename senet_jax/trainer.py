"""The training loop: for each step, train; if it is time, log / evaluate / checkpoint.

The steps themselves are pure (senet_jax/steps.py); this module distributes them with
`jax.pmap` in one place (`pmapped_steps`) and keeps the bookkeeping in small named parts:
`Chrono` (training throughput, excluding evaluation and saving), `StepMetrics` (per-step
device metrics, fetched only when logged, with the NaN/Inf stop), `CheckpointSaver` (a
checkpoint is written only once the step after it is finite) and `Preemption` (SIGTERM).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import jax_utils

from senet_jax import (
    checkpointing,
    config_fields,
    data,
    host_memory,
    machine,
    optim,
    reporting,
    steps,
    weights,
)
from senet_jax import config as config_lib
from senet_jax.data import augment
from senet_jax.semi_supervised import ema, settings
from senet_jax.semi_supervised import step as ssl_step

AXIS = "batch"

log = logging.getLogger("senet_jax")


class TrainingDivergedError(RuntimeError):
    """The loss or the gradients stopped being finite."""


def is_semi_supervised(config) -> bool:
    return config.get("ssl") is not None and config.ssl.method != "none"


def microbatches(config) -> int:
    """Parts each device computes its share of a step's batch in (config.microbatch_size)."""
    per_device = config.batch_size // jax.device_count()
    return steps.microbatch_count(per_device, config.get("microbatch_size"))


def pmapped_steps(config):
    """The one place that distributes the steps: pmap over all devices of all processes.
    A semi-supervised step takes {"labelled": ..., "unlabelled": ...} batches."""
    parts = microbatches(config)
    if parts > 1:
        per_device = config.batch_size // jax.device_count()
        log.info(
            "each device computes its %d images in %d parts of %d (config.microbatch_size)",
            per_device,
            parts,
            per_device // parts,
        )
    if is_semi_supervised(config):
        options = {**settings.step_options(config), "microbatches": parts}

        def train_step(state, batch):
            return ssl_step.ssl_train_step(
                state, batch["labelled"], batch["unlabelled"], **options, axis_name=AXIS
            )
    else:
        train_step = functools.partial(
            steps.train_step,
            label_smoothing=config.optim.label_smoothing,
            axis_name=AXIS,
            rematerialize=config.rematerialize,
            microbatches=parts,
        )
    p_train = jax.pmap(train_step, axis_name=AXIS, donate_argnums=(0,))
    p_eval = jax.pmap(functools.partial(steps.eval_step, axis_name=AXIS), axis_name=AXIS)
    return p_train, p_eval


def evaluation_state(state):
    """The state evaluation uses: its EMA weights when the run keeps them."""
    return state.replace(params=ema.evaluation_params(state))


def evaluate(p_eval, state, config, split: str) -> dict[str, Any]:
    """Exact metrics over every example of `split` ("validation": the training holdout), with
    the EMA weights when the state has them."""
    state = evaluation_state(state)
    batches = data.eval_batches(config.data, batch_size=config.batch_size, split=split)
    # eval_step's psum leaves every device the same totals: the first device's copy is read.
    return steps.eval_metrics(jax.tree.map(lambda x: x[0], p_eval(state, b)) for b in batches)


class Preemption:
    """Turns SIGTERM into a flag the loop polls, so it can save before it exits."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if jax.process_count() > 1:
            # Multi-host: a local flag would stop one host alone; JAX's preemption notifier
            # (polled through orbax's reached_preemption) stops all hosts at the same step.
            return self
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (e.g. a notebook worker): rely on orbax alone
            self._previous = None
        return self

    def _handle(self, signum, frame):
        log.warning("SIGTERM received: saving a checkpoint and stopping")
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class Chrono:
    """Training images/s from the end of the first (compiling) step, pauses excluded; and the
    run's wall time, summed over the processes that resumed it."""

    def __init__(self, start_step: int, batch_size: int, wall_seconds_before: float = 0.0):
        self._start_step, self._batch_size = start_step, batch_size
        self._created = time.perf_counter()
        self._wall_before = wall_seconds_before
        self._started = None
        self._paused = 0.0
        self.images_per_second = 0.0

    @property
    def wall_seconds(self) -> float:
        """Compilation, steps, evaluation and checkpoints; data preparation not included."""
        return self._wall_before + time.perf_counter() - self._created

    def after_step(self, step: int, metrics, *, sync: bool) -> None:
        if self._started is None:  # the first step includes compilation: time from after it
            jax.block_until_ready(metrics)
            self._started = time.perf_counter()
        elif sync:
            jax.block_until_ready(metrics)
            seconds = time.perf_counter() - self._started - self._paused
            images = (step - self._start_step - 1) * self._batch_size
            self.images_per_second = images / seconds if seconds > 0 else 0.0

    @contextlib.contextmanager
    def paused(self):
        """Evaluation and saving are not training throughput."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - start


class StepMetrics:
    """Per-step device metrics, brought to the host only when logged."""

    def __init__(self):
        self._pending: list[tuple[int, Any]] = []

    def add(self, step: int, metrics) -> None:
        self._pending.append((step, metrics))

    def first_non_finite(self) -> int | None:
        flags = jax.device_get([m["finite"] for _, m in self._pending])
        return next((s for (s, _), f in zip(self._pending, flags) if f[0] < 1), None)

    def mean(self) -> dict[str, Any]:
        """Mean of every metric over the pending steps (which must be finite), then clears:
        floats, and arrays for per-class ones (FlexMatch's thresholds)."""
        fetched = jax.device_get([m for _, m in self._pending])
        self._pending.clear()
        if not fetched:
            return {}
        means = {
            k: np.mean(np.stack([m[k][0] for m in fetched]), axis=0)
            for k in fetched[0]
            if k != "finite"
        }
        return {k: float(v) if np.ndim(v) == 0 else v for k, v in means.items()}


class CheckpointSaver:
    """Saves a step's state only once the next step proved finite (or at the last step).

    Finite parameters can still be a blown-up state, so a checkpoint is held until the
    following step's loss, gradients and parameters are checked; a non-finite step stops
    the run with the last good checkpoint kept and the bad state never saved.
    """

    def __init__(self, manager, metrics: StepMetrics, workdir: str, history, is_main: bool):
        self.manager, self._metrics, self._workdir = manager, metrics, workdir
        self._history, self._is_main = history, is_main
        self._held = None

    def check_finite(self, learning_rate: float) -> None:
        bad = self._metrics.first_non_finite()
        if bad is None:
            return
        self.manager.wait_until_finished()  # let the last good save land
        good = self.manager.latest_step()
        kept = (
            f"the last good checkpoint (step {good}) is kept"
            if good is not None
            else ("no checkpoint was saved")
        )
        dropped = (
            f" (the state of step {self._held[0]} led to it and was not saved)"
            if (self._held)
            else ""
        )
        raise TrainingDivergedError(
            f"loss, gradients or parameters became NaN/Inf at step {bad}{dropped}; {kept}: "
            f"lower config.optim.learning_rate (now {learning_rate}) or check the data"
        )

    @property
    def holding(self) -> bool:
        return self._held is not None

    def release_held(self) -> None:
        """The step after the held state ran finite: save it."""
        if self._held is not None:
            self._write(*self._held)
            self._held = None

    def save(self, step: int, state, metrics, *, final: bool) -> None:
        host_state = jax.device_get(jax_utils.unreplicate(state))
        if final:  # no next step to vouch for it: finite is the best we know
            self._write(step, host_state, metrics)
        else:
            self._held = (step, host_state, metrics)

    def _write(self, step: int, host_state, metrics) -> None:
        self.manager.save(step, host_state, metrics=metrics)
        if self._is_main:
            reporting.write_json_atomic(os.path.join(self._workdir, "history.json"), self._history)


@dataclasses.dataclass
class Run:
    """What the loop needs, built once before the first step."""

    config: Any
    workdir: str
    info: data.DatasetInfo
    total_steps: int
    steps_per_epoch: int
    eval_every: int
    schedule: Callable
    manager: checkpointing.CheckpointManager
    state: Any
    history: list
    is_main: bool

    @property
    def selection_split(self) -> str:
        """Where periodic evaluation (and best-checkpoint selection) looks: never the test
        split, unless there is no validation holdout (then nothing is selected)."""
        return data.iterators.VALIDATION if self.info.num_validation_examples else "test"


def train_and_evaluate(config, workdir: str, *, after_step=None) -> dict[str, Any]:
    """Trains, evaluates and checkpoints; rerunning with the same workdir resumes.

    In a single process SIGTERM is honoured from the first line: before training starts it
    just returns, after that it saves a checkpoint at the end of the current step and
    returns. `after_step(step)` is called after each step (tests inject faults with it).
    """
    with Preemption() as preemption:
        run = _set_up(config, workdir)
        if preemption.requested:
            log.warning("SIGTERM received before training started: rerun the same command")
            run.manager.close()
            return {"preempted": True, "step": int(run.state.step)}
        return _train(run, preemption, after_step)


def _check_before_work(config, workdir: str) -> None:
    """The cheap checks: a bad config or an incompatible checkpoint fails in seconds and
    leaves the workdir exactly as it was."""
    config_lib.validate(config, workdir=workdir)
    existing = checkpointing.CheckpointManager(workdir, config, read_only=True)
    existing.check_config()
    existing.close()


def _prepare_data(config, workdir: str):
    """(config, info): the dataset prepared by process 0 first, so hosts sharing a data_dir
    never build it twice; smoke runs get their generated archive in the workdir."""
    is_main = jax.process_index() == 0
    if is_main and not config.data.synthetic_stl10:
        _dataset_info(config)  # prepares it, outside the workdir
    if is_main:
        os.makedirs(workdir, exist_ok=True)
    if config.data.synthetic_stl10:
        config = config.copy_and_resolve_references()
        config.data = data.stl10_prepare.with_synthetic_stl10(
            config.data, workdir, seed=config.seed, write=is_main
        )
        _sync("synthetic_data")
    info = _dataset_info(config) if is_main else None
    mean_std = data.iterators.statistics(config.data) if is_main else None
    _sync("dataset_prepared")
    info = info or _dataset_info(config)
    mean, std = mean_std or data.iterators.statistics(config.data)  # cached by process 0
    if config.data.mean is None:
        config = config.copy_and_resolve_references()
        config.data.mean, config.data.std = tuple(mean), tuple(std)
    return config, info


def _dataset_info(config) -> data.DatasetInfo:
    """The dataset described; a labelled subset or unlabelled split the data cannot give
    (e.g. data.labels_per_class above a class's images) is a config error, one line."""
    try:
        info = data.get_dataset_info(config.data)
    except ValueError as e:  # the subset's own ValueError; its subclasses are user errors already
        if type(e) is not ValueError or not str(e).startswith("config."):
            raise
        raise config_lib.ConfigError(str(e)) from None
    if is_semi_supervised(config) and _steps_per_epoch(config, info) < 1:
        held = f"the {info.num_unlabelled_examples}"
        if info.unlabelled_streamed:  # each process streams its own share
            shares = info.unlabelled_shard_examples
            held = f"{len(shares)} processes' shares (the smallest {min(shares)})"
        raise config_lib.ConfigError(
            f"config.ssl.unlabelled_ratio: {config.ssl.unlabelled_ratio} x batch_size "
            f"{config.batch_size} unlabelled images exceed {held} of "
            f"{config.data.unlabelled_split!r}; lower config.batch_size or the ratio"
        )
    check_warmup(config, _steps_per_epoch(config, info))
    return info


def run_length(config, steps_per_epoch: int) -> int:
    """The run's length: config.total_steps when set, else num_epochs epochs."""
    fixed = config.get("total_steps")
    return int(fixed) if fixed is not None else config.num_epochs * steps_per_epoch


def epochs_trained(config, steps_per_epoch: int) -> int | float:
    """results.json's `epochs`: num_epochs, or with config.total_steps the passes it makes
    (fractional; semi-supervised runs count passes over the unlabelled images)."""
    if config.get("total_steps") is None:
        return config.num_epochs
    return round(config.total_steps / steps_per_epoch, 3)


def check_warmup(config, steps_per_epoch: int) -> None:
    """With config.total_steps the warmup's length in steps is known only now: it must end
    before the run does (config.validate checks it against num_epochs otherwise)."""
    warmup = int(config.optim.warmup_epochs * steps_per_epoch)
    if config.get("total_steps") is not None and warmup >= config.total_steps:
        raise config_lib.ConfigError(
            f"config.optim.warmup_epochs: {config.optim.warmup_epochs} epochs of "
            f"{steps_per_epoch} steps are {warmup} steps, not fewer than total_steps="
            f"{config.total_steps}; lower it (e.g. --config.optim.warmup_epochs=0) or raise "
            "config.total_steps"
        )


def _steps_per_epoch(config, info: data.DatasetInfo) -> int:
    """Semi-supervised: an epoch is a pass over the unlabelled images (the part that sets the
    cost); otherwise over the (labelled) training images."""
    if is_semi_supervised(config):
        unlabelled_batch = config.batch_size * config.ssl.unlabelled_ratio
        return data.unlabelled_steps_per_epoch(unlabelled_batch, info)
    return data.steps_per_epoch(config.batch_size, info)


def _initial_state(config, info: data.DatasetInfo, tx):
    """A fresh train state; semi-supervised runs add the EMA weights and FlexMatch's record."""
    model = steps.create_model(config, info.num_classes, axis_name=AXIS)
    image_shape = (config.data.image_size, config.data.image_size, 3)
    state = steps.create_train_state(model, tx, jax.random.key(config.seed), image_shape)
    if not is_semi_supervised(config):
        return state
    return ssl_step.create_state(
        state,
        method=config.ssl.method,
        ema_decay=float(config.ssl.ema_decay),
        num_unlabelled=info.num_unlabelled_examples,
    )


def _set_up(config, workdir: str) -> Run:
    _check_before_work(config, workdir)
    config, info = _prepare_data(config, workdir)
    steps_per_epoch = _steps_per_epoch(config, info)
    length = run_length(config, steps_per_epoch)
    tx, schedule = optim.create_optimizer(
        config.optim,
        num_epochs=config.num_epochs,
        steps_per_epoch=steps_per_epoch,
        total_steps=length,
    )
    state = _initial_state(config, info, tx)
    manager = checkpointing.CheckpointManager(
        workdir,
        config,
        num_classes=info.num_classes,
        data_identity=data.iterators.iterator_identity(config.data, info),
    )
    restored = manager.restore_latest(state)
    if restored is state and config.get("init_from"):  # a fresh run: start from the weights
        directory = _pretrained_directory(config, workdir)
        restored = weights.initialise_from(state, directory, info.num_classes)
    state = restored
    is_main = jax.process_index() == 0
    start = int(state.step)
    history = [h for h in _load_history(workdir) if h["step"] <= start] if is_main else []
    if is_main:
        write_config(workdir, config, info)
    return Run(
        config=config,
        workdir=workdir,
        info=info,
        total_steps=length,
        steps_per_epoch=steps_per_epoch,
        eval_every=max(1, int(config.eval_every_epochs * steps_per_epoch)),
        schedule=schedule,
        manager=manager,
        state=state,
        history=history,
        is_main=is_main,
    )


def _train(run: Run, preemption: Preemption, after_step) -> dict[str, Any]:
    config, step = run.config, int(run.state.step)
    if step:
        log.info("resuming from step %d of %d", step, run.total_steps)
    writer = reporting.create_metric_writer(run.workdir, is_main_process=run.is_main)
    if step == 0:
        writer.write_hparams(config_fields.scalar_fields(config))
    p_train, p_eval = pmapped_steps(config)
    state = jax_utils.replicate(run.state)
    if getattr(run.state, "ema_params", None) is not None:
        log.info("evaluating with the EMA weights (decay %g)", config.ssl.ema_decay)
    batches = jax_utils.prefetch_to_device(_train_batches(config, step), 2)
    progress = None
    if run.is_main:
        progress = reporting.Progress(run.total_steps, step, log_every_steps=config.log_every_steps)
    chrono = Chrono(step, config.batch_size, _wall_seconds_so_far(run.history))
    metrics = StepMetrics()
    saver = CheckpointSaver(run.manager, metrics, run.workdir, run.history, run.is_main)
    while step < run.total_steps:
        state, step_metrics = p_train(state, next(batches))
        step += 1
        metrics.add(step, step_metrics)
        if after_step is not None:
            after_step(step)
        is_last = step == run.total_steps
        is_eval = step % run.eval_every == 0 or is_last
        is_ckpt = step % config.checkpoint_every_steps == 0 or is_eval
        is_log = step % config.log_every_steps == 0 or is_last
        chrono.after_step(step, step_metrics, sync=is_log)
        stop = preemption.requested or run.manager.reached_preemption(step)
        if saver.holding:  # a finite step on top of the held state: it is good, save it
            saver.check_finite(config.optim.learning_rate)
            saver.release_held()
        if is_log or is_eval or is_ckpt or stop:
            saver.check_finite(config.optim.learning_rate)
            _log_train(run, writer, progress, step, metrics.mean(), chrono)
        with chrono.paused():
            record = _evaluate_and_log(run, writer, p_eval, state, step) if is_eval else None
            if is_ckpt or stop:
                saver.save(step, state, record, final=stop or is_last)
        if stop and not is_last:
            run.manager.wait_until_finished()
            writer.flush()
            log.warning("preempted at step %d: checkpoint saved, rerun the same command", step)
            return {"preempted": True, "step": step}
    if progress:
        progress.close()
    return _finish(run, writer, p_eval, state, chrono)


def _wall_seconds_so_far(history: list) -> float:
    """The wall time the history's last training entry recorded (a resumed run goes on)."""
    return next((h["wall_seconds"] for h in reversed(history) if "wall_seconds" in h), 0.0)


def labelled_data(config):
    """The data config of the labelled batches. With data.unlabelled_split set, cutout is the
    strong view's alone, whatever ssl.method: a labels-alone run (ssl.method=none) of a
    semi-supervised config trains on exactly the labelled batches its method would see."""
    if config.data.get("unlabelled_split") is None:
        return config.data
    return augment.without_cutout(config.data)


def _train_batches(config, step: int):
    """The training stream from `step`; semi-supervised: the labelled batches beside the
    unlabelled ones."""
    if not is_semi_supervised(config):
        return data.train_batches(
            labelled_data(config), batch_size=config.batch_size, seed=config.seed, start_step=step
        )
    return _semi_supervised_batches(config, step)


def _semi_supervised_batches(config, step: int):
    labelled = data.train_batches(
        labelled_data(config),
        batch_size=config.batch_size,
        seed=config.seed,
        start_step=step,
    )
    unlabelled = data.iterators.unlabelled_batches(
        config.data,
        batch_size=config.batch_size * config.ssl.unlabelled_ratio,
        seed=config.seed,
        start_step=step,
    )
    known = config.data.unlabelled_split != "unlabelled"  # STL10's carries no labels
    for x, u in zip(labelled, unlabelled):
        yield {"labelled": x, "unlabelled": u if known else {k: u[k] for k in u if k != "label"}}


_SSL_SCALARS = ("labelled_loss", "unlabelled_loss", "mask_rate", "pseudo_label_accuracy")


def _ssl_scalars(step: int, train: dict) -> dict[str, float]:
    """The semi-supervised metrics, logged in one line: FlexMatch's thresholds per class."""
    scalars = {k: train[k] for k in _SSL_SCALARS if k in train}
    if "class_thresholds" in train:
        thresholds = np.atleast_1d(train["class_thresholds"])
        scalars.update({f"class_threshold/{i}": float(t) for i, t in enumerate(thresholds)})
        scalars["mean_class_threshold"] = float(np.mean(thresholds))
    if scalars:
        shown = {k: v for k, v in scalars.items() if not k.startswith("class_threshold/")}
        log.info("step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    return scalars


def _log_train(run: Run, writer, progress, step: int, train: dict, chrono: Chrono):
    if not train:
        return
    images_per_second = chrono.images_per_second
    scalars = {
        "train_loss": train["loss"],
        "train_accuracy": train["accuracy"],
        "learning_rate": float(run.schedule(step - 1)),
        "images_per_second": images_per_second,
    }
    ssl_scalars = _ssl_scalars(step, train)
    scalars.update(ssl_scalars)
    writer.write_scalars(step, scalars)
    if progress:
        progress.update(
            step,
            loss=train["loss"],
            accuracy=train["accuracy"],
            images_per_second=images_per_second,
        )
    keys = ("train_loss", "train_accuracy", "learning_rate")
    keys += tuple(k for k in ("mask_rate", "pseudo_label_accuracy") if k in ssl_scalars)
    entry = {"step": step, **{k: scalars[k] for k in keys}}
    entry["wall_seconds"] = round(chrono.wall_seconds, 1)
    run.history.append(entry)


def _evaluate_and_log(run: Run, writer, p_eval, state, step: int) -> dict[str, float]:
    split = run.selection_split
    result = evaluate(p_eval, state, run.config, split)
    scalars = {f"{split}_loss": result["loss"], f"{split}_accuracy": result["accuracy"]}
    writer.write_scalars(step, scalars)
    run.history.append({"step": step, **scalars})
    log.info(
        "step %d: %s accuracy %.4f, %s loss %.4f over %d examples",
        step,
        split,
        result["accuracy"],
        split,
        result["loss"],
        result["examples"],
    )
    return {f"{split}_accuracy": result["accuracy"]}  # what the checkpoint records


def _finish(run: Run, writer, p_eval, state, chrono: Chrono) -> dict[str, Any]:
    """The test split, evaluated once at the end: on the final state and, with a validation
    holdout, on the checkpoint that was best on it."""
    run.manager.wait_until_finished()
    config = run.config
    test = evaluate(p_eval, state, config, "test")
    log.info("test accuracy %.4f over %d examples", test["accuracy"], test["examples"])
    params = jax_utils.unreplicate(state).params
    results = {
        "test_accuracy": test["accuracy"],
        **_raw_weights_test(run, p_eval, state),
        "test_loss": test["loss"],
        "test_examples": test["examples"],
        **_at_best_validation(run, p_eval, state, test),
        "train_steps": run.total_steps,
        "epochs": epochs_trained(config, run.steps_per_epoch),
        "images_per_second": chrono.images_per_second or None,
        "wall_seconds": round(chrono.wall_seconds, 1),
        "peak_host_memory_bytes": host_memory.peak_resident_bytes(),
        "model": config.model.name,
        "params": int(sum(x.size for x in jax.tree.leaves(params))),
        "dataset": config.data.dataset,
        "image_size": config.data.image_size,
        "batch_size": config.batch_size,
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "backend": jax.default_backend(),
        **machine.describe(),
    }
    if run.is_main:
        reporting.write_results(
            run.workdir,
            results,
            confusion=test["confusion"],
            class_names=run.info.class_names,
            history=run.history,
        )
    writer.flush()
    writer.close()
    run.manager.close()
    return results


def _raw_weights_test(run: Run, p_eval, state) -> dict[str, float]:
    """With EMA weights, test_accuracy is theirs: the live weights' is test_accuracy_raw."""
    if getattr(run.state, "ema_params", None) is None:
        return {}
    raw = evaluate(p_eval, state.replace(ema_params=None), run.config, "test")
    log.info("test accuracy %.4f with the raw (not averaged) weights", raw["accuracy"])
    return {"test_accuracy_raw": raw["accuracy"]}


def _at_best_validation(run: Run, p_eval, state, final_test) -> dict[str, Any]:
    """Test accuracy of the best-on-validation checkpoint, and the validation figures."""
    step = run.manager.best_step() if run.info.num_validation_examples else None
    if step is None:
        return {}
    test, best_state = final_test, state
    if step != run.total_steps:
        best_state = jax_utils.replicate(run.manager.restore_step(step, run.state))
        test = evaluate(p_eval, best_state, run.config, "test")
    validation = evaluate(p_eval, best_state, run.config, data.iterators.VALIDATION)
    log.info("best validation accuracy %.4f at step %d", validation["accuracy"], step)
    return {
        "test_accuracy_at_best_validation": test["accuracy"],
        "best_validation_accuracy": validation["accuracy"],
        "best_validation_step": step,
        "validation_examples": validation["examples"],
    }


def write_config(workdir: str, config, info: data.DatasetInfo) -> None:
    """WORKDIR/config.json: the resolved config and the class names, for later use of the run
    (evaluation, prediction, export) without the config file or its overrides."""
    record = {"config": json.loads(config.to_json()), "class_names": list(info.class_names)}
    reporting.write_json_atomic(os.path.join(workdir, "config.json"), record)


def _pretrained_directory(config, workdir: str) -> str:
    """config.init_from as a model directory; timm:NAME is fetched once, by process 0."""
    is_main = jax.process_index() == 0
    directory = weights.init_from_directory(config.init_from, workdir, is_main=is_main)
    _sync("pretrained_weights")
    return directory


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _load_history(workdir: str):
    path = os.path.join(workdir, "history.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return []
