"""Training library: train state, pure train/eval steps, and the training loop.

`train_step` and `eval_step` are pure and distribution-agnostic: given an `axis_name` they
average gradients and sum metrics over it, and the loop wraps them in `jax.pmap` in one
place (`_pmapped_steps`). Nothing here assumes a backend or a device count.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import jax_utils, struct

from senet_jax import checkpointing, input_pipeline, reporting
from senet_jax import config as config_lib
from senet_jax.models import create_model as create_registered_model

AXIS = "batch"

log = logging.getLogger("senet_jax")


class TrainingDivergedError(RuntimeError):
    """The loss or the gradients stopped being finite."""


class TrainState(struct.PyTreeNode):
    step: jnp.ndarray
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jnp.ndarray  # raw uint32 key data, so checkpoints hold plain arrays
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)


# ----------------------------------------------------------------------------- model + optimizer


def create_model(
    config: ml_collections.ConfigDict, num_classes: int, axis_name: str | None = None
) -> nn.Module:
    """The configured model; `axis_name` turns on cross-device BatchNorm statistics."""
    return create_registered_model(
        config.model,
        num_classes=num_classes,
        width_multiplier=config.width_multiplier,
        stem_strides=config.stem_strides,
        se={"reduction": config.se_reduction},
        dropout_rate=config.dropout_rate,
        depthwise_implementation=config.depthwise_implementation,
        conv_implementation=config.get("conv_implementation", "auto"),
        bn_axis_name=axis_name,
        dtype=jnp.bfloat16 if config.half_precision else jnp.float32,
    )


def _warmup_cosine(config, steps_per_epoch: int) -> optax.Schedule:
    total = config.num_epochs * steps_per_epoch
    warmup = min(int(config.warmup_epochs * steps_per_epoch), total - 1)
    return optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, warmup_steps=max(warmup, 0), decay_steps=total, end_value=0.0
    )


def _constant(config, steps_per_epoch: int) -> optax.Schedule:
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if warmup == 0:
        return optax.constant_schedule(config.learning_rate)
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, config.learning_rate, warmup),
            optax.constant_schedule(config.learning_rate),
        ],
        [warmup],
    )


SCHEDULES: dict[str, Callable[[Any, int], optax.Schedule]] = {
    "warmup_cosine": _warmup_cosine,
    "constant": _constant,
}


def decay_mask(params) -> Any:
    """Weight decay only on conv and dense kernels: not on BatchNorm scales/biases or biases."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key == "kernel", params)


def _sgd(config, schedule):
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
        optax.sgd(schedule, momentum=config.momentum, nesterov=True),
    )


def _adamw(config, schedule):
    return optax.adamw(schedule, weight_decay=config.weight_decay, mask=decay_mask)


OPTIMIZERS: dict[str, Callable[[Any, optax.Schedule], optax.GradientTransformation]] = {
    "sgd": _sgd,
    "adamw": _adamw,
}


def create_optimizer(
    config, steps_per_epoch: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = SCHEDULES[config.schedule](config, steps_per_epoch)
    return OPTIMIZERS[config.optimizer](config, schedule), schedule


def create_train_state(
    config, model: nn.Module, rng: jax.Array, image_shape: tuple[int, ...], steps_per_epoch: int
) -> TrainState:
    """Initialises parameters, BatchNorm statistics and the optimizer on the host's default device."""
    init_rng, state_rng = jax.random.split(rng)

    @jax.jit
    def init(key):
        return model.init(key, jnp.zeros((1, *image_shape), jnp.float32), train=False)

    variables = init(init_rng)
    tx, _ = create_optimizer(config, steps_per_epoch)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        rng=jax.random.key_data(state_rng),
        apply_fn=model.apply,
        tx=tx,
    )


# ----------------------------------------------------------------------------- steps


