"""The semi-supervised config fields (`config.ssl` and the data fields that choose the labelled
and unlabelled images): their allowed values, checks and the step's options.

Kept apart from `senet_jax.config` so that module can call `problem` without an import circle;
`problem` returns the first bad field and its fix rather than raising a type of its own.
"""

from __future__ import annotations

import numbers

METHODS = ("none", "fixmatch", "flexmatch")
STRONG_AUGMENTS = ("randaugment",)
# How BatchNorm sees a step's images (semi_supervised/step.py): which of (0 labelled, 1 weak,
# 2 strong) share a forward and its batch statistics; the first group's become the running
# ones. "joint" is FixMatch's one batch; "split" normalises the labelled images alone, as in
# the supervised step; "strong_apart" keeps the images drawn and augmented alike (labelled and
# weak views) together and gives the RandAugment views a batch of their own.
BATCH_NORM_GROUPS = {"joint": ((0, 1, 2),), "split": ((0,), (1, 2)), "strong_apart": ((0, 1), (2,))}
BATCH_NORMS = tuple(BATCH_NORM_GROUPS)
STL10_FOLDS = 10  # fold_indices.txt: ten folds of 1,000 labelled training images


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# (field, accepts, what it must be, an example fix); unset optional fields are None.
_RULES = (
    ("ssl.method", lambda v: v in METHODS, f"one of {', '.join(METHODS)}", "fixmatch"),
    ("ssl.threshold", lambda v: _number(v) and 0 < v <= 1, "in (0, 1]", "0.95"),
    ("ssl.unlabelled_ratio", lambda v: _whole(v) and v > 0, "a positive integer (mu)", "7"),
    ("ssl.weight", lambda v: _number(v) and v >= 0, "a number >= 0 (lambda_u)", "1.0"),
    ("ssl.ema_decay", lambda v: _number(v) and 0 <= v < 1, "in [0, 1); 0 turns it off", "0.999"),
    (
        "ssl.batch_norm",
        lambda v: v is None or v in BATCH_NORMS,
        f"one of {', '.join(BATCH_NORMS)}",
        "split",
    ),
    (
        "data.unlabelled_split",
        lambda v: v is None or (isinstance(v, str) and v.strip() != ""),
        "a split name: unlabelled (STL10), rest, or a tfds split",
        "unlabelled",
    ),
    (
        "data.labels_per_class",
        lambda v: v is None or (_whole(v) and v > 0),
        "a positive integer, or unset for every label",
        "400",
    ),
    ("data.labels_seed", _whole, "an integer", "0"),
    (
        "data.labelled_fold",
        lambda v: v is None or (_whole(v) and 0 <= v < STL10_FOLDS),
        f"an STL10 fold 0-{STL10_FOLDS - 1}, or unset",
        "0",
    ),
    (
        "data.strong_augment",
        lambda v: v in STRONG_AUGMENTS,
        f"one of {', '.join(STRONG_AUGMENTS)}",
        "randaugment",
    ),
)


def _value(config, field: str):
    section, name = field.split(".")
    node = config.get(section)
    return None if node is None else node.get(name)


def problem(config) -> tuple[str, str] | None:
    """(field, "what is wrong; the fix") for the first bad semi-supervised field, else None.
    Configs without a `ssl` section are plain supervised and have nothing to check."""
    if config.get("ssl") is None:
        return None
    for field, accepts, requirement, example in _RULES:
        value = _value(config, field)
        if (value is not None or not field.startswith("data.")) and not accepts(value):
            return field, f"must be {requirement}, got {value!r} (e.g. --config.{field}={example})"
    return _combination_problem(config)


def _combination_problem(config) -> tuple[str, str] | None:
    """Fields that are fine alone but not together."""
    data, method = config.data, config.ssl.method
    fold, per_class = data.get("labelled_fold"), data.get("labels_per_class")
    split = data.get("unlabelled_split")
    if fold is not None and data.dataset != "stl10":
        return "data.labelled_fold", (
            f"the official folds are STL10's, not {data.dataset!r}'s; unset it and use "
            "--config.data.labels_per_class=N for a labelled subset"
        )
    if fold is not None and per_class is not None:
        return "data.labelled_fold", (
            "names the labelled images itself; unset data.labels_per_class or the fold"
        )
    if split == "rest" and fold is None and per_class is None:
        return "data.unlabelled_split", (
            "'rest' is the training images left unlabelled, but every label is used; set "
            "--config.data.labels_per_class=N (or data.labelled_fold for STL10)"
        )
    if method != "none" and split is None:
        hint = "unlabelled" if data.dataset == "stl10" else "rest"
        return "ssl.method", (
            f"{method!r} needs unlabelled images; set --config.data.unlabelled_split={hint}"
            + ("" if hint == "unlabelled" else " with --config.data.labels_per_class=N")
        )
    return None


def step_options(config) -> dict:
    """The keyword arguments of `step.ssl_train_step` that come from the config."""
    return {
        "method": config.ssl.method,
        "threshold": float(config.ssl.threshold),
        "weight": float(config.ssl.weight),
        "ema_decay": float(config.ssl.ema_decay),
        "label_smoothing": float(config.optim.label_smoothing),
        "batch_norm": config.ssl.get("batch_norm") or "joint",
    }
