"""A config's fields by dotted name ("model.se.reduction"), and the one-line hint for a name
that is none of them: where a moved field lives now, or the closest real one.

train.py's --config.FIELD overrides, the sweep's --set/--baseline and TensorBoard's hparams
all walk a config the same way, so they live here once. Kept free of jax and TensorFlow, so
a command can check its arguments before those load.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

# Fields of the flat layout used before config sections, by their new place.
RENAMED = {
    "model": "model.name",
    "optimizer": "optim.name",
    "se_reduction": "model.se.reduction",
    "se_squeeze": "model.se.squeeze",
    "se_gate": "model.se.gate",
    "se_blocks": "model.se.blocks",
}


def _leaves(config, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
    """(dotted path, the section holding it, its key) for every leaf, in config order."""
    for key, value in config.items():
        if hasattr(value, "items"):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", config, key


def field_paths(config) -> list[str]:
    """Every leaf field as a dotted path: "model.se.reduction", "batch_size", ..."""
    return [path for path, _, _ in _leaves(config)]


def field_types(config) -> dict[str, type]:
    """Every leaf field with the type an override must have (a placeholder's declared type,
    not NoneType)."""
    return {path: section.get_type(key) for path, section, key in _leaves(config)}


def scalar_fields(config) -> dict[str, int | float | str | bool]:
    """The fields holding a number, string or bool (what TensorBoard's hparams can show)."""
    return {
        path: section[key]
        for path, section, key in _leaves(config)
        if isinstance(section[key], (int, float, str, bool))
    }


def unknown_field_message(config, path: str) -> str | None:
    """None when `path` is a field of `config`; else one line naming where it is now or the
    closest real field."""
    paths = field_paths(config)
    if path in paths:
        return None
    leaf = path.rsplit(".", 1)[-1]
    moved = RENAMED.get(path) or next((p for p in paths if p.rsplit(".", 1)[-1] == leaf), None)
    if moved and moved in paths:
        return (
            f"config.{path} is now config.{moved} (the config has sections model, data, "
            f"optim): use --config.{moved}=..."
        )
    close = difflib.get_close_matches(path, paths, n=1, cutoff=0.6)
    hint = f"did you mean config.{close[0]}?" if close else "fields: " + ", ".join(paths)
    return f"config.{path} is not a config field; {hint}"


def unknown_override_message(config, argv) -> str | None:
    """The message for the first `--config.FIELD=...` argument naming no field, else None."""
    for arg in argv:
        if arg.startswith("--config."):
            message = unknown_field_message(config, arg[len("--config.") :].split("=", 1)[0])
            if message:
                return message
    return None