def _all_finite(tree) -> jnp.ndarray:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def train_step(
    state: TrainState,
    batch: dict[str, jnp.ndarray],
    *,
    label_smoothing: float = 0.0,
    axis_name: str | None = None,
) -> tuple[TrainState, dict[str, jnp.ndarray]]:
    """One SGD step; with `axis_name`, gradients and metrics are averaged over that axis."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    if axis_name is not None:  # a different dropout mask on every device
        key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    images, labels = batch["image"], batch["label"]

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats},
            images,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": key},
        )
        num_classes = logits.shape[-1]
        targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
        loss = optax.softmax_cross_entropy(logits, targets).mean()
        return loss, (logits, updates["batch_stats"])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    # Finite grads can still overflow the parameters (a huge learning rate): check what would be saved.
    metrics["finite"] = jnp.all(
        jnp.stack(
            [
                jnp.isfinite(metrics["loss"]),
                _all_finite(grads),
                _all_finite(new_params),
                _all_finite(batch_stats),
            ]
        )
    ).astype(jnp.float32)
    new_state = state.replace(
        step=state.step + 1, params=new_params, batch_stats=batch_stats, opt_state=opt_state
    )
    return new_state, metrics


def eval_step(
    state: TrainState, batch: dict[str, jnp.ndarray], *, axis_name: str | None = None
) -> dict[str, jnp.ndarray]:
    """Masked sums (loss, correct, count, confusion matrix), so metrics are exact over any padding."""
    logits = state.apply_fn(
        {"params": state.params, "batch_stats": state.batch_stats}, batch["image"], train=False
    )
    labels, mask = batch["label"], batch["mask"].astype(jnp.float32)
    num_classes = logits.shape[-1]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    predictions = jnp.argmax(logits, -1)
    confusion = jnp.einsum(
        "n,ni,nj->ij",
        mask,
        jax.nn.one_hot(labels, num_classes),
        jax.nn.one_hot(predictions, num_classes),
    )
    sums = {
        "loss_sum": jnp.sum(loss * mask),
        "correct": jnp.sum((predictions == labels) * mask),
        "count": jnp.sum(mask),
        "confusion": confusion,
    }
    if axis_name is not None:
        sums = jax.lax.psum(sums, axis_name)
    return sums


def _pmapped_steps(config):
    """The one place that distributes the steps: pmap over all devices of all processes."""
    p_train = jax.pmap(
        functools.partial(train_step, label_smoothing=config.label_smoothing, axis_name=AXIS),
        axis_name=AXIS,
        donate_argnums=(0,),
    )
    p_eval = jax.pmap(functools.partial(eval_step, axis_name=AXIS), axis_name=AXIS)
    return p_train, p_eval


# ----------------------------------------------------------------------------- loop


def evaluate(p_eval, state, config, info) -> dict[str, Any]:
    """Exact test metrics over every example of the evaluation split."""
    totals = None
    for batch in input_pipeline.eval_batches(config):
        sums = jax.tree.map(lambda x: np.asarray(x[0], np.float64), p_eval(state, batch))
        totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    count = int(totals["count"])
    return {
        "test_accuracy": float(totals["correct"] / count),
        "test_loss": float(totals["loss_sum"] / count),
        "test_examples": count,
        "confusion": totals["confusion"].round().astype(np.int64),
    }


class _Preemption:
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


def _prepare_synthetic_data(config, workdir: str) -> ml_collections.ConfigDict:
    """For smoke runs: an STL10-layout archive in the workdir, prepared into its own data_dir."""
    from senet_jax import stl10_format

    config = ml_collections.ConfigDict(config.to_dict())
    root = os.path.join(workdir, "synthetic_stl10")
    archive = os.path.join(root, "stl10_binary.tar.gz")
    if jax.process_index() == 0 and not os.path.exists(archive):
        # Written aside, then renamed: a run killed mid-write must not leave a truncated archive behind.
        num_train, num_test = config.synthetic_stl10
        scratch = root + ".partial"
        shutil.rmtree(scratch, ignore_errors=True)
        written = stl10_format.write_stl10_archive(scratch, num_train, num_test, seed=config.seed)
        os.makedirs(root, exist_ok=True)
        os.replace(written, archive)
        shutil.rmtree(scratch, ignore_errors=True)
    _sync("synthetic_data")
    config.stl10_archive = archive
    config.data_dir = config.data_dir or os.path.join(workdir, "tfds")
    return config


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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains, evaluates and checkpoints; rerunning with the same workdir resumes.

    In a single process SIGTERM is honoured from the first line: before training starts it
    just returns, after that it saves a checkpoint at the end of the current step and returns.
    """
    with _Preemption() as preemption:
        return _train_and_evaluate(config, workdir, preemption)


