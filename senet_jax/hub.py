"""timm's pretrained weights by name: the facts about them, and their download from the hub.

`pretrained_weights.json` (package data) records, for every pretrained tag of the networks
`weights.from_timm` converts, what timm's pretrained config says about it: the hub repository,
input size, crop_pct, mean, std, interpolation and class count, plus each network's default
tag. So naming weights needs neither torch nor timm (tests/test_hub.py checks the table
against timm's own configs). Where the weights live is timm's fact too: most are a
model.safetensors in a hub repository ("hf_hub_id"); the `legacy_*` ones are PyTorch .pth
files at a release address ("url"), which only torch reads. Both come through
`huggingface_hub` (its cache folder, resume and progress bar; HF_ENDPOINT, HF_HOME and
HF_HUB_OFFLINE are its settings).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import re
from typing import Any

PREFIX = "timm:"
WEIGHTS_FILE = "model.safetensors"
WAY_OUT = "or convert a file you have: python -m senet_jax.weights --timm NAME --checkpoint FILE"
# Hub-hosted SE weights, offered when a .pth name cannot be read (no torch).
HUB_HOSTED_SE = ("seresnet50.a1_in1k", "seresnet50.ra2_in1k", "seresnext50_32x4d.racm_in1k")
URL_CACHE = "senet_jax_urls"  # the folder under the hub cache that keeps files fetched by address


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
    """The local path of `name`'s weights (model.safetensors from the hub, or timm's .pth from
    its release address), downloaded into the hub cache once."""
    full, facts = resolve(name)
    chatter = logging.getLogger("huggingface_hub")
    level = chatter.level
    try:
        if "hf_hub_id" in facts:
            return _from_hub(full, facts["hf_hub_id"], chatter)
        return _from_url(full, facts["url"], chatter)
    finally:
        chatter.setLevel(level)


def _from_hub(full: str, repo: str, chatter: logging.Logger) -> str:
    from huggingface_hub import errors, hf_hub_download  # imported first: it sets its log level

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
    raise HubError(f"cannot fetch timm weights {full!r}: {reason}; {WAY_OUT}")


def _torch_installed() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _from_url(full: str, url: str, chatter: logging.Logger) -> str:
    """timm's .pth at its release address, kept in HF_HUB_CACHE/senet_jax_urls/ (resumed from
    its .incomplete part, checked against the sha256 prefix in its name when it has one)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import http_get

    if not _torch_installed():
        raise HubError(
            f"timm's {full} weights are a PyTorch .pth file ({url}) and reading it needs torch: "
            f"pip install 'senet-jax[convert]', or choose a hub-hosted name such as "
            f"{', '.join(HUB_HOSTED_SE)}"
        )
    path = os.path.join(constants.HF_HUB_CACHE, URL_CACHE, url.rsplit("/", 1)[-1])
    if os.path.isfile(path):
        return path
    if constants.HF_HUB_OFFLINE:
        raise HubError(
            f"cannot fetch timm weights {full!r}: {url} is not in the hub cache and "
            f"HF_HUB_OFFLINE is set; {WAY_OUT}"
        )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".incomplete"
    chatter.setLevel(logging.ERROR)
    try:
        with open(partial, "ab") as f:
            http_get(url, f, resume_size=f.tell(), displayed_filename=os.path.basename(path))
    except Exception as e:  # an HTTP status, or the transport errors of the hub client's library
        reason = f"{url} answered {_status(e)}" if getattr(e, "response", None) else None
        reason = reason or f"downloading {url} failed ({type(e).__name__}: {_first_line(e)})"
        raise HubError(f"cannot fetch timm weights {full!r}: {reason}; {WAY_OUT}") from None
    _check_digest(full, url, partial)
    os.replace(partial, path)
    return path


def _check_digest(full: str, url: str, path: str) -> None:
    """timm's release files carry the start of their sha256 in their name (NAME-HEX.pth)."""
    m = re.search(r"-([0-9a-f]{6,})\.pth$", url)
    if not m:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(m.group(1)):
        os.remove(path)
        raise HubError(
            f"cannot fetch timm weights {full!r}: the file from {url} does not match the sha256 "
            f"its name gives (removed; run again); {WAY_OUT}"
        )


def _status(error) -> str:
    response = getattr(error, "response", None)
    return f"HTTP {response.status_code}" if response is not None else type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
