"""Orbax checkpoints in WORKDIR/checkpoints: resume, keep latest and best, survive corruption.

Each checkpoint holds the train state (params, BatchNorm statistics, optimizer state, step,
RNG) and a small JSON record: the config fields that fix parameter shapes, and a digest of
the state's bytes. The record lets a resume refuse a checkpoint from another model (naming
the field) and detect a checkpoint whose files were damaged after it was written.
A damaged checkpoint is moved to WORKDIR/damaged_checkpoints/ (kept for inspection, never
deleted) so the run can fall back to the one before and later save that step afresh.
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint import checkpoint_managers as policies

# Config fields that change the shapes or structure of what a checkpoint holds.
SHAPE_FIELDS = ("model", "width_multiplier", "stem_strides", "se_reduction", "optimizer")
STATE_FIELDS = ("step", "params", "batch_stats", "opt_state", "rng")

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


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


class CheckpointManager:
    """Thin layer over orbax's CheckpointManager with the project's resume rules."""

    def __init__(
        self, workdir: str, config, *, num_classes: int | None = None, read_only: bool = False
    ):
        """`read_only` opens existing checkpoints without creating, cleaning or writing anything."""
        self.directory = epath.Path(workdir).absolute() / "checkpoints"
        self.damaged_directory = epath.Path(workdir).absolute() / "damaged_checkpoints"
        self._fields = {f: config.get(f) for f in SHAPE_FIELDS}
        self._fields["num_classes"] = num_classes
        if read_only:
            options = ocp.CheckpointManagerOptions(
                read_only=True, create=False, cleanup_tmp_directories=False
            )
        else:
            keep = policies.AnyPreservationPolicy(
                [
                    policies.LatestN(n=config.keep_checkpoints),
                    policies.BestN(
                        get_metric_fn=lambda m: m["test_accuracy"],
                        n=1,
                        keep_checkpoints_without_metrics=False,
                    ),
                ]
            )
            options = ocp.CheckpointManagerOptions(
                preservation_policy=keep,
                create=True,
                cleanup_tmp_directories=True,
                enable_async_checkpointing=True,
            )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "record")
        )

    # -- queries
    def all_steps(self):
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def reached_preemption(self, step: int) -> bool:
        return self._manager.reached_preemption(step)

    # -- compatibility
    def _read_record(self, step: int) -> dict[str, Any]:
        return self._manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))[
            "record"
        ]

    def check_compatible(self, record: dict[str, Any], params=None) -> None:
        """Raises IncompatibleCheckpointError naming the first field that differs."""
        for field, ours in self._fields.items():
            theirs = record.get("fields", {}).get(field)
            if ours is not None and theirs is not None and theirs != ours:
                raise IncompatibleCheckpointError(
                    f"{self.directory} holds checkpoints with {field}={theirs!r} but the config has {field}={ours!r}: "
                    f"use another --workdir, or set --config.{field}={theirs!r} to resume them (nothing was deleted)"
                )
        if params is not None and "param_shapes" in record:
            ours = _shapes(params)
            for name, shape in record["param_shapes"].items():
                if ours.get(name) != shape:
                    raise IncompatibleCheckpointError(
                        f"{self.directory} holds parameter {name} of shape {shape}, the model has {ours.get(name)}: "
                        f"use another --workdir or the checkpoint's model config (nothing was deleted)"
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
        host = {f: jax.device_get(getattr(state, f)) for f in STATE_FIELDS}
        record = {
            "fields": self._fields,
            "step": int(step),
            "digest": _digest(host),
            "param_shapes": _shapes(host["params"]),
        }
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(host), record=ocp.args.JsonSave(record)
            ),
            metrics=metrics,
            force=True,
        )

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
                self.check_compatible(record, template["params"])
                try:
                    restored = self._manager.restore(
                        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(template))
                    )["state"]
                except Exception as e:
                    report(step, f"its state is unreadable ({_first_line(e)})")
                    continue
                if _digest(restored) != record.get("digest"):
                    report(step, "its state no longer matches the digest saved with it")
                    continue
                log.info("restored checkpoint %d from %s", step, self.directory)
                return state.replace(**restored)
            return state
        finally:
            self._set_aside(damaged)

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