def _train_and_evaluate(config, workdir: str, preemption: _Preemption) -> dict[str, Any]:
    # The cheap checks come first, so a bad config, an incompatible checkpoint or a missing
    # dataset fails in seconds and leaves the workdir exactly as it was.
    config_lib.validate(config, workdir=workdir)
    existing = checkpointing.CheckpointManager(workdir, config, read_only=True)
    existing.check_config()
    existing.close()
    is_main = jax.process_index() == 0
    if is_main and not config.get("synthetic_stl10"):
        input_pipeline.get_dataset_info(
            config
        )  # prepares the dataset if needed, outside the workdir
    if is_main:
        os.makedirs(workdir, exist_ok=True)
    if config.get("synthetic_stl10"):
        config = _prepare_synthetic_data(config, workdir)

    # Process 0 prepares the dataset first, so hosts that share a data_dir never build it twice.
    info = input_pipeline.get_dataset_info(config) if is_main else None
    _sync("dataset_prepared")
    info = info or input_pipeline.get_dataset_info(config)
    steps_per_epoch = input_pipeline.steps_per_epoch(config, info)
    total_steps = config.num_epochs * steps_per_epoch
    eval_every = max(1, int(config.eval_every_epochs * steps_per_epoch))
    image_shape = (config.image_size, config.image_size, 3)

    model = create_model(config, info.num_classes, axis_name=AXIS)
    state = create_train_state(
        config, model, jax.random.key(config.seed), image_shape, steps_per_epoch
    )
    _, schedule = create_optimizer(config, steps_per_epoch)
    manager = checkpointing.CheckpointManager(workdir, config, num_classes=info.num_classes)
    state = manager.restore_latest(state)
    start_step = int(state.step)
    history = _load_history(workdir) if is_main else []
    history = [h for h in history if h["step"] <= start_step]
    if start_step:
        log.info("resuming from step %d of %d", start_step, total_steps)

    writer = reporting.create_metric_writer(workdir, is_main_process=is_main)
    if start_step == 0:
        writer.write_hparams(
            {k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))}
        )
    p_train, p_eval = _pmapped_steps(config)
    state = jax_utils.replicate(state)
    batches = jax_utils.prefetch_to_device(
        input_pipeline.train_batches(config, start_step=start_step), 2
    )
    progress = (
        reporting.Progress(total_steps, start_step, log_every_steps=config.log_every_steps)
        if is_main
        else None
    )

    pending, timer_start, timed_images, timed_seconds, paused = [], None, 0, 0.0, 0.0
    # Fault injection for tests: a real SIGTERM to ourselves once this step has run.
    preempt_at = int(os.environ.get("SENET_JAX_PREEMPT_AT_STEP", "0"))
    last_eval: dict[str, Any] | None = None
    step = start_step
    if preemption.requested and step < total_steps:
        log.warning(
            "SIGTERM received before training started: nothing new to save, rerun the same command to resume"
        )
        manager.close()
        return {"preempted": True, "step": step}

    held = None  # (step, host state, metrics): a checkpoint saved only once the step after it is finite

    def check_finite() -> None:
        """Stops at the first non-finite pending step, before anything after it is saved."""
        flags = jax.device_get([m["finite"] for _, m in pending])
        for (s, _), finite in zip(pending, flags):
            if finite[0] < 1:
                manager.wait_until_finished()  # let the last good save land; the bad state is never saved
                good = manager.latest_step()
                kept = (
                    f"the last good checkpoint (step {good}) is kept"
                    if good is not None
                    else "no checkpoint was saved"
                )
                dropped = (
                    f" (the state of step {held[0]} led to it and was not saved)" if held else ""
                )
                raise TrainingDivergedError(
                    f"loss, gradients or parameters became NaN/Inf at step {s}{dropped}; {kept}: lower "
                    f"config.learning_rate (now {config.learning_rate}) or check the data"
                )

    def flush_metrics(step: int) -> dict[str, float]:
        """Brings pending step metrics to the host; stops at the first non-finite step."""
        check_finite()
        fetched = jax.device_get([m for _, m in pending])
        pending.clear()
        if not fetched:
            return {}
        return {k: float(np.mean([m[k][0] for m in fetched])) for k in ("loss", "accuracy")}

    def save(step: int, host_state, metrics) -> None:
        manager.save(step, host_state, metrics=metrics)
        if is_main:
            _write_history(workdir, history)

    while step < total_steps:
        batch = next(batches)
        state, metrics = p_train(state, batch)
        step += 1
        pending.append((step, metrics))
        if step == preempt_at:
            os.kill(os.getpid(), signal.SIGTERM)
        if timer_start is None:  # the first step includes compilation: time from after it
            jax.block_until_ready(metrics)
            timer_start = time.perf_counter()
        elif step % config.log_every_steps == 0 or step == total_steps:
            jax.block_until_ready(metrics)

        is_eval = step % eval_every == 0 or step == total_steps
        is_ckpt = step % config.checkpoint_every_steps == 0 or is_eval
        stop = preemption.requested or manager.reached_preemption(step)
        if held is not None:  # a finite step on top of the held state: it is good, save it
            check_finite()
            save(*held)
            held = None
        if step % config.log_every_steps == 0 or is_eval or is_ckpt or stop:
            train = flush_metrics(step)
            now = time.perf_counter()
            if timer_start is not None and step > start_step + 1:
                timed_seconds = now - timer_start - paused
                timed_images = (step - start_step - 1) * config.batch_size
            ips = timed_images / timed_seconds if timed_seconds else 0.0
            if train:
                scalars = {
                    "train_loss": train["loss"],
                    "train_accuracy": train["accuracy"],
                    "learning_rate": float(schedule(step - 1)),
                    "images_per_second": ips,
                }
                writer.write_scalars(step, scalars)
                if progress:
                    progress.update(
                        step, loss=train["loss"], accuracy=train["accuracy"], images_per_second=ips
                    )
                history.append(
                    {
                        "step": step,
                        **{
                            k: scalars[k] for k in ("train_loss", "train_accuracy", "learning_rate")
                        },
                    }
                )
        pause_start = time.perf_counter()
        if is_eval:
            last_eval = evaluate(p_eval, state, config, info)
            writer.write_scalars(
                step,
                {"test_loss": last_eval["test_loss"], "test_accuracy": last_eval["test_accuracy"]},
            )
            history.append(
                {
                    "step": step,
                    "test_loss": last_eval["test_loss"],
                    "test_accuracy": last_eval["test_accuracy"],
                }
            )
            log.info(
                "step %d: test accuracy %.4f, test loss %.4f over %d examples",
                step,
                last_eval["test_accuracy"],
                last_eval["test_loss"],
                last_eval["test_examples"],
            )
        if is_ckpt or stop:
            metrics_for_ckpt = {"test_accuracy": last_eval["test_accuracy"]} if is_eval else None
            host_state = jax.device_get(jax_utils.unreplicate(state))
            if (
                stop or step == total_steps
            ):  # no next step to vouch for it: finite is the best we know
                save(step, host_state, metrics_for_ckpt)
            else:  # finite parameters can still be a blown-up state: wait for the next step's loss
                held = (step, host_state, metrics_for_ckpt)
        paused += (
            time.perf_counter() - pause_start
        )  # evaluation and saving are not training throughput
        if stop and step < total_steps:
            manager.wait_until_finished()
            writer.flush()
            log.warning(
                "preempted at step %d: checkpoint saved, rerun the same command to resume", step
            )
            return {"preempted": True, "step": step}

    manager.wait_until_finished()
    if progress:
        progress.close()
    if last_eval is None:  # resumed after the final step: evaluate what was restored
        last_eval = evaluate(p_eval, state, config, info)
    results = {
        "test_accuracy": last_eval["test_accuracy"],
        "test_loss": last_eval["test_loss"],
        "test_examples": last_eval["test_examples"],
        "train_steps": total_steps,
        "epochs": config.num_epochs,
        "images_per_second": timed_images / timed_seconds if timed_seconds else None,
        "model": config.model,
        "params": int(sum(x.size for x in jax.tree.leaves(jax_utils.unreplicate(state).params))),
        "dataset": config.dataset,
        "image_size": config.image_size,
        "batch_size": config.batch_size,
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "backend": jax.default_backend(),
    }
    tests = [h for h in history if "test_accuracy" in h]
    if tests:
        best = max(tests, key=lambda h: h["test_accuracy"])
        results.update(best_test_accuracy=best["test_accuracy"], best_step=best["step"])
    if is_main:
        reporting.write_results(
            workdir,
            results,
            confusion=last_eval["confusion"],
            class_names=info.class_names,
            history=history,
        )
    writer.flush()
    writer.close()
    manager.close()
    return results


def _write_history(workdir: str, history) -> None:
    reporting.write_json_atomic(os.path.join(workdir, "history.json"), history)
