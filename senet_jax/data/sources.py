"""Where the images come from: a tfds builder, prepared once, described by a DatasetInfo.

- tfds datasets are prepared by tfds into `config.data.data_dir`.
- STL10 is prepared from the official archive, downloaded or local (data/stl10_prepare.py).
- `config.data.dataset="folder:/path"`: the user's own train/<class>/ and test/<class>/
  images through tfds's ImageFolder (data/folder.py).
- `config.data.mean`/`std` left unset are computed exactly from the training split once
  and stored beside the prepared data (senet_jax/data/statistics.py).
"""

from __future__ import annotations

import functools
import os

from senet_jax.data import (
    file_stream,
    folder,
    folder_cache,
    in_memory,
    statistics,
    stl10_prepare,
    unlabelled,
    unlabelled_stream,
)
from senet_jax.data.availability import can_reach, unavailable
from senet_jax.data.dataset_info import DatasetInfo, num_examples
from senet_jax.data.tf_setup import load_tfds


@functools.cache
def _folder_builder(path: str):
    """Checked once a process: the trainer asks for the builder several times a run."""
    return folder.image_folder_builder(path)


def _builder(data):
    path = folder.parse_folder_dataset(data.dataset)
    if path is not None:
        return _folder_builder(path)
    tfds = load_tfds()
    try:
        return tfds.builder(data.dataset, data_dir=data.data_dir)
    except Exception as e:  # tfds raises its own DatasetNotFoundError types
        raise ValueError(
            f"config.data.dataset={data.dataset!r} is not a tfds dataset ({e})"
        ) from None


def prepared_builder(data):
    """The builder for config.data.dataset, prepared if it is not yet (see the module doc)."""
    if data.synthetic_stl10 and not data.data_dir:
        raise ValueError(
            "config.data.synthetic_stl10 is set but config.data.data_dir is None: generated "
            "images would be prepared as 'stl10' in the default tfds folder and later stand in "
            "for the real STL10; set config.data.data_dir to a scratch folder (e.g. WORKDIR/tfds)"
        )
    builder = _builder(data)
    if folder.parse_folder_dataset(data.dataset) is None and not builder.is_prepared():
        _prepare(builder, data)
        builder = _builder(data)  # re-read the prepared dataset_info
    features = builder.info.features
    if (
        "image" not in features
        or "label" not in features
        or not hasattr(features["label"], "num_classes")
    ):
        raise ValueError(
            f"config.data.dataset={data.dataset!r} has no 'image' and class 'label' features; "
            "choose an image classification dataset"
        )
    return builder


def _prepare(builder, data) -> None:
    archive = data.stl10_archive
    if archive:
        if builder.name != "stl10":
            raise ValueError(
                f"config.data.stl10_archive is set but config.data.dataset={data.dataset!r}; "
                "the archive only prepares 'stl10': set config.data.dataset='stl10' or "
                "config.data.stl10_archive=None"
            )
        stl10_prepare.prepare_offline(builder, archive)
    elif builder.name == "stl10":
        stl10_prepare.download_and_prepare(builder, data)
    else:
        urls = list(getattr(builder, "url_infos", None) or {})
        if urls and not can_reach(urls):
            raise unavailable(data, f"its download host ({urls[0]}) cannot be reached")
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise unavailable(data, f"preparing it failed ({type(e).__name__}: {e})") from None


def get_dataset_info(data) -> DatasetInfo:
    """Prepares the dataset if needed, then describes it (training excludes the holdout)."""
    builder = prepared_builder(data)
    label = builder.info.features["label"]
    train = num_examples(builder, data.train_split, "train_split")
    held_out = int(data.validation_examples)
    if held_out >= train:
        raise ValueError(
            f"config.data.validation_examples={held_out} leaves nothing of the {train} examples "
            f"of {data.train_split!r} to train on; use fewer (e.g. {train // 10})"
        )
    fields = {
        "num_classes": int(label.num_classes),
        "class_names": tuple(label.names),
        "num_train_examples": train - held_out,
        "num_eval_examples": num_examples(builder, data.eval_split, "eval_split"),
        "num_validation_examples": held_out,
        **_stream_layout(data, builder),
    }
    return DatasetInfo(**{**fields, **_semi_supervised_sizes(data, builder)})


def _semi_supervised_sizes(data, builder) -> dict:
    """DatasetInfo's labelled-subset size and unlabelled count, where the config sets them
    (a ValueError names data.labels_per_class when a class has too few images), and whether
    the unlabelled split streams, with each process's share."""
    sizes = {}
    if data.get("labels_per_class") is not None or data.get("labelled_fold") is not None:
        sizes["num_train_examples"] = len(in_memory.training_partition(data, builder)[1][0])
    if data.get("unlabelled_split") is not None:
        sizes["num_unlabelled_examples"] = unlabelled.num_unlabelled(data, builder)
    if unlabelled_stream.is_streamed(data, builder):
        import jax

        shards = unlabelled_stream.shard_examples(data, builder, jax.process_count())
        sizes.update(unlabelled_streamed=True, unlabelled_shard_examples=shards)
    return sizes


def _stream_layout(data, builder) -> dict:
    """DatasetInfo's streamed fields: whether the split streams, and each process's share."""
    if not file_stream.is_streamed(data, builder):
        return {}
    import jax

    file_stream.check_supported(data)
    examples = file_stream.shard_examples(builder, data.train_split, jax.process_count())
    return {"streamed": True, "shard_examples": examples}


def channel_statistics(data, images_of_split) -> tuple[tuple, tuple]:
    """(mean, std): config.data.mean/std when set, else exact over the training split, computed
    once from `images_of_split()` (uint8 images) and cached beside the prepared data."""
    if data.mean is not None and data.std is not None:
        return tuple(data.mean), tuple(data.std)
    builder = prepared_builder(data)
    examples = num_examples(builder, data.train_split, "train_split")
    return statistics.cached_statistics(
        _statistics_path(builder, data),
        lambda: statistics.channel_statistics(images_of_split(), return_examples=True),
        examples=examples,
    )


def _statistics_path(builder, data) -> str:
    """Beside the prepared tfds data; for an image folder (never written to), under data_dir."""
    split = str(data.train_split).replace("/", "_")
    name = f"senet_jax_statistics_{split}.json"
    path = folder.parse_folder_dataset(data.dataset)
    if path is None:
        return os.path.join(os.fspath(builder.data_dir), name)
    return os.path.join(folder_cache.location(path, data.data_dir), name)
