"""A dataset's labels as a pretrained model's class indices, found by class name.

Pretrained weights know ImageNet's 1000 classes; a dataset to evaluate them on names its
classes its own way and holds any subset of them, in its own label order. A class matches by
the model's full class name ("goldfish, Carassius auratus"), by its first synonym when no other
class shares it ("goldfish"), or by ImageNet's WordNet id ("n01443537", the names tfds's
imagenet2012 and ImageNet's own folders use; tensorflow-datasets ships them in label order).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


class ClassMismatchError(ValueError):
    """The dataset's class names are not the model's."""


def imagenet_wnids() -> list[str]:
    """ImageNet-1k's WordNet ids in label order, from tensorflow-datasets' imagenet2012 data."""
    from senet_jax.data.tf_setup import load_tfds

    path = os.path.join(
        os.path.dirname(load_tfds().__file__), "datasets", "imagenet2012", "labels.txt"
    )
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _names_to_index(model_names: Sequence[str]) -> dict[str, int]:
    """Every spelling (full name, first synonym) that names one model class alone; ImageNet's
    two "crane"s are told apart by WordNet id only."""
    spellings = [(name, i) for i, name in enumerate(model_names)]
    spellings += [(name.split(",")[0].strip(), i) for i, name in enumerate(model_names)]
    classes_of = {}
    for spelling, i in spellings:
        classes_of.setdefault(spelling, set()).add(i)
    index = {s: next(iter(c)) for s, c in classes_of.items() if len(c) == 1}
    from senet_jax import hub

    if list(model_names) == hub.imagenet_class_names():
        index.update({wnid: i for i, wnid in enumerate(imagenet_wnids())})
    return index


def dataset_to_model(
    dataset_names: Sequence[str], model_names: Sequence[str], where: str
) -> np.ndarray:
    """int32 [dataset classes]: the model's index of each dataset label (ClassMismatchError,
    naming `where` and the unmatched names, when any class has none)."""
    index = _names_to_index(model_names)
    missing = [name for name in dataset_names if name not in index]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ClassMismatchError(
            f"{where}: {len(missing)} of its {len(dataset_names)} class names are none of the "
            f"model's {len(model_names)} classes ({shown}); name each class as the model does "
            f"(e.g. {model_names[0]!r}, its first synonym, or an ImageNet WordNet id such as "
            "'n01440764')"
        )
    return np.asarray([index[name] for name in dataset_names], np.int32)
