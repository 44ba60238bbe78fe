"""timm's pretrained weights by name: the facts about them, and their download from the hub.

`pretrained_weights.json` (package data) records, for every pretrained tag of the networks
`weights.from_timm` converts, what timm's pretrained config says about it: the hub repository,
input size, crop_pct, mean, std, interpolation and class count, plus each network's default
tag. So naming weights needs neither torch nor timm (tests/test_hub.py checks the table
against timm's own configs). Files come through `huggingface_hub` (its cache, resume and
progress bar; HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE are its settings).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any

PREFIX = "timm:"
WEIGHTS_FILE = "model.safetensors"
WAY_OUT = "or convert a file you have: python -m senet_jax.weights --timm NAME --checkpoint FILE"


class HubError(ValueError):
    """The weights cannot be named or fetched: one line that says what to do instead."""


@functools.cache
def table() -> dict[str, Any]:
    """{"default_tags": {architecture: tag}, "weights": {architecture.tag: facts}}."""
    with open(os.path.join(os.path.dirname(__file__), "pretrained_weights.json")) as f:
        return json.load(f)


def resolve(name: str) -> tuple[str, dict[str, Any]]:
    """(architecture.tag, facts) for `name`, with or without a tag (no tag: timm's default)."""
    name = name.removeprefix(PREFIX)
    architecture, _, tag = name.partition(".")
    known = table()
    if architecture not in known["default_tags"]:
        listing = ", ".join(sorted(known["default_tags"]))
        raise HubError(f"no pretrained weights known for {architecture!r}: use one of {listing}")
    full = f"{architecture}.{tag or known['default_tags'][architecture]}"
    if full not in known["weights"]:
        tags = sorted(k.partition(".")[2] for k in known["weights"] if k.startswith(architecture))
        raise HubError(
            f"{name!r}: {architecture} has no pretrained tag {tag!r}; its tags: "
            + ", ".join(t for t in tags if t)
        )
    return full, dict(known["weights"][full])


def preprocessing(facts: dict[str, Any]) -> dict[str, Any]:
    """The evaluation preprocessing of the weights: resize the shorter side, centre crop."""
    size, crop_pct = int(facts["input_size"]), float(facts["crop_pct"])
    return {
        "input_size": size,
        "resize_size": int(size / crop_pct),
        "crop_size": size,
        "crop_pct": crop_pct,
        "mean": list(facts["mean"]),
        "std": list(facts["std"]),
        "interpolation": facts["interpolation"],
    }


def imagenet_class_names() -> list[str]:
    """ImageNet-1k's 1000 class descriptions in label order (package data)."""
    with open(os.path.join(os.path.dirname(__file__), "imagenet_classes.txt")) as f:
        return [line.rstrip("\n") for line in f]


def download(name: str) -> str:
    """The local path of `name`'s model.safetensors, downloaded into the hub cache once."""
    from huggingface_hub import errors, hf_hub_download  # imported first: it sets its log level

    full, facts = resolve(name)
    repo = facts["hf_hub_id"]
    chatter = logging.getLogger("huggingface_hub")
    level = chatter.level
    chatter.setLevel(logging.ERROR)  # its retry warnings: a failure is summed up in one line
    try:
        return hf_hub_download(repo, WEIGHTS_FILE, library_name="senet-jax")
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as e:
        reason = f"the hub has no {repo} ({_status(e)})"
    except errors.RemoteEntryNotFoundError as e:
        reason = f"the hub's {repo} has no {WEIGHTS_FILE} ({_status(e)})"
    except errors.LocalEntryNotFoundError:
        reason = (
            f"{repo} is not in the hub cache and the hub cannot be reached "
            "(no network, or HF_HUB_OFFLINE is set)"
        )
    except errors.HfHubHTTPError as e:
        reason = f"the hub answered {_status(e)} for {repo}"
    except Exception as e:  # OSError, or the transport errors of the hub client's HTTP library
        reason = f"downloading {repo} failed ({type(e).__name__}: {_first_line(e)})"
    finally:
        chatter.setLevel(level)
    raise HubError(f"cannot fetch timm weights {full!r}: {reason}; {WAY_OUT}")


def _status(error) -> str:
    response = getattr(error, "response", None)
    return f"HTTP {response.status_code}" if response is not None else type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
