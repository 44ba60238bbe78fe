"""Which training images keep their labels in semi-supervised runs, and which are unlabelled.

A stratified subset of `labels_per_class` images per class, fixed by `labels_seed` and drawn
from the global labels, so every process computes the same subset whatever the process count;
the "rest" (every other training image) is the unlabelled set. STL10 instead ships ten
official folds of 1,000 labelled images (`fold_indices.txt`, 0-based indices into `train`).
"""

from __future__ import annotations

import numpy as np

STL10_FOLD_FILE = "fold_indices.txt"


def stratified_subset(labels, per_class: int, seed: int, num_classes: int | None = None):
    """Sorted global indices of `per_class` images of every class, drawn with `seed`.

    Raises ValueError naming data.labels_per_class when a class has fewer images."""
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(
                f"config.data.labels_per_class={per_class} exceeds class {c}'s "
                f"{len(members)} training images; use at most "
                f"{min(np.bincount(labels, minlength=num_classes))}"
            )
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def rest(num_examples: int, labelled) -> np.ndarray:
    """The training images outside the labelled subset, in index order."""
    keep = np.ones(num_examples, bool)
    keep[np.asarray(labelled, np.int64)] = False
    return np.flatnonzero(keep).astype(np.int64)


def process_share(indices, process_index: int, process_count: int) -> np.ndarray:
    """This process's part of a global index set: every `process_count`-th index from its
    own offset, all parts equally long (the last len % process_count indices are left out),
    so every process runs the same number of steps."""
    indices = np.asarray(indices, np.int64)
    per_process = len(indices) // process_count
    return indices[process_index::process_count][:per_process]


def parse_folds(text: str, num_train: int | None = None, source: str = STL10_FOLD_FILE):
    """The ten folds of STL10's fold_indices.txt as int64 arrays of 0-based train indices.

    Raises ValueError naming `source` when the text is not ten lines of such indices."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) != 10:
        raise ValueError(
            f"{source}: expected 10 lines of fold indices, found {len(lines)}; "
            "use the fold_indices.txt of the official stl10_binary archive"
        )
    folds = []
    for number, tokens in enumerate(lines, 1):
        if not all(t.isdigit() for t in tokens):
            bad = next(t for t in tokens if not t.isdigit())
            raise ValueError(f"{source} line {number}: {bad!r} is not a 0-based index")
        fold = np.array(tokens, np.int64)
        if num_train is not None and len(fold) and fold.max() >= num_train:
            raise ValueError(
                f"{source} line {number}: index {fold.max()} is past the {num_train} "
                "training images; the file does not belong to this archive"
            )
        folds.append(fold)
    return folds


def labelled_indices(data, labels, available, read_folds) -> np.ndarray | None:
    """Global indices of the labelled training images among `available` (the training split
    less the validation holdout), or None when every label is used. `read_folds()` gives the
    text of STL10's fold_indices.txt (only read for data.labelled_fold)."""
    per_class, fold = data.get("labels_per_class"), data.get("labelled_fold")
    available = np.asarray(available, np.int64)
    if per_class is not None:
        labels = np.asarray(labels)
        chosen = stratified_subset(labels[available], int(per_class), int(data.labels_seed))
        return available[chosen]
    if fold is not None:
        folds = parse_folds(read_folds(), len(labels))
        return np.intersect1d(folds[int(fold)], available)
    return None
