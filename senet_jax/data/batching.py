"""How a global batch is laid out over processes and devices, and how many steps make a pass.

Shared by the in-memory and the streamed iterators and by the trainer, so both input paths
count steps by the same rules.
"""

from __future__ import annotations

from typing import NamedTuple

from senet_jax.data.dataset_info import DatasetInfo


class ProcessLayout(NamedTuple):
    """This process's place in a global batch."""

    process_index: int
    process_count: int
    local_devices: int
    per_process: int  # examples of each global batch this process yields


def process_layout(
    batch_size: int, process_index=None, process_count=None, local_devices=None
) -> ProcessLayout:
    """The layout of a global batch of `batch_size` examples.

    None means "as JAX sees it"; tests pass explicit values to simulate other hosts.
    """
    if process_count is None or process_index is None or local_devices is None:
        import jax  # only here, never inside tf.data functions

        process_count = jax.process_count() if process_count is None else process_count
        process_index = jax.process_index() if process_index is None else process_index
        local_devices = jax.local_device_count() if local_devices is None else local_devices
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} outside 0..{process_count - 1}")
    per_process = batch_size // process_count
    if batch_size % process_count or per_process % local_devices:
        raise ValueError(
            f"config.batch_size={batch_size} must be divisible by processes x local devices "
            f"({process_count} x {local_devices}); make it a multiple of "
            f"{process_count * local_devices}"
        )
    return ProcessLayout(process_index, process_count, local_devices, per_process)


def streamed_epoch_steps(batch_size: int, shard_examples: tuple[int, ...]) -> int:
    """Streamed steps per epoch: the smallest process shard, in whole per-process batches."""
    return min(shard_examples) // (int(batch_size) // len(shard_examples))


def steps_per_epoch(batch_size: int, info: DatasetInfo) -> int:
    """Whole global batches per epoch; the remainder is dropped (a new random subset each epoch).
    Streamed: the smallest process shard decides (every process runs the same steps)."""
    if info.streamed:
        return streamed_epoch_steps(batch_size, info.shard_examples)
    return info.num_train_examples // int(batch_size)


def unlabelled_steps_per_epoch(batch_size: int, info: DatasetInfo) -> int:
    """Semi-supervised steps per epoch (a pass over the unlabelled images) for `batch_size`
    unlabelled images a step. Streamed: the smallest process shard decides."""
    if info.unlabelled_streamed:
        return streamed_epoch_steps(batch_size, info.unlabelled_shard_examples)
    return info.num_unlabelled_examples // int(batch_size)


def num_eval_steps(batch_size: int, num_examples: int, process_count: int | None = None) -> int:
    """Batches every process yields in one evaluation pass (the largest shard, rounded up)."""
    if process_count is None:
        import jax

        process_count = jax.process_count()
    per_process = int(batch_size) // process_count
    largest_shard = -(-num_examples // process_count)
    return -(-largest_shard // per_process)
