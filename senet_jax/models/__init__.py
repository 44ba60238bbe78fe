"""Model registry: `create_model(name, **options)` and `list_models()`, timm-style.

Every factory takes `num_classes` and the architecture's keyword options; models with
channel attention also take `se` (a mapping such as `config.model.se`). `config.model` is
passed here as it stands: the fields every config has (SHARED_OPTIONS) are dropped for a
model that has no such part, so one config serves e.g. mobilenet_v1 and se_mobilenet_v1.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import flax.linen as nn

from senet_jax.models import mobilenet_v1 as mobilenet_v1_module
from senet_jax.models import resnet
from senet_jax.models.mobilenet_v1 import MobileNetV1
from senet_jax.models.resnet import ResNet
from senet_jax.models.se import KINDS, SEOptions, SqueezeExcite

# config.model fields of every config, by the part of a network they configure: a model
# without that part is built without them (no attention in mobilenet_v1 or resnet50, no
# depthwise convolution in any ResNet).
SHARED_OPTIONS = ("se", "depthwise_implementation")

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_ARCHITECTURES: dict[str, ModuleType] = {}
_WITHOUT: dict[str, tuple[str, ...]] = {}


def register_model(architecture: ModuleType, without: tuple[str, ...] = ()):
    """Adds a model factory under its function name.

    `architecture` is the module defining it, which states what config validation needs:
    `SE_BLOCKS` (the values `se.blocks` may list) and `SE_PLACEMENTS`; its modules have
    `total_stride()`. `without`: the SHARED_OPTIONS the model has no part for.
    """
    unknown = set(without) - set(SHARED_OPTIONS)
    if unknown:
        raise ValueError(f"without={sorted(unknown)}: only {sorted(SHARED_OPTIONS)} are shared")

    def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[fn.__name__] = fn
        _ARCHITECTURES[fn.__name__] = architecture
        _WITHOUT[fn.__name__] = tuple(without)
        return fn

    return register


def architecture(name: str) -> ModuleType:
    """The module of a registered model: its SE_BLOCKS and SE_PLACEMENTS."""
    return _ARCHITECTURES[name]


def has_attention(name: str) -> bool:
    """Whether the registered model has channel attention (reads config.model.se)."""
    return "se" not in _WITHOUT[name]


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    """Builds a registered model; unknown names raise a ValueError listing the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(list_models())}")
    for option in _WITHOUT[name]:
        kwargs.pop(option, None)
    return _REGISTRY[name](**kwargs)


@register_model(mobilenet_v1_module, without=("se",))
def mobilenet_v1(num_classes: int = 1000, **kwargs) -> nn.Module:
    """The plain MobileNetV1 baseline."""
    return MobileNetV1(num_classes=num_classes, se=None, **kwargs)


@register_model(mobilenet_v1_module)
def se_mobilenet_v1(num_classes: int = 1000, se: Any = None, **kwargs) -> nn.Module:
    """MobileNetV1 with SE (r=16 by default) after every depthwise-separable block."""
    return MobileNetV1(num_classes=num_classes, se=SEOptions.create(se), **kwargs)


def _resnet_factory(name: str) -> Callable[..., nn.Module]:
    def factory(num_classes: int = 1000, **kwargs) -> nn.Module:
        return resnet.create(name, num_classes=num_classes, **kwargs)

    arch = resnet.ARCHITECTURES[name]
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"{name}: {resnet.ResNet.__name__} with {arch} (see senet_jax.models.resnet)."
    return factory


for _name, _arch in resnet.ARCHITECTURES.items():
    _without = ("depthwise_implementation",) if _arch.se else ("depthwise_implementation", "se")
    register_model(resnet, without=_without)(_resnet_factory(_name))


__all__ = [
    "architecture",
    "create_model",
    "has_attention",
    "list_models",
    "register_model",
    "KINDS",
    "MobileNetV1",
    "ResNet",
    "SEOptions",
    "SqueezeExcite",
]
