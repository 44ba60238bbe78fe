"""Model registry: `create_model(name, **options)` and `list_models()`, timm-style.

Every factory takes `num_classes`, `se` (a mapping such as `config.model.se`, or None)
and the architecture's keyword options; `config.model` is passed here as it stands.
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
from senet_jax.models.se import SEOptions, SqueezeExcite

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_ARCHITECTURES: dict[str, ModuleType] = {}


def register_model(architecture: ModuleType):
    """Adds a model factory under its function name.

    `architecture` is the module defining it, which states what config validation needs:
    `SE_BLOCKS` (the values `se.blocks` may list), `SE_PLACEMENTS` and
    `total_stride(stem_strides)`.
    """

    def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[fn.__name__] = fn
        _ARCHITECTURES[fn.__name__] = architecture
        return fn

    return register


def architecture(name: str) -> ModuleType:
    """The module of a registered model: its SE_BLOCKS, SE_PLACEMENTS and total_stride."""
    return _ARCHITECTURES[name]


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    """Builds a registered model; unknown names raise a ValueError listing the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(list_models())}")
    return _REGISTRY[name](**kwargs)


@register_model(mobilenet_v1_module)
def mobilenet_v1(num_classes: int = 1000, se: Any = None, **kwargs) -> nn.Module:
    """The plain MobileNetV1 baseline (SE options are accepted and unused)."""
    return MobileNetV1(num_classes=num_classes, se=None, **kwargs)


@register_model(mobilenet_v1_module)
def se_mobilenet_v1(num_classes: int = 1000, se: Any = None, **kwargs) -> nn.Module:
    """MobileNetV1 with SE (r=16 by default) after every depthwise-separable block."""
    return MobileNetV1(num_classes=num_classes, se=SEOptions.create(se), **kwargs)


def _resnet_factory(name: str) -> Callable[..., nn.Module]:
    def factory(num_classes: int = 1000, se: Any = None, **kwargs) -> nn.Module:
        return resnet.create(name, num_classes=num_classes, se=se, **kwargs)

    arch = resnet.ARCHITECTURES[name]
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"{name}: {resnet.ResNet.__name__} with {arch} (see senet_jax.models.resnet)."
    return factory


for _name in resnet.ARCHITECTURES:
    register_model(resnet)(_resnet_factory(_name))


__all__ = [
    "architecture",
    "create_model",
    "list_models",
    "register_model",
    "MobileNetV1",
    "ResNet",
    "SEOptions",
    "SqueezeExcite",
]
