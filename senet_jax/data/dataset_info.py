"""What the trainer needs to know of a dataset, and split sizes read from a tfds builder."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    num_classes: int
    class_names: tuple
    num_train_examples: int  # what training sees: the train split less the validation holdout
    num_eval_examples: int  # the test (eval) split
    num_validation_examples: int = 0
    streamed: bool = False  # read per process from files (data/file_stream.py), not in memory
    shard_examples: tuple = ()  # streamed: training examples of each process's files
    num_unlabelled_examples: int = 0  # semi-supervised: data.unlabelled_split's images
    unlabelled_streamed: bool = False  # read per process from files (data/unlabelled_stream.py)
    unlabelled_shard_examples: tuple = ()  # streamed: unlabelled images of each process's files


def num_examples(builder, split, field: str) -> int:
    """Examples in `split` of the builder; one line naming config.data.`field` if no such split."""
    try:
        return int(builder.info.splits[split].num_examples)
    except Exception as e:
        raise ValueError(
            f"config.data.{field}={split!r} is not a split of {builder.name} "
            f"(splits: {sorted(builder.info.splits)}; {e})"
        ) from None
