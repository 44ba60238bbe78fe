r"""python -m senet_jax.sweep --config configs/ablations/resnet_placement.py \
    --set model.se.placement=standard,pre,post,identity,conv3x3 --seeds 0,1,2 \
    --workdir runs/ablations/resnet_placement --baseline model.se.placement=standard

Where the SE block sits in an SE-ResNet-50 bottleneck unit: after the residual branch
(standard), before the unit (pre), after the addition (post), on the identity path
(identity), or after the 3x3 convolution inside the branch (conv3x3, the paper's Tab. 15).
Paper, Tab. 14 (SE-ResNet-50 on ImageNet, top-1/top-5 error %): SE 22.28/6.03,
SE-PRE 22.23/6.00, SE-POST 22.78/6.35, SE-Identity 22.20/6.15; Tab. 15: SE on the 3x3
22.48/6.02 with 25.8M parameters (28.1M standard). Only SE-POST clearly loses.
"""

from __future__ import annotations

from configs import stl10_se_resnet


def get_config():
    c = stl10_se_resnet.get_config()
    c.model.name = "se_resnet50"  # bottleneck units: the conv3x3 placement needs them
    return c
