"""Tests set config fields by their leaf names (image_size, learning_rate, ...): this finds
each one's place in the nested config, so a test reads as the setting it changes."""

from __future__ import annotations

from configs import stl10
from senet_jax.config_fields import RENAMED, field_paths

_PATHS = field_paths(stl10.get_config())


def dotted(name: str) -> str:
    """ "image_size" -> "data.image_size"; dotted names and top-level fields are kept."""
    if "." in name or name in _PATHS:
        return name
    if name in RENAMED:
        return RENAMED[name]
    matches = [p for p in _PATHS if p.rsplit(".", 1)[-1] == name]
    assert len(matches) == 1, f"{name} matches {matches}"
    return matches[0]


def configure(config, **fields):
    """Sets each field (leaf or dotted name) in place; returns the config."""
    for name, value in fields.items():
        *parents, leaf = dotted(name).split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config
