"""Orbax checkpoints in WORKDIR/checkpoints: resume, keep latest and best, survive corruption.

Each checkpoint holds the train state (params, BatchNorm statistics, optimizer state, step,
RNG) and a small JSON record: `config.model` and the class count, the shapes of the
parameters and optimizer state, and a digest of the state's bytes. The record lets a resume
refuse a checkpoint of another model (naming the field) and detect a checkpoint whose files
were damaged after it was written.
A damaged checkpoint is moved to WORKDIR/damaged_checkpoints/ (kept for inspection, never
deleted) so the run can fall back to the one before and later save that step afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint import checkpoint_managers as policies

STATE_FIELDS = ("step", "params", "batch_stats", "opt_state", "rng")
# Semi-supervised states add these (semi_supervised.step.SemiSupervisedState); a None field
# (EMA off, FixMatch's absent record) is not saved.
OPTIONAL_STATE_FIELDS = ("ema_params", "pseudo_record")
# Fields that choose which images a semi-supervised run sees, by their config names: a resume
# under other values would train on other batches.
SSL_FIELDS = ("ssl.method", "data.labels_per_class", "data.labelled_fold")
# What the training streams after a checkpoint depend on besides (seed, step)
# (data.iterators.iterator_identity), with the value a checkpoint saved before the field
# existed holds: a resume that differs in any of them would see other batches.
_DATA_IDENTITY_FIELDS = {
    "dataset": None,
    "train_split": None,
    "streamed": None,
    "processes": None,
    "unlabelled_streamed": False,  # the unlabelled split was always held in memory before
    "unlabelled_processes": None,
}
# The metric that picks the best checkpoint (kept beside the latest ones): model selection
# on the validation holdout, never on the test split.
BEST_METRIC = "validation_accuracy"

log = logging.getLogger("senet_jax")


class IncompatibleCheckpointError(ValueError):
    """The workdir holds checkpoints of a different model or config."""


def _digest(tree) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _shapes(tree) -> dict[str, list]:
    return {
        jax.tree_util.keystr(path): list(np.shape(leaf))
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def _flatten(tree: dict, prefix: str) -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def state_fields(state) -> tuple[str, ...]:
    """The fields of `state` a checkpoint holds: the supervised ones and any set optional one."""
    extra = tuple(f for f in OPTIONAL_STATE_FIELDS if getattr(state, f, None) is not None)
    return STATE_FIELDS + extra


def ssl_identity(config) -> dict[str, Any]:
    """SSL_FIELDS' values; a config without an `ssl` section is plain supervised."""
    ssl, data = config.get("ssl"), config.data
    return {
        "ssl.method": "none" if ssl is None else ssl.get("method", "none"),
        "data.labels_per_class": data.get("labels_per_class"),
        "data.labelled_fold": data.get("labelled_fold"),
    }


def ssl_identity_of_supervised() -> dict[str, Any]:
    """What a checkpoint that records no SSL fields was trained with."""
    return {"ssl.method": "none", "data.labels_per_class": None, "data.labelled_fold": None}


def _with_missing_fields(state, saved, step: int):
    """EMA weights a checkpoint lacks start at its weights; a FlexMatch record starts empty."""
    if getattr(state, "ema_params", None) is not None and "ema_params" not in saved:
        log.info("checkpoint %d holds no EMA weights: the average starts from its weights", step)
        state = state.replace(ema_params=state.params)
    if getattr(state, "pseudo_record", None) is not None and "pseudo_record" not in saved:
        log.info("checkpoint %d holds no FlexMatch record: it starts empty", step)
    return state


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


