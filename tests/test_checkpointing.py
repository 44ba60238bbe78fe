"""CheckpointManager in process: round trip, damage fallback, incompatible configs, kept steps."""

from __future__ import annotations

import json
import logging
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from config_utils import configure
from flax import struct
from training_runs import assert_trees_identical

from configs import stl10
from senet_jax.checkpointing import CheckpointManager, IncompatibleCheckpointError


class FakeState(struct.PyTreeNode):
    """The fields CheckpointManager saves, without building a model."""

    step: jnp.ndarray
    params: dict
    batch_stats: dict
    opt_state: tuple
    rng: jnp.ndarray


def make_config(**overrides):
    c = stl10.get_config()
    configure(c, width_multiplier=0.25, stem_strides=2, keep_checkpoints=2)
    return configure(c, **overrides)


def make_state(step, width=4, seed=0):
    rng = np.random.default_rng(seed + step)
    return FakeState(
        step=jnp.asarray(step, jnp.int32),
        params={
            "dense": {
                "kernel": jnp.asarray(rng.normal(size=(512, width)), jnp.float32),
                "bias": jnp.asarray(rng.normal(size=(width,)), jnp.float32),
            }
        },
        batch_stats={"bn": {"mean": jnp.asarray(rng.normal(size=(width,)), jnp.float32)}},
        opt_state=(jnp.asarray(rng.normal(size=(3, width)), jnp.float32),),
        rng=jnp.asarray([step, 7], jnp.uint32),
    )


def save_steps(workdir, steps, config=None, metrics=None):
    manager = CheckpointManager(str(workdir), config or make_config(), num_classes=10)
    for step in steps:
        manager.save(step, make_state(step), metrics=(metrics or {}).get(step))
    manager.wait_until_finished()
    manager.close()


def restore(workdir, config=None, width=4):
    manager = CheckpointManager(str(workdir), config or make_config(), num_classes=10)
    try:
        return manager.restore_latest(make_state(0, width=width, seed=99)), manager.all_steps()
    finally:
        manager.close()


def tree_of(state):
    return {f: getattr(state, f) for f in ("step", "params", "batch_stats", "opt_state", "rng")}


def test_round_trip_restores_the_newest_state_exactly(tmp_path):
    save_steps(tmp_path, [1, 2])
    restored, steps = restore(tmp_path)
    assert steps == [1, 2]
    assert_trees_identical(tree_of(restored), tree_of(make_state(2)))


def test_empty_workdir_leaves_the_state_alone(tmp_path):
    fresh = make_state(0, seed=99)
    restored, steps = restore(tmp_path)
    assert steps == []
    assert_trees_identical(tree_of(restored), tree_of(fresh))


def _change_digest(step_dir):
    path = os.path.join(step_dir, "record", "metadata")
    with open(path) as f:
        record = json.load(f)
    record["digest"] = "0" * 64
    with open(path, "w") as f:
        json.dump(record, f)


