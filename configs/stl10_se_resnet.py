"""SE-ResNet-18 from scratch on STL10's 5,000 labelled 96x96 images.

    python train.py --config configs/stl10_se_resnet.py --workdir runs/stl10_se_resnet
    python train.py --config configs/stl10_se_resnet.py --workdir runs/stl10_resnet \
        --config.model.name=resnet18                       # the baseline without SE

Expected result: not measured (these machines have no STL10 copy and no accelerator).
The SE-MobileNetV1 recipe of configs/stl10.py is kept (augmentation, SGD + Nesterov,
cosine, label smoothing); only the network changes.

Where each choice comes from:
- SE-ResNet-18 rather than -50: 500 images per class; a basic-block network has 11.2M
  parameters (10 classes) against 26M, and about a third of the compute at this size.
- stem_strides=1: the 7x7 stem at stride 1, max-pool kept: total stride 16, a 6x6 last
  map at 96x96 (stride 32 leaves 3x3), as configs/stl10.py does for MobileNet.
- se: the paper's default, r=16 in every unit after the residual branch's last BN.
- stride_in_1x1, padding, stem_pool: the paper-faithful (Caffe) layout; with basic units
  stride_in_1x1 has no effect. Nothing is imported, so the PyTorch variants buy nothing.
"""

from __future__ import annotations

import ml_collections
from ml_collections.config_dict import placeholder

from configs import stl10


def get_config() -> ml_collections.ConfigDict:
    c = stl10.get_config()
    c.model.name = "se_resnet18"  # any of senet_jax.models.list_models()
    c.model.width_multiplier = 1.0
    c.model.stem_strides = 1
    c.model.dropout_rate = 0.2
    c.model.depthwise_implementation = "auto"  # unused by ResNets
    c.model.conv_implementation = "auto"
    c.model.se.kind = "se"  # or "eca", "cbam", "ge", "ese" (configs/ablations/attention.py)
    c.model.se.reduction = 16
    c.model.se.squeeze = "avg"
    c.model.se.gate = "sigmoid"
    c.model.se.blocks = "all"  # or stage names, e.g. "conv4_x,conv5_x" (paper Table 13)
    c.model.se.min_features = 1
    c.model.se.placement = "standard"  # "pre" | "post" | "identity" | "conv3x3" (bottlenecks)
    # ResNet-only architecture options (senet_jax.models.resnet.ResNet).
    c.model.stride_in_1x1 = True
    c.model.padding = "torch"
    c.model.stem_pool = "ceil"
    c.model.branch_relu = False
    # None: the architecture's own stem; "cifar": one 3x3 conv, no max-pool (32x32 images).
    c.model.stem = placeholder(str)
    return c
