"""Orbax checkpoints in WORKDIR/checkpoints: resume, keep latest and best, survive corruption.

Each checkpoint holds the train state (params, BatchNorm statistics, optimizer state, step,
RNG) and a small JSON record: the config fields that fix parameter shapes, and a digest of
the state's bytes. The record lets a resume refuse a checkpoint from another model (naming
the field) and detect a checkpoint whose files were damaged after it was written.
"""

import hashlib
import logging
from typing import Any, Dict, Optional

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


def _shapes(tree) -> Dict[str, list]:
    return {jax.tree_util.keystr(path): list(np.shape(leaf))
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


class CheckpointManager:
    """Thin layer over orbax's CheckpointManager with the project's resume rules."""

    def __init__(self, workdir: str, config, *, num_classes: Optional[int] = None):
        self.directory = epath.Path(workdir).absolute() / "checkpoints"
        self._fields = {f: config.get(f) for f in SHAPE_FIELDS}
        self._fields["num_classes"] = num_classes
        keep = policies.AnyPreservationPolicy([
            policies.LatestN(n=config.keep_checkpoints),
            policies.BestN(get_metric_fn=lambda m: m["test_accuracy"], n=1, keep_checkpoints_without_metrics=False),
        ])
        options = ocp.CheckpointManagerOptions(preservation_policy=keep, create=True, cleanup_tmp_directories=True,
                                               enable_async_checkpointing=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "record"))

    # -- queries
    def all_steps(self):
        return sorted(self._manager.all_steps())

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def reached_preemption(self, step: int) -> bool:
        return self._manager.reached_preemption(step)

    # -- compatibility
    def _read_record(self, step: int) -> Dict[str, Any]:
        return self._manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))["record"]

    def check_compatible(self, record: Dict[str, Any], params=None) -> None:
        """Raises IncompatibleCheckpointError naming the first field that differs."""
        for field, ours in self._fields.items():
            theirs = record.get("fields", {}).get(field)
            if ours is not None and theirs is not None and theirs != ours:
                raise IncompatibleCheckpointError(
                    f"{self.directory} holds checkpoints with {field}={theirs!r} but the config has {field}={ours!r}: "
                    f"use another --workdir, or set --config.{field}={theirs!r} to resume them (nothing was deleted)")
        if params is not None and "param_shapes" in record:
            ours = _shapes(params)
            for name, shape in record["param_shapes"].items():
                if ours.get(name) != shape:
                    raise IncompatibleCheckpointError(
                        f"{self.directory} holds parameter {name} of shape {shape}, the model has {ours.get(name)}: "
                        f"use another --workdir or the checkpoint's model config (nothing was deleted)")

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
    def save(self, step: int, state, *, metrics: Optional[Dict[str, float]] = None) -> None:
        host = {f: jax.device_get(getattr(state, f)) for f in STATE_FIELDS}
        record = {"fields": self._fields, "step": int(step), "digest": _digest(host),
                  "param_shapes": _shapes(host["params"])}
        self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(host),
                                                         record=ocp.args.JsonSave(record)),
                           metrics=metrics, force=True)

    def restore_latest(self, state):
        """The newest checkpoint that is complete and intact, else `state` unchanged.

        A checkpoint that cannot be read, or whose bytes no longer match its digest, is
        reported and skipped (never deleted), so a damaged latest save falls back to the one before.
        """
        template = {f: jax.device_get(getattr(state, f)) for f in STATE_FIELDS}
        for step in reversed(self.all_steps()):
            try:
                record = self._read_record(step)
            except Exception as e:
                log.error("checkpoint %d in %s is unreadable (%s: %s); trying the previous one",
                              step, self.directory, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
                continue
            self.check_compatible(record, template["params"])
            try:
                restored = self._manager.restore(
                    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(template)))["state"]
            except Exception as e:
                log.error("checkpoint %d in %s is damaged (%s: %s); trying the previous one",
                              step, self.directory, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
                continue
            if _digest(restored) != record.get("digest"):
                log.error("checkpoint %d in %s does not match its digest (its files were changed after "
                              "saving); trying the previous one", step, self.directory)
                continue
            log.info("restored checkpoint %d from %s", step, self.directory)
            return state.replace(**restored)
        return state

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