def _truncate_state(step_dir):
    files = [
        os.path.join(d, n)
        for d, _, names in os.walk(os.path.join(step_dir, "state"))
        for n in names
    ]
    largest = max(files, key=os.path.getsize)  # the array data, not a manifest
    with open(largest, "r+b") as f:
        f.truncate(os.path.getsize(largest) // 2)


@pytest.mark.parametrize(
    "damage,reason",
    [
        (_change_digest, "no longer matches the digest"),
        (_truncate_state, "its state is unreadable"),
    ],
)
def test_damaged_latest_is_reported_kept_and_the_previous_one_used(
    tmp_path, caplog, damage, reason
):
    save_steps(tmp_path, [1, 2])
    damage(str(tmp_path / "checkpoints" / "2"))
    with caplog.at_level(logging.ERROR, logger="senet_jax"):
        restored, steps = restore(tmp_path)
    assert_trees_identical(tree_of(restored), tree_of(make_state(1)))
    assert steps == [1]  # out of the sequence, so step 2 can be saved again
    assert any(
        "checkpoint 2 " in r.getMessage() and reason in r.getMessage() for r in caplog.records
    )
    kept = os.listdir(tmp_path / "damaged_checkpoints")
    assert len(kept) == 1 and kept[0].startswith("2-")  # moved aside, not deleted
    assert os.path.isdir(tmp_path / "damaged_checkpoints" / kept[0] / "state")
    save_steps(tmp_path, [2])  # the run can then save that step afresh
    restored, steps = restore(tmp_path)
    assert steps == [1, 2]
    assert_trees_identical(tree_of(restored), tree_of(make_state(2)))


@pytest.mark.parametrize(
    "field,value",
    [
        ("model.width_multiplier", 0.5),
        ("model.name", "mobilenet_v1"),
        ("model.stem_strides", 1),
        ("model.se.reduction", 8),
        ("model.se.gate", "tanh"),
        ("optim.name", "adamw"),
    ],
)
def test_incompatible_config_is_refused_naming_the_field_and_nothing_is_deleted(
    tmp_path, field, value
):
    save_steps(tmp_path, [1, 2])
    before = sorted(os.listdir(tmp_path / "checkpoints"))
    other = make_config(**{field: value})
    manager = CheckpointManager(str(tmp_path), other, read_only=True)
    pattern = re.escape(f"config.{field}=") + ".*" + re.escape(f"--config.{field}=")
    with pytest.raises(IncompatibleCheckpointError, match=pattern) as e:
        manager.check_config()
    manager.close()
    assert "\n" not in str(e.value)
    with pytest.raises(IncompatibleCheckpointError, match=re.escape(field)):
        restore(tmp_path, other)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == before
    assert not os.path.exists(tmp_path / "damaged_checkpoints")


def test_parameter_shape_mismatch_names_the_parameter(tmp_path):
    save_steps(tmp_path, [1])
    with pytest.raises(IncompatibleCheckpointError, match=r"\['dense'\]\['bias'\] of shape \[4\]"):
        restore(tmp_path, width=5)
    assert CheckpointManager(str(tmp_path), make_config(), read_only=True).all_steps() == [1]


def test_read_only_manager_creates_nothing(tmp_path):
    workdir = tmp_path / "absent"
    manager = CheckpointManager(str(workdir), make_config(width_multiplier=3.0), read_only=True)
    manager.check_config()
    manager.close()
    assert not os.path.exists(workdir)


def test_best_on_validation_is_kept_alongside_the_latest(tmp_path):
    accuracy = {1: 0.1, 2: 0.9, 3: 0.2, 4: 0.3, 5: 0.4, 6: None}
    metrics = {s: {"validation_accuracy": a} for s, a in accuracy.items() if a is not None}
    save_steps(tmp_path, list(accuracy), metrics=metrics)
    manager = CheckpointManager(str(tmp_path), make_config(), read_only=True)
    assert manager.best_step() == 2
    manager.close()
    assert sorted(int(n) for n in os.listdir(tmp_path / "checkpoints") if n.isdigit()) == [2, 5, 6]


def _as_written_before_config_sections(step_dir):
    """The record as the flat-config layout wrote it: shape fields under "fields"."""
    path = os.path.join(step_dir, "record", "metadata")
    with open(path) as f:
        record = json.load(f)
    for key in ("model", "num_classes", "optimizer", "opt_state_shapes"):
        record.pop(key)
    record["fields"] = {
        "model": "se_mobilenet_v1",
        "width_multiplier": 0.25,
        "stem_strides": 2,
        "se_reduction": 16,
        "optimizer": "sgd",
        "num_classes": 10,
    }
    with open(path, "w") as f:
        json.dump(record, f)


def test_checkpoint_from_before_config_sections_is_refused_in_one_line(tmp_path):
    """That layout lived one day before the first release: its workdirs are not read, and
    one kept by a user is named with the way out, nothing deleted."""
    save_steps(tmp_path, [1, 2])
    _as_written_before_config_sections(str(tmp_path / "checkpoints" / "2"))
    manager = CheckpointManager(str(tmp_path), make_config(), read_only=True)
    with pytest.raises(IncompatibleCheckpointError, match="predates this layout.*--workdir") as e:
        manager.check_config()
    manager.close()
    assert "\n" not in str(e.value)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"]


def test_record_without_model_settings_is_refused_in_one_line(tmp_path):
    save_steps(tmp_path, [1])
    path = tmp_path / "checkpoints" / "1" / "record" / "metadata"
    record = json.loads(path.read_text())
    for key in ("model", "num_classes", "optimizer"):
        record.pop(key)
    path.write_text(json.dumps(record))
    manager = CheckpointManager(str(tmp_path), make_config(), read_only=True)
    with pytest.raises(IncompatibleCheckpointError, match="predates this layout") as e:
        manager.check_config()
    manager.close()
    assert "\n" not in str(e.value)
    assert os.path.isdir(tmp_path / "checkpoints" / "1")


def test_without_a_validation_holdout_only_the_latest_are_kept(tmp_path):
    metrics = {1: {"test_accuracy": 0.9}, 2: {"test_accuracy": 0.1}, 3: {"test_accuracy": 0.2}}
    save_steps(tmp_path, [1, 2, 3], config=make_config(validation_examples=0), metrics=metrics)
    assert sorted(int(n) for n in os.listdir(tmp_path / "checkpoints") if n.isdigit()) == [2, 3]


class FakeSemiSupervisedState(FakeState):
    """FakeState plus the EMA weights a semi-supervised run keeps."""

    ema_params: dict = None


def with_ema(state, ema_params=None):
    fields = tree_of(state)
    return FakeSemiSupervisedState(**fields, ema_params=ema_params)


def test_ema_weights_round_trip_and_a_checkpoint_without_them_starts_the_average(tmp_path, caplog):
    config = make_config(**{"ssl.method": "fixmatch", "unlabelled_split": "unlabelled"})
    manager = CheckpointManager(str(tmp_path / "ema"), config, num_classes=10)
    saved = with_ema(make_state(3), ema_params=make_state(5).params)
    manager.save(3, saved)
    manager.wait_until_finished()
    restored = manager.restore_latest(with_ema(make_state(0, seed=99), make_state(0).params))
    manager.close()
    assert_trees_identical(restored.ema_params, make_state(5).params)
    assert_trees_identical(tree_of(restored), tree_of(make_state(3)))
    # a supervised checkpoint of the same SSL settings holds no EMA weights: they start at its
    # weights, with a log line
    save_steps(tmp_path / "plain", [2], config=config)
    manager = CheckpointManager(str(tmp_path / "plain"), config, num_classes=10)
    with caplog.at_level(logging.INFO, logger="senet_jax"):
        restored = manager.restore_latest(with_ema(make_state(0, seed=99), make_state(0).params))
    manager.close()
    assert_trees_identical(restored.ema_params, make_state(2).params)
    assert "holds no EMA weights" in caplog.text


def test_resuming_with_another_ssl_method_is_refused(tmp_path):
    ssl = make_config(**{"ssl.method": "fixmatch", "unlabelled_split": "unlabelled"})
    save_steps(tmp_path, [1], config=ssl)
    with pytest.raises(IncompatibleCheckpointError, match="config.ssl.method='fixmatch'"):
        restore(tmp_path, config=make_config())
    with pytest.raises(IncompatibleCheckpointError, match="config.data.labels_per_class=None"):
        restore(tmp_path, config=configure(ssl, labels_per_class=4))


def test_restore_subset_gives_the_ema_weights_as_params(tmp_path):
    config = make_config(**{"ssl.method": "fixmatch", "unlabelled_split": "unlabelled"})
    manager = CheckpointManager(str(tmp_path), config, num_classes=10)
    manager.save(3, with_ema(make_state(3), ema_params=make_state(5).params))
    manager.wait_until_finished()
    template = {"params": make_state(0).params, "batch_stats": make_state(0).batch_stats}
    restored = manager.restore_subset(3, jax.device_get(template))
    manager.close()
    assert_trees_identical(restored["params"], make_state(5).params)
    assert_trees_identical(restored["batch_stats"], make_state(3).batch_stats)


def test_a_streamed_unlabelled_split_under_another_process_count_is_refused(tmp_path):
    ours = {
        "dataset": "stl10",
        "train_split": "train",
        "streamed": False,
        "processes": None,
        "unlabelled_streamed": True,
        "unlabelled_processes": 1,
    }
    manager = CheckpointManager(str(tmp_path), make_config(), read_only=True, data_identity=ours)
    manager.check_data({"step": 3, "data": dict(ours)})
    with pytest.raises(IncompatibleCheckpointError, match="unlabelled_processes=2, this run") as e:
        manager.check_data({"step": 3, "data": {**ours, "unlabelled_processes": 2}})
    assert "\n" not in str(e.value)
    # Checkpoints saved before the unlabelled fields held the unlabelled split in memory.
    held = {**ours, "unlabelled_streamed": False, "unlabelled_processes": None}
    older = {k: v for k, v in held.items() if not k.startswith("unlabelled")}
    manager = CheckpointManager(str(tmp_path), make_config(), read_only=True, data_identity=held)
    manager.check_data({"step": 3, "data": older})
    manager = CheckpointManager(str(tmp_path), make_config(), read_only=True, data_identity=ours)
    with pytest.raises(IncompatibleCheckpointError, match="unlabelled_streamed=False"):
        manager.check_data({"step": 3, "data": older})