class _ReadOnlyNotice(logging.Filter):
    """Orbax warns on every read-only open that the directory is read only: what was asked."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Given directory is read only")


@contextlib.contextmanager
def _without_read_only_notice():
    """Drops that one warning (orbax logs through absl) while a manager opens."""
    absl_logger, notice = logging.getLogger("absl"), _ReadOnlyNotice()
    absl_logger.addFilter(notice)
    try:
        yield
    finally:
        absl_logger.removeFilter(notice)


class CheckpointManager:
    """Thin layer over orbax's CheckpointManager with the project's resume rules."""

    def __init__(
        self,
        workdir: str,
        config,
        *,
        num_classes: int | None = None,
        read_only: bool = False,
        data_identity: dict | None = None,
    ):
        """`read_only` opens existing checkpoints without creating, cleaning or writing anything.
        `data_identity` (data.iterators.iterator_identity) is what the training stream after a
        checkpoint depends on: saved with each one, and a resume under another is refused."""
        self._data = data_identity
        self.directory = epath.Path(workdir).absolute() / "checkpoints"
        self.damaged_directory = epath.Path(workdir).absolute() / "damaged_checkpoints"
        # JSON round trip, so tuples compare equal to the lists a record holds.
        self._model = json.loads(json.dumps(config.model.to_dict()))
        self._num_classes = num_classes
        self._optimizer = config.optim.name
        self._ssl = ssl_identity(config)
        if read_only:
            options = ocp.CheckpointManagerOptions(
                read_only=True, create=False, cleanup_tmp_directories=False, save_interval_steps=0
            )
        else:
            keep = [policies.LatestN(n=config.keep_checkpoints)]
            if config.data.get("validation_examples"):  # without a holdout: the latest only
                best = policies.BestN(
                    get_metric_fn=lambda m: m[BEST_METRIC],
                    n=1,
                    keep_checkpoints_without_metrics=False,
                )
                keep.append(best)
            keep = policies.AnyPreservationPolicy(keep)
            options = ocp.CheckpointManagerOptions(
                preservation_policy=keep,
                create=True,
                cleanup_tmp_directories=True,
                enable_async_checkpointing=True,
            )
        with _without_read_only_notice():
            self._manager = ocp.CheckpointManager(
                self.directory, options=options, item_names=("state", "record")
            )

    # -- queries
    def all_steps(self):
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        """The step with the highest BEST_METRIC among readable checkpoints that recorded it."""
        best = None
        for step in self.all_steps():
            try:
                value = (self._read_record(step).get("metrics") or {}).get(BEST_METRIC)
            except Exception:  # unreadable: restore reports it
                continue
            if value is not None and (best is None or value > best[1]):
                best = (step, value)
        return None if best is None else best[0]

    def reached_preemption(self, step: int) -> bool:
        return self._manager.reached_preemption(step)

    # -- compatibility
    def _read_record(self, step: int) -> dict[str, Any]:
        return self._manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))[
            "record"
        ]

    def _identity(self) -> dict[str, Any]:
        ours = _flatten(self._model, "config.model.")
        ours["config.optim.name"] = self._optimizer
        if self._num_classes is not None:
            ours["num_classes"] = self._num_classes
        return ours

    def check_compatible(self, record: dict[str, Any], template=None) -> None:
        """Raises IncompatibleCheckpointError naming the first setting that differs.

        The saved `config.model` (and class count) must equal the config's; with a
        `template` state, the saved parameter and optimizer-state shapes must match it.
        """
        if "model" in record:
            theirs = _flatten(record["model"], "config.model.")
            theirs["config.optim.name"] = record.get("optimizer")
            theirs["num_classes"] = record.get("num_classes")
        else:
            raise IncompatibleCheckpointError(
                f"{self.directory} holds a checkpoint that predates this layout and records no "
                "model settings: use another --workdir (nothing was deleted)"
            )
        ours = self._identity()
        for field in sorted(set(theirs) | set(ours)):
            if field in theirs and field in ours and theirs[field] != ours[field]:
                self._refuse(field, theirs[field], ours[field])
            if field.startswith("config.model.") and (field in theirs) != (field in ours):
                # a field only one side has: a different architecture
                self._refuse(field, theirs.get(field), ours.get(field))
        self.check_data(record)
        self._check_ssl(record)
        if template is not None:
            self._check_shapes(record, "param_shapes", template["params"], "parameter")
            self._check_shapes(record, "opt_state_shapes", template["opt_state"], "optimizer state")

    def check_data(self, record: dict[str, Any]) -> None:
        """The checkpoint's data-iterator state must belong to this run's dataset, split, input
        path and (streamed) process count: otherwise the batches after it would differ."""
        theirs, ours = record.get("data"), self._data
        if not theirs or not ours:
            return  # saved before data identities, or a reader that does not train
        for field, default in _DATA_IDENTITY_FIELDS.items():
            saved, now = theirs.get(field, default), ours.get(field, default)
            if saved != now:
                raise IncompatibleCheckpointError(
                    f"{self.directory} step {record.get('step')}: its data-iterator state "
                    f"belongs to {field}={saved!r}, this run has {field}={now!r}; resume with "
                    "the same dataset and process count, or use another --workdir (nothing "
                    "was deleted)"
                )

    def _check_ssl(self, record: dict[str, Any]) -> None:
        """Checkpoints saved before semi-supervised runs existed were plain supervised."""
        theirs = record.get("ssl") or ssl_identity_of_supervised()
        for field, ours in self._ssl.items():
            if theirs.get(field) != ours:
                self._refuse(f"config.{field}", theirs.get(field), ours)

    def _refuse(self, field: str, theirs, ours) -> None:
        fix = f"--{field}={theirs!r}" if field != "num_classes" else "the same dataset"
        raise IncompatibleCheckpointError(
            f"{self.directory} holds checkpoints with {field}={theirs!r} but the config has "
            f"{field}={ours!r}: use another --workdir, or {fix} to resume them "
            "(nothing was deleted)"
        )

    def _check_shapes(self, record, key: str, tree, what: str) -> None:
        if key not in record:
            return
        ours = _shapes(tree)
        for name, shape in record[key].items():
            if ours.get(name) != shape:
                raise IncompatibleCheckpointError(
                    f"{self.directory} holds {what} {name} of shape {shape}, this config makes "
                    f"{ours.get(name)}: use another --workdir or the checkpoint's config "
                    "(nothing was deleted)"
                )

    def check_config(self) -> None:
        """Cheap early check of the config fields against the newest readable checkpoint."""
        for step in reversed(self.all_steps()):
            try:
                record = self._read_record(step)
            except Exception:  # unreadable record: restore_latest reports and skips it
                continue
            self.check_compatible(record)
            return

    # -- save / restore
    def save(self, step: int, state, *, metrics: dict[str, float] | None = None) -> None:
        host = {f: jax.device_get(getattr(state, f)) for f in state_fields(state)}
        record = {
            "model": self._model,
            "num_classes": self._num_classes,
            "optimizer": self._optimizer,
            "step": int(step),
            "digest": _digest(host),
            "digests": {f: _digest(value) for f, value in host.items()},
            "ssl": self._ssl,
            "param_shapes": _shapes(host["params"]),
            "opt_state_shapes": _shapes(host["opt_state"]),
            "metrics": metrics,
            "data": self._data,
        }
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(host), record=ocp.args.JsonSave(record)
            ),
            metrics=metrics,
            force=True,
        )

    def restore_step(self, step: int, state):
        """The state saved at `step` (checked against its digest), in `state`'s structure."""
        restored = self._restore_state(step, self._read_record(step), state)
        if restored is None:
            raise IncompatibleCheckpointError(
                f"checkpoint {step} in {self.directory} no longer matches its digest"
            )
        return restored

    def _restore_state(self, step: int, record: dict[str, Any], state):
        """`state` with the fields saved at `step`, or None when their bytes no longer match
        the digests saved with them. A field the run wants but the checkpoint lacks (EMA
        weights, FlexMatch's record) starts afresh with a log line; one it holds but the run
        does not want is left unread."""
        saved = tuple(record.get("digests") or STATE_FIELDS)
        fields = [f for f in state_fields(state) if f in saved]
        template = {f: jax.device_get(getattr(state, f)) for f in fields}
        restore = ocp.args.StandardRestore(template, strict=set(fields) == set(saved))
        restored = self._manager.restore(step, args=ocp.args.Composite(state=restore))["state"]
        restored = {f: restored[f] for f in fields}
        if set(fields) == set(saved):
            intact = _digest(restored) == record.get("digest")
        else:  # a part of the state: the digests of its fields
            digests = record.get("digests") or {}
            intact = all(_digest(restored[f]) == digests.get(f) for f in fields)
        if not intact:
            return None
        return _with_missing_fields(state.replace(**restored), saved, step)

    def restore_latest(self, state):
        """The newest checkpoint that is complete and intact, else `state` unchanged.

        A checkpoint that cannot be read, or whose bytes no longer match its digest, is
        reported by step and moved aside (never deleted), and the one before it is tried.
        """
        template = {f: jax.device_get(getattr(state, f)) for f in STATE_FIELDS}
        damaged = []

        def report(step, reason):
            log.error(
                "checkpoint %d in %s is damaged: %s; falling back to the previous checkpoint",
                step,
                self.directory,
                reason,
            )
            damaged.append(step)

        try:
            for step in reversed(self.all_steps()):
                try:
                    record = self._read_record(step)
                except Exception as e:
                    report(step, f"its record is unreadable ({_first_line(e)})")
                    continue
                self.check_compatible(record, template)
                try:
                    restored = self._restore_state(step, record, state)
                except Exception as e:
                    report(step, f"its state is unreadable ({_first_line(e)})")
                    continue
                if restored is None:
                    report(step, "its state no longer matches the digest saved with it")
                    continue
                log.info("restored checkpoint %d from %s", step, self.directory)
                return restored
            return state
        finally:
            self._set_aside(damaged)

    def restore_subset(self, step: int, template: dict[str, Any]) -> dict[str, Any]:
        """Only `template`'s parts of the state saved at `step` (e.g. params and batch_stats),
        as numpy arrays, for inference: the optimizer state is never read, so restoring does
        not depend on how the optimizer is built today. A checkpoint with EMA weights gives
        those as `params`. Refuses (IncompatibleCheckpointError)
        a checkpoint of another model or class count, or of other shapes than `template`."""
        record = self._read_record(step)
        self.check_compatible(record)
        ema = "params" in template and "ema_params" in (record.get("digests") or {})
        if ema:  # a run with averaged weights is used through them, as it was evaluated
            template = {**template, "ema_params": template["params"]}
        restore_args = ocp.checkpoint_utils.construct_restore_args(template)
        with ocp.PyTreeCheckpointer() as checkpointer:
            restored = checkpointer.restore(
                self.directory / str(step) / "state",
                args=ocp.args.PyTreeRestore(
                    template, restore_args=restore_args, partial_restore=True
                ),
            )
        ours, theirs = _shapes(template), _shapes(restored)
        for name in sorted(set(ours) | set(theirs)):
            if ours.get(name) != theirs.get(name):
                raise IncompatibleCheckpointError(
                    f"{self.directory} step {step} holds {name} of shape {theirs.get(name)}, "
                    f"the run's config makes {ours.get(name)}: it is a checkpoint of another model"
                )
        if ema:
            log.info("checkpoint %d: using its EMA weights", step)
            restored = {**restored, "params": restored["ema_params"]}
            del restored["ema_params"]
        return restored

    def _set_aside(self, damaged) -> None:
        """Moves damaged checkpoints to damaged_directory: kept, but out of the step sequence."""
        if not damaged:
            return
        if jax.process_index() == 0:
            for step in damaged:
                target = self.damaged_directory / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
                try:
                    self.damaged_directory.mkdir(parents=True, exist_ok=True)
                    (self.directory / str(step)).rename(target)
                    log.error(
                        "moved damaged checkpoint %d to %s (kept for inspection)", step, target
                    )
                except Exception as e:  # left in place: saving that step again then fails loudly
                    log.error(
                        "could not move damaged checkpoint %d out of %s (%s)",
                        step,
                        self.directory,
                        _first_line(e),
                    )
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("checkpoints_set_aside")
        self._manager.reload()

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
