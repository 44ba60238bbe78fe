"""The labelled subset: stratified, fixed by its seed, the same for any process count; and
STL10's official folds read from fold_indices.txt text."""

from __future__ import annotations

import numpy as np
import pytest

from senet_jax.data import labelled_subset

LABELS = np.random.default_rng(0).integers(0, 5, 400)


def test_subset_is_stratified_and_rest_is_everything_else():
    subset = labelled_subset.stratified_subset(LABELS, 7, seed=3)
    np.testing.assert_array_equal(np.bincount(LABELS[subset], minlength=5), [7] * 5)
    assert len(np.unique(subset)) == 35 and np.all(np.diff(subset) > 0)
    unlabelled = labelled_subset.rest(len(LABELS), subset)
    assert len(unlabelled) == 400 - 35
    np.testing.assert_array_equal(np.sort(np.concatenate([subset, unlabelled])), np.arange(400))


def test_subset_is_fixed_by_its_seed():
    first = labelled_subset.stratified_subset(LABELS, 7, seed=3)
    np.testing.assert_array_equal(first, labelled_subset.stratified_subset(LABELS, 7, seed=3))
    assert not np.array_equal(first, labelled_subset.stratified_subset(LABELS, 7, seed=4))


def test_one_and_two_processes_share_out_the_same_images():
    subset = labelled_subset.stratified_subset(LABELS, 8, seed=1)  # 40 images
    unlabelled = labelled_subset.rest(len(LABELS), subset)  # 360
    for indices in (subset, unlabelled):
        one = labelled_subset.process_share(indices, 0, 1)
        two = [labelled_subset.process_share(indices, i, 2) for i in range(2)]
        np.testing.assert_array_equal(one, indices)
        assert len(two[0]) == len(two[1]) == len(indices) // 2
        np.testing.assert_array_equal(np.sort(np.concatenate(two)), indices)


def test_process_shares_are_equal_in_length():
    shares = [labelled_subset.process_share(np.arange(10), i, 3) for i in range(3)]
    assert [len(s) for s in shares] == [3, 3, 3]
    assert len(np.unique(np.concatenate(shares))) == 9


def test_more_labels_than_a_class_has_names_the_field_and_the_most_allowed():
    labels = np.array([0] * 5 + [1] * 3)
    with pytest.raises(ValueError, match=r"labels_per_class=4 exceeds class 1's 3 .* at most 3"):
        labelled_subset.stratified_subset(labels, 4, seed=0)


def fold_text(rng, folds=10, per_fold=6, num_train=50):
    rows = [rng.choice(num_train, per_fold, replace=False) for _ in range(folds)]
    return rows, "".join(" ".join(map(str, r)) + " \n" for r in rows)


def test_folds_read_back_as_written():
    rows, text = fold_text(np.random.default_rng(0))
    folds = labelled_subset.parse_folds(text, num_train=50)
    assert len(folds) == 10
    for row, fold in zip(rows, folds):
        np.testing.assert_array_equal(fold, row)
        assert fold.dtype == np.int64


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda t: "\n".join(t.splitlines()[:9]), "expected 10 lines .* found 9"),
        (lambda t: t.replace(" ", " x ", 1), "line 1: 'x' is not a 0-based index"),
        (lambda t: t + "3 4\n", "found 11"),
        (lambda t: t.replace("\n", " 99\n", 1), "line 1: index 99 is past the 50"),
    ],
)
def test_malformed_fold_file_is_one_line_naming_it(edit, message):
    _, text = fold_text(np.random.default_rng(1))
    with pytest.raises(ValueError, match=f"fold_indices.txt.*{message}"):
        labelled_subset.parse_folds(edit(text), num_train=50)
